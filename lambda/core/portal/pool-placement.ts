import { BadRequestError, ConflictError, NotFoundError, ServiceUnavailableError } from '../errors.js';
import type { Log } from '../log.js';
import { describeError } from '../resolve.js';
import { allowedAs, mayOpen, type Principal } from '../session-access.js';
import { Attr, isHostDown, LEASE_PREFIX, MAX_SESSION_ID_LENGTH, parseSessionRecord, POOL_NAME, principalProblem, type RawItem, type SessionRecord } from '../session-record.js';
import { leaseSessionId, readCatalog, type CatalogEntry, type LeaseStore, type SessionCatalog } from './session-catalog.js';

/**
 * What the portal shows a user, and Connect to a pool: placing the user on a free host with a lease.
 *
 * Pool members are the records with `Pool = NAME` (never lease items, which carry `Pool` too); a member is
 * usable while enabled and not expired. A lease is the item `lease:<member SessionId>` (one per host), so
 * the store's conditional write (LeaseStore.claim) gives each host at most one live holder.
 */

export const DEFAULT_LEASE_SECONDS = 8 * 60 * 60;

/** `ready`: Connect works. `disabled` / `expired`: listed with that state; Connect answers 404. */
export type SessionState = 'ready' | 'disabled' | 'expired' | 'stopped';

/** A session the user may open that is not in a pool (lease items are shown through their pool). */
export interface SessionEntry {
  readonly sessionId: string;
  readonly record: SessionRecord;
  readonly state: SessionState;
}

/** A pool the user may open at least one usable member of: one entry, whichever host Connect picks. */
export interface PoolEntry {
  readonly pool: string;
  /** Usable members this user may open, by SessionId. */
  readonly members: readonly SessionRecord[];
  /** How many of `members` no one holds a live lease on (the user's own lease counts as held). */
  readonly free: number;
  /** The user's live lease on one of `members`: Connect renews it and gives that host back. */
  readonly lease?: SessionRecord;
}

export interface PortalEntries {
  /** Sorted by SessionId. */
  readonly sessions: readonly SessionEntry[];
  /** Sorted by pool name. */
  readonly pools: readonly PoolEntry[];
}

/** The records a user may see: their sessions (any state) and their pools (only with a usable member). */
export function portalEntries(records: readonly SessionRecord[], principal: Principal, nowSeconds: number): PortalEntries {
  const sessions: SessionEntry[] = [];
  const poolMembers = new Map<string, SessionRecord[]>();
  for (const record of records) {
    if (record.source === 'lease' || !mayOpen(record, principal)) continue;
    if (record.pool === undefined) sessions.push({ sessionId: record.sessionId, record, state: stateOf(record, nowSeconds) });
    else if (isUsableMember(record, nowSeconds)) poolMembers.set(record.pool, [...(poolMembers.get(record.pool) ?? []), record]);
  }
  const leases = liveLeasesByMember(records, nowSeconds);
  const pools = [...poolMembers].map(([pool, members]): PoolEntry => {
    members.sort((a, b) => compare(a.sessionId, b.sessionId));
    const lease = members.map((member) => leases.get(member.sessionId)).find((held) => held !== undefined && holds(held, principal));
    const free = members.filter((member) => !leases.has(member.sessionId)).length;
    return { pool, members, free, ...(lease ? { lease } : {}) };
  });
  sessions.sort((a, b) => compare(a.sessionId, b.sessionId));
  pools.sort((a, b) => compare(a.pool, b.pool));
  return { sessions, pools };
}

export interface PlacementDeps {
  readonly catalog: SessionCatalog;
  readonly leases: LeaseStore;
  readonly log: Log;
  /** How long a lease lasts (capped at the member's own ExpiresAt). @default DEFAULT_LEASE_SECONDS (8 h) */
  readonly leaseSeconds?: number;
  /** Milliseconds since the epoch. @default Date.now */
  readonly now?: () => number;
}

export interface PlacementRequest {
  readonly pool: string;
  /** Who is connecting: decides which members they may open. */
  readonly principal: Principal;
  /** The stable key the lease is held under (`LeaseUser`, `AllowedUsers = [user]`), e.g. the ID token's subject. */
  readonly user: string;
}

/**
 * Connect to a pool: the lease record the user should be sent to.
 * - The user already holds a live lease on a member: renewed, same host back.
 * - Else the free members are claimed one at a time until one succeeds. The order is the user's own
 *   pseudo-random order (rendezvous hashing of user and host): users spread over the hosts like a random
 *   pick, while two Connects of one user at the same instant try the same host first and end on it
 *   (the claim lets a user renew their own lease) instead of leasing two hosts.
 * - None free: ConflictError (409) `no free host in pool NAME`.
 * - No such pool, or none of its usable members is the user's: NotFoundError (404), the same message
 *   either way so a user learns nothing about pools they may not use.
 * - The store fails: ServiceUnavailableError (503), logged.
 */
