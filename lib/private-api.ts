import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  AccessLogFormat,
  EndpointType,
  LambdaIntegration,
  LogGroupLogDestination,
  MethodLoggingLevel,
  RestApi,
} from 'aws-cdk-lib/aws-apigateway';
import {
  InterfaceVpcEndpoint,
  InterfaceVpcEndpointAwsService,
  Peer,
  Port,
  SecurityGroup,
  Subnet,
  Vpc,
  type IVpcEndpoint,
} from 'aws-cdk-lib/aws-ec2';
import { AnyPrincipal, Effect, PolicyDocument, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { AccessSettings, PrivateEndpointSettings } from './access-settings.js';
import type { DcvFunction } from './dcv-function.js';
import { acknowledgePrivateApiFindings } from './nag-acknowledgements.js';

/** The stage every private-mode URL ends in: `https://<api>-<vpce>.execute-api.<region>.amazonaws.com/prod`. */
export const PRIVATE_API_STAGE = 'prod';

/**
 * Requests per second the stage admits per unit of the resolver's reserved concurrency. A warm resolve or
 * verify takes well under 50 ms, so one instance serves about 20 a second: a flood is throttled by the
 * stage (429) before it can queue behind the function's concurrency cap.
 */
export const PRIVATE_API_RATE_PER_CONCURRENCY = 20;

export interface PrivateApiProps {
  readonly resolver: DcvFunction;
  readonly access: AccessSettings & { readonly privateEndpoint: PrivateEndpointSettings };
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: RetentionDays;
}

/**
 * `accessMode: 'private'`: the resolver (and its verifier) behind an API Gateway REST API with a PRIVATE
 * endpoint, as AWS's own DCV portal sample does. Its resource policy admits only the given execute-api VPC
 * endpoints (`aws:SourceVpce`), narrowed to `allowedSourceCidrs` (`aws:VpcSourceIp`) when set. The gateway
 * and DCV servers cannot sign requests, and need not: nothing outside those endpoints reaches the API, and
 * the endpoint itself never leaves the AWS network, so no NAT or internet egress is needed.
 */
export class PrivateResolverApi extends Construct {
  readonly api: RestApi;
  /** The endpoint the stack created (vpcId + subnetIds); absent when existing endpoints were given. */
  readonly vpcEndpoint?: InterfaceVpcEndpoint;
  /** The admitted endpoint ids (tokens for a created one); the first names the URLs below. */
  readonly vpcEndpointIds: readonly string[];
  /**
   * `https://<api-id>-<vpce-id>.execute-api.<region>.amazonaws.com/prod`: the endpoint-specific name,
   * which resolves whether or not private DNS is on for the endpoint (the API is associated with it).
   */
  readonly stageUrl: string;

  constructor(scope: Construct, id: string, props: PrivateApiProps) {
    super(scope, id);
    const { resolver, access } = props;
    const endpoint = access.privateEndpoint;

    let endpoints: IVpcEndpoint[];
    if (endpoint.kind === 'existing') {
      endpoints = endpoint.vpcEndpointIds.map((vpceId, i) => InterfaceVpcEndpoint.fromInterfaceVpcEndpointAttributes(this, `Endpoint${i}`, { vpcEndpointId: vpceId, port: 443 }));
      this.vpcEndpointIds = endpoint.vpcEndpointIds;
    } else {
      this.vpcEndpoint = this.createEndpoint(endpoint, access.allowedSourceCidrs);
      endpoints = [this.vpcEndpoint];
      this.vpcEndpointIds = [this.vpcEndpoint.vpcEndpointId];
    }

    const accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.api = new RestApi(this, 'Api', {
      restApiName: `${Stack.of(this).stackName}-resolver`,
      description: 'DCV session resolver and token verifier, reachable only through the execute-api VPC endpoint(s)',
      endpointConfiguration: { types: [EndpointType.PRIVATE], vpcEndpoints: endpoints },
      policy: resourcePolicy(this.vpcEndpointIds, access.allowedSourceCidrs),
      // Every path (…/resolveSession, …/verifyToken/<server>, with or without the prefix, and '/') to the one
      // function; the router decides what answers, exactly as behind a Function URL.
      defaultIntegration: new LambdaIntegration(resolver, { proxy: true, allowTestInvoke: false }),
      // Access logging needs the account's API Gateway CloudWatch role; retained, as other APIs may rely on it.
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      deployOptions: {
        stageName: PRIVATE_API_STAGE,
        accessLogDestination: new LogGroupLogDestination(accessLogs),
        accessLogFormat: AccessLogFormat.jsonWithStandardFields(),
        loggingLevel: MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        metricsEnabled: true,
        throttlingBurstLimit: access.reservedConcurrency,
        throttlingRateLimit: access.reservedConcurrency * PRIVATE_API_RATE_PER_CONCURRENCY,
      },
    });
    this.api.root.addProxy({ anyMethod: true });
    // RestApi always adds an 'Endpoint' output with the short host name, which resolves only where private DNS
    // is on for an endpoint; the stack outputs the endpoint-specific name instead (stageUrl), so drop it.
    this.api.node.tryRemoveChild('Endpoint');

    const region = Stack.of(this).region;
    this.stageUrl = `https://${this.api.restApiId}-${this.vpcEndpointIds[0]}.execute-api.${region}.${Stack.of(this).urlSuffix}/${PRIVATE_API_STAGE}`;
    acknowledgePrivateApiFindings(this);
  }

  /** An execute-api interface endpoint, 443 open to the allow-list (or the VPC), private DNS off. */
  private createEndpoint(endpoint: Extract<PrivateEndpointSettings, { kind: 'create' }>, allowed: readonly string[] | undefined): InterfaceVpcEndpoint {
    const vpc = Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: endpoint.vpcId,
      availabilityZones: endpoint.subnetIds.map((_, i) => `${Stack.of(this).region}-az${i}`),
      ...(endpoint.vpcCidr ? { vpcCidrBlock: endpoint.vpcCidr } : {}),
    });
    const securityGroup = new SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc,
      description: 'execute-api endpoint for the DCV session resolver: HTTPS from the gateway and DCV servers',
      allowAllOutbound: false,
    });
    for (const cidr of allowed ?? [endpoint.vpcCidr!]) {
      const peer = cidr.includes(':') ? Peer.ipv6(cidr) : Peer.ipv4(cidr);
      securityGroup.addIngressRule(peer, Port.tcp(443), `HTTPS from ${cidr}`);
    }
    return new InterfaceVpcEndpoint(this, 'Endpoint', {
      vpc,
      service: InterfaceVpcEndpointAwsService.APIGATEWAY,
      subnets: { subnets: endpoint.subnetIds.map((subnetId, i) => Subnet.fromSubnetId(this, `Subnet${i}`, subnetId)) },
      securityGroups: [securityGroup],
      // On, it would send every execute-api call from the VPC (other teams' public APIs too) to this
      // endpoint; the endpoint-specific host names in the outputs work without it.
      privateDnsEnabled: false,
      open: false,
    });
  }
}

/** Allow only through the endpoints (and from the listed VPC addresses); deny everything else explicitly. */
function resourcePolicy(vpcEndpointIds: readonly string[], allowed: readonly string[] | undefined): PolicyDocument {
  const invoke = { principals: [new AnyPrincipal()], actions: ['execute-api:Invoke'], resources: ['execute-api:/*'] };
  const statements = [
    new PolicyStatement({ ...invoke, effect: Effect.ALLOW, conditions: { StringEquals: { 'aws:SourceVpce': [...vpcEndpointIds] } } }),
    new PolicyStatement({ ...invoke, effect: Effect.DENY, conditions: { StringNotEquals: { 'aws:SourceVpce': [...vpcEndpointIds] } } }),
  ];
  if (allowed) {
    statements.push(new PolicyStatement({ ...invoke, effect: Effect.DENY, conditions: { NotIpAddress: { 'aws:VpcSourceIp': [...allowed] } } }));
  }
  return new PolicyDocument({ statements });
}
