import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpRequest, HttpResponse, Router } from '../../lambda/core/http-router';
import type { RawItem } from '../../lambda/core/session-record';
import { MemorySessionStore } from '../../lambda/core/session-store';
import type { TokenGrant } from '../../lambda/core/tokens/token-grant';
import { MemoryTokenStore } from '../../lambda/core/tokens/token-store';
import { closeProviders, signInWithoutBrowser, startProviderPerDelivery, type ClaimsDelivery, type TestOidcProvider } from '../helpers/oidc-provider';
import { inProcessPortalRouter } from '../helpers/in-process-portal';
import { RecordingLog } from '../helpers/recording-log';
import { cliBaseEnv, startServeProcess } from '../helpers/run-cli';

/**
 * Issue 20, part 2: nobody becomes someone else by naming them in a claim they choose. A real provider
 * (oidc-provider, both claim deliveries) signs in people whose self-chosen claims (preferred_username,
 * username, upn, an unverified or unconfirmed e-mail, a cognito:username from an issuer that is not
 * Cognito) say alice@example.com; the real portal, adapter and token store must show them none of Alice's
 * desktops and issue them no token, while Alice herself, and a claim the operator names, still work.
 */
const HOST = 'portal.example.com';
const GATEWAY = 'https://gw.example.com:8443';
const SESSIONS: RawItem[] = [
  { SessionId: 'alice-desk', DcvServerEndpoint: '10.0.0.1', AllowedUsers: ['alice@example.com'] },
  { SessionId: 'dana-desk', DcvServerEndpoint: '10.0.0.2', AllowedUsers: ['dana@corp.example'] },
];
const FORGERS = ['mallory-username', 'mallory-upn', 'mallory-unverified', 'mallory-unconfirmed'] as const;

/** A token store that remembers what was put, so "no token" is a fact, not an absence of a redirect. */
class CountingTokenStore extends MemoryTokenStore {
  readonly issued: TokenGrant[] = [];
  override async put(grant: TokenGrant): Promise<void> {
    this.issued.push(grant);
    return super.put(grant);
  }
}

let providers = new Map<ClaimsDelivery, TestOidcProvider>();
beforeAll(async () => {
  providers = await startProviderPerDelivery(`https://${HOST}/portal/callback`);
});
afterAll(() => closeProviders(providers));

function cookiePair(response: HttpResponse, name: string): string {
  const cookie = response.cookies?.find((c) => c.startsWith(`${name}=`));
  if (!cookie) throw new Error(`no ${name} cookie in ${JSON.stringify(response.cookies)} (status ${response.statusCode}: ${response.body.slice(0, 300)})`);
  return cookie.split(';')[0]!;
}

/** The portal in-process over the real adapter; `userClaims` as the operator would name them. */
function portalFor(idp: TestOidcProvider, userClaims?: readonly string[]) {
  const store = new MemorySessionStore(SESSIONS);
  const tokens = new CountingTokenStore();
  const log = new RecordingLog();
  const route: Router = inProcessPortalRouter(idp, { store, log, tokens, gatewayUrl: GATEWAY, portal: userClaims ? { userClaims } : {} });
  const send = (method: string, path: string, init: { query?: string; cookie?: string; form?: Record<string, string> } = {}) =>
    route({
      method,
      path,
      rawQueryString: init.query ?? '',
      sourceIp: '127.0.0.1',
      headers: {
        host: HOST,
        ...(init.cookie ? { cookie: init.cookie } : {}),
        ...(init.form ? { origin: `https://${HOST}`, 'sec-fetch-site': 'same-origin' } : {}),
      },
      ...(init.form ? { body: new URLSearchParams(init.form).toString(), contentType: 'application/x-www-form-urlencoded' } : {}),
      scheme: 'https',
    } satisfies HttpRequest);

  /** Signs in; returns the desktops listed and a Connect for any session id (forms as the page posts them). */
  async function signIn(login: string) {
    const start = await send('GET', '/portal/login');
    const back = await signInWithoutBrowser(start.headers.Location!, login, HOST);
    const callback = await send('GET', back.pathname, { query: back.search.slice(1), cookie: cookiePair(start, 'dcv_portal_login') });
    expect(callback.statusCode, `${login}: ${callback.body.slice(0, 300)}`).toBe(303);
    const cookie = cookiePair(callback, 'dcv_portal');
    const page = (await send('GET', '/portal', { cookie })).body;
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1]!;
    return {
      page,
      list: [...page.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1]),
      connect: (session: string) => send('POST', '/portal/connect', { cookie, form: { csrf, session, client: 'web' } }),
    };
  }
  return { signIn, tokens, log };
}

