import type { Log } from '../log.js';
import { Attr, LEASE_PREFIX, parseSessionRecord, type RawItem, type SessionRecord } from '../session-record.js';

/**
 * What the portal needs from the session store besides `get`: every item (to list a user's desktops and a
 * pool's hosts) and one conditional write (to lease a pool host). Adapters: memory and the file overlay
 * (core/session-store.ts), DynamoDB (adapters/dynamodb-session-catalog.ts).
 */
export interface SessionCatalog {
  /** Every item, as stored and unvalidated (`readCatalog` validates them). Throws when the store cannot answer. */
  list(): Promise<RawItem[]>;
}

export interface LeaseStore {
  /**
   * Writes the lease item (its `SessionId` starts with `lease:`) if and only if no item has that id, the
   * item there has expired (`ExpiresAt <= nowSeconds`), or it is this same user's lease (`LeaseUser`):
   * one holder per host, and a holder may renew. False when another user's live lease holds it; throws
   * when the store cannot answer.
   */
  claim(item: RawItem, nowSeconds: number): Promise<boolean>;
}

/** Lease items are keyed by the member's id behind LEASE_PREFIX, so there is one lease item per host. */
export function leaseSessionId(memberSessionId: string): string {
  return LEASE_PREFIX + memberSessionId;
}

/**
 * The claim condition, for stores that evaluate it themselves (DynamoDB evaluates the same rule as
 * `attribute_not_exists(SessionId) OR ExpiresAt <= :now OR LeaseUser = :user`). Like DynamoDB, a
 * non-number `ExpiresAt` never counts as expired.
 */
export function mayClaim(current: RawItem | undefined, lease: RawItem, nowSeconds: number): boolean {
  if (current === undefined) return true;
  const expiresAt = current[Attr.ExpiresAt];
  if (typeof expiresAt === 'number' && expiresAt <= nowSeconds) return true;
  return current[Attr.LeaseUser] !== undefined && current[Attr.LeaseUser] === lease[Attr.LeaseUser];
}

/** Every store refuses to claim anything but a lease item: a claim must never overwrite a real session. */
export function assertLeaseItem(item: RawItem): void {
  const id = item[Attr.SessionId];
  if (typeof id !== 'string' || !id.startsWith(LEASE_PREFIX) || item[Attr.Source] !== 'lease' || typeof item[Attr.LeaseUser] !== 'string') {
    throw new TypeError(`not a lease item: SessionId must start with '${LEASE_PREFIX}', Source must be 'lease' and LeaseUser a string`);
  }
}

/** A validated record with the item it came from (a lease copies some attributes as stored). */
export interface CatalogEntry {
  readonly record: SessionRecord;
  readonly item: RawItem;
}

/**
 * Every item of the catalog that validates, with the resolver's rules; a malformed one is skipped with a
 * warning that names it and the reason (the resolver's log line), never shown or leased.
 */
export async function readCatalog(catalog: SessionCatalog, log: Log): Promise<CatalogEntry[]> {
  const entries: CatalogEntry[] = [];
  for (const item of await catalog.list()) {
    const parsed = parseSessionRecord(item);
    if (parsed.ok) entries.push({ record: parsed.record, item });
    else log.warn('malformed session item skipped', { sessionId: describeId(item), reason: parsed.reason });
  }
  return entries;
}

function describeId(item: RawItem): unknown {
  const id = item?.[Attr.SessionId];
  return typeof id === 'string' ? id.slice(0, 300) : id;
}
