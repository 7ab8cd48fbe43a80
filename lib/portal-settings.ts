import { Token } from 'aws-cdk-lib';
import { CidrSet } from '../lambda/core/ip.js';
import { userClaimsProblem } from '../lambda/core/portal/portal-user.js';

/**
 * Which identity provider the self-service portal (`GET /portal`) signs users in with:
 * - `off`: no portal (no secret, no user pool, no PORTAL_* environment).
 * - `cognito`: the stack creates a Cognito user pool with its hosted sign-in and a public app client.
 * - `oidc`: an existing OpenID Connect provider (Entra ID, Okta, Google Workspace, …) given by
 *   `oidcIssuer` and `oidcClientId`.
 */
export type PortalMode = 'off' | 'cognito' | 'oidc';
export const PORTAL_MODES: readonly PortalMode[] = ['off', 'cognito', 'oidc'];

/** Lease length bounds (seconds): one minute to seven days. */
export const PORTAL_LEASE_SECONDS_RANGE = { min: 60, max: 604_800 } as const;

/**
 * The portal's settings. The names are the CDK context keys too (`-c portal=cognito -c gatewayUrl=…`);
 * stack and construct props share them.
 */
export interface PortalProps {
  /**
   * `'off'`, `'cognito'` (a user pool made by the stack) or `'oidc'` (an existing issuer). The portal needs
   * the token verifier (it mints connect tokens), so `verifier: false` is refused with it. It is its own
   * function with its own Function URL (AuthType NONE, no path prefix, `portalAllowedSourceCidrs`), so the
   * resolver's access mode, allow-list and prefix stay the gateway's and the DCV servers' alone.
   * @default 'off'
   */
  readonly portal?: string;
  /**
   * Callers allowed to reach the portal (users' browsers: an office's or a VPN's egress CIDRs, IPv4/IPv6).
   * Checked in the portal's handler, like `allowedSourceCidrs` in the resolver's; it has no effect on the
   * gateway's and DCV servers' routes.
   * @default - anyone (the portal's sign-in is its access control)
   */
  readonly portalAllowedSourceCidrs?: readonly string[];
  /**
   * Required when the portal is on: the gateway's public https URL, the origin of the links the portal
   * hands out (e.g. `https://gateway.example.com:8443`).
   * @default - none
   */
  readonly gatewayUrl?: string;
  /**
   * Required with `portal: 'oidc'`: the issuer's https URL, exactly as in its ID tokens' `iss` claim.
   * @default - none
   */
  readonly oidcIssuer?: string;
  /**
   * Required with `portal: 'oidc'`: the public client (no secret; code flow + PKCE) registered at the
   * issuer, with redirect URI `<PortalUrl>/callback`.
   * @default - none
   */
  readonly oidcClientId?: string;
  /**
   * With `portal: 'oidc'`: the ID token claim that lists the user's groups (matched against AllowedGroups).
   * @default 'groups' (`cognito:groups` with `portal: 'cognito'`)
   */
  readonly oidcGroupsClaim?: string;
  /**
   * With `portal: 'oidc'`: the scopes to ask for, space-separated, `openid` among them. Okta, for one, puts
   * groups in the ID token only for a `groups` scope; Cognito and Entra ID refuse scopes they don't know.
   * @default 'openid email profile'
   */
  readonly oidcScopes?: string;
  /**
   * More ID token claims that name a person in `AllowedUsers` (context: comma-separated, or a JSON array in
   * cdk.json). By default only `sub`, `email` when `email_verified` is true and, with Cognito,
   * `cognito:username` do: claims a user can choose (a profile's `preferred_username`, an unverified
   * e-mail) would let anyone become anyone. Name a claim only where users cannot set it, e.g. Entra ID's
   * `upn` or `oid`; naming `email` accepts addresses without `email_verified` (Entra ID sends none). In
   * `cognito` mode the app client may not write a named claim.
   * @default - none
   */
  readonly oidcUserClaims?: readonly string[];
  /**
   * How long a pool placement (lease) lasts, in seconds (60 to 604800).
   * @default - the runtime's default (8 hours)
   */
  readonly portalLeaseSeconds?: number;
  /**
   * With `portal: 'cognito'`: the hosted sign-in domain's prefix (`https://<prefix>.auth.<region>.amazoncognito.com`),
   * unique in the region across all accounts: lowercase letters, digits and hyphens, 1–63 characters, not
   * containing `aws`, `amazon` or `cognito`.
   * @default - the stack name (lowercased) and the first 8 characters of the stack's id
   */
  readonly cognitoDomainPrefix?: string;
}

