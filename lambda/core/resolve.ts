import { BadRequestError, NotFoundError, ServiceUnavailableError } from './errors.js';
import { parseClientAddress, type ParsedIp } from './ip.js';
import type { Log } from './log.js';
import {
  hasControlChars,
  isHostDown,
  LEASE_PREFIX,
  MAX_SESSION_ID_LENGTH,
  parseSessionRecord,
  type ParseResult,
  type RawItem,
  type SessionRecord,
} from './session-record.js';
import type { SessionStore } from './session-store.js';

/** The gateway's request, section 1 of the contract. */
export type Transport = 'HTTP' | 'QUIC';

export interface ResolveQuery {
  readonly sessionId: string;
  readonly transport: Transport;
  readonly clientIp?: ParsedIp;
}

/** Exactly the JSON object the gateway expects; key order matches AWS's documentation. */
export interface ResolveAnswer {
  readonly SessionId: string;
  readonly TransportProtocol: Transport;
  readonly DcvServerEndpoint: string;
  readonly Port: number;
  readonly WebUrlPath: string;
}

/** What the HTTP layer hands over: query parameters, repeated keys preserved (URLSearchParams fits). */
export interface QueryParams {
  getAll(name: string): string[];
}

function single(params: QueryParams, name: string): string | undefined {
  const values = params.getAll(name);
  if (values.length > 1) throw new BadRequestError(`${name} must be given once, not ${values.length} times`);
  return values[0];
}

/** Validates the untrusted query; nothing invalid ever reaches the store. */
export function parseResolveQuery(params: QueryParams): ResolveQuery {
  const sessionId = single(params, 'sessionId');
  if (sessionId === undefined || sessionId === '') throw new BadRequestError('sessionId is required');
  if (sessionId.length > MAX_SESSION_ID_LENGTH) {
    throw new BadRequestError(`sessionId must be at most ${MAX_SESSION_ID_LENGTH} characters`);
  }
  if (hasControlChars(sessionId)) throw new BadRequestError('sessionId must not contain control characters');

  const transport = single(params, 'transport');
  if (transport !== 'HTTP' && transport !== 'QUIC') {
    throw new BadRequestError(
      transport === undefined ? 'transport is required (HTTP or QUIC)' : 'transport must be HTTP or QUIC',
    );
  }

  const clientText = single(params, 'clientIpAddress');
  if (clientText === undefined || clientText === '') return { sessionId, transport };
  const clientIp = parseClientAddress(clientText);
  if (!clientIp) throw new BadRequestError('clientIpAddress must be an IPv4 or IPv6 address');
  return { sessionId, transport, clientIp };
}

export interface ResolverOptions {
  readonly store: SessionStore;
  readonly log: Log;
  /** Milliseconds since the epoch; injectable so expiry is testable at the boundary. */
  readonly now?: () => number;
}

/** How many distinct malformed items are remembered so each is logged once (bounded: untrusted keys). */
const MALFORMED_MEMORY = 10_000;

/**
 * The pure core: answer one lookup against a store. Every "no destination" cause is a 404 whose message
 * says which cause it was, so an operator reading the gateway's log knows what to fix.
 */
export class SessionResolver {
  private readonly store: SessionStore;
  private readonly log: Log;
  private readonly now: () => number;
  private readonly reportedMalformed = new Set<string>();
  /**
   * Validation results by item object. The file and memory stores hand out the same object until its
   * content changes (a reload makes new objects), so each item is validated once, not per lookup;
   * DynamoDB items are new objects every time and simply miss. Weak: dropped items are not kept alive.
   */
  private readonly parsedItems = new WeakMap<RawItem, ParseResult>();

  constructor(options: ResolverOptions) {
    this.store = options.store;
    this.log = options.log;
    this.now = options.now ?? Date.now;
  }

  /** `logFields` (e.g. the request id) are added to any line logged while answering this query. */
  async resolve(query: ResolveQuery, logFields: Record<string, unknown> = {}): Promise<ResolveAnswer> {
    const record = await this.lookup(query.sessionId, logFields);
    const refusal = this.refusal(record, query) ?? (await this.leaseRefusal(record!, logFields));
    if (refusal) throw refusal;
    const r = record!;
    return {
      SessionId: r.targetSessionId,
      TransportProtocol: query.transport,
      DcvServerEndpoint: r.dcvServerEndpoint,
      Port: query.transport === 'QUIC' ? r.quicPort! : r.httpPort,
      WebUrlPath: r.webUrlPath,
    };
  }

  /**
   * The record a session id currently resolves to, whatever the transport or client: unknown, disabled
   * and expired records throw the same 404 as a lookup would (issuing and verifying tokens use this).
   */
  async findUsable(sessionId: string, logFields: Record<string, unknown> = {}): Promise<SessionRecord> {
    const record = await this.lookup(sessionId, logFields);
    const refusal = this.usableRefusal(record, sessionId) ?? (await this.leaseRefusal(record!, logFields));
    if (refusal) throw refusal;
    return record!;
  }

