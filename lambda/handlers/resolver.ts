import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { readResolverFunctionConfig } from '../config.js';
import { createLiteDynamoApi } from '../adapters/dynamodb-lite.js';
import { DynamoApiSessionStore } from '../adapters/dynamodb-lite-session-store.js';
import { DynamoDbTokenStore } from '../adapters/dynamodb-token-store.js';
import { EmfMetrics } from '../adapters/emf-metrics.js';
import { LambdaLog } from '../adapters/lambda-log.js';
import { MetricService } from '../core/metrics.js';
import { createResolverHandler } from './resolver-handler.js';
import { isRestApiEvent } from './rest-api-event.js';

// Lambda entry: configuration and clients are built once per cold start. The lean DynamoDB client (not
// the AWS SDK) and the lean logger (not Powertools) keep the first answer close to the least a signed
// GetItem costs; see docs/performance.md and bench/coldstart.ts. The portal is its own function
// (lambda/handlers/portal.ts): this one serves only the gateway and the DCV servers.
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
});

// A Function URL event (payload 2.0), or a private REST API's proxy event (payload 1.0) in accessMode 'private'.
export const handler = async (event: APIGatewayProxyEventV2 | APIGatewayProxyEvent, context: Context) => {
  // With the context, the handler puts the invocation's fields (function_request_id, cold_start, …) on every
  // log line of this request.
  try {
    return await (isRestApiEvent(event) ? resolve(event, context) : resolve(event, context));
  } finally {
    metrics.flush();
  }
};
