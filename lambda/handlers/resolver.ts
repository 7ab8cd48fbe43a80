import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { readResolverFunctionConfig } from '../config.js';
import { createLiteDynamoApi } from '../adapters/dynamodb-lite.js';
import { DynamoApiSessionStore } from '../adapters/dynamodb-lite-session-store.js';
import { DynamoDbTokenStore } from '../adapters/dynamodb-token-store.js';
import { EmfMetrics } from '../adapters/emf-metrics.js';
import { LambdaLog } from '../adapters/lambda-log.js';
import { DynamoSessionCatalog } from '../adapters/dynamodb-session-catalog.js';
import { MetricService } from '../core/metrics.js';
import { createPortal, deferredPortal } from '../core/portal/portal-app.js';
import type { PortalFunctionConfig } from '../config.js';
import type { Log } from '../core/log.js';
import type { DynamoApi } from '../adapters/dynamodb-api.js';
import { createResolverHandler, type PortalShared } from './resolver-handler.js';
import { isRestApiEvent } from './rest-api-event.js';

// Lambda entry: configuration and clients are built once per cold start. The lean DynamoDB client (not
// the AWS SDK) and the lean logger (not Powertools) keep the first answer close to the least a signed
// GetItem costs; see docs/performance.md and bench/coldstart.ts.
const config = readResolverFunctionConfig(process.env);
const log = new LambdaLog();
// EMF lines on stdout, one flush per invocation: CloudWatch Logs makes them metrics (no PutMetricData).
const metrics = new EmfMetrics({ service: MetricService.resolver });

const dynamo = createLiteDynamoApi();
// Load node:https and TLS now, in the init phase, not in the first request.
dynamo.warm();

const resolve = createResolverHandler({
  store: new DynamoApiSessionStore(dynamo, config.tableName),
  // The DCV servers' verifier (POST …/verifyToken/<server>) shares the function, its client and its allow-list.
  tokens: config.tokensTableName ? new DynamoDbTokenStore(dynamo, config.tokensTableName, log) : undefined,
  logger: log,
  allowedSources: config.allowedSources,
  pathPrefix: config.pathPrefix,
  metrics,
  portal: config.portal && lambdaPortal(config.portal, dynamo, config.tableName, log),
});

/** The portal, built on its first request: the OpenID client and the secret load then, not at cold start. */
function lambdaPortal(portal: PortalFunctionConfig, api: DynamoApi, tableName: string, log: Log) {
  return (shared: PortalShared) =>
    deferredPortal(async (deadline) => {
      const [{ openIdConnectClient }, { loadPortalSecret }] = await Promise.all([
        import('../adapters/openid-connect.js'),
        import('../adapters/portal-secret.js'),
      ]);
      const secret = await loadPortalSecret(portal.secretId, undefined, { deadline });
      const clientId = portal.clientId ?? secret.clientId;
      if (!clientId) throw new Error(`no OpenID client id: set PORTAL_CLIENT_ID or "clientId" in secret ${portal.secretId}`);
      const catalog = new DynamoSessionCatalog(api, tableName, { log });
      return createPortal({
        ...shared,
        oidc: openIdConnectClient({ issuer: portal.issuer, clientId, scopes: portal.scopes }),
        cookieKey: secret.cookieKey,
        gatewayUrl: portal.gatewayUrl,
        catalog,
        leases: catalog,
        groupsClaim: portal.groupsClaim,
        userClaims: portal.userClaims,
        leaseSeconds: portal.leaseSeconds,
      });
    }, log);
}

// A Function URL event (payload 2.0), or a private REST API's proxy event (payload 1.0) in accessMode 'private'.
export const handler = async (event: APIGatewayProxyEventV2 | APIGatewayProxyEvent, context: Context) => {
  // With the context: the invocation's fields (function_request_id, cold_start, …) on every log line of
  // this request, and its deadline (remaining time less a margin) on the request, for the portal's calls.
  try {
    return await (isRestApiEvent(event) ? resolve(event, context) : resolve(event, context));
  } finally {
    metrics.flush();
  }
};
