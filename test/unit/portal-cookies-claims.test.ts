import { describe, expect, it } from 'vitest';
import {
  isCognitoIssuer,
  portalUserFromClaims,
  portalUserFromCookie,
  portalUserToCookie,
  userClaimsProblem,
  userInfoWanted,
  withUserInfo,
  type UserClaimsPolicy,
} from '../../lambda/core/portal/portal-user';
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

const COGNITO = 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123xyz';
const policy = (named: string[] = [], groupsClaim = 'groups'): UserClaimsPolicy => ({ named, groupsClaim });

describe('the matching rule: which claims name a person', () => {
  // [case, claims, operator-named claims, the names the person gets (sub first)]
  const table: [string, Record<string, unknown>, string[], string[]][] = [
    ['sub alone', { sub: 's' }, [], ['s']],
    ['a verified e-mail (boolean true)', { sub: 's', email: 'a@x.org', email_verified: true }, [], ['s', 'a@x.org']],
    ['a verified e-mail (the string "true": Cognito\'s UserInfo, federated users)', { sub: 's', email: 'a@x.org', email_verified: 'true' }, [], ['s', 'a@x.org']],
    ['an unverified e-mail', { sub: 's', email: 'a@x.org', email_verified: false }, [], ['s']],
    ['an unverified e-mail (the string "false")', { sub: 's', email: 'a@x.org', email_verified: 'false' }, [], ['s']],
    ['an e-mail without email_verified (Entra ID)', { sub: 's', email: 'a@x.org' }, [], ['s']],
    ['email_verified of another spelling or type', { sub: 's', email: 'a@x.org', email_verified: 'True' }, [], ['s']],
    ['email_verified 1', { sub: 's', email: 'a@x.org', email_verified: 1 }, [], ['s']],
    ['preferred_username, username, upn, name: chosen by the user at many providers', { sub: 's', preferred_username: 'p', username: 'u', upn: 'u@corp', name: 'n' }, [], ['s']],
    ['cognito:username from an issuer that is not Cognito', { sub: 's', iss: 'https://login.example.com', 'cognito:username': 'c' }, [], ['s']],
    ['cognito:username from a Cognito user pool', { sub: 's', iss: COGNITO, 'cognito:username': 'c' }, [], ['s', 'c']],
    ['cognito:username from a look-alike issuer', { sub: 's', iss: 'https://cognito-idp.eu-west-1.amazonaws.com.evil.example/eu-west-1_AbC', 'cognito:username': 'c' }, [], ['s']],
    ['cognito:username from a China-region pool', { sub: 's', iss: 'https://cognito-idp.cn-north-1.amazonaws.com.cn/cn-north-1_AbC', 'cognito:username': 'c' }, [], ['s', 'c']],
    ['Cognito: verified e-mail first, then the user name', { sub: 's', iss: COGNITO, 'cognito:username': 'c', email: 'a@x.org', email_verified: true }, [], ['s', 'a@x.org', 'c']],
    ['a named claim (upn)', { sub: 's', upn: 'u@corp', preferred_username: 'p' }, ['upn'], ['s', 'u@corp']],
    ['named claims, in the order named', { sub: 's', upn: 'u@corp', oid: 'o-1' }, ['oid', 'upn'], ['s', 'o-1', 'u@corp']],
    ['a named claim that is absent or not a string', { sub: 's', upn: ['u@corp'], oid: 7 }, ['upn', 'oid', 'employee_id'], ['s']],
    ['a named claim whose value could not be stored in a record', { sub: 's', upn: 'a\u0000b' }, ['upn'], ['s']],
    ['naming email: accepted without email_verified', { sub: 's', email: 'a@x.org' }, ['email'], ['s', 'a@x.org']],
    ['naming email: an explicit false still refuses it', { sub: 's', email: 'a@x.org', email_verified: false }, ['email'], ['s']],
    ['naming sub changes nothing', { sub: 's' }, ['sub'], ['s']],
    ['the same value twice is one name', { sub: 's', email: 's', email_verified: true, upn: 's' }, ['upn'], ['s']],
  ];
  it.each(table)('%s', (_case, claims, named, names) => {
    expect(portalUserFromClaims(claims, policy(named)).names).toEqual(names);
  });

  it('the display name (page, logs, a group-matched token\'s user) is the first trusted name, else the subject', () => {
    expect(portalUserFromClaims({ sub: 's', preferred_username: 'alice@example.com', email: 'alice@example.com' }).displayName).toBe('s');
    expect(portalUserFromClaims({ sub: 's', email: 'Alice@Example.com', email_verified: true }).displayName).toBe('Alice@Example.com');
    expect(portalUserFromClaims({ sub: 's', upn: 'u@corp' }, policy(['upn'])).displayName).toBe('u@corp');
  });

  it('groups come only from the configured claim: a string is split, junk dropped', () => {
    const claims = { sub: 's', groups: 'a b,c \u0000x', 'cognito:groups': ['eng', 'ops'] };
    expect(portalUserFromClaims(claims).groups).toEqual(['a', 'b', 'c']);
    expect(portalUserFromClaims(claims, policy([], 'cognito:groups')).groups).toEqual(['eng', 'ops']);
    expect(portalUserFromClaims({ sub: 's', roles: ['admin'] }).groups).toEqual([]);
  });

  it('no usable subject is an error', () => {
    expect(() => portalUserFromClaims({ email: 'x@example.com', email_verified: true })).toThrow(/subject/);
    expect(() => portalUserFromClaims({ sub: '' })).toThrow(/subject/);
  });

  it('isCognitoIssuer: exactly a user pool issuer URL', () => {
    expect(isCognitoIssuer(COGNITO)).toBe(true);
    expect(isCognitoIssuer('https://cognito-idp.us-gov-west-1.amazonaws.com/us-gov-west-1_X1')).toBe(true);
    for (const other of [`${COGNITO}/`, COGNITO.replace('https', 'http'), 'https://cognito-idp.eu-west-1.amazonaws.com/', 'https://example.com/eu-west-1_A', undefined, 7]) {
      expect(isCognitoIssuer(other)).toBe(false);
    }
  });
});

