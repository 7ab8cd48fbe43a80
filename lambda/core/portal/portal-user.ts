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
  /** What the page shows and logs say: the first trusted name after the subject (a verified e-mail first), else the subject. */
  readonly displayName: string;
}

export const DEFAULT_GROUPS_CLAIM = 'groups';

/**
 * Which claims name a person. Only claims the deployment trusts: ones the user cannot choose for
 * themselves, since AllowedUsers is one namespace and a self-chosen `preferred_username` that says
 * `alice@example.com` would otherwise be Alice.
 * - `sub`, always (the issuer's own identifier);
 * - `email` only when `email_verified` is true (boolean, or the string "true" that Cognito sends from
 *   UserInfo and for federated users);
 * - `cognito:username` when the ID token's issuer is a Cognito user pool (immutable there; any other
 *   issuer could put anything in a claim of that name);
 * - the claims the operator names (`oidcUserClaims`, `--oidc-user-claims`), e.g. Entra ID's `upn` in a
 *   tenant where only administrators set it. Naming `email` accepts an address without `email_verified`
 *   (Entra ID sends none); an explicit false still refuses it.
 */
export interface UserClaimsPolicy {
  /** The operator's claims, in the order given. */
  readonly named: readonly string[];
  /** The groups claim (never a name). */
  readonly groupsClaim: string;
}

/** `https://cognito-idp.<region>.amazonaws.com[.cn]/<region>_<id>`: only Cognito can sign for these. */
const COGNITO_ISSUER = /^https:\/\/cognito-idp\.[a-z]{2}(?:-[a-z]+)+-\d\.amazonaws\.com(?:\.cn)?\/[a-z]{2}(?:-[a-z]+)+-\d_[0-9A-Za-z]+$/;

export function isCognitoIssuer(issuer: unknown): boolean {
  return typeof issuer === 'string' && COGNITO_ISSUER.test(issuer);
}

/** Printable ASCII without spaces or commas (lists are comma-separated), 1–256 characters: Auth0's claims are URLs. */
const CLAIM_NAME = /^[\x21-\x2b\x2d-\x7e]{1,256}$/;
const MAX_USER_CLAIMS = 10;
/** Claims about the token, not the person: naming one would give everyone the same "name". */
const NOT_NAMES = new Set(['iss', 'aud', 'azp', 'exp', 'nbf', 'iat', 'auth_time', 'jti', 'nonce', 'at_hash', 'c_hash', 'acr', 'amr', 'sid', 'tid', 'email_verified']);

/** Why a list of operator-named user claims can't be used, or undefined. One rule for serve, the function and the stack. */
export function userClaimsProblem(claims: readonly string[], groupsClaim = DEFAULT_GROUPS_CLAIM): string | undefined {
  if (claims.length > MAX_USER_CLAIMS) return `names ${claims.length} claims; at most ${MAX_USER_CLAIMS}`;
  for (const claim of claims) {
    if (!CLAIM_NAME.test(claim)) return `must be claim names (printable, without spaces or commas), not '${claim}'`;
    if (claim === groupsClaim) return `'${claim}' is the groups claim: it lists groups (AllowedGroups), not names`;
    if (claim === 'email_verified') return "'email_verified' is not a name (name 'email' to accept addresses without it)";
    if (NOT_NAMES.has(claim)) return `'${claim}' describes the token or the tenant, not the person`;
  }
  return undefined;
}

/** The claims whose string values are a person's names besides `sub`, in display order, and how e-mail counts. */
function nameClaims(claims: Record<string, unknown>, policy: UserClaimsPolicy): { names: string[]; emailUnlessFalse: boolean } {
  const names = ['email', ...(isCognitoIssuer(claims.iss) ? ['cognito:username'] : []), ...policy.named];
  return { names: [...new Set(names)].filter((claim) => claim !== 'sub'), emailUnlessFalse: policy.named.includes('email') };
}

const isTrue = (value: unknown) => value === true || value === 'true';
const isFalse = (value: unknown) => value === false || value === 'false';

export const DEFAULT_USER_CLAIMS: UserClaimsPolicy = { named: [], groupsClaim: DEFAULT_GROUPS_CLAIM };

/**
 * Claims → PortalUser: the names the deployment trusts (see UserClaimsPolicy), groups from the groups claim.
 * Names and groups that could not be stored in a record are dropped. The display name is the first name
 * after `sub`, so logs and the token's user never carry a name the person chose.
 */
