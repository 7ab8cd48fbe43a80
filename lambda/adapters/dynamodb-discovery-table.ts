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

// DynamoDB's expression limits (developer guide, "Constraints"): 4 KB for any expression string, 300
// operators or functions in one expression. Values (ExpressionAttributeValues) may total 2 MB, so a whole
// list compared as one value costs the expression a few bytes however long the list is.
const MAX_EXPRESSION_BYTES = 4096;
const MAX_CONDITION_OPERATORS = 300;

interface Condition {
  readonly ConditionExpression: string;
  readonly ExpressionAttributeNames: Record<string, string>;
  readonly ExpressionAttributeValues?: Record<string, AttributeValue>;
}

/** Placeholders shared by the expressions of one request (`#n0` for names, `:v0` for values). */
class Placeholders {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, AttributeValue> = {};
  private readonly nameOf = new Map<string, string>();
  private valueCount = 0;

  name(attribute: string): string {
    let placeholder = this.nameOf.get(attribute);
    if (!placeholder) {
      placeholder = `#n${this.nameOf.size}`;
      this.nameOf.set(attribute, placeholder);
      this.names[placeholder] = attribute;
    }
    return placeholder;
  }

  value(v: AttributeValue): string {
    const placeholder = `:v${this.valueCount++}`;
    this.values[placeholder] = v;
    return placeholder;
  }
}

function fits(expression: string): boolean {
  return Buffer.byteLength(expression) <= MAX_EXPRESSION_BYTES;
}

/** A condition from `holdsExactly`: one comparator or function per part, plus the ANDs between them. */
function conditionFits(expression: string): boolean {
  const parts = expression.split(' AND ').length;
  return fits(expression) && 2 * parts - 1 <= MAX_CONDITION_OPERATORS;
}

/**
 * "Each attribute in `expected` still holds exactly that value, and each name in `absent` is still absent":
 * one whole-value comparison per attribute (DynamoDB compares lists and maps by value, element by element
 * and in order), so the expression's length depends on the number of attributes, never on their size.
 */
function holdsExactly(expected: Record<string, AttributeValue>, absent: Iterable<string>, p: Placeholders): string {
  const parts: string[] = [];
  for (const [attribute, v] of Object.entries(expected)) {
    parts.push(v.NULL ? `attribute_type(${p.name(attribute)}, ${p.value({ S: 'NULL' })})` : `${p.name(attribute)} = ${p.value(v)}`);
  }
  for (const attribute of new Set(absent)) if (!(attribute in expected)) parts.push(`attribute_not_exists(${p.name(attribute)})`);
  return parts.join(' AND ');
}

/**
 * "The item is as read": every attribute read still holds its read value, and no attribute discovery knows
 * (or is about to write) has appeared. A condition cannot name an attribute it has never heard of; that
 * case is caught from the write's answer instead (see `apply`). Undefined when the expression would pass
 * DynamoDB's limits (4 KB, 300 operators: an item with well over a hundred attribute names, which discovery
 * never writes): the write is then refused, never made under a weaker condition.
 */
export function unchangedSince(read: Record<string, AttributeValue>, alsoAbsent: Iterable<string> = [], p = new Placeholders()): Condition | undefined {
  const expression = holdsExactly(read, [...Object.values(Attr), ...alsoAbsent], p);
  if (!conditionFits(expression)) return undefined;
  return { ConditionExpression: expression, ExpressionAttributeNames: p.names, ExpressionAttributeValues: p.values };
}

/** The UpdateItem expression that turns `from` into `to` (the key stays); names in neither are left as they are. */
function rewriteExpression(from: Record<string, AttributeValue>, to: Record<string, AttributeValue>, p: Placeholders): string {
  const set = Object.entries(to)
    .filter(([attribute]) => attribute !== Attr.SessionId)
    .map(([attribute, v]) => `${p.name(attribute)} = ${p.value(v)}`);
  const remove = Object.keys(from)
    .filter((attribute) => attribute !== Attr.SessionId && !(attribute in to))
    .map((attribute) => p.name(attribute));
  return [set.length > 0 ? `SET ${set.join(', ')}` : '', remove.length > 0 ? `REMOVE ${remove.join(', ')}` : ''].filter(Boolean).join(' ');
}

