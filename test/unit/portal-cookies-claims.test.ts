import { describe, expect, it } from 'vitest';
import { portalUserFromClaims, portalUserFromCookie, portalUserToCookie, userInfoWanted, withUserInfo } from '../../lambda/core/portal/portal-user';
import { codeChallengeOf, issuerProblem, newSignInTransaction, scopesProblem } from '../../lambda/core/portal/oidc';
import { readPortalFunctionConfig } from '../../lambda/config';
import { openIdConnectClient } from '../../lambda/adapters/openid-connect';
import { CookieSealer, CookieTooLargeError, readCookie, setCookie } from '../../lambda/core/portal/signed-cookie';

const NOW = 1_800_000_000;

describe('CookieSealer', () => {
  const sealer = new CookieSealer('a'.repeat(32));

  it('opens what it sealed for the same purpose, until it expires', () => {
    const value = sealer.seal('s', { who: 'alice' }, NOW + 60);
    expect(sealer.open('s', value, NOW)).toEqual({ who: 'alice', exp: NOW + 60 });
    expect(sealer.open('s', value, NOW + 60)).toBeUndefined();
  });

  it('refuses another purpose, another key, a changed body or MAC, and junk', () => {
    const value = sealer.seal('login', { state: 'x' }, NOW + 60);
    expect(sealer.open('session', value, NOW)).toBeUndefined();
    expect(new CookieSealer('b'.repeat(32)).open('login', value, NOW)).toBeUndefined();
    const [body, mac] = value.split('.');
    const changed = Buffer.from(JSON.stringify({ state: 'y', exp: NOW + 60 })).toString('base64url');
    expect(sealer.open('login', `${changed}.${mac}`, NOW)).toBeUndefined();
    expect(sealer.open('login', `${body}.${mac.slice(0, -2)}`, NOW)).toBeUndefined();
    for (const junk of [undefined, '', '.', 'abc', `${body}.`, 'x'.repeat(5000)]) expect(sealer.open('login', junk, NOW)).toBeUndefined();
  });

  it('will not seal what a browser would not keep, and wants a long key', () => {
    expect(() => sealer.seal('s', { big: 'x'.repeat(4000) }, NOW)).toThrow(CookieTooLargeError);
    expect(() => new CookieSealer('short')).toThrow(/at least 32 bytes/);
  });

  it('Set-Cookie is always HttpOnly, Secure and SameSite=Lax; the Cookie header is read by name', () => {
    expect(setCookie('n', 'v', { path: '/p/portal', maxAge: 60 })).toBe('n=v; Path=/p/portal; Max-Age=60; HttpOnly; Secure; SameSite=Lax');
    expect(readCookie('a=1; dcv_portal=xyz.abc; b=2', 'dcv_portal')).toBe('xyz.abc');
    expect(readCookie('dcv_portal_login=1', 'dcv_portal')).toBeUndefined();
    expect(readCookie(undefined, 'dcv_portal')).toBeUndefined();
  });
});

describe('portalUserFromClaims', () => {
  it('names: subject, e-mail, user names; groups from the configured claim', () => {
    const user = portalUserFromClaims(
      { sub: 's-1', email: 'Alice@Example.com', preferred_username: 'alice', 'cognito:groups': ['eng', 'ops'] },
      'cognito:groups',
    );
    expect(user).toEqual({ subject: 's-1', names: ['s-1', 'Alice@Example.com', 'alice'], groups: ['eng', 'ops'], displayName: 'Alice@Example.com' });
  });

  it('an unverified e-mail is not a name; a string groups claim is split; junk groups are dropped', () => {
    const user = portalUserFromClaims({ sub: 's-2', email: 'ceo@example.com', email_verified: false, groups: 'a b,c \u0000x' });
    expect(user.names).toEqual(['s-2']);
    expect(user.groups).toEqual(['a', 'b', 'c']);
    expect(user.displayName).toBe('s-2');
  });

  it('no usable subject is an error', () => {
    expect(() => portalUserFromClaims({ email: 'x@example.com' })).toThrow(/subject/);
    expect(() => portalUserFromClaims({ sub: '' })).toThrow(/subject/);
  });

  it('round-trips through the cookie payload and refuses other shapes', () => {
    const user = portalUserFromClaims({ sub: 's', email: 'e@x.org', groups: ['g'] });
    expect(portalUserFromCookie(portalUserToCookie(user))).toEqual(user);
    expect(portalUserFromCookie({ sub: 's', names: 'e', groups: [], name: 'e' })).toBeUndefined();
  });
});

