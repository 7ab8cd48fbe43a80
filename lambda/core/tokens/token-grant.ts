import { parseCidr } from '../ip.js';
import { hasControlChars, MAX_PRINCIPALS, MAX_SESSION_ID_LENGTH, principalProblem } from '../session-record.js';
import { isTokenHash } from './token.js';

/**
 * What a token is bound to. Stored under the token's hash; the token itself is never stored.
 * `sessionId` is the client-facing id the token was issued for (what follows `#` in the link).
 */
export interface TokenGrant {
  readonly hash: string;
  readonly sessionId: string;
  readonly user: string;
  /** Epoch seconds; the token is refused from this instant on. */
  readonly expiresAt: number;
  /** Successful verifications allowed in all. */
  readonly maxUses: number;
  /** When present, the DCV server's reported clientAddress must fall inside one of these. */
  readonly clientCidrs?: readonly string[];
  /**
   * The user's groups when the token was issued (the portal passes the ID token's groups claim): the
   * verifier checks the user or one of these against the session's AllowedUsers / AllowedGroups.
   */
  readonly groups?: readonly string[];
  /** ISO time of issue. */
  readonly createdAt: string;
}

/** A grant as a store holds it now. */
export interface TokenState extends TokenGrant {
  readonly usesLeft: number;
  /** ISO time of revocation, when revoked. */
  readonly revokedAt?: string;
}

export const MAX_USER_LENGTH = 256;
export const MAX_USES_LIMIT = 100;

/** Why a value can't be a user name, or undefined when it can. */
export function userNameProblem(user: string): string | undefined {
  if (user.length === 0) return 'must not be empty';
  if (user.length > MAX_USER_LENGTH) return `must be at most ${MAX_USER_LENGTH} characters`;
  if (hasControlChars(user)) return 'must not contain control characters';
  return undefined;
}

/** Why a list of group names can't be a grant's `groups`, or undefined when it can. */
export function groupsProblem(groups: unknown): string | undefined {
  if (!Array.isArray(groups)) return 'must be a list of group names';
  if (groups.length > MAX_PRINCIPALS) return `must have at most ${MAX_PRINCIPALS} entries`;
  for (const group of groups as unknown[]) {
    if (typeof group !== 'string') return 'must be a list of group names (strings)';
    const problem = principalProblem(group);
    if (problem) return `entry '${group.slice(0, 64)}' ${problem}`;
  }
  return undefined;
}

export function sessionIdProblem(sessionId: string): string | undefined {
  if (sessionId.length === 0) return 'must not be empty';
  if (sessionId.length > MAX_SESSION_ID_LENGTH) return `must be at most ${MAX_SESSION_ID_LENGTH} characters`;
  if (hasControlChars(sessionId)) return 'must not contain control characters';
  return undefined;
}

/**
 * Validates a stored token state (a table item may have been edited by hand): the reason names the
 * field, and a state that does not parse is treated as unknown, never accepted.
 */
export function parseTokenState(raw: Record<string, unknown>): { ok: true; state: TokenState } | { ok: false; reason: string } {
  const fail = (reason: string) => ({ ok: false as const, reason });
  const { hash, sessionId, user, expiresAt, maxUses, usesLeft, clientCidrs, groups, createdAt, revokedAt } = raw;
  if (typeof hash !== 'string' || !isTokenHash(hash)) return fail('hash must be 64 lower-case hex characters');
  if (typeof sessionId !== 'string' || sessionIdProblem(sessionId)) return fail('sessionId is missing or invalid');
  if (typeof user !== 'string' || userNameProblem(user)) return fail('user is missing or invalid');
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt) || expiresAt < 0) return fail('expiresAt must be epoch seconds');
  if (!isCount(maxUses) || maxUses < 1) return fail('maxUses must be a positive integer');
  if (!isCount(usesLeft)) return fail('usesLeft must be a non-negative integer');
  if (clientCidrs !== undefined) {
    if (!Array.isArray(clientCidrs) || !clientCidrs.every((c) => typeof c === 'string' && parseCidr(c))) {
      return fail('clientCidrs must be a list of CIDRs');
    }
  }
  if (groups !== undefined) {
    const problem = groupsProblem(groups);
    if (problem) return fail(`groups ${problem}`);
  }
  if (typeof createdAt !== 'string') return fail('createdAt must be an ISO time');
  if (revokedAt !== undefined && typeof revokedAt !== 'string') return fail('revokedAt must be an ISO time');
  return {
    ok: true,
    state: {
      hash,
      sessionId,
      user,
      expiresAt,
      maxUses,
      usesLeft,
      createdAt,
      ...(clientCidrs === undefined ? {} : { clientCidrs: clientCidrs as string[] }),
      ...(groups === undefined ? {} : { groups: groups as string[] }),
      ...(revokedAt === undefined ? {} : { revokedAt: revokedAt as string }),
    },
  };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}