export async function placeInPool(deps: PlacementDeps, request: PlacementRequest): Promise<SessionRecord> {
  const { pool, principal, user } = request;
  if (!POOL_NAME.test(pool)) throw new NotFoundError('no such pool', 'not-found');
  const userProblem = principalProblem(user);
  if (userProblem) throw new BadRequestError(`the signed-in user's name cannot hold a lease: it ${userProblem}`);
  const leaseSeconds = deps.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
  const nowMs = (deps.now ?? Date.now)();
  const nowSeconds = nowMs / 1000;

  const entries = await storeCall(deps.log, 'session store failed', { pool }, () => readCatalog(deps.catalog, deps.log));
  const members = entries.filter((e) => e.record.pool === pool && e.record.source !== 'lease' && isUsableMember(e.record, nowSeconds) && mayOpen(e.record, principal));
  if (members.length === 0) throw new NotFoundError(`no pool '${pool}'`, 'not-found');

  const leases = liveLeasesByMember(entries.map((e) => e.record), nowSeconds);
  const order = members.sort((a, b) => preference(user, b.record.sessionId) - preference(user, a.record.sessionId) || compare(a.record.sessionId, b.record.sessionId));
  const own = order.filter((m) => leases.get(m.record.sessionId)?.leaseUser === user);
  const free = order.filter((m) => !leases.has(m.record.sessionId));
  for (const member of [...own, ...free]) {
    const item = leaseItem(member, { pool, user, nowMs, leaseSeconds });
    const sessionId = item[Attr.SessionId] as string;
    const won = await storeCall(deps.log, 'lease write failed', { pool, sessionId }, () => deps.leases.claim(item, nowSeconds));
    if (!won) continue;
    deps.log.info('pool host leased', { pool, sessionId, renewed: own.includes(member), expiresAt: item[Attr.ExpiresAt] });
    const parsed = parseSessionRecord(item);
    if (!parsed.ok) throw new Error(`lease item does not parse: ${parsed.reason}`);
    return parsed.record;
  }
  throw new ConflictError(`no free host in pool ${pool}`);
}

export interface LeaseTerms {
  readonly pool: string;
  readonly user: string;
  /** Milliseconds since the epoch. */
  readonly nowMs: number;
  readonly leaseSeconds: number;
}

/**
 * The lease item for a member: where to connect (endpoint, ports, path, target session, the DcvUser DCV is
 * answered with, and the member's client-address limit, so a lease never opens a host wider than the member
 * does) and whose it is until when.
 */
export function leaseItem(member: CatalogEntry, terms: LeaseTerms): RawItem {
  const { record, item } = member;
  const until = Math.floor(terms.nowMs / 1000) + terms.leaseSeconds;
  return {
    [Attr.SessionId]: leaseSessionId(record.sessionId),
    [Attr.DcvServerEndpoint]: record.dcvServerEndpoint,
    [Attr.HttpPort]: record.httpPort,
    ...(record.quicPort === undefined ? {} : { [Attr.QuicPort]: record.quicPort }),
    [Attr.WebUrlPath]: record.webUrlPath,
    [Attr.TargetSessionId]: record.targetSessionId,
    // The lease opens the member's session, so DCV must see the member's user (its owner), not the person.
    ...(record.dcvUser === undefined ? {} : { [Attr.DcvUser]: record.dcvUser }),
    ...(item[Attr.AllowedClientCidrs] === undefined ? {} : { [Attr.AllowedClientCidrs]: item[Attr.AllowedClientCidrs] }),
    [Attr.Source]: 'lease',
    [Attr.Pool]: terms.pool,
    [Attr.LeaseUser]: terms.user,
    [Attr.AllowedUsers]: [terms.user],
    // A lease never outlives the host's own record.
    [Attr.ExpiresAt]: record.expiresAt === undefined ? until : Math.min(until, record.expiresAt),
    [Attr.UpdatedAt]: new Date(terms.nowMs).toISOString(),
  };
}

function stateOf(record: SessionRecord, nowSeconds: number): SessionState {
  if (!record.enabled) return 'disabled';
  if (record.expiresAt !== undefined && nowSeconds >= record.expiresAt) return 'expired';
  // A host that is not running (desktops on demand): shown, never connected to, never leased.
  return isHostDown(record) ? 'stopped' : 'ready';
}

/** Enabled, not expired, and with an id short enough that its lease id is still a valid SessionId. */
function isUsableMember(record: SessionRecord, nowSeconds: number): boolean {
  return stateOf(record, nowSeconds) === 'ready' && record.sessionId.length + LEASE_PREFIX.length <= MAX_SESSION_ID_LENGTH;
}

/** Live lease items by the SessionId of the member they hold. Like the claim, no ExpiresAt never expires. */
function liveLeasesByMember(records: readonly SessionRecord[], nowSeconds: number): Map<string, SessionRecord> {
  const leases = new Map<string, SessionRecord>();
  for (const record of records) {
    if (record.source !== 'lease' || !record.sessionId.startsWith(LEASE_PREFIX)) continue;
    if (record.expiresAt !== undefined && record.expiresAt <= nowSeconds) continue;
    leases.set(record.sessionId.slice(LEASE_PREFIX.length), record);
  }
  return leases;
}

/** The lease is this principal's: its LeaseUser is one of their names (compared as AllowedUsers compares). */
function holds(lease: SessionRecord, principal: Principal): boolean {
  return lease.leaseUser !== undefined && allowedAs({ allowedUsers: [lease.leaseUser] }, { names: principal.names, groups: [] }) !== undefined;
}

/** Rendezvous weight of a host for a user: FNV-1a then murmur3's finalizer, so nearby ids spread well. */
function preference(user: string, sessionId: string): number {
  let h = 0x811c9dc5;
  const key = `${user}\u0000${sessionId}`;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

async function storeCall<T>(log: Log, message: string, fields: Record<string, unknown>, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (cause) {
    log.error(message, { ...fields, cause: describeError(cause) });
    throw new ServiceUnavailableError();
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