describe('claims from UserInfo: when it is read, and how it merges', () => {
  it('is wanted when the ID token lacks an e-mail, every user name, or the configured groups claim', () => {
    // Cognito: e-mail, cognito:username and cognito:groups in the ID token: no request.
    expect(userInfoWanted({ sub: 's', email: 'a@x.org', 'cognito:username': 'a', 'cognito:groups': ['g'] }, 'cognito:groups')).toBe(false);
    expect(userInfoWanted({ sub: 's', email: 'a@x.org', upn: 'a@corp', groups: [] })).toBe(false);
    expect(userInfoWanted({ sub: 's' })).toBe(true);
    expect(userInfoWanted({ sub: 's', preferred_username: 'a', groups: ['g'] })).toBe(true);
    expect(userInfoWanted({ sub: 's', email: 'a@x.org', groups: ['g'] })).toBe(true);
    expect(userInfoWanted({ sub: 's', email: 'a@x.org', preferred_username: 'a' })).toBe(true);
    // The groups claim asked for is the configured one.
    expect(userInfoWanted({ sub: 's', email: 'a@x.org', preferred_username: 'a', groups: ['g'] }, 'cognito:groups')).toBe(true);
    expect(userInfoWanted({ sub: 's', email: null, preferred_username: 'a', groups: ['g'] })).toBe(true);
  });

  it('the ID token wins where present; UserInfo fills only the claims the portal matches on', () => {
    const merged = withUserInfo(
      { sub: 's', preferred_username: 'from-id', nonce: 'n', aud: 'c' },
      { sub: 's', preferred_username: 'from-userinfo', email: 'a@x.org', email_verified: true, upn: 'a@corp', roles: ['admin'], aud: 'other', 'cognito:groups': ['g'] },
      'cognito:groups',
    );
    expect(merged).toEqual({ sub: 's', preferred_username: 'from-id', nonce: 'n', aud: 'c', email: 'a@x.org', email_verified: true, upn: 'a@corp', 'cognito:groups': ['g'] });
  });

  it('email and email_verified come from one source: UserInfo never verifies the ID token\'s address, nor the reverse', () => {
    // The ID token's address, unverified there, stays unverified; UserInfo's "verified" is about its own.
    const idEmail = withUserInfo({ sub: 's', email: 'ceo@x.org', email_verified: false }, { sub: 's', email: 'ceo@x.org', email_verified: true });
    expect(portalUserFromClaims(idEmail).names).toEqual(['s']);
    expect(withUserInfo({ sub: 's', email: 'a@x.org' }, { sub: 's', email_verified: false })).toEqual({ sub: 's', email: 'a@x.org' });
    // No address in the ID token: a stray email_verified there does not vouch for UserInfo's address.
    const uiEmail = withUserInfo({ sub: 's', email_verified: true }, { sub: 's', email: 'b@x.org', email_verified: false });
    expect(portalUserFromClaims(uiEmail).names).toEqual(['s']);
    expect(portalUserFromClaims(withUserInfo({ sub: 's' }, { sub: 's', email: 'b@x.org', email_verified: true, groups: ['g'] }))).toMatchObject({
      names: ['s', 'b@x.org'],
      groups: ['g'],
    });
  });
});

describe('sign-in transaction', () => {
  it('is three distinct 256-bit values; the challenge is RFC 7636 S256', () => {
    const t = newSignInTransaction();
    expect(new Set([t.state, t.nonce, t.codeVerifier]).size).toBe(3);
    for (const v of Object.values(t)) expect(v).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // RFC 7636 appendix B.
    expect(codeChallengeOf('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe('E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  });
});

describe('issuer and scopes rules (one place for serve, the Lambda config and the client)', () => {
  it('issuers: https, or plain http only on this machine', () => {
    expect(issuerProblem(new URL('https://login.example.com/t/v2.0'))).toBeUndefined();
    expect(issuerProblem(new URL('http://127.0.0.1:8080'))).toBeUndefined();
    expect(issuerProblem(new URL('http://[::1]:8080'))).toBeUndefined();
    expect(issuerProblem(new URL('http://login.example.com'))).toBe('must be an https:// URL');
  });

  it("scopes must include openid, whatever the spacing; the Lambda config and the client refuse the same list", () => {
    expect(scopesProblem(' openid\temail  groups ')).toBeUndefined();
    expect(scopesProblem('email groups')).toBe("must include 'openid', not 'email groups'");
    const env = { PORTAL_ISSUER: 'https://login.example.com', PORTAL_SECRET_ID: 's', PORTAL_GATEWAY_URL: 'https://gw.example.com' };
    expect(() => readPortalFunctionConfig({ ...env, PORTAL_SCOPES: 'email groups' })).toThrow("PORTAL_SCOPES must include 'openid', not 'email groups'");
    expect(readPortalFunctionConfig({ ...env, PORTAL_SCOPES: 'openid groups' })?.scopes).toBe('openid groups');
    expect(() => openIdConnectClient({ issuer: 'https://login.example.com', clientId: 'c', scopes: 'email' })).toThrow("OIDC scopes must include 'openid'");
  });
});
