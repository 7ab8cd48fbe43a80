import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import {
  ConcurrentChangeError,
  SessionNotFoundError,
  StoreError,
  type ConditionalPut,
  type ListProgress,
  type PutManyResult,
  type SessionAdminStore,
  type StoredItem,
} from '../core/session-admin.js';
import { Attr, type RawItem } from '../core/session-record.js';
import type { DynamoApi } from './dynamodb-api.js';
import { fromItem, toAttributes, toAttributeValue } from './dynamodb-lite-session-store.js';

/**
 * The session table as the `sessions` command edits it, through the DynamoApi seam. Every write carries a
 * condition, so a change made between this command's read and its write (an operator in the console,
 * discovery) makes the write fail instead of being overwritten:
 *  - new item: `attribute_not_exists(SessionId)`;
 *  - replace or delete: every attribute still equals what was read and no known attribute appeared;
 *  - enable/disable: the item exists.
 */
export interface TableAdminOptions {
  /** Items per Scan page (DynamoDB also stops a page at 1 MB). @default 1000 */
  readonly pageSize?: number;
  /** Conditional puts in flight during an import. @default 16 */
  readonly concurrency?: number;
}

type Attributes = Record<string, AttributeValue>;

// The item conversion lives with the SDK-free session store (the portal's lease writes use it too).
export { toAttributeValue, toAttributes };

interface Condition {
  ConditionExpression: string;
  ExpressionAttributeNames: Record<string, string>;
  ExpressionAttributeValues?: Attributes;
}

// DynamoDB caps an expression at 4 KB.
const MAX_CONDITION_LENGTH = 3500;

/**
 * "Still exactly as read": one comparison per attribute; lists compare by size and element (which DynamoDB
 * and the local emulators evaluate alike), string sets by size and membership, maps and other sets by
 * size (the record has none; an operator could add one in the console). For a huge item (hundreds
 * of CIDRs) only scalars and sizes are compared, which still catches any edit made through this command
 * or discovery (both change UpdatedAt).
 */
export function unchangedCondition(read: Attributes): Condition {
  const names: Record<string, string> = {};
  const values: Attributes = {};
  const name = (attribute: string) => {
    const placeholder = `#a${Object.keys(names).length}`;
    names[placeholder] = attribute;
    return placeholder;
  };
  const value = (v: AttributeValue) => {
    const placeholder = `:v${Object.keys(values).length}`;
    values[placeholder] = v;
    return placeholder;
  };
  const build = (deep: boolean) => {
    for (const key of Object.keys(names)) delete names[key];
    for (const key of Object.keys(values)) delete values[key];
    const parts: string[] = [];
    for (const [attribute, v] of Object.entries(read)) {
      const path = name(attribute);
      if (v.L) {
        parts.push(`size(${path}) = ${value({ N: String(v.L.length) })}`);
        if (deep) v.L.forEach((e, i) => parts.push(e.L || e.M || e.NULL ? `attribute_exists(${path}[${i}])` : `${path}[${i}] = ${value(e)}`));
      } else if (v.SS || v.NS || v.BS || v.M) {
        const size = v.SS?.length ?? v.NS?.length ?? v.BS?.length ?? Object.keys(v.M ?? {}).length;
        parts.push(`size(${path}) = ${value({ N: String(size) })}`);
        if (deep && v.SS) for (const s of v.SS) parts.push(`contains(${path}, ${value({ S: s })})`);
      } else if (v.NULL) {
        parts.push(`attribute_type(${path}, ${value({ S: 'NULL' })})`);
      } else {
        parts.push(`${path} = ${value(v)}`);
      }
    }
    for (const attribute of Object.values(Attr)) if (!(attribute in read)) parts.push(`attribute_not_exists(${name(attribute)})`);
    return parts.join(' AND ');
  };
  let expression = build(true);
  if (expression.length > MAX_CONDITION_LENGTH) expression = build(false);
  return {
    ConditionExpression: expression,
    ExpressionAttributeNames: { ...names },
    ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: { ...values } } : {}),
  };
}

const ITEM_ABSENT: Condition = { ConditionExpression: 'attribute_not_exists(#k)', ExpressionAttributeNames: { '#k': Attr.SessionId } };
const ITEM_EXISTS: Condition = { ConditionExpression: 'attribute_exists(#k)', ExpressionAttributeNames: { '#k': Attr.SessionId } };

function isConditionFailure(error: unknown): boolean {
  return (error as Error)?.name === 'ConditionalCheckFailedException';
}

