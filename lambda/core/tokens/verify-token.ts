import { NotFoundError, ServiceUnavailableError } from '../errors.js';
import { CidrSet, parseClientAddress, parseIp, sameAddress } from '../ip.js';
import type { Log } from '../log.js';
import { describeError, type SessionResolver } from '../resolve.js';
import { hasAccessRules, mayOpen } from '../session-access.js';
import { hashToken, isTokenFormat, tokenIdOf } from './token.js';
import { stateRefusal, type ConsumeRefusal, type TokenStore } from './token-store.js';
import type { TokenState } from './token-grant.js';

/** What the DCV server sends (contract section 2), plus the server segment of the verifier URL. */
export interface VerifyRequest {
  /** The DCV server's own session id (the resolved record's TargetSessionId), e.g. `console`. */
  readonly serverSessionId: string;
  readonly token: string;
  readonly clientAddress?: string;
  /** From `…/verifyToken/<server>`: which DCV server asks. Absent on the plain single-server URL. */
  readonly server?: string;
}

export type VerifyRefusal =
  | 'malformed'
  | ConsumeRefusal
  | 'wrong-client'
  | 'session-unavailable'
  | 'wrong-session'
  | 'wrong-server'
  | 'user-not-allowed';

export type VerifyResult =
  | {
      readonly result: 'yes';
      /** The token's user: the person, for logs and `token list`. */
      readonly user: string;
      /** The name DCV is answered with: the session's DcvUser, else the token's user. */
      readonly dcvUser: string;
      readonly tokenId: string;
      readonly sessionId: string;
      readonly usesLeft: number;
    }
  | { readonly result: 'no'; readonly reason: VerifyRefusal; readonly message: string; readonly tokenId?: string };

/**
 * Records on a session item that a token was just verified for it (`LastVerifiedAt`): a connection is
 * starting, so the power pass must not idle-stop its host in the meantime. Best effort by design.
 */
export interface VerificationMarker {
  /** Sets LastVerifiedAt to `atIso` unless it is already newer than `notBeforeIso`; never creates an item. */
  markVerified(sessionId: string, atIso: string, notBeforeIso: string): Promise<void>;
}

/** At most one LastVerifiedAt write per session per minute, whatever the connection rate. */
export const MARK_VERIFIED_INTERVAL_MS = 60_000;
const MAX_MARKED_REMEMBERED = 10_000;

export interface TokenVerifierOptions {
  readonly tokens: TokenStore;
  readonly sessions: SessionResolver;
  readonly log: Log;
  readonly now?: () => number;
  /** Where a yes is recorded for desktops on demand (items with AutoStopMinutes or Schedule). */
  readonly marker?: VerificationMarker;
}

/**
 * Says yes to a token only when every binding holds: the grant exists, is not revoked, expired or used
 * up; the DCV server's client address is inside the grant's CIDRs (if any); the grant's session still
 * resolves, to this server session id and (with the per-server URL) to the server that asks; a session
 * with AllowedUsers / AllowedGroups lists the grant's user or one of its groups. Only then is
 * one use taken, atomically in the store, so a refused attempt never burns a use. Messages are for
 * operators and never contain the token.
 *
 * A yes names the session's DcvUser when it has one (the name DCV authorizes, typically the session's
 * owner), else the token's user; who may connect was decided above, on the token's user and groups.
 */
export class TokenVerifier {
  private readonly tokens: TokenStore;
  private readonly sessions: SessionResolver;
  private readonly log: Log;
  private readonly now: () => number;
  private readonly marker?: VerificationMarker;
  /** Session id → when this process last marked it (bounded). */
  private readonly marked = new Map<string, number>();

  constructor(options: TokenVerifierOptions) {
    this.tokens = options.tokens;
    this.sessions = options.sessions;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.marker = options.marker;
  }

