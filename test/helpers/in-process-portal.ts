import { openIdConnectClient } from '../../lambda/adapters/openid-connect';
import type { Router } from '../../lambda/core/http-router';
import { createPortal, type PortalOptions } from '../../lambda/core/portal/portal-app';
import type { MemorySessionStore } from '../../lambda/core/session-store';
import type { TokenStore } from '../../lambda/core/tokens/token-store';
import { createResolverRouter } from '../../lambda/handlers/resolver-handler';
import type { TestOidcProvider } from './oidc-provider';
import type { RecordingLog } from './recording-log';

/**
 * The portal in-process, as `serve` wires it: the shared router over a memory store (its catalog and leases
 * too) with the real OpenID adapter signing in at `idp`. `portal` adds or overrides createPortal's options.
 */
export function inProcessPortalRouter(
  idp: TestOidcProvider,
  deps: {
    readonly store: MemorySessionStore;
    readonly tokens: TokenStore;
    readonly log: RecordingLog;
    readonly gatewayUrl: string;
    readonly portal?: Partial<PortalOptions>;
  },
): Router {
  const { store, tokens, log } = deps;
  return createResolverRouter({
    store,
    logger: log,
    tokens,
    portal: (shared) =>
      createPortal({
        ...shared,
        oidc: openIdConnectClient({ issuer: idp.issuer, clientId: idp.clientId }),
        cookieKey: 'k'.repeat(40),
        gatewayUrl: deps.gatewayUrl,
        catalog: store,
        leases: store,
        ...deps.portal,
      }),
  });
}
