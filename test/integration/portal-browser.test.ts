import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Cookie, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, offLoopback, openContext, signInAtTestIdp, withContext } from '../helpers/browser';
import { startOidcProvider, USERINFO_PATH, type TestOidcProvider } from '../helpers/oidc-provider';
import { cliBaseEnv } from '../helpers/run-cli';
import { makeTestCerts, type TestCerts } from '../helpers/test-certs';
import { httpSend, parseAuthXml, startServeProcess, verifyForm, type ServeProcess } from '../helpers/verify-http';

/**
 * The portal in a real browser: Debian's chromium (playwright-core) against `serve` as a child process and
 * a real OpenID provider (oidc-provider) on loopback. One browser for the file, a fresh context per person.
 * The provider follows OIDC Core 5.4 to the letter (`claims: 'userinfo'`): its ID tokens carry only `sub`,
 * so every e-mail and group the portal matches on came from UserInfo.
 */
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));

let browser: Browser;
let idp: TestOidcProvider;
const closers: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  [browser, idp] = await Promise.all([launchChromium(), startOidcProvider({ claims: 'userinfo' })]);
});

afterAll(async () => {
  await Promise.allSettled(closers.splice(0).reverse().map((close) => close()));
  await Promise.allSettled([browser?.close(), idp?.close()]);
  // Whatever happened, nothing in the browser tried to leave the machine.
  expect(offLoopback).toEqual([]);
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('the test identity provider (the fixture the portal tests rely on)', () => {
  let copying: TestOidcProvider;
  beforeAll(async () => {
    copying = await startOidcProvider({ claims: 'id-token' });
    closers.push(() => copying.close());
  });

  /** A relying party by hand: the authorization request, the browser sign-in, the code exchange. */
  async function signIn(
    user: string,
    options: { pkce?: boolean; scope?: string; idp?: TestOidcProvider } = {},
  ): Promise<{ landed: URL; claims?: Record<string, unknown>; userInfo?: Record<string, unknown> }> {
    const provider = options.idp ?? idp;
    const relyingParty = createServer((_req, res) => res.end('relying party'));
    const redirectUri = `http://${await listen(relyingParty)}/cb`;
    await provider.setRedirectUris([redirectUri]);
    const verifier = randomBytes(32).toString('base64url');
    const auth = new URL(`${provider.issuer}/auth`);
    auth.search = new URLSearchParams({
      client_id: provider.clientId,
      redirect_uri: redirectUri,
      response_type: 'code',
      scope: options.scope ?? 'openid email profile groups',
      state: 'state-1',
      nonce: 'nonce-1',
      ...(options.pkce === false ? {} : { code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' }),
    }).toString();
    const landed = await withContext(browser, async (_context, page) => {
      await page.goto(auth.href);
      if (options.pkce !== false) await signInAtTestIdp(page, user);
      await page.waitForURL((url) => url.href.startsWith(redirectUri));
      return new URL(page.url());
    });
    const code = landed.searchParams.get('code');
    if (code === null) return { landed };
    const exchange = () =>
      fetch(`${provider.issuer}/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: provider.clientId, code_verifier: verifier }),
      });
    const first = await exchange();
    expect(first.status).toBe(200);
    const { id_token: idToken, access_token: accessToken } = (await first.json()) as { id_token: string; access_token: string };
    const userInfo = await fetch(`${provider.issuer}${USERINFO_PATH}`, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(userInfo.status).toBe(200);
    const userInfoClaims = (await userInfo.json()) as Record<string, unknown>;
    // A code is good once (and its reuse revokes what it gave: RFC 6749 4.1.2).
    expect((await exchange()).status).toBe(400);
    const revoked = await fetch(`${provider.issuer}${USERINFO_PATH}`, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(revoked.status).toBe(401);
    return { landed, claims: JSON.parse(Buffer.from(idToken.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>, userInfo: userInfoClaims };
  }

  it('conforming (the portal tests\' provider): PKCE sign-in; the ID token carries only sub, UserInfo the e-mail, user name and groups; no PKCE is refused', async () => {
    // The scopes the portal asks for: groups come with profile too (see oidc-provider.ts).
    const alice = await signIn('alice', { scope: 'openid email profile' });
    expect(alice.landed.searchParams.get('state')).toBe('state-1');
    expect(alice.claims).toMatchObject({ iss: idp.issuer, aud: idp.clientId, sub: 'alice', nonce: 'nonce-1' });
    for (const claim of ['email', 'email_verified', 'preferred_username', 'groups']) expect(alice.claims).not.toHaveProperty(claim);
    expect(alice.userInfo).toEqual({ sub: 'alice', email: 'alice@example.com', email_verified: true, preferred_username: 'alice', name: 'alice', groups: ['engineers'] });
    const noPkce = await signIn('alice', { pkce: false });
    expect(noPkce.landed.searchParams.get('error')).toBe('invalid_request');
    expect(noPkce.landed.searchParams.get('error_description')).toMatch(/requires PKCE/);
  });

  it('copying (claims: id-token): the ID token carries e-mail, preferred_username and groups; carol has neither e-mail nor groups', async () => {
    const alice = await signIn('alice', { scope: 'openid email profile', idp: copying });
    expect(alice.claims).toMatchObject({ iss: copying.issuer, sub: 'alice', email: 'alice@example.com', preferred_username: 'alice', groups: ['engineers'], nonce: 'nonce-1' });
    const carol = await signIn('carol', { idp: copying });
    expect(carol.claims).toMatchObject({ sub: 'carol', preferred_username: 'carol' });
    expect(carol.claims).not.toHaveProperty('groups');
    expect(carol.claims).not.toHaveProperty('email');
  });
});

/**
 * Who may open what. Alice: one session by e-mail, one through her group, one disabled (shown, not
 * openable); Bob: one by user name; one session with no lists (nobody sees it); Carol: nothing.
 */
const SESSIONS = [
  { SessionId: 'alice-desk', DcvServerEndpoint: '10.0.1.11', TargetSessionId: 'console', AllowedUsers: ['alice@example.com'] },
  { SessionId: 'alice-old', DcvServerEndpoint: '10.0.1.12', TargetSessionId: 'console', AllowedUsers: ['alice'], Enabled: false },
  // A fixed far expiry, so the screenshot's text does not change from run to run.
  { SessionId: 'eng-build', DcvServerEndpoint: '10.0.2.21', TargetSessionId: 'build', AllowedGroups: ['engineers'], ExpiresAt: 1893456000 },
  { SessionId: 'bob-desk', DcvServerEndpoint: '10.0.3.31', TargetSessionId: 'console', AllowedUsers: ['bob'] },
  { SessionId: 'nobodys', DcvServerEndpoint: '10.0.4.41', TargetSessionId: 'console' },
];
const COOKIE_KEY = 'browser-test-cookie-key-0123456789abcdef';

describe('the portal in chromium: sign in, list, Connect, sign out (serve + oidc-provider + a gateway stub)', () => {
  let work: string;
  let certs: TestCerts;
  let serve: ServeProcess;
  let portal: string;
  let gatewayOrigin: string;
  /** Every request the gateway stub saw: its path and authToken. */
  const gatewayHits: { path: string; authToken: string | null }[] = [];
  /** Alice's browser, kept across the tests below (they are one journey, in order). */
  let alice: { context: BrowserContext; page: Page };
  /** What the sign-in callback looked like for Alice, to replay it. */
  let aliceCallback: { url: string; loginCookie: Cookie };
  let aliceSession: Cookie;
  const issuedTokens: string[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'portal-browser-'));
    const sessionsFile = join(work, 'sessions.json');
    writeFileSync(sessionsFile, JSON.stringify(SESSIONS, null, 2));
    certs = makeTestCerts();
    // The "gateway": only records what the portal's link brought the browser.
    const gateway = createHttpsServer({ cert: readFileSync(certs.files.serverCert), key: readFileSync(certs.files.serverKey) }, (req, res) => {
      const url = new URL(req.url ?? '/', 'https://127.0.0.1');
      gatewayHits.push({ path: url.pathname, authToken: url.searchParams.get('authToken') });
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>Gateway stub</title><h1>Gateway stub</h1>');
    });
    gatewayOrigin = `https://${await listen(gateway)}`;
    serve = await startServeProcess(
      ['--sessions', sessionsFile, '--tokens-dir', join(work, 'tokens'), '--oidc-issuer', idp.issuer, '--oidc-client-id', idp.clientId, '--gateway', gatewayOrigin],
      { ...cliBaseEnv(), DCV_PORTAL_COOKIE_KEY: COOKIE_KEY },
    );
    closers.push(() => serve.stop());
    portal = `${serve.url}/portal`;
    await idp.setRedirectUris([`${portal}/callback`]);
    alice = await openContext(browser);
    closers.push(() => alice.context.close());
  });

  afterAll(() => {
    certs?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /**
   * Sign in from the portal's signed-out page; returns the callback URL the IdP sent the browser to and the
   * sign-in cookie the browser held then (read while at the IdP: the callback's answer clears it).
   */
  async function signInToPortal(page: Page, user: string): Promise<{ callbackUrl: string; loginCookie: Cookie }> {
    await page.goto(portal);
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.waitForURL((url) => url.href.startsWith(idp.issuer));
    const loginCookie = (await page.context().cookies()).find((c) => c.name === 'dcv_portal_login');
    expect(loginCookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax' });
    const callback = page.waitForRequest((request) => request.url().startsWith(`${portal}/callback?`));
    await signInAtTestIdp(page, user);
    const callbackUrl = (await callback).url();
    await page.waitForURL(portal);
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Your desktops');
    return { callbackUrl, loginCookie: loginCookie! };
  }

  const desktopNames = (page: Page) => page.locator('main li h2').allTextContents();

  async function expectSignedOut(page: Page): Promise<void> {
    await expect(page.getByRole('link', { name: 'Sign in' }).count()).resolves.toBe(1);
    await expect(page.getByRole('heading', { name: 'Your desktops' }).count()).resolves.toBe(0);
    await expect(page.locator('li h2').count()).resolves.toBe(0);
    await expect(page.getByRole('button', { name: 'Sign out' }).count()).resolves.toBe(0);
  }

  function verify(server: string, sessionId: string, token: string) {
    return httpSend(serve.url, `/verifyToken/${server}`, { body: verifyForm({ sessionId, authenticationToken: token, clientAddress: '203.0.113.9' }) });
  }

  it('signed out, /portal shows only a Sign in link; Alice signs in (claims from UserInfo) and sees exactly her desktops', async () => {
    const { context, page } = alice;
    await page.goto(portal);
    await expectSignedOut(page);
    const userInfoBefore = idp.userInfoRequests();
    const signedIn = await signInToPortal(page, 'alice');
    // Her ID token held only `sub`: the e-mail, user name and group below came from one UserInfo read.
    expect(idp.userInfoRequests() - userInfoBefore).toBe(1);
    expect(signedIn.callbackUrl).toMatch(/[?&]code=.+&state=|[?&]state=.+&code=/);
    // Kept for the replay test.
    aliceCallback = { url: signedIn.callbackUrl, loginCookie: signedIn.loginCookie };
    expect(await desktopNames(page)).toEqual(['alice-desk', 'alice-old', 'eng-build']);
    await expect(page.getByText('Signed in as').textContent()).resolves.toContain('alice@example.com');
    // The disabled one is listed with its state but cannot be opened.
    const old = page.locator('li', { has: page.getByRole('heading', { name: 'alice-old' }) });
    await expect(old.locator('.state').textContent()).resolves.toMatch(/disabled/i);
    await expect(page.getByRole('button', { name: 'Open alice-old in browser' }).isDisabled()).resolves.toBe(true);
    await expect(page.getByRole('button', { name: 'Open alice-desk in browser' }).isEnabled()).resolves.toBe(true);
    await expect(page.getByRole('button', { name: 'Native client link for alice-desk' }).count()).resolves.toBe(1);
    const text = await page.locator('body').innerText();
    expect(text).not.toContain('bob-desk');
    expect(text).not.toContain('nobodys');
    // The session cookie as the portal set it.
    const cookies = await context.cookies();
    aliceSession = cookies.find((c) => c.name === 'dcv_portal')!;
    expect(aliceSession).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax' });
    expect(cookies.find((c) => c.name === 'dcv_portal_login')).toBeUndefined();
    await page.screenshot({ path: join(ARTIFACTS, 'portal-alice.png'), fullPage: true });
  });

  it('a phone-sized screen shows the same list in one column (screenshot)', async () => {
    await withContext(
      browser,
      async (context, page) => {
        await context.addCookies([aliceSession]);
        await page.goto(portal);
        expect(await desktopNames(page)).toEqual(['alice-desk', 'alice-old', 'eng-build']);
        // Nothing wider than the screen: no sideways scrolling on a phone.
        await expect(page.evaluate('document.documentElement.scrollWidth')).resolves.toBeLessThanOrEqual(390);
        await page.screenshot({ path: join(ARTIFACTS, 'portal-phone.png'), fullPage: true });
      },
      { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
    );
  });

  it('Open in browser lands on the gateway with a token the verifier accepts up to its 3 uses, then refuses', async () => {
    const { page } = alice;
    await page.getByRole('button', { name: 'Open alice-desk in browser' }).click();
    await page.waitForURL((url) => url.origin === gatewayOrigin);
    const landed = new URL(page.url());
    expect(landed.hash).toBe('#alice-desk');
    const token = landed.searchParams.get('authToken')!;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    issuedTokens.push(token);
    expect(gatewayHits.at(-1)).toEqual({ path: '/', authToken: token });
    // Another DCV server (host B) presenting it: refused, and that costs no use.
    const elsewhere = parseAuthXml((await verify('10.0.3.31', 'console', token)).body);
    expect(elsewhere).toMatchObject({ result: 'no' });
    // The portal mints tokens with the default 3 uses (a page cannot ask for 1): yes three times, then no.
    for (let use = 1; use <= 3; use++) {
      expect(parseAuthXml((await verify('10.0.1.11', 'console', token)).body), `use ${use}`).toEqual({ result: 'yes', username: 'alice@example.com' });
    }
    const spent = parseAuthXml((await verify('10.0.1.11', 'console', token)).body);
    expect(spent).toMatchObject({ result: 'no' });
    expect(spent!.result === 'no' && spent!.message).toMatch(/used 3 time/);
  });

  it('a desktop Alice may open through her group also connects, and its token verifies once more for her', async () => {
    const { page } = alice;
    await page.goto(portal);
    await page.getByRole('button', { name: 'Open eng-build in browser' }).click();
    await page.waitForURL((url) => url.origin === gatewayOrigin);
    const landed = new URL(page.url());
    expect(landed.hash).toBe('#eng-build');
    const token = landed.searchParams.get('authToken')!;
    issuedTokens.push(token);
    expect(parseAuthXml((await verify('10.0.2.21', 'build', token)).body)).toMatchObject({ result: 'yes' });
  });

  it('Native client link shows a dcv:// link to the gateway whose token the verifier accepts', async () => {
    const { page } = alice;
    await page.goto(portal);
    await page.getByRole('button', { name: 'Native client link for alice-desk' }).click();
    await page.waitForURL(`${portal}/connect`);
    const href = await page.getByRole('link', { name: 'Open in the DCV client' }).getAttribute('href');
    const link = new URL(href!);
    expect(`${link.protocol}//${link.host}`).toBe(`dcv://${new URL(gatewayOrigin).host}`);
    expect(link.hash).toBe('#alice-desk');
    const token = link.searchParams.get('authToken')!;
    issuedTokens.push(token);
    expect(parseAuthXml((await verify('10.0.1.11', 'console', token)).body)).toEqual({ result: 'yes', username: 'alice@example.com' });
  });

  it('a forged Connect is refused with 403 and mints nothing: no CSRF field, or the right field from another origin', async () => {
    const { context, page } = alice;
    await page.goto(portal);
    const csrf = await page.locator('input[name=csrf]').first().inputValue();
    const hitsBefore = gatewayHits.length;
    // With Alice's cookie but without the form's CSRF value (any script or tool outside the page).
    const noCsrf = await context.request.post(`${portal}/connect`, { form: { session: 'alice-desk', client: 'web' }, maxRedirects: 0 });
    expect(noCsrf.status()).toBe(403);
    const wrongCsrf = await context.request.post(`${portal}/connect`, { form: { csrf: `${csrf.slice(0, -1)}${csrf.endsWith('A') ? 'B' : 'A'}`, session: 'alice-desk', client: 'web' }, maxRedirects: 0 });
    expect(wrongCsrf.status()).toBe(403);
    // A page on another origin of the same site (another port on 127.0.0.1: the cookie goes along) that even
    // knows the CSRF value: the browser's Origin / Sec-Fetch-Site give it away.
    const attacker = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>Win a prize</title><form method="post" action="${portal}/connect">
<input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="session" value="alice-desk">
<button type="submit" name="client" value="web">Claim prize</button></form>`);
    });
    const attackerOrigin = `http://${await listen(attacker)}`;
    await page.goto(attackerOrigin);
    const [answer] = await Promise.all([page.waitForResponse(`${portal}/connect`), page.getByRole('button', { name: 'Claim prize' }).click()]);
    expect(answer.status()).toBe(403);
    expect(new URL(page.url()).origin).not.toBe(gatewayOrigin);
    expect(gatewayHits.length).toBe(hitsBefore);
  });

  it('a tampered session cookie counts as signed out: no list, and Connect with it is refused', async () => {
    const [body, mac] = aliceSession.value.split('.');
    const claims = JSON.parse(Buffer.from(body!, 'base64url').toString('utf8')) as Record<string, unknown>;
    // Claim Bob's names and groups under Alice's signature.
    const forged = `${Buffer.from(JSON.stringify({ ...claims, names: ['bob', 'bob@example.com'], groups: ['designers', 'engineers'] })).toString('base64url')}.${mac}`;
    const flipped = `${body}.${mac!.slice(0, -2)}${mac!.endsWith('AA') ? 'BB' : 'AA'}`;
    for (const value of [forged, flipped]) {
      await withContext(browser, async (context, page) => {
        await context.addCookies([{ ...aliceSession, value }]);
        const answer = await page.goto(portal);
        expect(answer!.status()).toBe(200);
        await expectSignedOut(page);
        const connect = await context.request.post(`${portal}/connect`, { form: { csrf: String(claims.csrf ?? ''), session: 'bob-desk', client: 'web' }, maxRedirects: 0 });
        expect(connect.status()).toBeGreaterThanOrEqual(400);
        expect(connect.status()).toBeLessThan(500);
      });
    }
  });

  it('a replayed sign-in callback (same code and state) is refused with an error page and signs no one in', async () => {
    expect(aliceCallback?.url).toMatch(/[?&]state=/);
    // Same browser state as the first time (its sign-in cookie), and a browser without it.
    for (const withLoginCookie of [true, false]) {
      await withContext(browser, async (context, page) => {
        if (withLoginCookie) await context.addCookies([aliceCallback.loginCookie]);
        const answer = await page.goto(aliceCallback.url);
        expect(answer!.status()).toBeGreaterThanOrEqual(400);
        expect(answer!.status()).toBeLessThan(500);
        await expect(page.getByRole('alert').count()).resolves.toBe(1);
        expect((await context.cookies()).find((c) => c.name === 'dcv_portal')).toBeUndefined();
        await page.goto(portal);
        await expectSignedOut(page);
      });
    }
  });

  it('Sign out returns to the signed-out page, and /portal lists nothing afterwards', async () => {
    const { context, page } = alice;
    await page.goto(portal);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(portal);
    await expectSignedOut(page);
    expect((await context.cookies()).find((c) => c.name === 'dcv_portal')).toBeUndefined();
    await page.reload();
    await expectSignedOut(page);
  });

  it('Bob signs in and sees only his desktop; Carol, in no list, sees none', async () => {
    await withContext(browser, async (_context, page) => {
      await signInToPortal(page, 'bob');
      expect(await desktopNames(page)).toEqual(['bob-desk']);
      await expect(page.getByRole('button', { name: 'Open bob-desk in browser' }).isEnabled()).resolves.toBe(true);
      await page.screenshot({ path: join(ARTIFACTS, 'portal-bob.png'), fullPage: true });
    });
    await withContext(browser, async (_context, page) => {
      await signInToPortal(page, 'carol');
      expect(await desktopNames(page)).toEqual([]);
      await expect(page.getByText('No desktops are assigned to you').count()).resolves.toBe(1);
    });
  });

  it('serve logged no token, code or cookie', () => {
    const logs = serve.stdout() + serve.stderr();
    expect(issuedTokens.length).toBe(3);
    for (const token of issuedTokens) expect(logs).not.toContain(token);
    expect(logs).not.toContain(aliceSession.value);
    expect(logs).not.toContain(new URL(aliceCallback.url).searchParams.get('code')!);
    // Nor an access token (the portal used them at UserInfo).
    expect(idp.accessTokens().length).toBeGreaterThan(0);
    for (const accessToken of idp.accessTokens()) expect(logs).not.toContain(accessToken);
    expect(logs).toContain('portal');
  });
});
