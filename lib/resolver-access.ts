import { CfnOutput, Fn } from 'aws-cdk-lib';
import { ArnPrincipal } from 'aws-cdk-lib/aws-iam';
import { FunctionUrlAuthType, type FunctionUrl } from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';
import { GATEWAY_CONFIG_PATH, renderGatewayConfig } from '../lambda/core/gateway-config.js';
import type { AccessSettings } from './access-settings.js';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { DcvFunction } from './dcv-function.js';
import { acknowledgeResolverFindings } from './nag-acknowledgements.js';
import { PrivateResolverApi } from './private-api.js';

/** Where `dcv-resolver proxy` listens by default; the gateway's url in `iam` mode. */
export const PROXY_DEFAULT_LISTEN = '127.0.0.1:9000';

/** Stands for each DCV server's own DcvServerEndpoint in the verifier URL output. */
export const DCV_SERVER_PLACEHOLDER = '<DcvServerEndpoint>';

/** What callers are given once the resolver is exposed (values may be CDK tokens). */
export interface ExposedResolver {
  /** The Function URL (`network`, `iam`); absent in `private` mode, where the function has none. */
  readonly functionUrl?: FunctionUrl;
  /** The private REST API (`private` mode only). */
  readonly privateApi?: PrivateResolverApi;
  /** The gateway's `[resolver] url` (no trailing slash; the gateway appends /resolveSession). */
  readonly gatewayResolverUrl: string;
  /** `<gatewayResolverUrl>/verifyToken/<DcvServerEndpoint>`, when the verifier is served. */
  readonly dcvServerVerifierUrl?: string;
}

/**
 * Puts the resolver behind a Function URL (or, in `private` mode, a private REST API) in the chosen access
 * mode and returns the URLs callers use. Creates no outputs: addGatewayOutputs does, for the stack that wants them.
 */
export function exposeResolver(
  resolver: DcvFunction,
  access: AccessSettings,
  options: { readonly verifier?: boolean; readonly logRetention?: RetentionDays } = {},
): ExposedResolver {
  // The handler reads these once at cold start (lambda/config.ts); absent means "no list" / "no prefix".
  // In `private` mode the API's resource policy checks the list (aws:VpcSourceIp), where the caller's VPC
  // address is known for certain; the function has no other way in.
  if (access.allowedSourceCidrs && access.accessMode !== 'private') {
    resolver.addEnvironment('ALLOWED_SOURCE_CIDRS', access.allowedSourceCidrs.join(','));
  }
  if (access.pathPrefix) resolver.addEnvironment('PATH_PREFIX', access.pathPrefix);

  const suffix = access.pathPrefix ? `/${access.pathPrefix}` : '';
  // Function URLs end in '/'; the gateway appends /resolveSession itself, so hand it the bare origin.
  let functionUrl: FunctionUrl | undefined;
  let privateApi: PrivateResolverApi | undefined;
  let gatewayResolverUrl: string;
  if (access.accessMode === 'private') {
    const scope = resolver.node.scope as Construct;
    privateApi = new PrivateResolverApi(scope, 'PrivateApi', {
      resolver,
      access: { ...access, privateEndpoint: access.privateEndpoint! },
      logRetention: options.logRetention,
    });
    gatewayResolverUrl = `${privateApi.stageUrl}${suffix}`;
  } else if (access.accessMode === 'iam') {
    functionUrl = resolver.addFunctionUrl({ authType: FunctionUrlAuthType.AWS_IAM });
    // A resource-policy grant (both lambda:InvokeFunctionUrl and the InvokedViaFunctionUrl
    // lambda:InvokeFunction statement): it works for a role in any account and never edits that role.
    resolver.grantInvokeUrl(new ArnPrincipal(access.invokerRoleArn!));
    gatewayResolverUrl = `http://${PROXY_DEFAULT_LISTEN}${suffix}`;
  } else {
    // aws-cdk-lib emits both resource-policy statements a NONE URL needs (contract section 3).
    functionUrl = resolver.addFunctionUrl({ authType: FunctionUrlAuthType.NONE });
    gatewayResolverUrl = Fn.join('', [functionUrlOrigin(functionUrl), suffix]);
  }

  acknowledgeResolverFindings(resolver);

  // Same origin and prefix as the resolver; the last segment names the DCV server that asks, so a
  // token issued for one host is refused on another (docs/connecting.md "The cross-server rule").
  const dcvServerVerifierUrl = options.verifier
    ? Fn.join('', [gatewayResolverUrl, `/verifyToken/${DCV_SERVER_PLACEHOLDER}`])
    : undefined;
  return { functionUrl, privateApi, gatewayResolverUrl, dcvServerVerifierUrl };
}