/** Validated portal settings (only when the portal is on). */
export interface PortalSettings {
  readonly mode: 'cognito' | 'oidc';
  readonly gatewayUrl: string;
  /** Absent: anyone. */
  readonly allowedSourceCidrs?: readonly string[];
  readonly oidcIssuer?: string;
  readonly oidcClientId?: string;
  readonly groupsClaim: string;
  /** Space-separated; absent: the runtime's default (openid email profile). */
  readonly scopes?: string;
  readonly leaseSeconds?: number;
  readonly cognitoDomainPrefix?: string;
  /** Claims trusted as names besides the defaults; absent: none (PORTAL_USER_CLAIMS). */
  readonly userClaims?: readonly string[];
}

/** Thrown for portal settings that cannot be deployed; the message names the key to set. */
export class PortalSettingsError extends Error {
  override readonly name = 'PortalSettingsError';
}

function fail(message: string): never {
  throw new PortalSettingsError(message);
}

const DOMAIN_PREFIX = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const RESERVED_IN_DOMAIN = /aws|amazon|cognito/;
/** Printable ASCII without spaces: client ids and claim names (claims may be URLs, e.g. Auth0's). */
const PRINTABLE = /^[\x21-\x7e]{1,256}$/;

/** An https URL without credentials, query or fragment; CDK tokens pass (checked at deploy). */
function httpsUrl(key: string, value: string | undefined, example: string): string | undefined {
  const trimmed = value?.trim();
  if (!trimmed) return undefined;
  if (Token.isUnresolved(trimmed)) return trimmed;
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    fail(`${key} must be an https URL (e.g. ${example}), not '${trimmed}'`);
  }
  if (url.protocol !== 'https:') fail(`${key} must be an https URL (e.g. ${example}), not '${trimmed}'`);
  if (url.username || url.password || url.search || url.hash || trimmed.endsWith('?') || trimmed.endsWith('#')) {
    fail(`${key} must be an https URL without credentials, query or fragment, not '${trimmed}'`);
  }
  return trimmed;
}

function printable(key: string, value: string | undefined, what: string): string | undefined {
  const trimmed = value?.trim();
  if (!trimmed) return undefined;
  if (!Token.isUnresolved(trimmed) && !PRINTABLE.test(trimmed)) {
    fail(`${key} must be ${what}: 1 to 256 printable characters without spaces, not '${trimmed}'`);
  }
  return trimmed;
}

/** Keys that only mean something in one portal mode, so a typo in `portal` is not silently ignored. */
const ONLY_IN: readonly [keyof PortalProps, 'cognito' | 'oidc' | 'on'][] = [
  ['gatewayUrl', 'on'],
  ['portalLeaseSeconds', 'on'],
  ['oidcUserClaims', 'on'],
  ['portalAllowedSourceCidrs', 'on'],
  ['oidcIssuer', 'oidc'],
  ['oidcClientId', 'oidc'],
  ['oidcGroupsClaim', 'oidc'],
  ['oidcScopes', 'oidc'],
  ['cognitoDomainPrefix', 'cognito'],
];

/**
 * Validates and fills defaults; `undefined` when the portal is off. Every message names the key to set.
 * `verifier` is the resolver's (already validated) setting the portal depends on.
 */
