import { describe, expect, it, vi } from 'vitest';
import type { HttpRequest, HttpResponse, Router } from '../../lambda/core/http-router';
import { CidrSet } from '../../lambda/core/ip';
import { createPortal } from '../../lambda/core/portal/portal-app';
import { OidcError, OidcUnavailableError, type AuthorizationRequest, type OidcClient, type SignIn, type SignInChecks } from '../../lambda/core/portal/oidc';
import { CookieSealer } from '../../lambda/core/portal/signed-cookie';
import type { RawItem } from '../../lambda/core/session-record';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { hashToken } from '../../lambda/core/tokens/token';
import { MemoryTokenStore } from '../../lambda/core/tokens/token-store';
import { createResolverRouter } from '../../lambda/handlers/resolver-handler';
import { RecordingLog } from '../helpers/recording-log';

const KEY = 'k'.repeat(40);
const GATEWAY = 'https://gw.example.com:8443';
const HOST = 'portal.example.com';
const ORIGIN = `https://${HOST}`;
const T0 = Date.parse('2026-11-26T12:00:00Z');

const SESSIONS: RawItem[] = [
  { SessionId: 'alice-desk', DcvServerEndpoint: '10.0.0.1', AllowedUsers: ['alice@example.com'] },
  { SessionId: 'eng-desk', DcvServerEndpoint: '10.0.0.2', AllowedGroups: ['engineers'], ExpiresAt: 1893456000 },
  { SessionId: 'bob-desk', DcvServerEndpoint: '10.0.0.3', AllowedUsers: ['sub-bob'] },
  // By user name: preferred_username names nobody unless the operator trusts it (userClaims).
  { SessionId: 'alice-by-name', DcvServerEndpoint: '10.0.0.7', AllowedUsers: ['alice'] },
  { SessionId: 'nobodys', DcvServerEndpoint: '10.0.0.4' },
  { SessionId: 'old-desk', DcvServerEndpoint: '10.0.0.5', AllowedUsers: ['alice@example.com'], Enabled: false },
  { SessionId: '<script>x</script>', DcvServerEndpoint: '10.0.0.6', AllowedUsers: ['alice@example.com'] },
  { SessionId: 'gpu-1', DcvServerEndpoint: '10.0.1.1', Pool: 'gpu', AllowedGroups: ['engineers'] },
  { SessionId: 'gpu-2', DcvServerEndpoint: '10.0.1.2', Pool: 'gpu', AllowedGroups: ['engineers'] },
];

/** What each person's ID token carries. */
const USERS: Record<string, Record<string, unknown>> = {
  alice: { sub: 'sub-alice', email: 'alice@example.com', email_verified: true, preferred_username: 'alice', groups: ['engineers'] },
  // Alice at a provider that follows OIDC Core 5.4 to the letter: only `sub` in the ID token.
  'alice-conforming': { sub: 'sub-alice' },
  bob: { sub: 'sub-bob', preferred_username: 'bob', groups: [] },
  dave: { sub: 'sub-dave', email: 'dave@example.com', email_verified: true, groups: ['engineers'] },
  eve: { sub: 'sub-eve', email: 'eve@example.com', email_verified: true, groups: ['engineers'] },
};

/** What UserInfo answers for each person (the ID token's claims where not listed). */
const USER_INFO: Record<string, Record<string, unknown>> = {
  'alice-conforming': { sub: 'sub-alice', email: 'alice@example.com', email_verified: true, preferred_username: 'alice', groups: ['engineers'] },
};

