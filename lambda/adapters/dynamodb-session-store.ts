import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { sdkDynamoApi } from './dynamodb-api.js';
import { DynamoApiSessionStore } from './dynamodb-lite-session-store.js';
import { boundedHttpHandler } from './sdk-http-handler.js';

// The item conversion lives with the SDK-free store; re-exported for existing importers.
export { fromAttributeValue, fromItem } from './dynamodb-lite-session-store.js';

export interface DynamoClientOptions {
  /** Milliseconds to open a connection before the attempt fails. */
  readonly connectionTimeoutMs?: number;
  /** Milliseconds for a whole request attempt. */
  readonly requestTimeoutMs?: number;
  readonly maxAttempts?: number;
}

/**
 * An SDK client for the resolve path (`serve --table`): short timeouts and few retries, so a store outage
 * becomes a fast 503 rather than a gateway that hangs. Region, credentials and AWS_ENDPOINT_URL_DYNAMODB
 * come from the standard SDK configuration. The Lambda entry uses the lean client instead
 * (dynamodb-lite.ts), which keeps the same bounds without the SDK's start-up cost.
 */
export function createResolveDynamoClient(options: DynamoClientOptions = {}): DynamoDBClient {
  return new DynamoDBClient({
    maxAttempts: options.maxAttempts ?? 2,
    requestHandler: boundedHttpHandler({
      connectionTimeoutMs: options.connectionTimeoutMs ?? 500,
      requestTimeoutMs: options.requestTimeoutMs ?? 1000,
    }),
  });
}

/**
 * The DynamoDB session store over an AWS SDK client (for the lean client, or any DynamoApi, use
 * DynamoApiSessionStore). Typed, not probed: `instanceof DynamoDBClient` is false for a client from another
 * copy of the SDK (an app's own, next to this package's), which then went down the DynamoApi path and failed.
 */
export class DynamoDbSessionStore extends DynamoApiSessionStore {
  constructor(client: Pick<DynamoDBClient, 'send' | 'destroy'>, tableName: string) {
    super(sdkDynamoApi(client as DynamoDBClient), tableName);
  }
}
