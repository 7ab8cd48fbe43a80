import { DynamoDBClient, GetItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import type { RawItem } from '../core/session-record';
import type { SessionStore } from '../core/session-store';
import { boundedHttpHandler } from './sdk-http-handler';

/**
 * Lenient conversion of a DynamoDB item to plain values. Unlike util-dynamodb's unmarshall it never
 * throws (a huge number typed in the console becomes an unsafe number the validator then rejects).
 */
export function fromAttributeValue(value: AttributeValue): unknown {
  if (value.S !== undefined) return value.S;
  if (value.N !== undefined) return Number(value.N);
  if (value.BOOL !== undefined) return value.BOOL;
  if (value.NULL !== undefined) return null;
  if (value.SS !== undefined) return [...value.SS];
  if (value.NS !== undefined) return value.NS.map(Number);
  if (value.L !== undefined) return value.L.map(fromAttributeValue);
  if (value.M !== undefined) return fromItem(value.M);
  if (value.B !== undefined) return value.B;
  if (value.BS !== undefined) return [...value.BS];
  return undefined;
}

export function fromItem(item: Record<string, AttributeValue>): RawItem {
  const out: RawItem = {};
  for (const [key, value] of Object.entries(item)) out[key] = fromAttributeValue(value);
  return out;
}

export interface DynamoClientOptions {
  /** Milliseconds to open a connection before the attempt fails. */
  readonly connectionTimeoutMs?: number;
  /** Milliseconds for a whole request attempt. */
  readonly requestTimeoutMs?: number;
  readonly maxAttempts?: number;
}

/**
 * A client for the resolve path: short timeouts and few retries, so a store outage becomes a fast 503
 * rather than a gateway that hangs. Region, credentials and AWS_ENDPOINT_URL_DYNAMODB come from the
 * standard SDK configuration.
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

export class DynamoDbSessionStore implements SessionStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async get(sessionId: string): Promise<RawItem | undefined> {
    const result = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { SessionId: { S: sessionId } },
        // Strongly consistent: an operator's console edit takes effect on the next connection.
        ConsistentRead: true,
      }),
    );
    return result.Item ? fromItem(result.Item) : undefined;
  }

  close(): void {
    this.client.destroy();
  }
}
