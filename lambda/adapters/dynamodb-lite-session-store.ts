import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { RawItem } from '../core/session-record.js';
import type { VerificationMarker } from '../core/tokens/verify-token.js';
import type { SessionStore } from '../core/session-store.js';
import type { DynamoApi } from './dynamodb-api.js';

/**
 * The DynamoDB session store over the DynamoApi seam, with no AWS SDK import (types only): the Lambda
 * entry pairs it with the lean client so the SDK never reaches the resolver's bundle. The SDK-facing
 * `DynamoDbSessionStore` (dynamodb-session-store.ts) is this same store behind an SDK client.
 */

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

/** What the record uses, as discovery writes it: S, N, BOOL, NULL, and L of S for lists. */
export function toAttributeValue(value: unknown): AttributeValue {
  if (typeof value === 'string') return { S: value };
  if (typeof value === 'number' && Number.isFinite(value)) return { N: String(value) };
  if (typeof value === 'boolean') return { BOOL: value };
  if (value === null) return { NULL: true };
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return { L: value.map((v) => ({ S: v })) };
  throw new TypeError(`cannot store ${JSON.stringify(value)} as a session attribute`);
}

export function toAttributes(item: RawItem): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const [key, value] of Object.entries(item)) if (value !== undefined) out[key] = toAttributeValue(value);
  return out;
}

export class DynamoApiSessionStore implements SessionStore, VerificationMarker {
  constructor(
    protected readonly api: DynamoApi,
    protected readonly tableName: string,
  ) {}

  async get(sessionId: string): Promise<RawItem | undefined> {
    const result = await this.api.call<{ Item?: Record<string, AttributeValue> }>('GetItem', {
      TableName: this.tableName,
      Key: { SessionId: { S: sessionId } },
      // Strongly consistent: an operator's console edit takes effect on the next connection.
      ConsistentRead: true,
    });
    return result.Item ? fromItem(result.Item) : undefined;
  }

  /**
   * One conditional UpdateItem of LastVerifiedAt only (the function's policy allows nothing else): on an
   * existing item, and only when its value is older than `notBeforeIso`, so concurrent verifiers write
   * at most about once a minute. A failed condition is the expected no-op.
   */
  async markVerified(sessionId: string, atIso: string, notBeforeIso: string): Promise<void> {
    try {
      await this.api.call('UpdateItem', {
        TableName: this.tableName,
        Key: { SessionId: { S: sessionId } },
        UpdateExpression: 'SET #v = :at',
        ConditionExpression: 'attribute_exists(#k) AND (attribute_not_exists(#v) OR #v < :before)',
        ExpressionAttributeNames: { '#k': 'SessionId', '#v': 'LastVerifiedAt' },
        ExpressionAttributeValues: { ':at': { S: atIso }, ':before': { S: notBeforeIso } },
      });
    } catch (error) {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
    }
  }

  close(): void {
    this.api.close?.();
  }
}
