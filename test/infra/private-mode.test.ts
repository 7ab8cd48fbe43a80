import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DcvResolverStack, type DcvResolverStackProps } from '../../lib/dcv-resolver-stack';
import { PRIVATE_API_RATE_PER_CONCURRENCY, PRIVATE_API_STAGE } from '../../lib/private-api';
import { readStackContext } from '../../lib/stack-context';

/**
 * `accessMode: 'private'` (issue 22): the resolver behind a PRIVATE REST API that only the given (or a
 * created) execute-api VPC endpoint reaches; no Function URL. Template assertions for both endpoint variants.
 */
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };
const VPCE = 'vpce-0123456789abcdef0';
const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

type Json = Record<string, any>;

function synth(props: DcvResolverStackProps): { stack: DcvResolverStack; template: Template; json: Json } {
  const outdir = mkdtempSync(join(tmpdir(), 'dcv-private-'));
  outdirs.push(outdir);
  const app = new App({ outdir, context: NO_BUNDLING });
  const stack = new DcvResolverStack(app, 'P', { env: { account: '123456789012', region: 'eu-west-3' }, ...props });
  const template = Template.fromStack(stack);
  return { stack, template, json: template.toJSON() as Json };
}

function only(template: Template, type: string): [string, Json] {
  const found = Object.entries(template.findResources(type));
  expect(found, type).toHaveLength(1);
  return [found[0]![0], found[0]![1].Properties as Json];
}

const resolverId = (template: Template) =>
  Object.keys(template.findResources('AWS::Lambda::Function')).find((id) => /^Resolver[0-9A-F]{8}$/.test(id))!;

/** Substitutes the template's Refs and GetAtts with readable names so outputs can be compared as text. */
function render(value: unknown, names: Record<string, string>): string {
  if (typeof value === 'string') return value;
  const v = value as Json;
  if (v['Fn::Join']) return (v['Fn::Join'][1] as unknown[]).map((part) => render(part, names)).join(v['Fn::Join'][0]);
  if (v.Ref) return names[v.Ref] ?? `<${v.Ref}>`;
  if (v['Fn::GetAtt']) return names[v['Fn::GetAtt'].join('.')] ?? `<${v['Fn::GetAtt'].join('.')}>`;
  return JSON.stringify(v);
}