/** A provider stand-in: the code names the user; it checks what a real one (and openid-client) checks. */
class FakeOidc implements OidcClient {
  readonly redeemed = new Set<string>();
  lastNonce?: string;
  /** UserInfo reads so far. */
  userInfoReads = 0;
  /** Replaces UserInfo's answer (or throws); undefined: USER_INFO. */
  userInfo?: (user: string) => Record<string, unknown>;
  /** false: a provider without a UserInfo endpoint. */
  hasUserInfo = true;
  async authorizationUrl(request: AuthorizationRequest): Promise<string> {
    this.lastNonce = request.nonce;
    const url = new URL('https://idp.example.com/authorize');
    url.search = new URLSearchParams({ redirect_uri: request.redirectUri, state: request.state, nonce: request.nonce, code_challenge: request.codeChallenge }).toString();
    return url.toString();
  }
  async signIn(callbackUrl: URL, checks: SignInChecks): Promise<SignIn> {
    const code = callbackUrl.searchParams.get('code') ?? '';
    if (callbackUrl.searchParams.get('state') !== checks.state) throw new OidcError('state mismatch');
    if (this.redeemed.has(code)) throw new OidcError('invalid_grant: code already used');
    this.redeemed.add(code);
    const name = code.split('.')[0];
    const user = USERS[name];
    if (!user) throw new OidcError('invalid_grant');
    const userInfo = async () => {
      this.userInfoReads++;
      return { ...(this.userInfo?.(name) ?? USER_INFO[name] ?? user) };
    };
    return { idTokenClaims: { ...user, nonce: checks.nonce }, ...(this.hasUserInfo ? { userInfo } : {}) };
  }
}

function setup(prefix?: string, options: { userClaims?: readonly string[] } = {}) {
  let now = T0;
  const store = new MemorySessionStore(SESSIONS);
  const tokens = new MemoryTokenStore();
  const log = new RecordingLog();
  const oidc = new FakeOidc();
  const route: Router = createResolverRouter({
    store,
    logger: log,
    tokens,
    pathPrefix: prefix,
    now: () => now,
    portal: (shared) => createPortal({ ...shared, oidc, cookieKey: KEY, gatewayUrl: GATEWAY, catalog: store, leases: store, userClaims: options.userClaims }),
  });
  // The prefix is the gateway's routes' secret: the portal's paths never carry it.
  const base = '';
  const send = (method: string, path: string, init: { cookie?: string; body?: string; headers?: Record<string, string>; query?: string } = {}) =>
    route({
      method,
      path: `${base}${path}`,
      rawQueryString: init.query ?? '',
      sourceIp: '127.0.0.1',
      body: init.body,
      contentType: init.body === undefined ? undefined : 'application/x-www-form-urlencoded',
      headers: { host: HOST, ...(init.cookie ? { cookie: init.cookie } : {}), ...(init.body !== undefined ? { origin: ORIGIN, 'sec-fetch-site': 'same-origin' } : {}), ...init.headers },
      scheme: 'https',
    } satisfies HttpRequest);

  let signIns = 0;
  async function signIn(user: string): Promise<{ cookie: string; csrf: string; list: HttpResponse }> {
    const login = await send('GET', '/portal/login');
    const state = new URL(login.headers.Location).searchParams.get('state')!;
    const loginCookie = cookiePair(login, 'dcv_portal_login');
    // Codes are single-use at the provider: each sign-in gets its own.
    const callback = await send('GET', '/portal/callback', { cookie: loginCookie, query: `code=${user}.${++signIns}&state=${state}` });
    expect(callback.statusCode).toBe(303);
    const cookie = cookiePair(callback, 'dcv_portal');
    const list = await send('GET', '/portal', { cookie });
    const csrf = /name="csrf" value="([^"]+)"/.exec(list.body)![1];
    return { cookie, csrf, list };
  }
  return { send, signIn, store, tokens, log, oidc, advance: (ms: number) => (now += ms) };
}

function cookiePair(response: HttpResponse, name: string): string {
  const cookie = response.cookies?.find((c) => c.startsWith(`${name}=`));
  if (!cookie) throw new Error(`no ${name} cookie in ${JSON.stringify(response.cookies)}`);
  return cookie.split(';')[0];
}

function listed(body: string): string[] {
  return [...body.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1]);
}

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