describe('operator-named user claims: one rule for serve, PORTAL_USER_CLAIMS and the stack', () => {
  it.each([
    [['upn'], undefined],
    [['upn', 'oid', 'https://example.com/claims/username', 'email'], undefined],
    [['up n'], "must be claim names (printable, without spaces or commas), not 'up n'"],
    [[''], "must be claim names (printable, without spaces or commas), not ''"],
    [['groups'], "'groups' is the groups claim: it lists groups (AllowedGroups), not names"],
    [['email_verified'], "'email_verified' is not a name (name 'email' to accept addresses without it)"],
    [['iss'], "'iss' describes the token or the tenant, not the person"],
    [['tid'], "'tid' describes the token or the tenant, not the person"],
    [Array.from({ length: 11 }, (_, i) => `c${i}`), 'names 11 claims; at most 10'],
  ])('%j → %s', (claims, problem) => {
    expect(userClaimsProblem(claims)).toBe(problem);
  });

  it('the groups claim checked is the configured one', () => {
    expect(userClaimsProblem(['cognito:groups'], 'cognito:groups')).toMatch(/is the groups claim/);
    expect(userClaimsProblem(['groups'], 'cognito:groups')).toBeUndefined();
  });

  it('PORTAL_USER_CLAIMS is read comma-separated and refused at start-up with the variable named', () => {
    const env = { PORTAL_ISSUER: 'https://login.example.com', PORTAL_SECRET_ID: 's', PORTAL_GATEWAY_URL: 'https://gw.example.com' };
    expect(readPortalFunctionConfig(env)?.userClaims).toBeUndefined();
    expect(readPortalFunctionConfig({ ...env, PORTAL_USER_CLAIMS: ' upn, oid ' })?.userClaims).toEqual(['upn', 'oid']);
    expect(() => readPortalFunctionConfig({ ...env, PORTAL_USER_CLAIMS: 'upn,iss' })).toThrow("PORTAL_USER_CLAIMS 'iss' describes the token or the tenant, not the person");
    expect(() => readPortalFunctionConfig({ ...env, PORTAL_GROUPS_CLAIM: 'roles', PORTAL_USER_CLAIMS: 'roles' })).toThrow(/PORTAL_USER_CLAIMS 'roles' is the groups claim/);
  });
});

describe('the session cookie', () => {
  it('round-trips under the same policy; refuses other shapes, an old cookie, and one made under other claims', () => {
    const user = portalUserFromClaims({ sub: 's', email: 'e@x.org', email_verified: true, groups: ['g'] });
    expect(portalUserFromCookie(portalUserToCookie(user))).toEqual(user);
    expect(portalUserFromCookie({ ...portalUserToCookie(user), names: 'e' })).toBeUndefined();
    // Made before names were limited to trusted claims: its names may be forged.
    const { by: _by, ...old } = portalUserToCookie(user);
    expect(portalUserFromCookie(old)).toBeUndefined();
    // The operator changed oidcUserClaims or the groups claim: sign in again under the new rule.
    const named = portalUserToCookie(user, policy(['upn']));
    expect(portalUserFromCookie(named, policy(['upn']))).toEqual(user);
    expect(portalUserFromCookie(named)).toBeUndefined();
    expect(portalUserFromCookie(portalUserToCookie(user), policy([], 'roles'))).toBeUndefined();
  });
});

