/**
 * The CDK entry point (`import { DcvSessionResolver } from 'dcv-session-resolver'`, or
 * `'dcv-session-resolver/cdk'`): the construct, the shipped stack built from it, and what they validate
 * with. The runtime library API is lambda/index.ts (`'dcv-session-resolver/runtime'`).
 */
export { DcvSessionResolver, type DcvSessionResolverProps } from './dcv-session-resolver.js';
export { DcvResolverStack, type DcvResolverStackProps } from './dcv-resolver-stack.js';
export { SessionDiscovery, type SessionDiscoveryProps } from './session-discovery.js';
export { DesktopPower, type DesktopPowerProps } from './desktop-power.js';
export { ResolverObservability, type ResolverObservabilityProps } from './resolver-observability.js';
export { DcvFunction, type DcvFunctionProps } from './dcv-function.js';
export { FUNCTION_BUNDLES, functionAssetDir, type FunctionName } from './function-assets.js';
export { HostSignalsDocument, HOST_SIGNALS_TIMEOUT_SECONDS } from './host-signals-document.js';
export {
  ACCESS_MODES,
  AccessSettingsError,
  DEFAULT_RESERVED_CONCURRENCY,
  MISSING_ALLOW_LIST_MESSAGE,
  type AccessMode,
  type AccessProps,
  type AccessSettings,
} from './access-settings.js';
export {
  PORTAL_MODES,
  PortalSettingsError,
  type PortalMode,
  type PortalProps,
  type PortalSettings,
} from './portal-settings.js';
export { ResolverPortal, type ResolverPortalProps } from './resolver-portal.js';
// The outputs the shipped stack makes, for an app that wants the same ones from its own construct.
export { DCV_SERVER_PLACEHOLDER, PROXY_DEFAULT_LISTEN, addGatewayOutputs, type ExposedResolver } from './resolver-access.js';
export { readStackContext, type StackContext } from './stack-context.js';
