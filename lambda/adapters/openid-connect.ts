import { AsyncLocalStorage } from 'node:async_hooks';
import * as client from 'openid-client';
import { beforeDeadline, callSignal, outOfTime, OutOfTimeError } from '../core/deadline.js';
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
  /** Per request to the provider, at most; less when the portal request's deadline is nearer. @default 5000 */
  readonly timeoutMs?: number;
}

/** The portal request a provider call is made for: its deadline, and the call in flight (for the log). */
interface CallBudget {
  readonly deadline: number;
  call: string;
}

export const DEFAULT_SCOPES = 'openid email profile';

/**
 * The portal's OpenID Connect client, by `openid-client` (a certified relying-party library): discovery,
 * the authorization URL, the code exchange with PKCE, the ID token's verification against the
 * issuer's published keys, and UserInfo with the access token. A public client: no secret, PKCE instead.
 *
 * Every request to the provider goes through one fetch that bounds it by the portal request's deadline
 * (carried by AsyncLocalStorage, since openid-client's calls take no signal, and one configuration
 * serves concurrent requests in `serve`) and by `timeoutMs`.
 */
export function openIdConnectClient(options: OpenIdConnectOptions): OidcClient {
  const issuer = new URL(options.issuer);
  const problem = issuerProblem(issuer);
  if (problem) throw new Error(`OIDC issuer ${problem}, not '${options.issuer}'`);
  const scopesInvalid = options.scopes === undefined ? undefined : scopesProblem(options.scopes);
  if (scopesInvalid) throw new Error(`OIDC scopes ${scopesInvalid}`);
  const scope = options.scopes?.trim().split(/\s+/).join(' ') ?? DEFAULT_SCOPES;
  const capMs = options.timeoutMs ?? 5000;
  const budgets = new AsyncLocalStorage<CallBudget>();
  let configuration: Promise<client.Configuration> | undefined;

  /** The provider's endpoints by URL, to name a call that ran out of time. */
  let endpointNames = new Map<string, string>();
  const boundedFetch: client.CustomFetch = async (url, init) => {
    const budget = budgets.getStore() ?? { deadline: Date.now() + capMs, call: '' };
    budget.call = endpointNames.get(url.split('?')[0]!) ?? (endpointNames.size > 0 ? 'identity provider' : 'discovery document');
    const { signal, allowedMs } = callSignal(budget.deadline, capMs, budget.call);
    try {
      return await fetch(url, { ...init, signal: init.signal ? AbortSignal.any([init.signal, signal]) : signal });
    } catch (error) {
      if (signal.aborted) throw new OutOfTimeError(budget.call, allowedMs);
      throw error;
    }
  };

  /** `work` with `deadline` bounding its provider requests; a timeout (even in a body read) names the call. */
  async function within<T>(deadline: number, work: () => Promise<T>): Promise<T> {
    const budget: CallBudget = { deadline, call: 'discovery document' };
    try {
      return await budgets.run(budget, work);
    } catch (error) {
      const late = outOfTime(error);
      if (late) throw late;
      const code = (error as { code?: unknown }).code;
      if (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT') throw new OutOfTimeError(budget.call, capMs);
      throw error;
    }
  }

  function discover(deadline: number): Promise<client.Configuration> {
    configuration ??= within(deadline, () =>
      client.discovery(issuer, options.clientId, undefined, client.None(), {
        [client.customFetch]: boundedFetch,
        // Never the binding limit (boundedFetch is), but openid-client's default would be 30 s.
        timeout: capMs / 1000,
        execute: [
          // The ID token's signature is checked against the issuer's keys (jwks_uri), not only trusted
          // because it came over TLS from the token endpoint; the keys are fetched once and kept.
          client.enableNonRepudiationChecks,
          ...(issuer.protocol === 'http:' ? [client.allowInsecureRequests] : []),
        ],
      }),
    ).then(
      (config) => {
        const metadata = config.serverMetadata();
        endpointNames = new Map(
          [
            [metadata.token_endpoint, 'token endpoint'],
            [metadata.jwks_uri, 'keys (JWKS)'],
            [metadata.userinfo_endpoint, 'UserInfo'],
          ].filter((entry): entry is [string, string] => typeof entry[0] === 'string'),
        );
        return config;
      },
      (error: unknown) => {
        configuration = undefined; // the next sign-in tries again
        if (error instanceof OutOfTimeError) throw error;
        throw new OidcUnavailableError(`could not read the provider's configuration at ${issuer.href}: ${(error as Error).message}`);
      },
    );
    // Shared by concurrent requests: each waits only until its own deadline.
    return beforeDeadline(configuration, deadline, 'discovery document');
  }

  return {
    async authorizationUrl(request: AuthorizationRequest, deadline: number): Promise<string> {
      const config = await discover(deadline);
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

    async signIn(callbackUrl: URL, checks: SignInChecks, deadline: number): Promise<SignIn> {
      const config = await discover(deadline);
      let tokens;
      try {
        tokens = await within(deadline, () =>
          client.authorizationCodeGrant(config, callbackUrl, {
            pkceCodeVerifier: checks.codeVerifier,
            expectedState: checks.state,
            expectedNonce: checks.nonce,
            idTokenExpected: true,
          }),
        );
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
        userInfo: (userInfoDeadline: number) =>
          within(userInfoDeadline, () => client.fetchUserInfo(config, accessToken, claims.sub)).then(
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
  if (error instanceof OutOfTimeError) return error;
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
  if (error instanceof OutOfTimeError) return error;
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