export function portalUserFromClaims(claims: Record<string, unknown>, policy: UserClaimsPolicy = DEFAULT_USER_CLAIMS): PortalUser {
  const subject = claims.sub;
  if (typeof subject !== 'string' || principalProblem(subject)) throw new Error('the ID token has no usable subject (sub)');
  const names = [subject];
  const { names: trusted, emailUnlessFalse } = nameClaims(claims, policy);
  for (const claim of trusted) {
    const value = claims[claim];
    if (claim === 'email' && !(emailUnlessFalse ? !isFalse(claims.email_verified) : isTrue(claims.email_verified))) continue;
    if (typeof value === 'string' && !principalProblem(value) && !names.includes(value)) names.push(value);
  }
  const groups = groupList(claims[policy.groupsClaim]);
  const displayName = names[1] ?? subject;
  return { subject, names, groups, displayName };
}

const present = (claims: Record<string, unknown>, claim: string) => claims[claim] !== undefined && claims[claim] !== null;

/**
 * Whether the ID token lacks something the portal matches on (an e-mail, every other trusted name claim,
 * the groups claim), so UserInfo should be read (OIDC Core 5.4: a conforming provider may send those
 * claims only there). A provider that copies them into the ID token (Cognito: email, cognito:username,
 * cognito:groups) costs no request, except for a person who really has no e-mail or no groups there.
 */
export function userInfoWanted(idTokenClaims: Record<string, unknown>, policy: UserClaimsPolicy = DEFAULT_USER_CLAIMS): boolean {
  const others = nameClaims(idTokenClaims, policy).names.filter((claim) => claim !== 'email');
  return !present(idTokenClaims, 'email') || (others.length > 0 && !others.some((claim) => present(idTokenClaims, claim))) || !present(idTokenClaims, policy.groupsClaim);
}

/**
 * The ID token's claims with what UserInfo adds: the ID token wins where it has a claim, UserInfo fills
 * only the claims the portal matches on. `email` and `email_verified` come as a pair from one source, so
 * one answer's verification never vouches for the other's address. The caller has checked the `sub`s match.
 */
export function withUserInfo(
  idTokenClaims: Record<string, unknown>,
  userInfo: Record<string, unknown>,
  policy: UserClaimsPolicy = DEFAULT_USER_CLAIMS,
): Record<string, unknown> {
  const merged = { ...idTokenClaims };
  const fill = (claims: readonly string[]) => {
    for (const claim of claims) if (present(userInfo, claim)) merged[claim] = userInfo[claim];
  };
  if (!present(idTokenClaims, 'email')) {
    delete merged.email_verified;
    fill(['email', 'email_verified']);
  }
  // Which claims are names is decided by the ID token's `iss` (UserInfo's answer has none to trust).
  const others = nameClaims(idTokenClaims, policy).names.filter((claim) => claim !== 'email');
  fill([...others, policy.groupsClaim].filter((claim) => !present(idTokenClaims, claim)));
  return merged;
}

/** A groups claim is a list of strings at most providers; some send one space- or comma-separated string. */
function groupList(value: unknown): string[] {
  const raw = Array.isArray(value) ? value : typeof value === 'string' ? value.split(/[\s,]+/) : [];
  const groups = raw.filter((g): g is string => typeof g === 'string' && !principalProblem(g));
  return [...new Set(groups)].slice(0, MAX_PRINCIPALS);
}

/**
 * Back from the session cookie's payload; undefined when it is not a PortalUser made under this policy:
 * an old cookie format (made before names were limited to trusted claims), or other named claims or
 * groups claim than now, so a changed configuration takes effect at once, not after the cookie expires.
 */
export function portalUserFromCookie(payload: Record<string, unknown>, policy: UserClaimsPolicy = DEFAULT_USER_CLAIMS): PortalUser | undefined {
  const { sub, names, groups, name, by } = payload;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (typeof sub !== 'string' || typeof name !== 'string' || !strings(names) || !strings(groups)) return undefined;
  if (by !== policyKey(policy)) return undefined;
  return { subject: sub, names, groups, displayName: name };
}

export function portalUserToCookie(user: PortalUser, policy: UserClaimsPolicy = DEFAULT_USER_CLAIMS): Record<string, unknown> {
  return { sub: user.subject, names: user.names, groups: user.groups, name: user.displayName, by: policyKey(policy) };
}

/** The policy a cookie's names were taken under (v2: trusted claims only). */
function policyKey(policy: UserClaimsPolicy): string {
  return JSON.stringify(['v2', policy.groupsClaim, ...policy.named]);
}