describe('claims from UserInfo: when it is read, and how it merges', () => {
  it('is wanted when the ID token lacks an e-mail, every other trusted name claim, or the configured groups claim', () => {
    // Cognito: e-mail, cognito:username and cognito:groups in the ID token: no request.
    expect(userInfoWanted({ sub: 's', iss: COGNITO, email: 'a@x.org', 'cognito:username': 'a', 'cognito:groups': ['g'] }, policy([], 'cognito:groups'))).toBe(false);
    expect(userInfoWanted({ sub: 's', iss: COGNITO, email: 'a@x.org', 'cognito:groups': ['g'] }, policy([], 'cognito:groups'))).toBe(true);
    // By default only e-mail and groups are wanted: no other claim names anyone.
    expect(userInfoWanted({ sub: 's', email: 'a@x.org', groups: [] })).toBe(false);
    expect(userInfoWanted({ sub: 's' })).toBe(true);
    expect(userInfoWanted({ sub: 's', preferred_username: 'a', groups: ['g'] })).toBe(true);
    expect(userInfoWanted({ sub: 's', email: 'a@x.org', preferred_username: 'a' })).toBe(true);
    expect(userInfoWanted({ sub: 's', email: null, groups: ['g'] })).toBe(true);
    // A named claim counts: at least one of them in the ID token, or UserInfo is read.
    expect(userInfoWanted({ sub: 's', email: 'a@x.org', groups: ['g'] }, policy(['upn']))).toBe(true);
    expect(userInfoWanted({ sub: 's', email: 'a@x.org', upn: 'a@corp', groups: ['g'] }, policy(['upn', 'oid']))).toBe(false);
    // The groups claim asked for is the configured one.
    expect(userInfoWanted({ sub: 's', email: 'a@x.org', groups: ['g'] }, policy([], 'cognito:groups'))).toBe(true);
  });

  it('the ID token wins where present; UserInfo fills only the claims the portal matches on', () => {
    const merged = withUserInfo(
      { sub: 's', upn: 'from-id', nonce: 'n', aud: 'c' },
      { sub: 's', upn: 'from-userinfo', preferred_username: 'p', oid: 'o', email: 'a@x.org', email_verified: true, roles: ['admin'], aud: 'other', iss: 'https://elsewhere', 'cognito:groups': ['g'] },
      policy(['upn', 'oid'], 'cognito:groups'),
    );
    expect(merged).toEqual({ sub: 's', upn: 'from-id', nonce: 'n', aud: 'c', oid: 'o', email: 'a@x.org', email_verified: true, 'cognito:groups': ['g'] });
  });

  it("UserInfo's cognito:username counts only when the ID token's issuer is Cognito (UserInfo's own iss is not taken)", () => {
    const info = { sub: 's', 'cognito:username': 'alice', iss: COGNITO };
    expect(portalUserFromClaims(withUserInfo({ sub: 's', iss: 'https://login.example.com' }, info)).names).toEqual(['s']);
    expect(portalUserFromClaims(withUserInfo({ sub: 's', iss: COGNITO }, info)).names).toEqual(['s', 'alice']);
  });

  it("email and email_verified come from one source: UserInfo never verifies the ID token's address, nor the reverse", () => {
    // The ID token's address, unverified there, stays unverified; UserInfo's "verified" is about its own.
    const idEmail = withUserInfo({ sub: 's', email: 'ceo@x.org', email_verified: false }, { sub: 's', email: 'ceo@x.org', email_verified: true });
    expect(portalUserFromClaims(idEmail).names).toEqual(['s']);
    expect(withUserInfo({ sub: 's', email: 'a@x.org' }, { sub: 's', email_verified: true })).toEqual({ sub: 's', email: 'a@x.org' });
    // No address in the ID token: a stray email_verified there does not vouch for UserInfo's address.
    const uiEmail = withUserInfo({ sub: 's', email_verified: true }, { sub: 's', email: 'b@x.org', email_verified: false });
    expect(portalUserFromClaims(uiEmail).names).toEqual(['s']);
    // Cognito's UserInfo sends "true" as a string.
    expect(portalUserFromClaims(withUserInfo({ sub: 's' }, { sub: 's', email: 'b@x.org', email_verified: 'true', groups: ['g'] }))).toMatchObject({
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