export function resolvePortalSettings(
  props: PortalProps,
  context: { readonly verifier?: boolean },
): PortalSettings | undefined {
  const mode = props.portal?.trim() || 'off';
  if (!(PORTAL_MODES as readonly string[]).includes(mode)) {
    fail(`portal must be 'off', 'cognito' or 'oidc', not '${mode}'`);
  }
  for (const [key, usedIn] of ONLY_IN) {
    const value = props[key];
    if (value === undefined || (typeof value === 'string' && value.trim() === '') || (Array.isArray(value) && value.length === 0)) continue;
    if (usedIn === 'on' ? mode === 'off' : mode !== usedIn) {
      fail(`${key} is only used with portal ${usedIn === 'on' ? "'cognito' or 'oidc'" : `'${usedIn}'`}; set -c portal=${usedIn === 'on' ? 'cognito' : usedIn} or remove it`);
    }
  }
  if (mode === 'off') return undefined;
  const on = mode as 'cognito' | 'oidc';

  if (context.verifier === false) {
    fail(`portal '${on}' needs the token verifier (it mints the connect tokens the DCV servers verify): remove verifier=false`);
  }

  const gatewayUrl = httpsUrl('gatewayUrl', props.gatewayUrl, 'https://gateway.example.com:8443');
  if (!gatewayUrl) {
    fail(`portal '${on}' needs gatewayUrl: the gateway's public https URL for the links (e.g. -c gatewayUrl=https://gateway.example.com:8443)`);
  }

  const list = props.portalAllowedSourceCidrs?.map((c) => c.trim()).filter((c) => c.length > 0);
  const allowedSourceCidrs = list && list.length > 0 ? list : undefined;
  if (allowedSourceCidrs) {
    try {
      CidrSet.parse(allowedSourceCidrs);
    } catch (error) {
      fail(`portalAllowedSourceCidrs: ${(error as Error).message}`);
    }
  }

  const lease = props.portalLeaseSeconds;
  if (lease !== undefined) {
    const { min, max } = PORTAL_LEASE_SECONDS_RANGE;
    if (!Number.isInteger(lease) || lease < min || lease > max) {
      fail(`portalLeaseSeconds must be an integer from ${min} to ${max}, not '${lease}'`);
    }
  }

  const claims = props.oidcUserClaims?.map((c) => c.trim()).filter((c) => c.length > 0) ?? [];
  const claimsProblem = userClaimsProblem(claims, on === 'cognito' ? 'cognito:groups' : (props.oidcGroupsClaim?.trim() || 'groups'));
  if (claimsProblem) fail(`oidcUserClaims ${claimsProblem}`);
  const userClaims = claims.length > 0 ? { userClaims: claims } : {};

  if (on === 'oidc') {
    const oidcIssuer = httpsUrl('oidcIssuer', props.oidcIssuer, 'https://login.example.com/tenant');
    if (!oidcIssuer) fail("portal 'oidc' needs oidcIssuer: the identity provider's https issuer URL (e.g. -c oidcIssuer=https://login.example.com)");
    const oidcClientId = printable('oidcClientId', props.oidcClientId, 'the client id registered at the issuer');
    if (!oidcClientId) fail("portal 'oidc' needs oidcClientId: the public client registered at the issuer (e.g. -c oidcClientId=dcv-portal)");
    const groupsClaim = printable('oidcGroupsClaim', props.oidcGroupsClaim, 'an ID token claim name') ?? 'groups';
    const scopes = props.oidcScopes?.trim().split(/\s+/).join(' ') || undefined;
    if (scopes !== undefined && !Token.isUnresolved(scopes) && (!/^[\x21\x23-\x5B\x5D-\x7E ]+$/.test(scopes) || !scopes.split(' ').includes('openid'))) {
      fail(`oidcScopes must be space-separated scope names including 'openid' (e.g. 'openid email profile groups'), not '${scopes}'`);
    }
    return { mode: on, gatewayUrl, allowedSourceCidrs, oidcIssuer, oidcClientId, groupsClaim, ...(scopes ? { scopes } : {}), leaseSeconds: lease, ...userClaims };
  }

  const prefix = props.cognitoDomainPrefix?.trim() || undefined;
  if (prefix && !Token.isUnresolved(prefix) && (!DOMAIN_PREFIX.test(prefix) || RESERVED_IN_DOMAIN.test(prefix))) {
    fail(
      `cognitoDomainPrefix must be 1 to 63 lowercase letters, digits or hyphens (not at either end) and must not ` +
        `contain 'aws', 'amazon' or 'cognito', not '${prefix}'`,
    );
  }
  return { mode: on, gatewayUrl, allowedSourceCidrs, groupsClaim: 'cognito:groups', leaseSeconds: lease, cognitoDomainPrefix: prefix, ...userClaims };
}