/** `https://<host>` of a Function URL (its url ends in '/'). */
function functionUrlOrigin(url: FunctionUrl): string {
  return Fn.join('', ['https://', Fn.select(2, Fn.split('/', url.url))]);
}

/**
 * The outputs the operator pastes into the gateway's and the DCV servers' configuration, with the ids
 * `ResolverFunctionUrl`, `GatewayResolverUrl`, `GatewayResolverConfig`, `GatewayConfig`, `ProxyCommand`
 * (iam mode) and `DcvServerVerifierConfig` (with the verifier), created in `scope`.
 */
export function addGatewayOutputs(scope: Construct, exposed: ExposedResolver, access: AccessSettings): void {
  const { functionUrl, privateApi, gatewayResolverUrl: gatewayUrl, dcvServerVerifierUrl } = exposed;
  if (access.accessMode === 'iam' && functionUrl) {
    new CfnOutput(scope, 'ProxyCommand', {
      value: Fn.join('', ['npx dcv-resolver proxy --target ', functionUrlOrigin(functionUrl), ` --listen ${PROXY_DEFAULT_LISTEN}`]),
      description: 'Run on the gateway host (as the invoker role); the gateway talks to this proxy',
    });
  }
  if (functionUrl) new CfnOutput(scope, 'ResolverFunctionUrl', { value: functionUrl.url });
  if (privateApi) {
    new CfnOutput(scope, 'PrivateApiUrl', {
      value: privateApi.stageUrl,
      description: "The private API's stage through the VPC endpoint (endpoint-specific name: works with or without private DNS)",
    });
    new CfnOutput(scope, 'VpcEndpointId', {
      value: privateApi.vpcEndpointIds.join(','),
      description: 'The execute-api VPC endpoint(s) the API admits; the URLs name the first',
    });
  }
  new CfnOutput(scope, 'GatewayResolverUrl', {
    value: gatewayUrl,
    description:
      access.accessMode === 'iam'
        ? "The gateway's [resolver] url: the local proxy (run the ProxyCommand output first)"
        : "The gateway's [resolver] url",
  });
  new CfnOutput(scope, 'GatewayResolverConfig', {
    value: Fn.join('', ["[resolver]\nurl = '", gatewayUrl, "'\n"]),
    description: 'Paste into /etc/dcv-connection-gateway/dcv-connection-gateway.conf',
  });
  new CfnOutput(scope, 'GatewayConfig', {
    // The whole file (dcv-resolver gateway-config renders the same): '# DECIDE:' marks the operator's choices.
    value: renderGatewayConfig({ resolverUrl: gatewayUrl }),
    description: `A complete, commented ${GATEWAY_CONFIG_PATH} for this resolver`,
  });
  if (dcvServerVerifierUrl) {
    new CfnOutput(scope, 'DcvServerVerifierConfig', {
      value: Fn.join('', ['[security]\nauth-token-verifier="', dcvServerVerifierUrl, '"\n']),
      description:
        access.accessMode === 'iam'
          ? `Each DCV server's /etc/dcv/dcv.conf, with ${DCV_SERVER_PLACEHOLDER} replaced by its DcvServerEndpoint; run the ProxyCommand on every DCV host too (it cannot sign either)`
          : access.accessMode === 'private'
            ? `Each DCV server's /etc/dcv/dcv.conf, with ${DCV_SERVER_PLACEHOLDER} replaced by its DcvServerEndpoint; the server must reach the VPC endpoint (and be in allowedSourceCidrs when set)`
            : `Each DCV server's /etc/dcv/dcv.conf, with ${DCV_SERVER_PLACEHOLDER} replaced by its DcvServerEndpoint; its address must be in allowedSourceCidrs`,
    });
  }
}
