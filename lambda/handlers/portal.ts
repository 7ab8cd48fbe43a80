import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { readPortalLambdaConfig } from '../config.js';
import { createLiteDynamoApi } from '../adapters/dynamodb-lite.js';
import { DynamoApiSessionStore } from '../adapters/dynamodb-lite-session-store.js';
import { DynamoDbTokenStore } from '../adapters/dynamodb-token-store.js';
import { DynamoSessionCatalog } from '../adapters/dynamodb-session-catalog.js';
import { EmfMetrics } from '../adapters/emf-metrics.js';
import { LambdaLog } from '../adapters/lambda-log.js';
import { openIdConnectClient } from '../adapters/openid-connect.js';
import { loadPortalSecret } from '../adapters/portal-secret.js';
import { MetricService } from '../core/metrics.js';
import { readDiscoveryFunctionConfig } from '../discovery/discovery-config.js';
import type { DesktopStartPort } from '../core/portal/desktop-start.js';
import { createPortal, deferredPortal } from '../core/portal/portal-app.js';
import { createResolverHandler, type PortalShared } from './resolver-handler.js';

// The self-service portal's own Lambda entry, behind its own Function URL and role: users' browsers reach
// it (PORTAL_ALLOWED_SOURCE_CIDRS, default anyone) at /portal, without the resolver's secret prefix, and it
// serves nothing of the gateway's (…/resolveSession and …/verifyToken are 404 here). It reads the sessions
// (GetItem for Connect, Scan for the list), writes leases and mints tokens.
const config = readPortalLambdaConfig(process.env);
const log = new LambdaLog();
const metrics = new EmfMetrics({ service: MetricService.portal });
const dynamo = createLiteDynamoApi();
/**
 * Start and open only when the stack names the host-signals document (POWER_SIGNALS_DOCUMENT): the
 * function may then start instances and send that one document; without it the list has no Start button.
 * Checked at cold start; the EC2 and SSM clients are loaded with the portal (first request), and only then.
 */
const startConfig = process.env.POWER_SIGNALS_DOCUMENT
  ? { documentName: process.env.POWER_SIGNALS_DOCUMENT, tagPrefix: readDiscoveryFunctionConfig(process.env).tagPrefix }
  : undefined;

async function startAndOpen(): Promise<DesktopStartPort | undefined> {
  if (!startConfig) return undefined;
  const [{ AwsDesktopStart }, { createPowerEc2Client }, { createSignalsSsmClient }] = await Promise.all([
    import('../adapters/desktop-start-aws.js'),
    import('../adapters/ec2-power-api.js'),
    import('../adapters/ssm-host-signals.js'),
  ]);
  return new AwsDesktopStart({
    ec2: createPowerEc2Client(),
    ssm: createSignalsSsmClient(),
    dynamodb: dynamo,
    tableName: config.tableName,
    signals: { documentName: startConfig.documentName },
    tagPrefix: startConfig.tagPrefix,
    // The stack's discovery updates the items (state-change events, and its schedule as the backstop):
    // the portal's role may not write session items.
    itemRefresh: 'stack-discovery',
    log,
  });
}

/** Built on the first request: a secret that cannot be read then answers 503 and is tried again next time. */
function portal(shared: PortalShared) {
  const { portal: settings } = config;
  return deferredPortal(async (deadline) => {
    const secret = await loadPortalSecret(settings.secretId, undefined, { deadline });
    const clientId = settings.clientId ?? secret.clientId;
    if (!clientId) throw new Error(`no OpenID client id: set PORTAL_CLIENT_ID or "clientId" in secret ${settings.secretId}`);
    const catalog = new DynamoSessionCatalog(dynamo, config.tableName, { log });
    const desktopStart = await startAndOpen();
    return createPortal({
      ...shared,
      oidc: openIdConnectClient({ issuer: settings.issuer, clientId, scopes: settings.scopes }),
      cookieKey: secret.cookieKey,
      gatewayUrl: settings.gatewayUrl,
      catalog,
      leases: catalog,
      groupsClaim: settings.groupsClaim,
      userClaims: settings.userClaims,
      leaseSeconds: settings.leaseSeconds,
      ...(desktopStart ? { desktopStart } : {}),
    });
  }, log);
}

const serve = createResolverHandler({
  store: new DynamoApiSessionStore(dynamo, config.tableName),
  tokens: new DynamoDbTokenStore(dynamo, config.tokensTableName, log),
  gatewayRoutes: false,
  portalAllowedSources: config.allowedSources,
  logger: log,
  metrics,
  portal,
});

export const handler = async (event: APIGatewayProxyEventV2, context: Context) => {
  // With the context: the invocation's fields on every log line, and its deadline (remaining time less a
  // margin) on the request, so a slow identity provider is the portal's 503 page, not Lambda's timeout.
  try {
    return await serve(event, context);
  } finally {
    metrics.flush();
  }
};