  /**
   * The record as stored whatever its state (disabled, expired, host stopped), or undefined when absent or
   * malformed: the portal's Start and open reads a desktop that does not resolve yet.
   */
  async findRecord(sessionId: string, logFields: Record<string, unknown> = {}): Promise<SessionRecord | undefined> {
    return this.lookup(sessionId, logFields);
  }

  /**
   * A pool lease copies its member's destination when it is taken, and nothing updates it after: the
   * member's own item (kept with InstanceState by discovery, or deleted with its instance, whose address
   * may then be another machine's) says whether that destination still holds. One more read, for leases
   * only, and only once the lease itself would answer.
   */
  private async leaseRefusal(record: SessionRecord, logFields: Record<string, unknown>): Promise<NotFoundError | undefined> {
    if (record.source !== 'lease' || !record.sessionId.startsWith(LEASE_PREFIX)) return undefined;
    const memberId = record.sessionId.slice(LEASE_PREFIX.length);
    const member = await this.lookup(memberId, logFields);
    const why =
      this.usableRefusal(member, memberId)?.message ??
      (member!.dcvServerEndpoint === record.dcvServerEndpoint
        ? undefined
        : `session '${memberId}' is now on ${member!.dcvServerEndpoint}, not ${record.dcvServerEndpoint}`);
    if (why === undefined) return undefined;
    return new NotFoundError(`session '${record.sessionId}': its pool host is no longer available (${why})`, 'lease-member-gone');
  }

  // The code says which cause it was to metrics (lambda/core/metrics.ts NotFoundCode); the message to people.
  private usableRefusal(record: SessionRecord | undefined, sessionId: string): NotFoundError | undefined {
    if (!record) return new NotFoundError(`no session '${sessionId}'`, 'not-found');
    if (!record.enabled) return new NotFoundError(`session '${sessionId}' is disabled`, 'disabled');
    if (record.expiresAt !== undefined && this.now() >= record.expiresAt * 1000) {
      return new NotFoundError(`session '${sessionId}' has expired`, 'expired');
    }
    // Desktops on demand: a stale tab or a reconnecting client never reaches (or wakes) a stopped host.
    if (isHostDown(record)) {
      return new NotFoundError(`session '${sessionId}': the host is stopped (InstanceState ${record.instanceState})`, 'host-stopped');
    }
    return undefined;
  }

  /** Why this record gives no destination, or undefined when it does. */
  private refusal(record: SessionRecord | undefined, query: ResolveQuery): NotFoundError | undefined {
    const unusable = this.usableRefusal(record, query.sessionId);
    if (unusable) return unusable;
    if (record!.allowedClientCidrs) {
      if (!query.clientIp) return new NotFoundError(`session '${query.sessionId}' requires a clientIpAddress`, 'client-refused');
      if (!record!.allowedClientCidrs.contains(query.clientIp)) {
        return new NotFoundError(`session '${query.sessionId}' is not available to this client address`, 'client-refused');
      }
    }
    if (query.transport === 'QUIC' && record!.quicPort === undefined) {
      return new NotFoundError(`session '${query.sessionId}' does not offer QUIC`, 'transport-refused');
    }
    return undefined;
  }

  private async lookup(sessionId: string, logFields: Record<string, unknown>): Promise<SessionRecord | undefined> {
    let item;
    try {
      item = await this.store.get(sessionId);
    } catch (cause) {
      this.log.error('session store failed', { ...logFields, sessionId, cause: describeError(cause) });
      throw new ServiceUnavailableError();
    }
    if (item === undefined) return undefined;
    // Only objects can be WeakMap keys; anything else a store returns is validated (and refused) each time.
    const cacheable = typeof item === 'object' && item !== null;
    let parsed = cacheable ? this.parsedItems.get(item) : undefined;
    if (parsed === undefined) {
      parsed = parseSessionRecord(item);
      if (cacheable) this.parsedItems.set(item, parsed);
    }
    if (parsed.ok) {
      // A store keyed otherwise (or a hand-made file) must not answer for a different id.
      return parsed.record.sessionId === sessionId ? parsed.record : undefined;
    }
    this.reportMalformed(sessionId, parsed.reason);
    return undefined;
  }

  private reportMalformed(sessionId: string, reason: string): void {
    const key = `${sessionId}\u0000${reason}`;
    if (this.reportedMalformed.has(key)) return;
    if (this.reportedMalformed.size >= MALFORMED_MEMORY) this.reportedMalformed.clear();
    this.reportedMalformed.add(key);
    this.log.warn('malformed session item skipped', { sessionId, reason });
  }
}

/** Name, code and message of an error, without a stack, for logs. */
export function describeError(error: unknown): Record<string, unknown> {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, message: error.message, ...(code === undefined ? {} : { code }) };
  }
  return { message: String(error) };
}
