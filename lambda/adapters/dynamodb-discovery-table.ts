import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  paginateScan,
  PutItemCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import { boundedHttpHandler } from './sdk-http-handler';
import type { Change, CurrentItem } from '../core/discovery/reconcile';
import type { DiscoveryTable, TableSnapshot, WriteOutcome } from '../core/discovery/run-discovery';
import type { Log } from '../core/log';
import { Attr, parseSessionRecord, type RawItem } from '../core/session-record';
import { fromItem } from './dynamodb-session-store';

/**
 * The session table as discovery sees it.
 *
 * Writes are single conditional PutItem/DeleteItem calls, a bounded number in flight, not BatchWriteItem:
 * a batch write cannot carry a condition, and the condition is what keeps discovery off items an operator
 * owns. Every write re-checks, at write time:
 *  - new item: `attribute_not_exists(SessionId)` (a manual item created mid-run wins);
 *  - replace or delete: every attribute still equals what the scan read, and no known attribute appeared,
 *    so an item switched to `Source = manual`, or edited by hand in any field, between plan and write is
 *    left alone and reported as skipped.
 */
export interface DiscoveryTableOptions {
  readonly log: Log;
}

export const SKIPPED_NEW = 'an item with this SessionId appeared since the table was read; left alone';
export const SKIPPED_EDITED = 'item changed since it was read (edited by hand or another run); left alone';

/** A discovery client: patient timeouts and retries (throttling is retried with the SDK's backoff). */
export function createDiscoveryDynamoClient(): DynamoDBClient {
  return new DynamoDBClient({
    maxAttempts: 8,
    requestHandler: boundedHttpHandler({ connectionTimeoutMs: 2000, requestTimeoutMs: 10_000 }),
  });
}

export function toAttributeValue(value: unknown): AttributeValue {
  if (typeof value === 'string') return { S: value };
  if (typeof value === 'number') return { N: String(value) };
  if (typeof value === 'boolean') return { BOOL: value };
  if (value === null) return { NULL: true };
  if (Array.isArray(value)) return { L: value.map(toAttributeValue) };
  throw new TypeError(`cannot store a ${typeof value} attribute`);
}

export function toAttributeMap(item: RawItem): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const [key, value] of Object.entries(item)) if (value !== undefined) out[key] = toAttributeValue(value);
  return out;
}

// DynamoDB caps a condition expression at 4 KB; beyond this, fall back to the bookkeeping attributes.
const MAX_CONDITION_LENGTH = 3500;

interface Condition {
  readonly ConditionExpression: string;
  readonly ExpressionAttributeNames: Record<string, string>;
  readonly ExpressionAttributeValues?: Record<string, AttributeValue>;
}

/**
 * "The item is exactly as read": one comparison per attribute. Lists and maps compare element by element
 * (size plus each entry), which both DynamoDB and local emulators evaluate the same way.
 */