describe('portal: sign-in', () => {
  it('signed out, /portal offers a sign-in link and lists nothing', async () => {
    const { send } = setup();
    const page = await send('GET', '/portal');
    expect(page.statusCode).toBe(200);
    expect(page.headers['Content-Type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('href="/portal/login"');
    expect(listed(page.body)).toEqual([]);
  });

  it('login redirects to the provider with state, nonce and an S256 challenge, kept in a signed HttpOnly Secure Lax cookie', async () => {
    const { send } = setup();
    const login = await send('GET', '/portal/login');
    expect(login.statusCode).toBe(302);
    const url = new URL(login.headers.Location);
    expect(url.origin).toBe('https://idp.example.com');
    expect(url.searchParams.get('redirect_uri')).toBe(`${ORIGIN}/portal/callback`);
    for (const p of ['state', 'nonce', 'code_challenge']) expect(url.searchParams.get(p)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const cookie = login.cookies!.find((c) => c.startsWith('dcv_portal_login='))!;
    expect(cookie).toMatch(/; Path=\/portal; Max-Age=600; HttpOnly; Secure; SameSite=Lax$/);
    // The verifier's secret is not in the URL.
    expect(login.headers.Location).not.toContain('code_verifier');
  });

  it('a callback with no sign-in cookie, the wrong state, or replayed after success is refused (400) and signs nobody in', async () => {
    const { send } = setup();
    const login = await send('GET', '/portal/login');
    const state = new URL(login.headers.Location).searchParams.get('state')!;
    const loginCookie = cookiePair(login, 'dcv_portal_login');

    const noCookie = await send('GET', '/portal/callback', { query: `code=alice&state=${state}` });
    expect(noCookie.statusCode).toBe(400);
    expect(noCookie.cookies?.some((c) => c.startsWith('dcv_portal=') && !c.startsWith('dcv_portal=;'))).not.toBe(true);

    const wrongState = await send('GET', '/portal/callback', { cookie: loginCookie, query: `code=alice&state=${'x'.repeat(43)}` });
    expect(wrongState.statusCode).toBe(400);

    const ok = await send('GET', '/portal/callback', { cookie: loginCookie, query: `code=alice&state=${state}` });
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.Location).toBe('/portal');
    // The sign-in cookie is cleared; a replay with the cleared cookie, or with a kept copy, is refused.
    expect(ok.cookies).toContain('dcv_portal_login=; Path=/portal; Max-Age=0; HttpOnly; Secure; SameSite=Lax');
    expect((await send('GET', '/portal/callback', { query: `code=alice&state=${state}` })).statusCode).toBe(400);
    const replay = await send('GET', '/portal/callback', { cookie: loginCookie, query: `code=alice&state=${state}` });
    expect(replay.statusCode).toBe(400);
    expect(replay.body).toContain('Sign-in not accepted');
  });

  it('a tampered, re-signed-with-another-key or expired session cookie is signed out', async () => {
    const { send, signIn, advance } = setup();
    const { cookie } = await signIn('bob');
    const [name, value] = cookie.split('=');
    const [body, mac] = value.split('.');
    const payload = JSON.parse(Buffer.from(body, 'base64url').toString());
    const forged = Buffer.from(JSON.stringify({ ...payload, groups: ['engineers'] })).toString('base64url');
    for (const bad of [`${name}=${forged}.${mac}`, `${name}=${new CookieSealer('z'.repeat(40)).seal('dcv_portal', payload, T0 / 1000 + 60)}`]) {
      const page = await send('GET', '/portal', { cookie: bad });
      expect(page.body).toContain('href="/portal/login"');
      expect(listed(page.body)).toEqual([]);
    }
    advance(8 * 3600 * 1000 + 1000);
    expect(listed((await send('GET', '/portal', { cookie })).body)).toEqual([]);
  });
});

describe('portal: claims from UserInfo (OIDC Core 5.4)', () => {
  /** A callback for `user` with its sign-in cookie, for the tests that expect it refused. */
  async function callbackFor(send: ReturnType<typeof setup>['send'], user: string): Promise<HttpResponse> {
    const login = await send('GET', '/portal/login');
    const state = new URL(login.headers.Location).searchParams.get('state')!;
    return send('GET', '/portal/callback', { cookie: cookiePair(login, 'dcv_portal_login'), query: `code=${user}.1&state=${state}` });
  }

  it('an ID token with only sub: UserInfo supplies the e-mail, user name and groups, so the same desktops are listed', async () => {
    const { send, signIn, oidc, tokens, log } = setup();
    const conforming = await signIn('alice-conforming');
    expect(oidc.userInfoReads).toBe(1);
    // alice-desk by e-mail, eng-desk and the pool by group: exactly what Alice sees with claims in the ID token.
    expect(listed(conforming.list.body)).toEqual(['&lt;script&gt;x&lt;/script&gt;', 'alice-desk', 'eng-desk', 'old-desk', 'Pool gpu']);
    expect(conforming.list.body).toContain('alice@example.com');
    const answer = await send('POST', '/portal/connect', { cookie: conforming.cookie, body: form({ csrf: conforming.csrf, session: 'eng-desk' }) });
    const state = await tokens.get(hashToken(new URL(answer.headers.Location).searchParams.get('authToken')!));
    expect(state).toMatchObject({ sessionId: 'eng-desk', user: 'alice@example.com', groups: ['engineers'] });
    expect(log.entries.find((e) => e.message === 'portal sign-in')?.fields).toMatchObject({ subject: 'sub-alice', groups: 1, userInfo: true });
  });

  it('an ID token with e-mail, a user name and groups: UserInfo is not read; it is when one is missing, or skipped without an endpoint', async () => {
    const { signIn, oidc } = setup();
    expect(listed((await signIn('alice')).list.body)).toContain('alice-desk');
    expect(oidc.userInfoReads).toBe(0);
    // Bob's ID token has no e-mail: UserInfo is asked (and has none either).
    expect(listed((await signIn('bob')).list.body)).toEqual(['bob-desk']);
    expect(oidc.userInfoReads).toBe(1);
    oidc.hasUserInfo = false;
    expect(listed((await signIn('bob')).list.body)).toEqual(['bob-desk']);
    expect(oidc.userInfoReads).toBe(1);
  });

  it('the ID token wins where it has a claim; UserInfo only fills what it lacks', async () => {
    // An operator who trusts preferred_username (set only by administrators at their provider).
    const { signIn, oidc } = setup(undefined, { userClaims: ['preferred_username'] });
    // Bob's UserInfo claims more than his ID token says: only the missing e-mail is taken from it.
    oidc.userInfo = () => ({ sub: 'sub-bob', preferred_username: 'alice', email: 'bob@example.com', email_verified: true, groups: ['engineers'] });
    const bob = await signIn('bob');
    expect(listed(bob.list.body)).toEqual(['bob-desk']);
    expect(bob.list.body).toContain('bob@example.com');
    // With the claim trusted, Alice's own preferred_username names her.
    expect(listed((await signIn('alice')).list.body)).toContain('alice-by-name');
  });

  it('by default a user name (preferred_username) names nobody, and the page shows the verified e-mail or the subject', async () => {
    const { signIn } = setup();
    const alice = await signIn('alice');
    expect(listed(alice.list.body)).not.toContain('alice-by-name');
    expect(alice.list.body).toContain('alice@example.com');
    const bob = await signIn('bob');
    expect(bob.list.body).toContain('sub-bob');
  });

  it('a session cookie made under other user claims is signed out, not trusted', async () => {
    const { send } = setup();
    const named = setup(undefined, { userClaims: ['preferred_username'] });
    const { cookie } = await named.signIn('alice');
    expect((await named.send('GET', '/portal', { cookie })).body).toContain('alice-by-name');
    // Same key, same cookie, the claim no longer trusted: the page is the signed-out one.
    const page = await send('GET', '/portal', { cookie });
    expect(page.body).toContain("Sign in with your organisation's account");
    expect(page.body).not.toContain('alice-by-name');
  });

  it('a UserInfo answer for another subject refuses the sign-in (400), logged, with no session cookie', async () => {
    const { send, oidc, log } = setup();
    oidc.userInfo = () => ({ ...USER_INFO['alice-conforming'], sub: 'sub-mallory' });
    const callback = await callbackFor(send, 'alice-conforming');
    expect(callback.statusCode).toBe(400);
    expect(callback.body).toContain('Sign-in not accepted');
    expect(callback.cookies?.some((c) => c.startsWith('dcv_portal=') && !c.startsWith('dcv_portal=;'))).not.toBe(true);
    expect(log.entries.filter((e) => e.level === 'warn')).toMatchObject([{ message: 'portal sign-in refused', fields: { reason: expect.stringMatching(/another subject/) } }]);
    expect(log.entries.some((e) => e.message === 'portal sign-in')).toBe(false);
    // An answer without a sub at all is refused the same way.
    oidc.userInfo = () => ({ email: 'alice@example.com' });
    expect((await callbackFor(send, 'alice-conforming')).statusCode).toBe(400);
  });

  it('UserInfo that cannot be read is a 503 "identity provider unavailable" page, logged, and signs nobody in', async () => {
    const { send, oidc, log } = setup();
    oidc.userInfo = () => {
      throw new OidcUnavailableError('could not read UserInfo (HTTP 503): unexpected HTTP response status code');
    };
    const callback = await callbackFor(send, 'alice-conforming');
    expect(callback.statusCode).toBe(503);
    expect(callback.headers['Retry-After']).toBe('5');
    expect(callback.body).toContain('The identity provider cannot be reached just now');
    expect(callback.cookies?.some((c) => c.startsWith('dcv_portal=') && !c.startsWith('dcv_portal=;'))).not.toBe(true);
    expect(log.entries.filter((e) => e.level === 'error')).toMatchObject([{ message: 'identity provider unavailable', fields: { cause: expect.stringMatching(/UserInfo \(HTTP 503\)/) } }]);
  });
});

describe('portal: the list', () => {
  it('shows exactly the sessions and pools the user may open, with their state, escaped', async () => {
    const { signIn } = setup();
    const alice = await signIn('alice');
    expect(listed(alice.list.body)).toEqual(['&lt;script&gt;x&lt;/script&gt;', 'alice-desk', 'eng-desk', 'old-desk', 'Pool gpu']);
    expect(alice.list.body).toContain('Disabled by your administrator');
    expect(alice.list.body).toContain('2 of 2 hosts free');
    expect(alice.list.body).toContain('Available until 2030-01-01 00:00 UTC');
    expect(alice.list.body).not.toContain('<script>');
    const bob = await signIn('bob');
    expect(listed(bob.list.body)).toEqual(['bob-desk']);
  });

  it('pages carry a CSP without scripts that lets Connect redirect to the gateway, and are never cached', async () => {
    const { signIn } = setup();
    const { list } = await signIn('alice');
    expect(list.headers['Content-Security-Policy']).toBe(
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https://gw.example.com:8443; frame-ancestors 'none'; base-uri 'none'",
    );
    expect(list.headers['Cache-Control']).toBe('no-store');
  });
});

describe('portal: Connect', () => {
  it('mints a token for the user and session and redirects to the gateway link', async () => {
    const { send, signIn, tokens } = setup();
    const { cookie, csrf } = await signIn('alice');
    const answer = await send('POST', '/portal/connect', { cookie, body: form({ csrf, session: 'eng-desk', client: 'web' }) });
    expect(answer.statusCode).toBe(303);
    const link = new URL(answer.headers.Location);
    expect(link.origin).toBe(GATEWAY);
    expect(link.hash).toBe('#eng-desk');
    const state = await tokens.get(hashToken(link.searchParams.get('authToken')!));
    expect(state).toMatchObject({ sessionId: 'eng-desk', user: 'alice@example.com', groups: ['engineers'], maxUses: 3 });
  });

  it('reads the session once per Connect (resolved and checked, then the token issued without a second read)', async () => {
    const { send, signIn, store } = setup();
    const { cookie, csrf } = await signIn('alice');
    const reads = vi.spyOn(store, 'get');
    const answer = await send('POST', '/portal/connect', { cookie, body: form({ csrf, session: 'alice-desk' }) });
    expect(answer.statusCode).toBe(303);
    expect(reads.mock.calls).toEqual([['alice-desk']]);
  });

  it('the native button shows the dcv:// link on a page', async () => {
    const { send, signIn } = setup();
    const { cookie, csrf } = await signIn('alice');
    const answer = await send('POST', '/portal/connect', { cookie, body: form({ csrf, session: 'alice-desk', client: 'native' }) });
    expect(answer.statusCode).toBe(200);
    expect(answer.body).toMatch(/href="dcv:\/\/gw\.example\.com:8443\/\?authToken=[A-Za-z0-9_-]+#alice-desk"/);
    // Ten minutes from T0 (12:00 UTC), in one zone for everyone.
    expect(answer.body).toContain('It works until 2026-11-26 12:10 UTC');
  });

  it('refuses without the CSRF value, from another origin or site, or signed out, and mints nothing', async () => {
    const { send, signIn, tokens } = setup();
    const { cookie, csrf } = await signIn('alice');
    const cases: [Parameters<typeof send>[2], number][] = [
      [{ cookie, body: form({ session: 'alice-desk' }) }, 403],
      // One character changed (the value is random: pick a character it does not end with).
      [{ cookie, body: form({ csrf: `${csrf.slice(0, -1)}${csrf.endsWith('A') ? 'B' : 'A'}`, session: 'alice-desk' }) }, 403],
      [{ cookie, body: form({ csrf, session: 'alice-desk' }), headers: { origin: 'https://evil.example' } }, 403],
      [{ cookie, body: form({ csrf, session: 'alice-desk' }), headers: { 'sec-fetch-site': 'cross-site' } }, 403],
      [{ body: form({ csrf, session: 'alice-desk' }) }, 401],
    ];
    for (const [init, status] of cases) expect((await send('POST', '/portal/connect', init)).statusCode).toBe(status);
    expect((await send('GET', '/portal/connect', { cookie })).statusCode).toBe(405);
    expect((await send('HEAD', '/portal/callback', { query: 'code=alice.9&state=x' })).statusCode).toBe(405);
    // No Host (HTTP/1.0, a hand-made event): a 400 page, never a crash.
    const hostless = await send('GET', '/portal/login', { headers: { host: '' } });
    expect(hostless.statusCode).toBe(400);
    expect(hostless.headers['Content-Type']).toBe('text/html; charset=utf-8');
    const listedTokens = [];
    for await (const t of tokens.list()) listedTokens.push(t);
    expect(listedTokens).toEqual([]);
  });

  it("a session that is not the user's, unknown, disabled, or a pool member is 404 and mints nothing", async () => {
    const { send, signIn, tokens } = setup();
    const { cookie, csrf } = await signIn('alice');
    for (const session of ['bob-desk', 'nobodys', 'no-such', 'old-desk', 'gpu-1']) {
      const answer = await send('POST', '/portal/connect', { cookie, body: form({ csrf, session }) });
      expect(answer.statusCode, session).toBe(404);
    }
    const listedTokens = [];
    for await (const t of tokens.list()) listedTokens.push(t);
    expect(listedTokens).toEqual([]);
  });

  it('desktops on demand: a host that is not running shows as Stopped, Connect is 404 and mints nothing; a stopped pool member is never leased', async () => {
    const { send, signIn, tokens, store } = setup();
    const ec2 = { Source: 'ec2', InstanceId: 'i-0abc', InstanceState: 'stopped' };
    store.put({ ...SESSIONS[0], ...ec2 });
    store.put({ ...SESSIONS[7], ...ec2 });
    const { cookie, csrf, list } = await signIn('alice');
    const desk = list.body.slice(list.body.indexOf('<h2>alice-desk</h2>'), list.body.indexOf('</li>', list.body.indexOf('<h2>alice-desk</h2>')));
    expect(desk).toContain('<p class="state">Stopped</p>');
    expect(desk).toMatch(/aria-label="Open alice-desk in browser" disabled>/);
    expect((await send('POST', '/portal/connect', { cookie, body: form({ csrf, session: 'alice-desk' }) })).statusCode).toBe(404);
    const minted = [];
    for await (const t of tokens.list()) minted.push(t);
    expect(minted).toEqual([]);
    // The pool's only running member is gpu-2: everyone placed goes there, and a second user finds it full.
    const placed = await send('POST', '/portal/connect', { cookie, body: form({ csrf, pool: 'gpu' }) });
    expect(new URL(placed.headers.Location).hash).toBe('#lease:gpu-2');
    const dave = await signIn('dave');
    expect((await send('POST', '/portal/connect', { cookie: dave.cookie, body: form({ csrf: dave.csrf, pool: 'gpu' }) })).statusCode).toBe(409);
    // Running again: Connect works.
    store.put({ ...SESSIONS[0], ...ec2, InstanceState: 'running' });
    expect((await send('POST', '/portal/connect', { cookie, body: form({ csrf, session: 'alice-desk' }) })).statusCode).toBe(303);
  });

  it('a pool places users on distinct hosts, gives a user the same host back, and is 409 when full', async () => {
    const { send, signIn } = setup();
    const hostOf = async (who: string) => {
      const { cookie, csrf } = await signIn(who);
      const answer = await send('POST', '/portal/connect', { cookie, body: form({ csrf, pool: 'gpu' }) });
      return answer.statusCode === 303 ? new URL(answer.headers.Location).hash : answer.statusCode;
    };
    const first = await hostOf('alice');
    const second = await hostOf('dave');
    expect([first, second].sort()).toEqual(['#lease:gpu-1', '#lease:gpu-2']);
    expect(await hostOf('alice')).toBe(first);
    expect(await hostOf('eve')).toBe(409);
  });
});

describe('portal: store failures', () => {
  it('a session store that fails gives a 503 page for the list, and a token store that fails a 503 for Connect', async () => {
    const store = new MemorySessionStore(SESSIONS);
    let broken = false;
    const tokens = new (class extends MemoryTokenStore {
      override async put(grant: Parameters<MemoryTokenStore['put']>[0]): Promise<void> {
        if (broken) throw new Error('throttled');
        return super.put(grant);
      }
    })();
    const log = new RecordingLog();
    const oidc = new FakeOidc();
    const catalog = { list: async () => (broken ? Promise.reject(new Error('throttled')) : store.list()) };
    const route = createResolverRouter({
      store,
      logger: log,
      tokens,
      portal: (shared) => createPortal({ ...shared, oidc, cookieKey: KEY, gatewayUrl: GATEWAY, catalog, leases: store }),
    });
    const send = (method: string, path: string, init: { cookie?: string; query?: string; body?: string } = {}) =>
      route({
        method,
        path,
        rawQueryString: init.query ?? '',
        body: init.body,
        contentType: init.body === undefined ? undefined : 'application/x-www-form-urlencoded',
        headers: { host: HOST, ...(init.cookie ? { cookie: init.cookie } : {}), ...(init.body !== undefined ? { origin: ORIGIN } : {}) },
      });
    const login = await send('GET', '/portal/login');
    const state = new URL(login.headers.Location).searchParams.get('state')!;
    const callback = await send('GET', '/portal/callback', { cookie: cookiePair(login, 'dcv_portal_login'), query: `code=alice.1&state=${state}` });
    const cookie = cookiePair(callback, 'dcv_portal');
    const csrf = /name="csrf" value="([^"]+)"/.exec((await send('GET', '/portal', { cookie })).body)![1];
    broken = true;
    const list = await send('GET', '/portal', { cookie });
    expect(list.statusCode).toBe(503);
    expect(list.headers['Content-Type']).toBe('text/html; charset=utf-8');
    const connect = await send('POST', '/portal/connect', { cookie, body: form({ csrf, session: 'alice-desk' }) });
    expect(connect.statusCode).toBe(503);
    expect(log.entries.filter((e) => e.level === 'error').map((e) => e.message)).toEqual(['session store failed', 'token store failed']);
  });
});

