import { createHash, randomBytes } from 'node:crypto';

/**
 * What the portal needs from an OpenID Connect provider; the adapter (adapters/openid-connect.ts) does
 * it with `openid-client`, tests may use a real provider through it. Everything the portal checks on
 * its own side (state, nonce, PKCE verifier) is generated here and kept in the signed sign-in cookie.
 */
export interface OidcClient {
  /**
   * Where to send the browser: the authorization endpoint with response_type=code and these values.
   * `deadline` (epoch ms) bounds every request to the provider (the discovery document, on first use); a
   * request that runs out of time throws OutOfTimeError (core/deadline.ts) naming it.
   */
  authorizationUrl(request: AuthorizationRequest, deadline: number): Promise<string>;
  /**
   * Redeems the code from `callbackUrl` (the full URL the provider sent the browser to), checking the
   * state, the PKCE verifier and the ID token (signature against the issuer's keys, issuer, audience,
   * expiry, nonce). Returns the ID token's claims and a way to read UserInfo; throws OidcError when
   * anything does not hold, OutOfTimeError when a request to the provider outlasts `deadline`.
   */
  signIn(callbackUrl: URL, checks: SignInChecks, deadline: number): Promise<SignIn>;
}

/** A verified sign-in. */
export interface SignIn {
  readonly idTokenClaims: Record<string, unknown>;
  /**
   * The provider's UserInfo answer, read with this sign-in's access token (absent when the provider has
   * no UserInfo endpoint). OIDC Core 5.4: a provider may send the `email`/`profile` claims only there.
   * Throws OidcError when its `sub` is not the ID token's, OidcUnavailableError when it cannot be read,
   * OutOfTimeError when it does not answer before `deadline`.
   */
  readonly userInfo?: (deadline: number) => Promise<Record<string, unknown>>;
}

export interface AuthorizationRequest {
  readonly redirectUri: string;
  readonly state: string;
  readonly nonce: string;
  readonly codeChallenge: string;
}

export interface SignInChecks {
  readonly redirectUri: string;
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
}

/** The provider refused, or its answer did not verify: the user should start again. */
export class OidcError extends Error {}
/** The provider could not be reached or answered nonsense: try later. */
export class OidcUnavailableError extends Error {}

/** One sign-in's secrets: unguessable, 256 bits each. */
export interface SignInTransaction {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
}

export function newSignInTransaction(): SignInTransaction {
  const random = () => randomBytes(32).toString('base64url');
  return { state: random(), nonce: random(), codeVerifier: random() };
}

/** RFC 7636 S256. */
export function codeChallengeOf(codeVerifier: string): string {
  return createHash('sha256').update(codeVerifier).digest('base64url');
}

/** Why a space-separated scope list can't be asked for (it must include `openid`), or undefined. */
export function scopesProblem(scopes: string): string | undefined {
  return scopes.trim().split(/\s+/).includes('openid') ? undefined : `must include 'openid', not '${scopes}'`;
}

/**
 * Why a URL can't be an issuer, or undefined: https only, except plain http from a provider on this
 * machine (tests, a laptop's local provider), where nothing crosses a network.
 */
export function issuerProblem(url: URL): string | undefined {
  if (url.protocol === 'https:') return undefined;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const loopback = host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
  return url.protocol === 'http:' && loopback ? undefined : 'must be an https:// URL';
}
