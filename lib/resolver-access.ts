import { CfnOutput, Fn, type Stack } from 'aws-cdk-lib';
import { ArnPrincipal } from 'aws-cdk-lib/aws-iam';
import { FunctionUrlAuthType, type FunctionUrl } from 'aws-cdk-lib/aws-lambda';
import { GATEWAY_CONFIG_PATH, renderGatewayConfig } from '../lambda/core/gateway-config';
import type { AccessSettings } from './access-settings';
import type { DcvFunction } from './dcv-function';
import { acknowledgeResolverFindings } from './nag-acknowledgements';

/** Where `dcv-resolver proxy` listens by default; the gateway's url in `iam` mode. */
export const PROXY_DEFAULT_LISTEN = '127.0.0.1:9000';

/** Stands for each DCV server's own DcvServerEndpoint in the verifier URL output. */
export const DCV_SERVER_PLACEHOLDER = '<DcvServerEndpoint>';

/**
 * Puts the resolver behind a Function URL in the chosen access mode and writes the outputs the operator
 * pastes into the gateway's configuration (outputs keep the stack-level ids `GatewayResolverUrl`,
 * `GatewayResolverConfig`, `ResolverFunctionUrl` in both modes).
 */
export function exposeResolver(
  stack: Stack,
  resolver: DcvFunction,
  access: AccessSettings,
  options: { readonly verifier?: boolean } = {},
): FunctionUrl {
  // The handler reads these once at cold start (lambda/config.ts); absent means "no list" / "no prefix".
  if (access.allowedSourceCidrs) resolver.addEnvironment('ALLOWED_SOURCE_CIDRS', access.allowedSourceCidrs.join(','));
  if (access.pathPrefix) resolver.addEnvironment('PATH_PREFIX', access.pathPrefix);

  const suffix = access.pathPrefix ? `/${access.pathPrefix}` : '';
  // Function URLs end in '/'; the gateway appends /resolveSession itself, so hand it the bare origin.
  let url: FunctionUrl;
  let gatewayUrl: string;
  if (access.accessMode === 'iam') {
    url = resolver.addFunctionUrl({ authType: FunctionUrlAuthType.AWS_IAM });
    // A resource-policy grant (both lambda:InvokeFunctionUrl and the InvokedViaFunctionUrl
    // lambda:InvokeFunction statement): it works for a role in any account and never edits that role.
    resolver.grantInvokeUrl(new ArnPrincipal(access.invokerRoleArn!));
    gatewayUrl = `http://${PROXY_DEFAULT_LISTEN}${suffix}`;
    const origin = Fn.join('', ['https://', Fn.select(2, Fn.split('/', url.url))]);
    new CfnOutput(stack, 'ProxyCommand', {
      value: Fn.join('', ['npx dcv-resolver proxy --target ', origin, ` --listen ${PROXY_DEFAULT_LISTEN}`]),
      description: 'Run on the gateway host (as the invoker role); the gateway talks to this proxy',
    });
  } else {
    // aws-cdk-lib emits both resource-policy statements a NONE URL needs (contract section 3).
    url = resolver.addFunctionUrl({ authType: FunctionUrlAuthType.NONE });
    gatewayUrl = Fn.join('', ['https://', Fn.select(2, Fn.split('/', url.url)), suffix]);
  }

  acknowledgeResolverFindings(resolver);

  new CfnOutput(stack, 'ResolverFunctionUrl', { value: url.url });
  new CfnOutput(stack, 'GatewayResolverUrl', {
    value: gatewayUrl,
    description:
      access.accessMode === 'iam'
        ? "The gateway's [resolver] url: the local proxy (run the ProxyCommand output first)"
        : "The gateway's [resolver] url",
  });
  new CfnOutput(stack, 'GatewayResolverConfig', {
    value: Fn.join('', ["[resolver]\nurl = '", gatewayUrl, "'\n"]),
    description: 'Paste into /etc/dcv-connection-gateway/dcv-connection-gateway.conf',
  });
  new CfnOutput(stack, 'GatewayConfig', {
    // The whole file (dcv-resolver gateway-config renders the same): '# DECIDE:' marks the operator's choices.
    value: renderGatewayConfig({ resolverUrl: gatewayUrl }),
    description: `A complete, commented ${GATEWAY_CONFIG_PATH} for this resolver`,
  });
  if (options.verifier) {
    // Same origin and prefix as the resolver; the last segment names the DCV server that asks, so a
    // token issued for one host is refused on another (README "Connecting a browser").
    const verifierUrl = Fn.join('', [gatewayUrl, `/verifyToken/${DCV_SERVER_PLACEHOLDER}`]);
    new CfnOutput(stack, 'DcvServerVerifierConfig', {
      value: Fn.join('', ['[security]\nauth-token-verifier="', verifierUrl, '"\n']),
      description:
        access.accessMode === 'iam'
          ? `Each DCV server's /etc/dcv/dcv.conf, with ${DCV_SERVER_PLACEHOLDER} replaced by its DcvServerEndpoint; run the ProxyCommand on every DCV host too (it cannot sign either)`
          : `Each DCV server's /etc/dcv/dcv.conf, with ${DCV_SERVER_PLACEHOLDER} replaced by its DcvServerEndpoint; its address must be in allowedSourceCidrs`,
    });
  }
  return url;
}