describe('portal: sign out and prefix', () => {
  it('sign out clears the cookie (with the CSRF value) and the next page is signed out', async () => {
    const { send, signIn } = setup();
    const { cookie, csrf } = await signIn('alice');
    expect((await send('POST', '/portal/logout', { cookie, body: form({}) })).statusCode).toBe(403);
    const out = await send('POST', '/portal/logout', { cookie, body: form({ csrf }) });
    expect(out.statusCode).toBe(303);
    expect(out.cookies).toContain('dcv_portal=; Path=/portal; Max-Age=0; HttpOnly; Secure; SameSite=Lax');
  });

  it("the resolver's secret path prefix is not the portal's: its URLs and cookie paths carry none, /<prefix>/portal is a 404", async () => {
    const { send, signIn } = setup('s3cret');
    const login = await send('GET', '/portal/login');
    expect(new URL(login.headers.Location).searchParams.get('redirect_uri')).toBe(`${ORIGIN}/portal/callback`);
    expect(login.cookies![0]).toContain('Path=/portal;');
    const { list } = await signIn('bob');
    expect(list.body).toContain('action="/portal/connect"');
    expect(list.body).not.toContain('s3cret');
    const router = createResolverRouter({
      store: new MemorySessionStore(SESSIONS),
      logger: new RecordingLog(),
      tokens: new MemoryTokenStore(),
      pathPrefix: 's3cret',
      portal: (shared) => createPortal({ ...shared, oidc: new FakeOidc(), cookieKey: KEY, gatewayUrl: GATEWAY, catalog: new MemorySessionStore(), leases: new MemorySessionStore() }),
    });
    const ask = (method: string, path: string, rawQueryString = '') => router({ method, path, rawQueryString, headers: { host: HOST } });
    expect((await ask('GET', '/s3cret/portal')).statusCode).toBe(404);
    expect((await ask('GET', '/portal')).statusCode).toBe(200);
    // The gateway's routes keep the prefix.
    expect((await ask('POST', '/resolveSession', 'sessionId=alice-desk&transport=HTTP')).statusCode).toBe(404);
    expect((await ask('POST', '/s3cret/resolveSession', 'sessionId=alice-desk&transport=HTTP')).statusCode).toBe(200);
  });

  it("answers browsers outside the gateway's allow-list, which still guards /resolveSession and /verifyToken; its own list refuses with 403", async () => {
    const router = (portalAllowedSources?: CidrSet) =>
      createResolverRouter({
        store: new MemorySessionStore(SESSIONS),
        logger: new RecordingLog(),
        tokens: new MemoryTokenStore(),
        allowedSources: CidrSet.parse(['203.0.113.0/24']),
        portalAllowedSources,
        portal: (shared) => createPortal({ ...shared, oidc: new FakeOidc(), cookieKey: KEY, gatewayUrl: GATEWAY, catalog: new MemorySessionStore(), leases: new MemorySessionStore() }),
      });
    const open = router();
    const ask = (r: Router, sourceIp: string, method = 'GET', path = '/portal/login') =>
      r({ method, path, rawQueryString: method === 'POST' && path === '/resolveSession' ? 'sessionId=alice-desk&transport=HTTP' : '', sourceIp, headers: { host: HOST } });
    const browser = '198.51.100.1';
    expect((await ask(open, browser)).statusCode).toBe(302);
    expect((await ask(open, browser, 'POST', '/resolveSession')).statusCode).toBe(403);
    expect((await ask(open, browser, 'POST', '/verifyToken/10.0.0.1')).statusCode).toBe(403);
    expect((await ask(open, browser, 'GET', '/health')).statusCode).toBe(403);
    const closed = router(CidrSet.parse(['192.0.2.0/24']));
    expect((await ask(closed, browser)).statusCode).toBe(403);
    expect((await ask(closed, '192.0.2.7')).statusCode).toBe(302);
    // The gateway's list does not open the portal's.
    expect((await ask(closed, '203.0.113.9')).statusCode).toBe(403);
    expect((await ask(closed, '203.0.113.9', 'POST', '/resolveSession')).statusCode).toBe(200);
  });

  it('logs who did what, never a token, code, state or cookie', async () => {
    const { send, signIn, log } = setup();
    const { cookie, csrf } = await signIn('alice');
    const answer = await send('POST', '/portal/connect', { cookie, body: form({ csrf, session: 'alice-desk' }) });
    const token = new URL(answer.headers.Location).searchParams.get('authToken')!;
    const text = JSON.stringify(log.entries);
    expect(text).toContain('portal connect');
    for (const secret of [token, cookie.split('=')[1], csrf]) expect(text).not.toContain(secret);
  });
});