  async verify(request: VerifyRequest, logFields: Record<string, unknown> = {}): Promise<VerifyResult> {
    if (!isTokenFormat(request.token)) return no('malformed', 'authentication token is not in the issued format');
    const hash = hashToken(request.token);
    const tokenId = tokenIdOf(hash);
    const state = await this.read(hash, { ...logFields, tokenId });
    const nowSeconds = this.now() / 1000;
    const refusal = stateRefusal(state, nowSeconds);
    if (refusal) return no(refusal, consumeMessage(refusal, state), tokenId);
    const grant = state!;

    const clientProblem = clientRefusal(grant, request.clientAddress);
    if (clientProblem) return no('wrong-client', clientProblem, tokenId);

    let record;
    try {
      record = await this.sessions.findUsable(grant.sessionId, logFields);
    } catch (error) {
      if (error instanceof NotFoundError) {
        return no('session-unavailable', `the token's session is not available: ${error.message}`, tokenId);
      }
      throw error;
    }
    if (record.targetSessionId !== request.serverSessionId) {
      return no(
        'wrong-session',
        `token is for session '${grant.sessionId}' (server session '${record.targetSessionId}'), not server session '${clip(request.serverSessionId)}'`,
        tokenId,
      );
    }
    // Defence in depth: the portal checks before it issues, but AllowedUsers may have changed since, and an
    // operator's token for someone else must not open a session that names who may use it.
    if (hasAccessRules(record) && !mayOpen(record, { names: [grant.user], groups: grant.groups ?? [] })) {
      return no('user-not-allowed', `token's user '${clip(grant.user)}' is not allowed on session '${grant.sessionId}' (AllowedUsers / AllowedGroups)`, tokenId);
    }
    if (request.server !== undefined && !sameEndpoint(request.server, record.dcvServerEndpoint)) {
      return no(
        'wrong-server',
        `token is for session '${grant.sessionId}' on server ${record.dcvServerEndpoint}, not on ${clip(request.server)}`,
        tokenId,
      );
    }

    const dcvUser = record.dcvUser ?? grant.user;
    let outcome;
    try {
      outcome = await this.tokens.consume(hash, nowSeconds);
    } catch (cause) {
      this.log.error('token store failed', { ...logFields, tokenId, user: grant.user, dcvUser, cause: describeError(cause) });
      throw new ServiceUnavailableError('token store unavailable; try again');
    }
    // Lost a race (another connection took the last use) or changed since the read.
    if (!outcome.ok) return no(outcome.reason, consumeMessage(outcome.reason, grant), tokenId);
    if (record.autoStopMinutes !== undefined || record.schedule !== undefined) await this.markVerified(record.sessionId, logFields);
    return { result: 'yes', user: grant.user, dcvUser, tokenId, sessionId: grant.sessionId, usesLeft: outcome.usesLeft };
  }

  /** Never fails the verification: a lost marker only means the pass relies on DCV's own connection count. */
  private async markVerified(sessionId: string, logFields: Record<string, unknown>): Promise<void> {
    if (!this.marker) return;
    const now = this.now();
    const last = this.marked.get(sessionId);
    if (last !== undefined && now - last < MARK_VERIFIED_INTERVAL_MS) return;
    if (this.marked.size >= MAX_MARKED_REMEMBERED) this.marked.clear();
    this.marked.set(sessionId, now);
    try {
      await this.marker.markVerified(sessionId, new Date(now).toISOString(), new Date(now - MARK_VERIFIED_INTERVAL_MS).toISOString());
    } catch (cause) {
      this.log.warn('LastVerifiedAt not recorded', { ...logFields, sessionId, cause: describeError(cause) });
    }
  }

  private async read(hash: string, logFields: Record<string, unknown>): Promise<TokenState | undefined> {
    try {
      return await this.tokens.get(hash);
    } catch (cause) {
      this.log.error('token store failed', { ...logFields, cause: describeError(cause) });
      throw new ServiceUnavailableError('token store unavailable; try again');
    }
  }
}

function no(reason: VerifyRefusal, message: string, tokenId?: string): VerifyResult {
  return { result: 'no', reason, message, ...(tokenId ? { tokenId } : {}) };
}

function consumeMessage(reason: ConsumeRefusal, state: TokenState | undefined): string {
  switch (reason) {
    case 'unknown':
      return 'unknown authentication token (never issued, or removed after it expired); issue a new link';
    case 'revoked':
      return 'authentication token was revoked; issue a new link';
    case 'expired':
      return `authentication token expired at ${new Date(state!.expiresAt * 1000).toISOString()}; issue a new link`;
    case 'used-up':
      return `authentication token has been used ${state!.maxUses} time(s), its maximum; issue a new link`;
  }
}

function clientRefusal(grant: TokenState, clientAddress: string | undefined): string | undefined {
  if (!grant.clientCidrs) return undefined;
  const ip = clientAddress ? parseClientAddress(clientAddress) : undefined;
  if (!ip) return 'token is bound to client addresses and the DCV server reported no usable clientAddress';
  // Grants were validated on read; parse errors cannot happen here.
  if (!CidrSet.parse(grant.clientCidrs).contains(ip)) {
    return `client address ${ip.address} is not one this token was issued for`;
  }
  return undefined;
}

/** Host names compare case-insensitively; IP addresses by value (brackets and IPv6 spelling ignored). */
export function sameEndpoint(a: string, b: string): boolean {
  const bare = (value: string) => value.trim().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '').toLowerCase();
  const [x, y] = [bare(a), bare(b)];
  const [ipX, ipY] = [parseIp(x), parseIp(y)];
  if (ipX || ipY) return ipX !== undefined && ipY !== undefined && sameAddress(ipX, ipY);
  return x === y;
}

function clip(value: string, max = 64): string {
  return value.length <= max ? value : `${value.slice(0, max)}…`;
}
