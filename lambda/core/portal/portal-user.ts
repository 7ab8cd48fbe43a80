import { principalProblem, MAX_PRINCIPALS } from '../session-record';
import type { Principal } from '../session-access';

/**
 * The signed-in person as the portal keeps them (in the session cookie): every name they may be listed
 * under in `AllowedUsers`, their groups, and a name to show. Built from the verified ID token's claims.
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
