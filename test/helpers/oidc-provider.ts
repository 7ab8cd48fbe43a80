import { generateKeyPairSync } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import Provider, { type Adapter, type ClientMetadata, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';

/**
 * A real OpenID provider (`oidc-provider`) on 127.0.0.1 for browser tests: three fixed people, one public
 * client (PKCE, no secret), and a one-step sign-in page of our own (a user name field, no password, no
 * consent screen) so a browser signs in as a named person deterministically. Unknown names are refused.
 * The client can be (re)registered after start (`setRedirectUris`): the relying party under test (serve on
 * port 0) needs the issuer before it starts, and only then is its callback URL known.
 *
 * `claims` picks where the e-mail, profile and groups claims go: `'id-token'` copies them into the ID token
 * as well (Cognito, Entra ID, Keycloak do), `'userinfo'` is OIDC Core 5.4 as oidc-provider does by default
 * (`conformIdTokenClaims`): in the code flow the ID token holds only `sub`, the rest is at UserInfo.
 * UserInfo requests are counted, and `setUserInfoFault` makes that endpoint misbehave.
 */
export interface TestPerson {
  readonly email?: string;
  readonly groups?: readonly string[];
  /**
   * Claims over the defaults (`preferred_username` and `name` = the login name; a verified `email`); an
   * undefined value leaves the claim out. For people who chose their own names (the forged-claim tests).
   */
  readonly claims?: Readonly<Record<string, unknown>>;
}

export const PEOPLE: Readonly<Record<string, TestPerson>> = {
  alice: { email: 'alice@example.com', groups: ['engineers'] },
  bob: { email: 'bob@example.com', groups: ['designers'] },
  carol: {},
  // Each names Alice in a claim its holder can choose at many providers (a profile field, an e-mail typed in
  // and never confirmed) or that only a Cognito issuer may vouch for.
  'mallory-username': { claims: { preferred_username: 'alice@example.com', username: 'alice@example.com', 'cognito:username': 'alice@example.com' } },
  'mallory-upn': { claims: { upn: 'alice@example.com' } },
  'mallory-unverified': { claims: { email: 'alice@example.com', email_verified: false } },
  'mallory-unconfirmed': { claims: { email: 'alice@example.com', email_verified: undefined } },
  // A tenant where only administrators set upn (Entra ID's): matched when the operator names the claim.
  dana: { claims: { upn: 'dana@corp.example' } },
};

export const TEST_CLIENT_ID = 'dcv-portal-test';
const SCOPES = ['openid', 'email', 'profile', 'groups'];
export const USERINFO_PATH = '/userinfo';

export type ClaimsDelivery = 'id-token' | 'userinfo';
/**
 * `other-subject`: a well-formed answer for someone else (`sub: 'mallory'`); `server-error`: 503;
 * `drop-connection`: the socket closed without an answer.
 */
export type UserInfoFault = 'other-subject' | 'server-error' | 'drop-connection';

/** The provider's endpoints a relying party calls itself (not through the browser). */
export type ProviderEndpoint = 'discovery' | 'token' | 'jwks' | 'userinfo';
const ENDPOINT_PATHS: Readonly<Record<ProviderEndpoint, string>> = {
  discovery: '/.well-known/openid-configuration',
  token: '/token',
  jwks: '/jwks',
  userinfo: USERINFO_PATH,
};

export interface TestOidcProvider {
  readonly issuer: string;
  readonly clientId: string;
  /** Registers the public client with exactly these redirect URIs (replacing earlier ones). */
  setRedirectUris(redirectUris: readonly string[]): Promise<void>;
  readonly claims: ClaimsDelivery;
  /** UserInfo requests received so far (any method, answered or not). */
  userInfoRequests(): number;
  /** Every access token issued so far (opaque: the value is its id), to check logs never hold one. */
  accessTokens(): readonly string[];
  /** How UserInfo answers from now on; undefined: correctly. */
  setUserInfoFault(fault: UserInfoFault | undefined): void;
  /**
   * Requests to `endpoint` from now on get no answer at all: read, then held open until close() (a
   * provider that hangs). undefined: answer everything again.
   */
  stall(endpoint: ProviderEndpoint | undefined): void;
  /** Requests received at `endpoint` so far (answered, refused or stalled). */
  requestsTo(endpoint: ProviderEndpoint): number;
  /** With `tls`: the CA a client must trust to reach the issuer. */
  readonly ca?: Buffer;
  close(): Promise<void>;
}

/** Serve over https (an https issuer, as a deployed stack requires) with this key and certificate. */
export interface ProviderTls {
  readonly key: Buffer;
  readonly cert: Buffer;
  readonly ca: Buffer;
}

export async function startOidcProvider(
  options: { redirectUris?: readonly string[]; clientId?: string; claims?: ClaimsDelivery; tls?: ProviderTls } = {},
): Promise<TestOidcProvider> {
  const clientId = options.clientId ?? TEST_CLIENT_ID;
  const claims = options.claims ?? 'id-token';
  let userInfoRequests = 0;
  let fault: UserInfoFault | undefined;
  let stalled: ProviderEndpoint | undefined;
  const received = new Map<ProviderEndpoint, number>();
  const accessTokens: string[] = [];
  const server = options.tls ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }) : createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const issuer = `${options.tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, configuration(claims));
  provider.on('access_token.saved', (token: { jti: string }) => accessTokens.push(token.jti));
  // Ahead of the provider's own routes: count UserInfo requests, and misbehave there when asked to.
  provider.use(async (ctx, next) => {
    if (ctx.path !== USERINFO_PATH) return next();
    userInfoRequests++;
    if (fault === 'drop-connection') {
      ctx.respond = false;
      ctx.req.socket.destroy();
      return;
    }
    if (fault === 'server-error') {
      ctx.status = 503;
      ctx.body = 'userinfo is down';
      return;
    }
    await next();
    if (fault === 'other-subject' && ctx.status === 200 && typeof ctx.body === 'object' && ctx.body !== null) ctx.body = { ...ctx.body, sub: 'mallory' };
  });
  // A client the provider finds through its (in-memory) storage, so it can be registered after start.
  const setRedirectUris = async (redirectUris: readonly string[]) => {
    // Client.adapter exists at run time (lib/models/client.js) but is missing from @types/oidc-provider.
    const storage = (provider.Client as unknown as { adapter: Adapter }).adapter;
    await storage.upsert(clientId, publicClient(clientId, redirectUris), 24 * 3600);
  };
  if (options.redirectUris) await setRedirectUris(options.redirectUris);
  // Our own interaction routes first; everything else is the provider's.
  const providerHandler = provider.callback();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', issuer).pathname;
    const endpoint = (Object.keys(ENDPOINT_PATHS) as ProviderEndpoint[]).find((e) => ENDPOINT_PATHS[e] === path);
    if (endpoint) received.set(endpoint, (received.get(endpoint) ?? 0) + 1);
    if (endpoint !== undefined && endpoint === stalled) {
      req.resume(); // read the body, answer nothing
      return;
    }
    if (path.startsWith('/interaction/')) {
      signInPage(provider, req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`interaction failed: ${error instanceof Error ? error.message : String(error)}`);
      });
      return;
    }
    void providerHandler(req, res);
  });
  return {
    issuer,
    clientId,
    setRedirectUris,
    claims,
    ...(options.tls ? { ca: options.tls.ca } : {}),
    userInfoRequests: () => userInfoRequests,
    accessTokens: () => [...accessTokens],
    setUserInfoFault: (next) => {
      fault = next;
    },
    stall: (endpoint) => {
      stalled = endpoint;
    },
    requestsTo: (endpoint) => received.get(endpoint) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A public client: no secret, code flow only (PKCE is required for every client below). */
function publicClient(clientId: string, redirectUris: readonly string[]): ClientMetadata {
  return {
    client_id: clientId,
    token_endpoint_auth_method: 'none',
    response_types: ['code'],
    grant_types: ['authorization_code'],
    redirect_uris: [...redirectUris],
  };
}

function configuration(claims: ClaimsDelivery): Configuration {
  // A fresh RSA key per provider: ID tokens are RS256 (every relying party supports it).
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', use: 'sig', alg: 'RS256' };
  return {
    jwks: { keys: [jwk as never] },
    pkce: { required: () => true },
    scopes: SCOPES,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      // groups also with profile: like Entra ID or Cognito, which send groups without a scope of their own
      // (the portal asks for openid email profile); an IdP like Okta needs the groups scope.
      profile: ['preferred_username', 'name', 'groups', 'upn', 'username', 'cognito:username'],
      groups: ['groups'],
    },
    // false: the scopes' claims go into the ID token too; true (oidc-provider's default): only to UserInfo.
    conformIdTokenClaims: claims === 'userinfo',
    routes: { userinfo: USERINFO_PATH },
    features: { devInteractions: { enabled: false } },
    // Explicit lifetimes (seconds); the defaults work but print a notice each.
    ttl: { AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600, IdToken: 3600, AccessToken: 3600 },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // A first-party test client: every sign-in is granted the requested scopes without a consent screen.
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const { oidc } = ctx;
      if (!oidc.client || !oidc.session?.accountId) return undefined;
      const existing = oidc.session.grantIdFor(oidc.client.clientId);
      if (existing) {
        const grant = await oidc.provider.Grant.find(existing);
        if (grant) return grant;
      }
      const grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      grant.addOIDCScope(SCOPES.join(' '));
      await grant.save();
      return grant;
    },
    findAccount: (_ctx, sub) => {
      const person = PEOPLE[sub];
      if (!Object.hasOwn(PEOPLE, sub) || person === undefined) return undefined;
      return {
        accountId: sub,
        claims: () =>
          withoutUndefined({
            sub,
            preferred_username: sub,
            name: sub,
            ...(person.email ? { email: person.email, email_verified: true } : {}),
            ...(person.groups ? { groups: [...person.groups] } : {}),
            ...person.claims,
          }),
      };
    },
    // The default would print the full error, with a stack, to the test output on every refused request.
    renderError: (ctx, out) => {
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `${out.error}: ${out.error_description ?? ''}`;
    },
  };
}

/**
 * A scripted user agent at the provider (no browser): follows its redirects with its own cookies, posts
 * `login` on the sign-in form, and returns the URL it is sent back to at `relyingPartyHost` (not fetched:
 * the caller hands it to the relying party under test).
 */
export async function signInWithoutBrowser(authorizeUrl: string, login: string, relyingPartyHost: string, options: { ca?: Buffer } = {}): Promise<URL> {
  const jar = new Map<string, string>();
  let url = authorizeUrl;
  let body: string | undefined;
  for (let hop = 0; hop < 10; hop++) {
    const res = await send(url, {
      method: body ? 'POST' : 'GET',
      headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      body,
      ca: options.ca,
    });
    for (const c of res.setCookies) {
      const [pair] = c.split(';');
      jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
    }
    body = undefined;
    const location = res.location;
    if (location) {
      const next = new URL(location, url);
      if (next.host === relyingPartyHost) return next;
      url = next.toString();
      continue;
    }
    const page = res.text;
    const action = /<form method="post" action="([^"]+)"/.exec(page);
    if (!action) throw new Error(`unexpected provider page (${res.status}): ${page.slice(0, 200)}`);
    url = new URL(action[1], url).toString();
    body = new URLSearchParams({ login }).toString();
  }
  throw new Error('too many redirects at the provider');
}

/** One request without following redirects; node:http(s) so an https issuer's test CA can be trusted. */
function send(url: string, init: { method: string; headers: Record<string, string>; body?: string; ca?: Buffer }) {
  return new Promise<{ status: number; location?: string; setCookies: string[]; text: string }>((resolve, reject) => {
    const target = new URL(url);
    const req = (target.protocol === 'https:' ? httpsRequest : httpRequest)(
      target,
      { method: init.method, headers: init.headers, ...(init.ca ? { ca: init.ca } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            location: res.headers.location,
            setCookies: res.headers['set-cookie'] ?? [],
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

/** GET: a form asking for a user name; POST: finish the login as that person (or show the form again). */
async function signInPage(provider: Provider, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'POST') {
    const form = new URLSearchParams(await readBody(req));
    const login = form.get('login') ?? '';
    if (Object.hasOwn(PEOPLE, login)) {
      await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
      return;
    }
    return sendForm(res, details.uid, `No such person: ${escapeHtml(login)}`);
  }
  sendForm(res, details.uid);
}

function sendForm(res: ServerResponse, uid: string, problem?: string): void {
  res.writeHead(problem ? 401 : 200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html lang="en"><head><title>Test IdP sign-in</title></head><body>
<h1>Test IdP</h1>${problem ? `<p role="alert">${problem}</p>` : ''}
<form method="post" action="/interaction/${encodeURIComponent(uid)}">
<label>User name <input name="login" autocomplete="off" autofocus></label>
<button type="submit">Sign in to test IdP</button>
</form></body></html>`);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > 4096) req.destroy(new Error('sign-in form too large'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function withoutUndefined(claims: Record<string, unknown>): { sub: string } & Record<string, unknown> {
  return Object.fromEntries(Object.entries(claims).filter(([, value]) => value !== undefined)) as { sub: string } & Record<string, unknown>;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * One provider per claims delivery (claims in the ID token, or only from UserInfo), each accepting
 * `redirectUri`: for tests that run every case both ways. `afterAll(() => closeProviders(map))`.
 */
export async function startProviderPerDelivery(redirectUri: string): Promise<Map<ClaimsDelivery, TestOidcProvider>> {
  const providers = new Map<ClaimsDelivery, TestOidcProvider>();
  for (const claims of ['id-token', 'userinfo'] as const) {
    providers.set(claims, await startOidcProvider({ claims, redirectUris: [redirectUri] }));
  }
  return providers;
}

export async function closeProviders(providers: ReadonlyMap<ClaimsDelivery, TestOidcProvider>): Promise<void> {
  await Promise.all([...providers.values()].map((p) => p.close()));
}