/** Attribute names in `item` that `known` does not have, sorted. */
function namesBeyond(item: Record<string, AttributeValue> | undefined, known: Record<string, AttributeValue>): string[] {
  return Object.keys(item ?? {})
    .filter((attribute) => !(attribute in known))
    .sort();
}

type RawItemMap = Record<string, AttributeValue>;
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
    try {
      if (change.kind === 'add') {
        await this.api.call('PutItem', {
          TableName: this.tableName,
          Item: toAttributeMap({ ...change.item, [Attr.UpdatedAt]: updatedAt }),
          ConditionExpression: 'attribute_not_exists(#k)',
          ExpressionAttributeNames: { '#k': Attr.SessionId },
        });
        return { status: 'applied' };
      }
      const read = (change.previous.token as RawItemMap | undefined) ?? toAttributeMap(change.previous.item);
      if (change.kind === 'change') return await this.replace(change.sessionId, read, toAttributeMap({ ...change.item, [Attr.UpdatedAt]: updatedAt }));
      return await this.remove(change.sessionId, read);
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException') {
        return { status: 'skipped', reason: change.kind === 'add' ? SKIPPED_NEW : SKIPPED_EDITED };
      }
      throw error;
    }
  }

  private key(sessionId: string): RawItemMap {
    return { [Attr.SessionId]: { S: sessionId } };
  }

  private async replace(sessionId: string, read: RawItemMap, next: RawItemMap): Promise<WriteOutcome> {
    const p = new Placeholders();
    const condition = holdsExactly(read, [...Object.values(Attr), ...Object.keys(next)], p);
    const update = rewriteExpression(read, next, p);
    if (!conditionFits(condition) || !fits(update)) return { status: 'skipped', reason: SKIPPED_UNCHECKABLE };
    const answer: { Attributes?: RawItemMap } = await this.api.call('UpdateItem', {
      TableName: this.tableName,
      Key: this.key(sessionId),
      UpdateExpression: update,
      ConditionExpression: condition,
      ExpressionAttributeNames: p.names,
      ExpressionAttributeValues: p.values,
      ReturnValues: 'ALL_NEW',
    });
    const added = namesBeyond(answer.Attributes, next);
    if (added.length === 0) return { status: 'applied' };
    // Back to what was read, only if what discovery wrote is still there; the added attributes stay untouched.
    const q = new Placeholders();
    try {
      await this.api.call('UpdateItem', {
        TableName: this.tableName,
        Key: this.key(sessionId),
        UpdateExpression: rewriteExpression(next, read, q),
        ConditionExpression: holdsExactly(next, Object.keys(read), q),
        ExpressionAttributeNames: q.names,
        ExpressionAttributeValues: q.values,
      });
    } catch (error) {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
      return { status: 'skipped', reason: skippedAdded(added, 'edited again before discovery could undo its write; left as it is') };
    }
    return { status: 'skipped', reason: skippedAdded(added, 'discovery undid its write; left alone') };
  }

  private async remove(sessionId: string, read: RawItemMap): Promise<WriteOutcome> {
    const condition = unchangedSince(read);
    if (!condition) return { status: 'skipped', reason: SKIPPED_UNCHECKABLE };
    const answer: { Attributes?: RawItemMap } = await this.api.call('DeleteItem', {
      TableName: this.tableName,
      Key: this.key(sessionId),
      ...condition,
      ReturnValues: 'ALL_OLD',
    });
    const added = namesBeyond(answer.Attributes, read);
    if (added.length === 0) return { status: 'applied' };
    try {
      await this.api.call('PutItem', {
        TableName: this.tableName,
        Item: answer.Attributes,
        ConditionExpression: 'attribute_not_exists(#k)',
        ExpressionAttributeNames: { '#k': Attr.SessionId },
      });
    } catch (error) {
      // Not a skip: the edit is gone from the table, so the whole item goes to the log for the operator.
      throw new Error(
        `removed ${sessionId}, which had gained ${added.join(', ')} since it was read, and could not put it back ` +
          `(${(error as Error).name}: ${(error as Error).message}); the removed item: ${JSON.stringify(answer.Attributes)}`,
      );
    }
    return { status: 'skipped', reason: skippedAdded(added, 'discovery put the item back; left alone') };
  }
}
