import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpRequest, HttpResponse, Router } from '../../lambda/core/http-router';
import type { RawItem } from '../../lambda/core/session-record';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { MemoryTokenStore } from '../../lambda/core/tokens/token-store';
import { closeProviders, signInWithoutBrowser, startProviderPerDelivery, type ClaimsDelivery, type TestOidcProvider } from '../helpers/oidc-provider';
import { inProcessPortalRouter } from '../helpers/in-process-portal';
import { RecordingLog } from '../helpers/recording-log';

/**
 * The portal with the real adapter (openid-client) against a real oidc-provider in both behaviours:
 * claims copied into the ID token, and OIDC Core 5.4's default where e-mail and groups are only at
 * UserInfo. The provider counts UserInfo requests and can be made to misbehave there.
 */
const HOST = 'portal.example.com';
const GATEWAY = 'https://gw.example.com:8443';
const SESSIONS: RawItem[] = [
  { SessionId: 'alice-desk', DcvServerEndpoint: '10.0.0.1', AllowedUsers: ['alice@example.com'] },
  { SessionId: 'eng-desk', DcvServerEndpoint: '10.0.0.2', AllowedGroups: ['engineers'] },
  { SessionId: 'bob-desk', DcvServerEndpoint: '10.0.0.3', AllowedUsers: ['bob@example.com'] },
];

let providers = new Map<ClaimsDelivery, TestOidcProvider>();
beforeAll(async () => {
  providers = await startProviderPerDelivery(`https://${HOST}/portal/callback`);
});
afterAll(() => closeProviders(providers));

/** A portal using `idp`, and a scripted browser for it (cookies kept per sign-in). */
function portalFor(idp: TestOidcProvider) {
  const store = new MemorySessionStore(SESSIONS);
  const log = new RecordingLog();
  const route: Router = inProcessPortalRouter(idp, { store, log, tokens: new MemoryTokenStore(), gatewayUrl: GATEWAY });
  const send = (path: string, query = '', cookie?: string) =>
    route({ method: 'GET', path, rawQueryString: query, sourceIp: '127.0.0.1', headers: { host: HOST, ...(cookie ? { cookie } : {}) }, scheme: 'https' } satisfies HttpRequest);

  /** Login → the provider → the callback; returns the callback's answer and the list page (when signed in). */
  async function signIn(login: string): Promise<{ callback: HttpResponse; code: string; list?: string[]; page?: string }> {
    const start = await send('/portal/login');
    const back = await signInWithoutBrowser(start.headers.Location, login, HOST);
    const callback = await send(back.pathname, back.search.slice(1), cookiePair(start, 'dcv_portal_login'));
    const code = back.searchParams.get('code') ?? '';
    if (callback.statusCode !== 303) return { callback, code };
    const page = (await send('/portal', '', cookiePair(callback, 'dcv_portal'))).body;
    return { callback, code, page, list: [...page.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1]) };
  }
  return { signIn, log };
}

function cookiePair(response: HttpResponse, name: string): string {
  const cookie = response.cookies?.find((c) => c.startsWith(`${name}=`));
  if (!cookie) throw new Error(`no ${name} cookie in ${JSON.stringify(response.cookies)}`);
  return cookie.split(';')[0];
}

const sessionCookieSet = (response: HttpResponse) => response.cookies?.some((c) => c.startsWith('dcv_portal=') && !c.startsWith('dcv_portal=;')) === true;

describe('portal sign-in against a provider that sends e-mail and groups only at UserInfo', () => {
  it('reads UserInfo once per sign-in and matches the user by e-mail and by group', async () => {
    const idp = providers.get('userinfo')!;
    const { signIn, log } = portalFor(idp);
    const before = idp.userInfoRequests();
    const alice = await signIn('alice');
    expect(alice.callback.statusCode).toBe(303);
    expect(alice.list).toEqual(['alice-desk', 'eng-desk']);
    expect(alice.page).toContain('alice@example.com');
    expect(idp.userInfoRequests() - before).toBe(1);
    expect(log.find('portal sign-in')[0]?.fields).toMatchObject({ subject: 'alice', user: 'alice@example.com', groups: 1, userInfo: true });
    const bob = await signIn('bob');
    expect(bob.list).toEqual(['bob-desk']);
    // Nothing logged holds a code or an access token.
    const text = JSON.stringify(log.entries);
    expect(idp.accessTokens().length).toBeGreaterThanOrEqual(2);
    for (const secret of [alice.code, bob.code, ...idp.accessTokens()]) expect(text).not.toContain(secret);
  });

  it('a UserInfo answer for another subject refuses the sign-in with the 400 page and a log line', async () => {
    const idp = providers.get('userinfo')!;
    const { signIn, log } = portalFor(idp);
    idp.setUserInfoFault('other-subject');
    try {
      const { callback } = await signIn('alice');
      expect(callback.statusCode).toBe(400);
      expect(callback.body).toContain('Sign-in not accepted');
      expect(sessionCookieSet(callback)).toBe(false);
      // Refused by the adapter (openid-client's check), before the portal's own check of the same.
      expect(log.find('portal sign-in refused', 'warn')).toMatchObject([{ fields: { reason: expect.stringMatching(/UserInfo's sub is not the ID token's/) } }]);
      expect(log.find('portal sign-in')).toEqual([]);
    } finally {
      idp.setUserInfoFault(undefined);
    }
  });

  it('UserInfo answering 503 or dropping the connection is the 503 "identity provider unavailable" page, logged', async () => {
    const idp = providers.get('userinfo')!;
    for (const fault of ['server-error', 'drop-connection'] as const) {
      const { signIn, log } = portalFor(idp);
      idp.setUserInfoFault(fault);
      try {
        const { callback } = await signIn('alice');
        expect(callback.statusCode, fault).toBe(503);
        expect(callback.headers['Retry-After']).toBe('5');
        expect(callback.body).toContain('The identity provider cannot be reached just now');
        expect(sessionCookieSet(callback)).toBe(false);
        expect(log.find('identity provider unavailable', 'error')).toMatchObject([{ fields: { cause: expect.stringMatching(/UserInfo/) } }]);
        if (fault === 'server-error') expect(log.find('identity provider unavailable')[0]!.fields.cause).toMatch(/HTTP 503/);
      } finally {
        idp.setUserInfoFault(undefined);
      }
    }
  });
});

describe('portal sign-in against a provider that copies the claims into the ID token', () => {
  it('makes no UserInfo request when the ID token has e-mail, a user name and groups, and lists the same desktops', async () => {
    const idp = providers.get('id-token')!;
    const { signIn, log } = portalFor(idp);
    // Were UserInfo read, this answer would refuse the sign-in: proof that it is not asked.
    idp.setUserInfoFault('other-subject');
    try {
      const before = idp.userInfoRequests();
      const alice = await signIn('alice');
      expect(alice.list).toEqual(['alice-desk', 'eng-desk']);
      expect(idp.userInfoRequests() - before).toBe(0);
      expect(log.find('portal sign-in')[0]?.fields).toMatchObject({ userInfo: false });
    } finally {
      idp.setUserInfoFault(undefined);
    }
  });

  it('asks UserInfo only for a person whose ID token lacks a claim (carol: no e-mail, no groups)', async () => {
    const idp = providers.get('id-token')!;
    const { signIn } = portalFor(idp);
    const before = idp.userInfoRequests();
    const carol = await signIn('carol');
    expect(carol.list).toEqual([]);
    expect(idp.userInfoRequests() - before).toBe(1);
  });
});