describe.each(['id-token', 'userinfo'] as const)('forged claims at a provider that sends them in the %s', (delivery) => {
  it('Alice (a verified e-mail) sees her desktop and gets a token: the control', async () => {
    const { signIn, tokens } = portalFor(providers.get(delivery)!);
    const alice = await signIn('alice');
    expect(alice.list).toEqual(['alice-desk']);
    const connect = await alice.connect('alice-desk');
    expect(connect.statusCode).toBe(303);
    expect(tokens.issued.map((g) => [g.sessionId, g.user])).toEqual([['alice-desk', 'alice@example.com']]);
  });

  it.each(FORGERS)('%s names Alice in a claim of their own: no desktop listed, Connect refused, no token', async (login) => {
    const { signIn, tokens, log } = portalFor(providers.get(delivery)!);
    const mallory = await signIn(login);
    expect(mallory.list).toEqual([]);
    expect(mallory.page).not.toContain('alice@example.com');
    const connect = await mallory.connect('alice-desk');
    expect(connect.statusCode).toBe(404);
    expect(tokens.issued).toEqual([]);
    // The log names the person by what the provider vouches for: their subject, never the forged name.
    expect(log.find('portal sign-in')[0]?.fields).toMatchObject({ subject: login, user: login });
  });

  it('a claim the operator names (upn, where only administrators set it) matches; unnamed, it does not', async () => {
    const idp = providers.get(delivery)!;
    const plain = portalFor(idp);
    expect((await plain.signIn('dana')).list).toEqual([]);
    const named = portalFor(idp, ['upn']);
    const dana = await named.signIn('dana');
    expect(dana.list).toEqual(['dana-desk']);
    expect((await dana.connect('dana-desk')).statusCode).toBe(303);
    expect(named.tokens.issued.map((g) => [g.sessionId, g.user])).toEqual([['dana-desk', 'dana@corp.example']]);
    // Naming upn trusts upn, nothing else: an unconfirmed e-mail still names nobody.
    expect((await named.signIn('mallory-unconfirmed')).list).toEqual([]);
  });
});

describe('serve --oidc-user-claims (a child process, the real provider, HTTP)', () => {
  let work: string;
  let sessionsFile: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'forged-claims-'));
    sessionsFile = join(work, 'sessions.json');
    writeFileSync(sessionsFile, JSON.stringify(SESSIONS));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** serve with these extra options; `login` signs in over HTTP, lists, and tries Connect to `session`. */
  async function viaServe(extra: string[], login: string, session: string) {
    const idp = providers.get('id-token')!;
    const tokensDir = mkdtempSync(join(work, 'tokens-'));
    const serve = await startServeProcess(
      ['--sessions', sessionsFile, '--tokens-dir', tokensDir, '--oidc-issuer', idp.issuer, '--oidc-client-id', idp.clientId, '--gateway', GATEWAY, ...extra],
      { ...cliBaseEnv(), DCV_PORTAL_COOKIE_KEY: 'serve-forged-claims-cookie-key-0123456789' },
    );
    try {
      await idp.setRedirectUris([`${serve.url}/portal/callback`]);
      const host = new URL(serve.url).host;
      const get = (path: string, cookie?: string) => fetch(`${serve.url}${path}`, { redirect: 'manual', headers: cookie ? { cookie } : {} });
      const setCookie = (response: Response, name: string) => response.headers.getSetCookie().find((c) => c.startsWith(`${name}=`))!.split(';')[0]!;
      const start = await get('/portal/login');
      const back = await signInWithoutBrowser(start.headers.get('location')!, login, host);
      const callback = await get(`${back.pathname}${back.search}`, setCookie(start, 'dcv_portal_login'));
      expect(callback.status).toBe(303);
      const cookie = setCookie(callback, 'dcv_portal');
      const page = await (await get('/portal', cookie)).text();
      const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1]!;
      const connect = await fetch(`${serve.url}/portal/connect`, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie, origin: serve.url, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf, session, client: 'web' }).toString(),
      });
      return { list: [...page.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1]), connect: connect.status, tokenFiles: readdirSync(tokensDir).length };
    } finally {
      await serve.stop();
    }
  }

  it('by default upn names nobody: Dana sees nothing and gets no token', async () => {
    expect(await viaServe([], 'dana', 'dana-desk')).toEqual({ list: [], connect: 404, tokenFiles: 0 });
  });

  it('--oidc-user-claims upn: Dana sees her desktop and Connect writes her token', async () => {
    expect(await viaServe(['--oidc-user-claims', 'upn'], 'dana', 'dana-desk')).toEqual({ list: ['dana-desk'], connect: 303, tokenFiles: 1 });
  });
});
