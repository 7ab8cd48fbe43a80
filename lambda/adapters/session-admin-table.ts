import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import {
  ConcurrentChangeError,
  StoreError,
  type ConditionalPut,
  type ListProgress,
  type PutManyResult,
  type SessionAdminStore,
  type StoredItem,
} from '../core/session-admin.js';
import { Attr, type RawItem } from '../core/session-record.js';
import type { DynamoApi } from './dynamodb-api.js';
import { PutBackError, removeIfUnchanged, replaceIfUnchanged, type GuardedWriteOutcome } from './dynamodb-conditional-writes.js';
import { fromItem, toAttributes, toAttributeValue } from './dynamodb-lite-session-store.js';

/**
 * The session table as the `sessions` command edits it, through the DynamoApi seam. Every write is guarded,
 * so a change made between this command's read and its write (an operator in the console, discovery, another
 * command) fails the write with ConcurrentChangeError instead of being overwritten:
 *  - new item: `attribute_not_exists(SessionId)`;
 *  - replace, enable/disable, delete: every attribute still holds exactly the value read (whole values, lists
 *    included, whatever the item's size) and no attribute of the record appeared; an attribute added under
 *    a name of its own (`Notes`) is caught from the write's atomic answer and the write undone (see
 *    dynamodb-conditional-writes.ts, shared with discovery). No weaker fallback: an item whose condition
 *    would pass DynamoDB's expression limits is refused with a StoreError.
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

const ITEM_ABSENT = { ConditionExpression: 'attribute_not_exists(#k)', ExpressionAttributeNames: { '#k': Attr.SessionId } };

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

  /** The item as read, exactly as the table held it (the token), for the write's condition. */
  private readOf(current: StoredItem): Attributes {
    return (current.token as Attributes | undefined) ?? toAttributes(current.item);
  }

  /** DynamoApi for the shared guarded writes: this store's table name and error handling. */
  private get guarded(): DynamoApi {
    return { call: (operation, input) => this.call(operation, input) };
  }

  /** What a guarded write's outcome means for the command: the item as written, or an error naming what happened. */
  private settle(sessionId: string, outcome: GuardedWriteOutcome, undoneText: string): Attributes | undefined {
    if (outcome.status === 'applied') return outcome.item;
    if (outcome.status === 'edited') throw new ConcurrentChangeError(sessionId, this.description);
    if (outcome.status === 'uncheckable') {
      throw new StoreError(
        `session '${sessionId}' in ${this.description} has too many attributes to check within DynamoDB's expression limits that it is unchanged; nothing written`,
      );
    }
    const added = `(attribute ${outcome.names.join(', ')} added)`;
    throw new ConcurrentChangeError(
      sessionId,
      this.description,
      outcome.undone ? `${added}; ${undoneText}, run it again` : `${added}, and again before this command could undo its write; left as it is: check it`,
    );
  }

  async putIf(put: ConditionalPut): Promise<void> {
    const sessionId = put.item[Attr.SessionId] as string;
    if (put.expected.kind === 'unchanged') {
      const outcome = await replaceIfUnchanged(this.guarded, this.tableName, sessionId, this.readOf(put.expected.current), toAttributes(put.item));
      this.settle(sessionId, outcome, 'this command undid its write, nothing changed');
      return;
    }
    try {
      await this.call('PutItem', { Item: toAttributes(put.item), ...ITEM_ABSENT });
    } catch (error) {
      if (isConditionFailure(error)) throw new ConcurrentChangeError(sessionId, this.description);
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

  async updateIf(expected: StoredItem, set: RawItem): Promise<RawItem> {
    const sessionId = expected.item[Attr.SessionId] as string;
    const read = this.readOf(expected);
    const next = { ...read, ...toAttributes(set) };
    const written = this.settle(sessionId, await replaceIfUnchanged(this.guarded, this.tableName, sessionId, read, next), 'this command undid its write, nothing changed');
    return fromItem(written ?? next);
  }

  async deleteIf(expected: StoredItem): Promise<void> {
    const sessionId = expected.item[Attr.SessionId] as string;
    let outcome: GuardedWriteOutcome;
    try {
      outcome = await removeIfUnchanged(this.guarded, this.tableName, sessionId, this.readOf(expected));
    } catch (error) {
      // The item left the table with an edit it had gained and could not be put back: the message carries it.
      if (error instanceof PutBackError) throw new StoreError(`${this.description}: ${error.message}`);
      throw error;
    }
    this.settle(sessionId, outcome, 'this command put the item back, nothing removed');
  }

  close(): void {
    this.api.close?.();
  }
}