export class TableSessionAdminStore implements SessionAdminStore {
  readonly description: string;
  private readonly pageSize: number;
  private readonly concurrency: number;

  constructor(
    private readonly api: DynamoApi,
    private readonly tableName: string,
    options: TableAdminOptions & { readonly region?: string } = {},
  ) {
    this.description = `table '${tableName}'${options.region ? ` (region ${options.region})` : ''}`;
    this.pageSize = options.pageSize ?? 1000;
    this.concurrency = options.concurrency ?? 16;
  }

  /** Every call goes through here: a missing table or an unreachable service becomes one clear StoreError. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private async call(operation: Parameters<DynamoApi['call']>[0], input: Record<string, unknown>): Promise<any> {
    try {
      return await this.api.call(operation, { TableName: this.tableName, ...input });
    } catch (error) {
      if (isConditionFailure(error)) throw error;
      const e = error as Error;
      if (e.name === 'ResourceNotFoundException') throw new StoreError(`${this.description} does not exist`);
      throw new StoreError(`${this.description}: ${operation} failed: ${e.name}: ${e.message}`);
    }
  }

  async list(onProgress?: (progress: ListProgress) => void): Promise<StoredItem[]> {
    const out: StoredItem[] = [];
    let pages = 0;
    let startKey: Attributes | undefined;
    do {
      const page = await this.call('Scan', {
        ConsistentRead: true,
        Limit: this.pageSize,
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      });
      for (const raw of (page.Items ?? []) as Attributes[]) out.push({ item: fromItem(raw), token: raw });
      pages++;
      onProgress?.({ items: out.length, pages });
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return out;
  }

  async get(sessionId: string): Promise<StoredItem | undefined> {
    const result = await this.call('GetItem', { Key: { [Attr.SessionId]: { S: sessionId } }, ConsistentRead: true });
    return result.Item ? { item: fromItem(result.Item), token: result.Item } : undefined;
  }

  private condition(put: ConditionalPut): Condition {
    if (put.expected.kind === 'absent') return ITEM_ABSENT;
    const current = put.expected.current;
    return unchangedCondition((current.token as Attributes | undefined) ?? toAttributes(current.item));
  }

  async putIf(put: ConditionalPut): Promise<void> {
    try {
      await this.call('PutItem', { Item: toAttributes(put.item), ...this.condition(put) });
    } catch (error) {
      if (isConditionFailure(error)) throw new ConcurrentChangeError(put.item[Attr.SessionId] as string, this.description);
      throw error;
    }
  }

  async putManyIf(puts: readonly ConditionalPut[], onProgress?: (done: number) => void): Promise<PutManyResult> {
    let next = 0;
    let done = 0;
    let written = 0;
    const failed: { sessionId: string; reason: string }[] = [];
    const worker = async () => {
      while (next < puts.length) {
        const put = puts[next++]!;
        try {
          await this.putIf(put);
          written++;
        } catch (error) {
          failed.push({ sessionId: put.item[Attr.SessionId] as string, reason: (error as Error).message });
        }
        onProgress?.(++done);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, puts.length) }, worker));
    return { written, failed };
  }

  async updateIf(sessionId: string, set: RawItem): Promise<RawItem> {
    const names: Record<string, string> = { '#k': Attr.SessionId };
    const values: Attributes = {};
    const assignments = Object.entries(set).map(([attribute, value], i) => {
      names[`#s${i}`] = attribute;
      values[`:s${i}`] = toAttributeValue(value);
      return `#s${i} = :s${i}`;
    });
    try {
      const result = await this.call('UpdateItem', {
        Key: { [Attr.SessionId]: { S: sessionId } },
        UpdateExpression: `SET ${assignments.join(', ')}`,
        ConditionExpression: ITEM_EXISTS.ConditionExpression,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_NEW',
      });
      return fromItem(result.Attributes ?? {});
    } catch (error) {
      if (isConditionFailure(error)) throw new SessionNotFoundError(sessionId, this.description);
      throw error;
    }
  }

  async deleteIf(expected: StoredItem): Promise<void> {
    const sessionId = expected.item[Attr.SessionId] as string;
    try {
      await this.call('DeleteItem', {
        Key: { [Attr.SessionId]: { S: sessionId } },
        ...unchangedCondition((expected.token as Attributes | undefined) ?? toAttributes(expected.item)),
      });
    } catch (error) {
      if (isConditionFailure(error)) throw new ConcurrentChangeError(sessionId, this.description);
      throw error;
    }
  }

  close(): void {
    this.api.close?.();
  }
}
