import { BadRequestError, ForbiddenError } from '../errors.js';
import { parseCidr } from '../ip.js';
import type { SessionResolver } from '../resolve.js';
import { hasAccessRules, mayOpen } from '../session-access.js';
import { connectLinks } from './connect-links.js';
import { hashToken, mintToken, tokenIdOf } from './token.js';
import { groupsProblem, MAX_USES_LIMIT, sessionIdProblem, userNameProblem, type TokenGrant } from './token-grant.js';
import type { TokenStore } from './token-store.js';

/** Ten minutes: long enough to click a link someone sent, short enough that a leaked link soon dies. */
export const DEFAULT_TTL_SECONDS = 600;
/** First connection plus two recoveries (a page reload, a reconnect); see docs/connecting.md "Tokens". */
export const DEFAULT_MAX_USES = 3;
export const MAX_TTL_SECONDS = 7 * 86400;

export interface IssueTokenRequest {
  /** Client-facing session id (the link's fragment). */
  readonly sessionId: string;
  readonly user: string;
  /** @default DEFAULT_TTL_SECONDS */
  readonly ttlSeconds?: number;
  /** @default DEFAULT_MAX_USES */
  readonly maxUses?: number;
  /** Bind the token to client addresses the DCV server reports. */
  readonly clientCidrs?: readonly string[];
  /**
   * The user's groups (the portal: the ID token's groups claim). Stored with the grant; with the session's
   * AllowedGroups they let the user in where their name alone would not.
   */
  readonly groups?: readonly string[];
  /** The gateway's public address, e.g. `https://gw.example.com:8443`; without it no links are made. */
  readonly gatewayUrl?: string;
}

export interface IssueTokenDeps {
  readonly tokens: TokenStore;
  /** When given, a session id that does not resolve (unknown, disabled, expired) is refused. */
  readonly sessions?: SessionResolver;
  readonly now?: () => number;
}

export interface IssuedToken {
  /** The secret: it exists only here and in the links. */
  readonly token: string;
  /** Non-secret handle (start of the hash), as `token list` shows it. */
  readonly tokenId: string;
  readonly url?: string;
  readonly nativeUrl?: string;
  readonly sessionId: string;
  readonly user: string;
  /** ISO time. */
  readonly expiresAt: string;
  readonly maxUses: number;
  readonly clientCidrs?: readonly string[];
  readonly groups?: readonly string[];
  /** The target the session resolved to when the token was issued (absent without a session check). */
  readonly dcvServerEndpoint?: string;
  /** The session's DcvUser when the token was issued: the name the verifier will answer DCV with. */
  readonly dcvUser?: string;
}

/**
 * Issues a connect token: validates the request, checks the session resolves, stores only the token's
 * hash with its bindings, and returns the token with its links. What `token create` and a portal call.
 * Throws BadRequestError (400) for invalid input, NotFoundError (404) for a session that does not resolve,
 * and ForbiddenError (403) when the session has AllowedUsers / AllowedGroups and neither the user nor one
 * of the groups is on them (a session with neither list takes operator tokens for anyone, as before).
 */
export async function issueToken(deps: IssueTokenDeps, request: IssueTokenRequest): Promise<IssuedToken> {
  const sessionProblem = sessionIdProblem(request.sessionId);
  if (sessionProblem) throw new BadRequestError(`session id ${sessionProblem}`);
  const userProblem = userNameProblem(request.user);
  if (userProblem) throw new BadRequestError(`user ${userProblem}`);
  const ttl = request.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) {
    throw new BadRequestError(`ttl must be 1 second to ${MAX_TTL_SECONDS / 86400} days`);
  }
  const maxUses = request.maxUses ?? DEFAULT_MAX_USES;
  if (!Number.isInteger(maxUses) || maxUses < 1 || maxUses > MAX_USES_LIMIT) {
    throw new BadRequestError(`max uses must be an integer from 1 to ${MAX_USES_LIMIT}`);
  }
  for (const cidr of request.clientCidrs ?? []) {
    if (!parseCidr(cidr)) throw new BadRequestError(`client CIDR '${cidr}' is not an IPv4 or IPv6 CIDR`);
  }
  const clientCidrs = request.clientCidrs && request.clientCidrs.length > 0 ? [...request.clientCidrs] : undefined;
  const problemWithGroups = request.groups === undefined ? undefined : groupsProblem(request.groups);
  if (problemWithGroups) throw new BadRequestError(`groups ${problemWithGroups}`);
  const groups = request.groups && request.groups.length > 0 ? [...new Set(request.groups)] : undefined;

  // Links are checked before anything is stored, so a bad gateway URL leaves no orphan grant.
  const token = mintToken();
  const links = request.gatewayUrl === undefined ? undefined : connectLinks(request.gatewayUrl, token, request.sessionId);
  const record = deps.sessions ? await deps.sessions.findUsable(request.sessionId) : undefined;
  if (record && hasAccessRules(record) && !mayOpen(record, { names: [request.user], groups: groups ?? [] })) {
    throw new ForbiddenError(
      `user '${request.user}'${groups ? ` (groups ${groups.join(', ')})` : ''} is not allowed on session '${request.sessionId}' ` +
        '(not in its AllowedUsers, and no group in its AllowedGroups)',
    );
  }

  const now = (deps.now ?? Date.now)();
  const hash = hashToken(token);
  const grant: TokenGrant = {
    hash,
    sessionId: request.sessionId,
    user: request.user,
    expiresAt: Math.floor(now / 1000) + ttl,
    maxUses,
    createdAt: new Date(now).toISOString(),
    ...(clientCidrs ? { clientCidrs } : {}),
    ...(groups ? { groups } : {}),
  };
  await deps.tokens.put(grant);
  return {
    token,
    tokenId: tokenIdOf(hash),
    ...(links ?? {}),
    sessionId: grant.sessionId,
    user: grant.user,
    expiresAt: new Date(grant.expiresAt * 1000).toISOString(),
    maxUses,
    ...(clientCidrs ? { clientCidrs } : {}),
    ...(groups ? { groups } : {}),
    ...(record ? { dcvServerEndpoint: record.dcvServerEndpoint } : {}),
    ...(record?.dcvUser === undefined ? {} : { dcvUser: record.dcvUser }),
  };
}
