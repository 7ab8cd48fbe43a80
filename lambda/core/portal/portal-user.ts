import { principalProblem, MAX_PRINCIPALS } from '../session-record.js';
import type { Principal } from '../session-access.js';

/**
 * The signed-in person as the portal keeps them (in the session cookie): every name they may be listed
 * under in `AllowedUsers`, their groups, and a name to show. Built from the verified ID token's claims
 * (with UserInfo's where the ID token lacks them: see withUserInfo).
 */
export interface PortalUser extends Principal {
  /** The ID token's `sub`: stable and unique at the issuer; pool leases are held under it. */
  readonly subject: string;
  /** What the page shows and logs say: e-mail, else user name, else subject. */
  readonly displayName: string;
}

export const DEFAULT_GROUPS_CLAIM = 'groups';

/** Names a person is known by, in the order identity providers put them in ID tokens. */
const NAME_CLAIMS = ['email', 'preferred_username', 'cognito:username', 'username', 'upn'] as const;

/**
 * Claims → PortalUser. An e-mail whose `email_verified` is false is not a name (anyone can type an
 * address at a sloppy provider); names and groups that could not be stored in a record are dropped.
 */
export function portalUserFromClaims(claims: Record<string, unknown>, groupsClaim = DEFAULT_GROUPS_CLAIM): PortalUser {
  const subject = claims.sub;
  if (typeof subject !== 'string' || principalProblem(subject)) throw new Error('the ID token has no usable subject (sub)');
  const names = [subject];
  for (const claim of NAME_CLAIMS) {
    const value = claims[claim];
    if (claim === 'email' && claims.email_verified === false) continue;
    if (typeof value === 'string' && !principalProblem(value) && !names.includes(value)) names.push(value);
  }
  const groups = groupList(claims[groupsClaim]);
  const displayName = names[1] ?? subject;
  return { subject, names, groups, displayName };
}

/** The names besides e-mail: a provider that copies claims into the ID token sends at least one. */
const USER_NAME_CLAIMS = NAME_CLAIMS.filter((claim) => claim !== 'email');

const present = (claims: Record<string, unknown>, claim: string) => claims[claim] !== undefined && claims[claim] !== null;

/**
 * Whether the ID token lacks something the portal matches on (an e-mail, a user name, the groups claim),
 * so UserInfo should be read (OIDC Core 5.4: a conforming provider may send those claims only there). A
 * provider that copies them into the ID token (Cognito: email, cognito:username, cognito:groups) costs no
 * request, except for a person who really has no e-mail or no groups there.
 */
export function userInfoWanted(idTokenClaims: Record<string, unknown>, groupsClaim = DEFAULT_GROUPS_CLAIM): boolean {
  return !present(idTokenClaims, 'email') || !USER_NAME_CLAIMS.some((claim) => present(idTokenClaims, claim)) || !present(idTokenClaims, groupsClaim);
}

/**
 * The ID token's claims with what UserInfo adds: the ID token wins where it has a claim, UserInfo fills
 * only the claims the portal matches on. `email` and `email_verified` come as a pair from one source, so
 * one answer's verification never vouches for the other's address. The caller has checked the `sub`s match.
 */
export function withUserInfo(
  idTokenClaims: Record<string, unknown>,
  userInfo: Record<string, unknown>,
  groupsClaim = DEFAULT_GROUPS_CLAIM,
): Record<string, unknown> {
  const merged = { ...idTokenClaims };
  const fill = (claims: readonly string[]) => {
    for (const claim of claims) if (present(userInfo, claim)) merged[claim] = userInfo[claim];
  };
  if (!present(idTokenClaims, 'email')) {
    delete merged.email_verified;
    fill(['email', 'email_verified']);
  }
  fill([...USER_NAME_CLAIMS, groupsClaim].filter((claim) => !present(idTokenClaims, claim)));
  return merged;
}

/** A groups claim is a list of strings at most providers; some send one space- or comma-separated string. */
function groupList(value: unknown): string[] {
  const raw = Array.isArray(value) ? value : typeof value === 'string' ? value.split(/[\s,]+/) : [];
  const groups = raw.filter((g): g is string => typeof g === 'string' && !principalProblem(g));
  return [...new Set(groups)].slice(0, MAX_PRINCIPALS);
}

/** Back from the session cookie's payload; undefined when it is not a PortalUser (an old cookie format). */
export function portalUserFromCookie(payload: Record<string, unknown>): PortalUser | undefined {
  const { sub, names, groups, name } = payload;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (typeof sub !== 'string' || typeof name !== 'string' || !strings(names) || !strings(groups)) return undefined;
  return { subject: sub, names, groups, displayName: name };
}

export function portalUserToCookie(user: PortalUser): Record<string, unknown> {
  return { sub: user.subject, names: user.names, groups: user.groups, name: user.displayName };
}
