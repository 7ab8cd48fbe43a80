import { DynamoDBClient, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { boundedHttpHandler } from './sdk-http-handler.js';
import type { DynamoApi } from './dynamodb-api.js';
import { DynamoLiteClient } from './dynamodb-lite.js';
import type { Change, CurrentItem } from '../core/discovery/reconcile.js';
import { forEachLimited, type DiscoveryTable, type ScopedRead, type TableSnapshot, type WriteOutcome } from '../core/discovery/run-discovery.js';
import { INSTANCE_INDEX_NAME } from '../core/discovery/table-index.js';
import type { Log } from '../core/log.js';
import { Attr, parseSessionRecord, type RawItem } from '../core/session-record.js';
import { fromItem } from './dynamodb-session-store.js';
import { removeIfUnchanged, replaceIfUnchanged, unchangedSince, type RawItemMap } from './dynamodb-conditional-writes.js';

/**
 * The session table as discovery sees it.
 *
 * Writes are single conditional PutItem (new), UpdateItem (change) and DeleteItem calls, a bounded number in
 * flight, not BatchWriteItem: a batch write cannot carry a condition, and the condition is what keeps
 * discovery off items an operator owns. Every write re-checks, at write time:
 *  - new item: `attribute_not_exists(SessionId)` (a manual item created mid-run wins);
 *  - change or delete: every attribute still equals what the scan read (whole values, lists included, so the
 *    condition's length never depends on an item's size), and no attribute discovery knows appeared, so an
 *    item switched to `Source = manual`, or edited by hand in any field, between plan and write is left
 *    alone and reported as skipped. An attribute added under a name no condition can know is caught from
 *    the write's atomic answer (see `apply`). There is no weaker fallback: a condition that cannot be
 *    written exactly refuses the write.
 */
export interface DiscoveryTableOptions {
  readonly log: Log;
  /** The sparse `InstanceId` index event runs query. @default INSTANCE_INDEX_NAME */
  readonly instanceIndex?: string;
  readonly sleep?: (ms: number) => Promise<void>;
}

export const SKIPPED_NEW = 'an item with this SessionId appeared since the table was read; left alone';
export const SKIPPED_EDITED = 'item changed since it was read (edited by hand or another run); left alone';
export const SKIPPED_UNCHECKABLE = 'item has too many attributes to check exactly that it is unchanged (DynamoDB\'s expression limits); left alone';
export const SKIPPED_ADDED_PREFIX = 'attribute added since the item was read';

function skippedAdded(names: readonly string[], outcome: string): string {
  return `${SKIPPED_ADDED_PREFIX} (${names.join(', ')}); ${outcome}`;
}

/**
 * A discovery SDK client (the CLI: any credential source): patient timeouts and retries (throttling is
 * retried with the SDK's backoff).
 */
export function createDiscoveryDynamoClient(): DynamoDBClient {
  return new DynamoDBClient({
    maxAttempts: 8,
    requestHandler: boundedHttpHandler({ connectionTimeoutMs: 2000, requestTimeoutMs: 10_000 }),
  });
}

/**
 * The discovery function's client: the lean signed client (credentials from the Lambda environment),
 * as patient as the SDK client above. A full reconcile is one request per write; measured against
 * dynalite, this client spends about a fifth of the SDK's CPU per conditional PutItem.
 */
export function createDiscoveryDynamoApi(): DynamoApi {
  return new DynamoLiteClient({ attemptTimeoutMs: 10_000, deadlineMs: 60_000, maxAttempts: 8, backoffBaseMs: 50 });
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

// The guarded writes ("only if still exactly as read") are shared with the `sessions` command's table store.
export { unchangedSince };

interface Page {
  readonly Items?: RawItemMap[];
  readonly LastEvaluatedKey?: RawItemMap;
}
interface BatchGetAnswer {
  readonly Responses?: Record<string, RawItemMap[]>;
  readonly UnprocessedKeys?: Record<string, { Keys?: RawItemMap[] }>;
}

const SCAN_PAGE_ITEMS = 1000;
// BatchGetItem takes at most 100 keys a request.
const BATCH_GET_KEYS = 100;
const BATCH_GET_ATTEMPTS = 8;
// Index queries in flight for one event run (one per instance).
const QUERY_CONCURRENCY = 8;

/** The index is missing or still backfilling (just deployed): DynamoDB answers ValidationException. */
function isIndexUnavailable(error: unknown): boolean {
  const e = error as { name?: string; message?: string };
  return e?.name === 'ValidationException' && /index/i.test(e.message ?? '');
}

export class DynamoDbDiscoveryTable implements DiscoveryTable {
  private readonly instanceIndex: string;
  private readonly sleep: (ms: number) => Promise<void>;

  private readonly api: DynamoApi;

  // A DynamoApi only: an SDK client is adapted with sdkDynamoApi() where it is created. (Deciding by
  // probing the object, `'send' in client`, took the lean client for an SDK client and crashed the function.)
  constructor(
    api: DynamoApi,
    private readonly tableName: string,
    private readonly options: DiscoveryTableOptions,
  ) {
    this.api = api;
    this.instanceIndex = options.instanceIndex ?? INSTANCE_INDEX_NAME;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /**
   * The whole table, one paginated strongly consistent Scan, a page at a time. A `Source = ec2` filter
   * would cost the same read capacity (filters apply after the read) and would hide the manual ids
   * discovery must not claim.
   */
  async *scan(): AsyncIterable<TableSnapshot> {
    for await (const items of this.scanPages()) yield this.snapshotOf(items);
  }

  private async *scanPages(): AsyncGenerator<RawItemMap[]> {
    let start: RawItemMap | undefined;
    do {
      const page: Page = await this.api.call('Scan', {
        TableName: this.tableName,
        ConsistentRead: true,
        // Pages of 1,000 items (not DynamoDB's 1 MB): the same read capacity, and each page's parsed items
        // die young instead of piling up in the old generation between collections.
        Limit: SCAN_PAGE_ITEMS,
        ...(start ? { ExclusiveStartKey: start } : {}),
      });
      yield page.Items ?? [];
      start = page.LastEvaluatedKey;
    } while (start);
  }

  /**
   * One index Query per instance finds the keys it holds; one strongly consistent BatchGetItem per 100
   * keys reads those items and the wanted ones. The index is eventually consistent, so it only says
   * where to look: what is planned on is always the consistent copy, and the conditional writes refuse
   * anything that changed after it. An item written a moment ago may not be in the index yet; the event
   * run then leaves it, and the scheduled full reconcile (a consistent Scan) settles it.
   */
  async readScoped(request: ScopedRead): Promise<TableSnapshot> {
    const keys = new Set(request.sessionIds);
    try {
      await forEachLimited(request.instanceIds, QUERY_CONCURRENCY, async (instanceId) => {
        for (const key of await this.keysHeldBy(instanceId)) keys.add(key);
      });
    } catch (error) {
      if (!isIndexUnavailable(error)) throw error;
      // Just deployed (the index is backfilling) or an older table: correct, at the cost of a Scan.
      this.options.log.warn('instance index unavailable; scanning the table for this event', {
        index: this.instanceIndex,
        reason: (error as Error).message,
      });
      return this.scanFor(request);
    }
    return this.snapshotOf(await this.batchGet([...keys]));
  }

  private async keysHeldBy(instanceId: string): Promise<string[]> {
    const keys: string[] = [];
    let start: RawItemMap | undefined;
    do {
      const page: Page = await this.api.call('Query', {
        TableName: this.tableName,
        IndexName: this.instanceIndex,
        KeyConditionExpression: '#i = :i',
        ExpressionAttributeNames: { '#i': Attr.InstanceId },
        ExpressionAttributeValues: { ':i': { S: instanceId } },
        ...(start ? { ExclusiveStartKey: start } : {}),
      });
      for (const raw of page.Items ?? []) {
        const key = raw[Attr.SessionId]?.S;
        if (key !== undefined) keys.push(key);
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return keys;
  }

  /** Strongly consistent reads by key; keys DynamoDB leaves unprocessed (throttling) are retried with backoff. */
  private async batchGet(keys: readonly string[]): Promise<RawItemMap[]> {
    const items: RawItemMap[] = [];
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += BATCH_GET_KEYS) chunks.push(keys.slice(i, i + BATCH_GET_KEYS));
    await forEachLimited(chunks, 4, async (chunk) => {
      let pending: RawItemMap[] = chunk.map((key) => ({ [Attr.SessionId]: { S: key } }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt >= BATCH_GET_ATTEMPTS) throw new Error(`BatchGetItem left ${pending.length} key(s) unprocessed after ${attempt} attempts`);
        if (attempt > 0) await this.sleep(Math.min(2000, 50 * 2 ** attempt));
        const answer: BatchGetAnswer = await this.api.call('BatchGetItem', {
          RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } },
        });
        items.push(...(answer.Responses?.[this.tableName] ?? []));
        pending = answer.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      }
    });
    return items;
  }

  /** The fallback: a full consistent Scan, keeping only what the scoped read asked for. */
  private async scanFor(request: ScopedRead): Promise<TableSnapshot> {
    const instances = new Set(request.instanceIds);
    const keys = new Set(request.sessionIds);
    const kept: RawItemMap[] = [];
    for await (const items of this.scanPages()) {
      for (const raw of items) {
        const owner = raw[Attr.InstanceId]?.S;
        if (keys.has(raw[Attr.SessionId]?.S ?? '') || (owner !== undefined && instances.has(owner))) kept.push(raw);
      }
    }
    return this.snapshotOf(kept);
  }

  private snapshotOf(raws: readonly RawItemMap[]): TableSnapshot {
    const current: CurrentItem[] = [];
    const protectedIds = new Set<string>();
    for (const raw of raws) {
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
    return { current, protectedIds };
  }

  /**
   * One conditional write. A condition can only name attributes, so one the operator adds under a name
   * discovery has never heard of (`Notes`) is caught from the write's answer, which DynamoDB gives atomically:
   *  - a change is an UpdateItem that names only attributes discovery read or writes, so such an attribute
   *    is never overwritten; when the new item (ALL_NEW) carries one, discovery undoes its own part, on the
   *    condition that nobody changed what it wrote since, and reports the write skipped;
   *  - a removal is a DeleteItem; when the deleted item (ALL_OLD) carried one, it is put back at once (if no
   *    item took its key meanwhile) and the removal is reported skipped.
   */
  async apply(change: Change, updatedAt: string): Promise<WriteOutcome> {
    if (change.kind === 'add') {
      try {
        await this.api.call('PutItem', {
          TableName: this.tableName,
          Item: toAttributeMap({ ...change.item, [Attr.UpdatedAt]: updatedAt }),
          ConditionExpression: 'attribute_not_exists(#k)',
          ExpressionAttributeNames: { '#k': Attr.SessionId },
        });
      } catch (error) {
        if ((error as Error).name === 'ConditionalCheckFailedException') return { status: 'skipped', reason: SKIPPED_NEW };
        throw error;
      }
      return { status: 'applied' };
    }
    const read = (change.previous.token as RawItemMap | undefined) ?? toAttributeMap(change.previous.item);
    if (change.kind === 'change') return this.replace(change.sessionId, read, toAttributeMap({ ...change.item, [Attr.UpdatedAt]: updatedAt }));
    return this.remove(change.sessionId, read);
  }

  private async replace(sessionId: string, read: RawItemMap, next: RawItemMap): Promise<WriteOutcome> {
    const outcome = await replaceIfUnchanged(this.api, this.tableName, sessionId, read, next);
    if (outcome.status === 'applied') return { status: 'applied' };
    if (outcome.status === 'edited') return { status: 'skipped', reason: SKIPPED_EDITED };
    if (outcome.status === 'uncheckable') return { status: 'skipped', reason: SKIPPED_UNCHECKABLE };
    return {
      status: 'skipped',
      reason: skippedAdded(outcome.names, outcome.undone ? 'discovery undid its write; left alone' : 'edited again before discovery could undo its write; left as it is'),
    };
  }

  /** A removal that cannot put back an item it took an edit with throws PutBackError: a failed write, with the item for the log. */
  private async remove(sessionId: string, read: RawItemMap): Promise<WriteOutcome> {
    const outcome = await removeIfUnchanged(this.api, this.tableName, sessionId, read);
    if (outcome.status === 'applied') return { status: 'applied' };
    if (outcome.status === 'edited') return { status: 'skipped', reason: SKIPPED_EDITED };
    if (outcome.status === 'uncheckable') return { status: 'skipped', reason: SKIPPED_UNCHECKABLE };
    return { status: 'skipped', reason: skippedAdded(outcome.names, 'discovery put the item back; left alone') };
  }
}
