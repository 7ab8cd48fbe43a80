import * as client from 'openid-client';
import { issuerProblem, OidcError, scopesProblem, OidcUnavailableError, type AuthorizationRequest, type OidcClient, type SignIn, type SignInChecks } from '../core/portal/oidc.js';

export interface OpenIdConnectOptions {
  /** The issuer URL; its /.well-known/openid-configuration is read on first use and kept. */
  readonly issuer: string;
  readonly clientId: string;
  /**
   * Scopes asked for. Some providers (Okta) put groups in the ID token only for a `groups` scope; others
   * (Cognito, Entra ID) refuse unknown scopes. @default DEFAULT_SCOPES
   */
  readonly scopes?: string;
  /** Per request to the provider. @default 5000 */
  readonly timeoutMs?: number;
}

export const DEFAULT_SCOPES = 'openid email profile';

/**
 * The portal's OpenID Connect client, by `openid-client` (a certified relying-party library): discovery,
 * the authorization URL, the code exchange with PKCE, the ID token's verification against the
 * issuer's published keys, and UserInfo with the access token. A public client: no secret, PKCE instead.
 */
export function openIdConnectClient(options: OpenIdConnectOptions): OidcClient {
  const issuer = new URL(options.issuer);
  const problem = issuerProblem(issuer);
  if (problem) throw new Error(`OIDC issuer ${problem}, not '${options.issuer}'`);
  const scopesInvalid = options.scopes === undefined ? undefined : scopesProblem(options.scopes);
  if (scopesInvalid) throw new Error(`OIDC scopes ${scopesInvalid}`);
  const scope = options.scopes?.trim().split(/\s+/).join(' ') ?? DEFAULT_SCOPES;
  let configuration: Promise<client.Configuration> | undefined;

  function discover(): Promise<client.Configuration> {
    configuration ??= client
      .discovery(issuer, options.clientId, undefined, client.None(), {
        timeout: (options.timeoutMs ?? 5000) / 1000,
        ...(issuer.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {}),
      })
      .catch((error: unknown) => {
        configuration = undefined; // the next sign-in tries again
        throw new OidcUnavailableError(`could not read the provider's configuration at ${issuer.href}: ${(error as Error).message}`);
      });
    return configuration;
  }

  return {
    async authorizationUrl(request: AuthorizationRequest): Promise<string> {
      const config = await discover();
      return client
        .buildAuthorizationUrl(config, {
          redirect_uri: request.redirectUri,
          scope,
          state: request.state,
          nonce: request.nonce,
          code_challenge: request.codeChallenge,
          code_challenge_method: 'S256',
        })
        .toString();
    },

    async signIn(callbackUrl: URL, checks: SignInChecks): Promise<SignIn> {
      const config = await discover();
      let tokens;
      try {
        tokens = await client.authorizationCodeGrant(config, callbackUrl, {
          pkceCodeVerifier: checks.codeVerifier,
          expectedState: checks.state,
          expectedNonce: checks.nonce,
          idTokenExpected: true,
        });
      } catch (error) {
        throw classify(error);
      }
      const claims = tokens.claims();
      if (!claims) throw new OidcError('the provider returned no ID token');
      const idTokenClaims = { ...claims };
      if (!config.serverMetadata().userinfo_endpoint) return { idTokenClaims };
      // The access token stays in this closure: it is used once, here, and never logged or kept.
      const accessToken = tokens.access_token;
      return {
        idTokenClaims,
        userInfo: () =>
          client.fetchUserInfo(config, accessToken, claims.sub).then(
            (userInfo) => ({ ...userInfo }),
            (error: unknown) => {
              throw classifyUserInfo(error);
            },
          ),
      };
    },
  };
}

/**
 * openid-client's expectedSubject check failing is a refusal (someone else's claims must never be
 * merged into this sign-in); anything else (unreachable, 4xx/5xx, not JSON) means the provider cannot
 * tell us who this is just now: unavailable, not a sign-in with fewer names.
 */
function classifyUserInfo(error: unknown): Error {
  if (error instanceof client.ClientError && error.code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') {
    return new OidcError("UserInfo's sub is not the ID token's (openid-client's expectedSubject check)");
  }
  // The status is on the error (an error body or challenge) or on its cause (any other non-200 answer).
  const { status, cause } = error as { status?: unknown; cause?: unknown };
  const code = typeof status === 'number' ? status : cause instanceof Response ? cause.status : undefined;
  return new OidcUnavailableError(`could not read UserInfo${code ? ` (HTTP ${code})` : ''}: ${(error as Error)?.message}`);
}

/** The provider's refusals and failed checks are the user's to retry; transport failures are ours. */
function classify(error: unknown): Error {
  if (
    error instanceof client.AuthorizationResponseError ||
    error instanceof client.ResponseBodyError ||
    (error instanceof client.ClientError && error.code !== 'OAUTH_TIMEOUT')
  ) {
    const detail = (error as { error?: string }).error;
    return new OidcError(detail ? `${detail}: ${error.message}` : error.message);
  }
  return new OidcUnavailableError(`the identity provider could not be reached: ${(error as Error)?.message}`);
}