export function unchangedSince(read: Record<string, AttributeValue>): Condition {
  const names: Record<string, string> = {};
  const values: Record<string, AttributeValue> = {};
  const nameOf = new Map<string, string>();
  const name = (attribute: string) => {
    let placeholder = nameOf.get(attribute);
    if (!placeholder) {
      placeholder = `#n${nameOf.size}`;
      nameOf.set(attribute, placeholder);
      names[placeholder] = attribute;
    }
    return placeholder;
  };
  const value = (v: AttributeValue) => {
    const placeholder = `:v${Object.keys(values).length}`;
    values[placeholder] = v;
    return placeholder;
  };
  const compare = (path: string, v: AttributeValue): string[] => {
    if (v.L) return [`size(${path}) = ${value({ N: String(v.L.length) })}`, ...v.L.flatMap((e, i) => compare(`${path}[${i}]`, e))];
    if (v.M) {
      return [
        `size(${path}) = ${value({ N: String(Object.keys(v.M).length) })}`,
        ...Object.entries(v.M).flatMap(([k, e]) => compare(`${path}.${name(k)}`, e)),
      ];
    }
    if (v.NULL) return [`attribute_type(${path}, ${value({ S: 'NULL' })})`];
    return [`${path} = ${value(v)}`];
  };
  const parts = Object.entries(read).flatMap(([attribute, v]) => compare(name(attribute), v));
  for (const attribute of Object.values(Attr)) {
    if (!(attribute in read)) parts.push(`attribute_not_exists(${name(attribute)})`);
  }
  const expression = parts.join(' AND ');
  if (expression.length <= MAX_CONDITION_LENGTH) {
    return { ConditionExpression: expression, ExpressionAttributeNames: names, ExpressionAttributeValues: values };
  }
  // Rare (hundreds of CIDRs): still refuses anything not Source = ec2 or written since the read.
  const updatedAt = read[Attr.UpdatedAt];
  return {
    ConditionExpression: `#s = :ec2 AND ${updatedAt ? '#u = :u' : 'attribute_not_exists(#u)'}`,
    ExpressionAttributeNames: { '#s': Attr.Source, '#u': Attr.UpdatedAt },
    ExpressionAttributeValues: { ':ec2': { S: 'ec2' }, ...(updatedAt ? { ':u': updatedAt } : {}) },
  };
}

export class DynamoDbDiscoveryTable implements DiscoveryTable {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly options: DiscoveryTableOptions,
  ) {}

  /**
   * The whole table, one paginated strongly consistent Scan. A `Source = ec2` filter would cost the same
   * read capacity (filters apply after the read) and would hide the manual ids discovery must not claim.
   */
  async read(): Promise<TableSnapshot> {
    const current: CurrentItem[] = [];
    const protectedIds = new Set<string>();
    const pages = paginateScan({ client: this.client }, { TableName: this.tableName, ConsistentRead: true });
    for await (const page of pages) {
      for (const raw of page.Items ?? []) {
        const sessionId = raw[Attr.SessionId]?.S;
        if (sessionId === undefined) continue;
        if (raw[Attr.Source]?.S !== 'ec2') {
          protectedIds.add(sessionId);
          continue;
        }
        const item = fromItem(raw);
        const parsed = parseSessionRecord(item);
        if (!parsed.ok) {
          // Still discovery's (Source = ec2): it will be rewritten or removed, and the resolver ignores it meanwhile.
          this.options.log.warn('malformed session item skipped', { sessionId, reason: parsed.reason });
        }
        current.push({ sessionId, item, token: raw });
      }
    }
    return { current, protectedIds };
  }

  async apply(change: Change, updatedAt: string): Promise<WriteOutcome> {
    try {
      if (change.kind === 'add') {
        await this.client.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: toAttributeMap({ ...change.item, [Attr.UpdatedAt]: updatedAt }),
            ConditionExpression: 'attribute_not_exists(#k)',
            ExpressionAttributeNames: { '#k': Attr.SessionId },
          }),
        );
      } else {
        const read = (change.previous.token as Record<string, AttributeValue> | undefined) ?? toAttributeMap(change.previous.item);
        const condition = unchangedSince(read);
        if (change.kind === 'change') {
          await this.client.send(
            new PutItemCommand({
              TableName: this.tableName,
              Item: toAttributeMap({ ...change.item, [Attr.UpdatedAt]: updatedAt }),
              ...condition,
            }),
          );
        } else {
          await this.client.send(
            new DeleteItemCommand({
              TableName: this.tableName,
              Key: { [Attr.SessionId]: { S: change.sessionId } },
              ...condition,
            }),
          );
        }
      }
      return { status: 'applied' };
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException || (error as Error).name === 'ConditionalCheckFailedException') {
        return { status: 'skipped', reason: change.kind === 'add' ? SKIPPED_NEW : SKIPPED_EDITED };
      }
      throw error;
    }
  }
}