describe('private mode with an existing endpoint (-c vpcEndpointIds=…)', () => {
  let template: Template;
  let json: Json;
  let apiId: string;
  beforeAll(() => {
    ({ template, json } = synth({ accessMode: 'private', vpcEndpointIds: [VPCE], reservedConcurrency: 12 }));
    apiId = only(template, 'AWS::ApiGateway::RestApi')[0];
  });

  it('has no Function URL: the function is reached only through the private API', () => {
    template.resourceCountIs('AWS::Lambda::Url', 0);
    const permissions = Object.values(template.findResources('AWS::Lambda::Permission')).map((p) => p.Properties as Json);
    const onResolver = permissions.filter((p) => p.FunctionName['Fn::GetAtt']?.[0] === resolverId(template));
    // One per method (the proxy and the root), each for this API's stage only; no test-invoke grant.
    expect(onResolver).toHaveLength(2);
    for (const permission of onResolver) {
      expect(permission).toMatchObject({ Action: 'lambda:InvokeFunction', Principal: 'apigateway.amazonaws.com' });
      expect(render(permission.SourceArn, { [apiId]: 'API' })).toMatch(/:API\/<[A-Za-z0-9]+>\/\*\//);
    }
  });

  it('is a PRIVATE REST API associated with the endpoint, admitting only it', () => {
    const [, api] = only(template, 'AWS::ApiGateway::RestApi');
    expect(api.EndpointConfiguration).toEqual({ Types: ['PRIVATE'], VpcEndpointIds: [VPCE] });
    expect(api.Policy.Statement).toEqual([
      { Action: 'execute-api:Invoke', Effect: 'Allow', Principal: { AWS: '*' }, Resource: 'execute-api:/*', Condition: { StringEquals: { 'aws:SourceVpce': [VPCE] } } },
      { Action: 'execute-api:Invoke', Effect: 'Deny', Principal: { AWS: '*' }, Resource: 'execute-api:/*', Condition: { StringNotEquals: { 'aws:SourceVpce': [VPCE] } } },
    ]);
    // The function keeps no allow-list of its own in this mode: the resource policy decides.
    const fn = template.findResources('AWS::Lambda::Function')[resolverId(template)]!.Properties as Json;
    expect(fn.Environment.Variables.ALLOWED_SOURCE_CIDRS).toBeUndefined();
  });

  it('sends every path and method to the resolver by Lambda proxy integration, with no API keys', () => {
    const [, resource] = only(template, 'AWS::ApiGateway::Resource');
    expect(resource.PathPart).toBe('{proxy+}');
    // ANY on '/{proxy+}' and on '/' (which the router answers with its 404).
    const methods = Object.values(template.findResources('AWS::ApiGateway::Method')).map((m) => m.Properties as Json);
    expect(methods).toHaveLength(2);
    for (const method of methods) {
      expect(method).toMatchObject({ HttpMethod: 'ANY', AuthorizationType: 'NONE', Integration: { Type: 'AWS_PROXY', IntegrationHttpMethod: 'POST' } });
      expect(method.ApiKeyRequired ?? false).toBe(false);
      expect(JSON.stringify(method.Integration.Uri)).toContain(resolverId(template));
    }
    template.resourceCountIs('AWS::ApiGateway::ApiKey', 0);
    template.resourceCountIs('AWS::ApiGateway::UsagePlan', 0);
  });

  it('logs access as JSON and throttles the stage from the reserved concurrency', () => {
    const [, stage] = only(template, 'AWS::ApiGateway::Stage');
    expect(stage.StageName).toBe(PRIVATE_API_STAGE);
    expect(stage.AccessLogSetting.DestinationArn['Fn::GetAtt'][1]).toBe('Arn');
    expect(JSON.parse(stage.AccessLogSetting.Format)).toMatchObject({ requestId: '$context.requestId', ip: '$context.identity.sourceIp', status: '$context.status' });
    expect(stage.MethodSettings).toEqual([
      expect.objectContaining({ HttpMethod: '*', ResourcePath: '/*', ThrottlingBurstLimit: 12, ThrottlingRateLimit: 12 * PRIVATE_API_RATE_PER_CONCURRENCY, LoggingLevel: 'ERROR', DataTraceEnabled: false }),
    ]);
    // The account's CloudWatch role for API Gateway logs is retained when the stack goes.
    const [, account] = only(template, 'AWS::ApiGateway::Account');
    expect(account.CloudWatchRoleArn).toBeDefined();
  });

  it("gives the gateway's and DCV servers' lines with the endpoint-specific host name and the stage", () => {
    const names = { [apiId]: 'a1b2c3d4e5', 'AWS::URLSuffix': 'amazonaws.com' };
    const base = `https://a1b2c3d4e5-${VPCE}.execute-api.eu-west-3.amazonaws.com/${PRIVATE_API_STAGE}`;
    const outputs = json.Outputs as Json;
    expect(outputs.ResolverFunctionUrl).toBeUndefined();
    expect(outputs.ProxyCommand).toBeUndefined();
    expect(render(outputs.PrivateApiUrl.Value, names)).toBe(base);
    expect(render(outputs.GatewayResolverUrl.Value, names)).toBe(base);
    expect(render(outputs.GatewayResolverConfig.Value, names)).toBe(`[resolver]\nurl = '${base}'\n`);
    expect(render(outputs.DcvServerVerifierConfig.Value, names)).toBe(`[security]\nauth-token-verifier="${base}/verifyToken/<DcvServerEndpoint>"\n`);
    expect(outputs.VpcEndpointId.Value).toBe(VPCE);
    // No output names the short host (it resolves only with private DNS on): every execute-api URL is endpoint-specific.
    for (const [key, output] of Object.entries(outputs)) {
      const text = render(output.Value, names);
      if (text.includes('.execute-api.')) expect(text, key).toContain(`-${VPCE}.execute-api.`);
    }
  });
});

describe('private mode narrowed by caller addresses, with a path prefix', () => {
  it('denies callers outside allowedSourceCidrs by aws:VpcSourceIp and keeps the prefix in the URLs', () => {
    const { template, json } = synth({ accessMode: 'private', vpcEndpointIds: [VPCE, 'vpce-0fedcba9876543210'], allowedSourceCidrs: ['10.20.0.0/16', '10.30.1.5/32'], pathPrefix: 's3cret' });
    const [apiId, api] = only(template, 'AWS::ApiGateway::RestApi');
    expect(api.EndpointConfiguration.VpcEndpointIds).toEqual([VPCE, 'vpce-0fedcba9876543210']);
    expect(api.Policy.Statement).toContainEqual({
      Action: 'execute-api:Invoke',
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Resource: 'execute-api:/*',
      Condition: { NotIpAddress: { 'aws:VpcSourceIp': ['10.20.0.0/16', '10.30.1.5/32'] } },
    });
    expect(api.Policy.Statement[0].Condition).toEqual({ StringEquals: { 'aws:SourceVpce': [VPCE, 'vpce-0fedcba9876543210'] } });
    const url = render((json.Outputs as Json).GatewayResolverUrl.Value, { [apiId]: 'api', 'AWS::URLSuffix': 'amazonaws.com' });
    expect(url).toBe(`https://api-${VPCE}.execute-api.eu-west-3.amazonaws.com/prod/s3cret`);
    const fn = template.findResources('AWS::Lambda::Function')[resolverId(template)]!.Properties as Json;
    expect(fn.Environment.Variables.PATH_PREFIX).toBe('s3cret');
  });
});

describe('private mode creating its endpoint (-c vpcId=… -c subnetIds=…)', () => {
  let template: Template;
  let json: Json;
  beforeAll(() => {
    ({ template, json } = synth({
      accessMode: 'private',
      vpcId: 'vpc-0a1b2c3d4e5f60718',
      subnetIds: ['subnet-0a1b2c3d4e5f60718', 'subnet-1a1b2c3d4e5f60718'],
      allowedSourceCidrs: ['10.20.0.0/16'],
    }));
  });

  it('creates an execute-api interface endpoint in those subnets, private DNS off', () => {
    const [, endpoint] = only(template, 'AWS::EC2::VPCEndpoint');
    expect(endpoint).toMatchObject({
      VpcId: 'vpc-0a1b2c3d4e5f60718',
      VpcEndpointType: 'Interface',
      SubnetIds: ['subnet-0a1b2c3d4e5f60718', 'subnet-1a1b2c3d4e5f60718'],
      PrivateDnsEnabled: false,
    });
    expect(JSON.stringify(endpoint.ServiceName)).toContain('execute-api');
  });

  it('admits 443 from the allow-list only, and nothing outbound', () => {
    const [sgId, sg] = only(template, 'AWS::EC2::SecurityGroup');
    expect(sg.SecurityGroupIngress).toEqual([expect.objectContaining({ CidrIp: '10.20.0.0/16', IpProtocol: 'tcp', FromPort: 443, ToPort: 443 })]);
    expect(sg.SecurityGroupEgress).toEqual([expect.objectContaining({ CidrIp: '255.255.255.255/32' })]);
    const [, endpoint] = only(template, 'AWS::EC2::VPCEndpoint');
    expect(endpoint.SecurityGroupIds).toEqual([{ 'Fn::GetAtt': [sgId, 'GroupId'] }]);
  });

  it('admits that endpoint in the policy and names it in the URLs', () => {
    const [endpointId] = only(template, 'AWS::EC2::VPCEndpoint');
    const [apiId, api] = only(template, 'AWS::ApiGateway::RestApi');
    expect(api.EndpointConfiguration.VpcEndpointIds).toEqual([{ Ref: endpointId }]);
    expect(api.Policy.Statement[0].Condition).toEqual({ StringEquals: { 'aws:SourceVpce': [{ Ref: endpointId }] } });
    const url = render((json.Outputs as Json).GatewayResolverUrl.Value, { [apiId]: 'api', [endpointId]: 'vpce-new', 'AWS::URLSuffix': 'amazonaws.com' });
    expect(url).toBe('https://api-vpce-new.execute-api.eu-west-3.amazonaws.com/prod');
  });

  it("admits the VPC's CIDR when no allow-list is given", () => {
    const { template: t } = synth({ accessMode: 'private', vpcId: 'vpc-0a1b2c3d4e5f60718', subnetIds: ['subnet-0a1b2c3d4e5f60718'], vpcCidr: '10.0.0.0/16' });
    const [, sg] = only(t, 'AWS::EC2::SecurityGroup');
    expect(sg.SecurityGroupIngress).toEqual([expect.objectContaining({ CidrIp: '10.0.0.0/16', FromPort: 443 })]);
  });
});

describe('private mode with the portal on', () => {
  it("keeps the portal on its own public Function URL (users' browsers are outside the VPC); the resolver still has none", () => {
    const { stack, template } = synth({ accessMode: 'private', vpcEndpointIds: [VPCE], portal: 'cognito', gatewayUrl: 'https://gw.example.com' });
    const [, url] = only(template, 'AWS::Lambda::Url');
    expect(url.AuthType).toBe('NONE');
    expect(url.TargetFunctionArn['Fn::GetAtt'][0]).toBe(stack.getLogicalId(stack.portal!.function.node.defaultChild as never));
    expect(stack.sessionResolver.functionUrl).toBeUndefined();
  });
});

describe('private mode context keys', () => {
  const read = (context: Record<string, unknown>) => readStackContext((key) => context[key]);

  it('reads the endpoint ids, or the VPC and subnets, as given on the command line', () => {
    expect(read({ accessMode: 'private', vpcEndpointIds: ` ${VPCE} ` })).toMatchObject({
      accessMode: 'private',
      privateEndpoint: { kind: 'existing', vpcEndpointIds: [VPCE] },
    });
    expect(read({ accessMode: 'private', vpcId: 'vpc-0a1b2c3d', subnetIds: 'subnet-0a1b2c3d,subnet-4e5f6a7b', vpcCidr: '10.0.0.0/16' })).toMatchObject({
      privateEndpoint: { kind: 'create', vpcId: 'vpc-0a1b2c3d', subnetIds: ['subnet-0a1b2c3d', 'subnet-4e5f6a7b'], vpcCidr: '10.0.0.0/16' },
    });
  });

  it.each([
    [{ accessMode: 'private' }, /accessMode 'private' needs the execute-api VPC endpoint .* set vpcEndpointIds/],
    [{ accessMode: 'private', vpcEndpointIds: 'vpc-123' }, /vpcEndpointIds: 'vpc-123' is not a VPC endpoint id/],
    [{ accessMode: 'private', vpcEndpointIds: VPCE, vpcId: 'vpc-0a1b2c3d' }, /either vpcEndpointIds .* or vpcId \+ subnetIds .*, not both/],
    [{ accessMode: 'private', vpcId: 'vpc-0a1b2c3d', vpcCidr: '10.0.0.0/16' }, /subnetIds must name the subnets/],
    [{ accessMode: 'private', subnetIds: 'subnet-0a1b2c3d', vpcCidr: '10.0.0.0/16' }, /vpcId must be a VPC id .* when subnetIds is set/],
    [{ accessMode: 'private', vpcId: 'vpc-0a1b2c3d', subnetIds: 'sub-1' , vpcCidr: '10.0.0.0/16' }, /subnetIds: 'sub-1' is not a subnet id/],
    [{ accessMode: 'private', vpcId: 'vpc-0a1b2c3d', subnetIds: 'subnet-0a1b2c3d' }, /set allowedSourceCidrs .* or vpcCidr/],
    [{ accessMode: 'private', vpcEndpointIds: VPCE, allowAnySource: 'true' }, /allowAnySource does not apply to accessMode 'private'/],
    [{ allowAnySource: 'true', vpcEndpointIds: VPCE }, /vpcEndpointIds is only used with accessMode 'private'/],
  ])('rejects %j', (context, message) => {
    expect(() => read(context)).toThrow(message);
  });
});
