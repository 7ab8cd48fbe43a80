import { describe, expect, it } from 'vitest';
import { authNoXml, authYesXml, escapeXml } from '../../lambda/core/tokens/auth-xml';
import { connectLinks, parseGatewayUrl } from '../../lambda/core/tokens/connect-links';
import { parseDurationSeconds } from '../../lambda/core/tokens/duration';
import { hashToken, isTokenFormat, isTokenHash, mintToken, tokenIdOf } from '../../lambda/core/tokens/token';
import { parseTokenState } from '../../lambda/core/tokens/token-grant';

describe('minting and hashing', () => {
  it('mints 256-bit URL-safe tokens, all different', () => {
    const tokens = Array.from({ length: 2000 }, mintToken);
    for (const token of tokens) {
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(token, 'base64url')).toHaveLength(32);
      expect(isTokenFormat(token)).toBe(true);
    }
    expect(new Set(tokens).size).toBe(tokens.length);
  });

  it('hashes with SHA-256 to 64 lower-case hex characters, deterministically', () => {
    // Known answer: sha256("abc").
    expect(hashToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const token = mintToken();
    expect(hashToken(token)).toBe(hashToken(token));
    expect(isTokenHash(hashToken(token))).toBe(true);
    expect(hashToken(token)).not.toContain(token);
    expect(tokenIdOf(hashToken('abc'))).toBe('ba7816bf8f01');
  });

  it.each([
    ['too short', 'abc'],
    ['padding', `${'A'.repeat(42)}=`],
    ['a space', `${'A'.repeat(30)} B`],
    ['a percent sign', `${'A'.repeat(30)}%41`],
    ['too long', 'A'.repeat(257)],
    ['empty', ''],
  ])('refuses a token with %s before any store is asked', (_name, value) => {
    expect(isTokenFormat(value)).toBe(false);
  });
});

describe('the verifier’s XML', () => {
  it('is exactly the DCV server’s yes and no', () => {
    expect(authYesXml('alice')).toBe('<auth result="yes"><username>alice</username></auth>');
    expect(authNoXml('token expired')).toBe('<auth result="no"><message>token expired</message></auth>');
  });

  it.each([
    ['markup', '<b>&"\'', '&lt;b&gt;&amp;&quot;&apos;'],
    ['an entity that is already escaped is escaped again', '&amp;', '&amp;amp;'],
    ['a closing tag injection', 'x</username><username>root', 'x&lt;/username&gt;&lt;username&gt;root'],
    ['control characters XML forbids', 'a\u0000b\u001fc', 'a\uFFFDb\uFFFDc'],
    ['tab and newline are kept', 'a\tb\nc', 'a\tb\nc'],
    ['a lone surrogate', 'a\ud800b', 'a\uFFFDb'],
    ['a valid surrogate pair is kept', 'a😀b', 'a😀b'],
    ['non-ASCII names', 'Zoë 山田', 'Zoë 山田'],
  ])('escapes %s', (_name, input, expected) => {
    expect(escapeXml(input)).toBe(expected);
  });
});

describe('durations', () => {
  it.each([
    ['90s', 90],
    ['10m', 600],
    ['2h', 7200],
    ['1d', 86400],
    ['45', 45],
    [' 5m ', 300],
  ])('%s is %i seconds', (text, seconds) => {
    expect(parseDurationSeconds(text)).toBe(seconds);
  });

  it.each(['', '0', '0m', '-5m', '1.5h', '10 m', '10M', '1w', 'ten', '99999999'])('refuses %j', (text) => {
    expect(parseDurationSeconds(text)).toBeUndefined();
  });
});

describe('connect links', () => {
  const TOKEN = 'ywt_ievnZvMj6-qrpSZkI2MSIMU8QeCvRCZjYgph0jE';

  it('puts the token in the query and the session in the fragment, for browsers and the native client', () => {
    expect(connectLinks('https://gw.example.com:8443', TOKEN, 'agent1')).toEqual({
      url: `https://gw.example.com:8443/?authToken=${TOKEN}#agent1`,
      nativeUrl: `dcv://gw.example.com:8443/?authToken=${TOKEN}#agent1`,
    });
  });

  it.each([
    ['a trailing slash', 'https://gw.example.com:8443/', 'https://gw.example.com:8443'],
    ['no port', 'https://gw.example.com', 'https://gw.example.com'],
    ['the default port', 'https://gw.example.com:443', 'https://gw.example.com'],
    ['a path', 'https://gw.example.com/dcv/', 'https://gw.example.com/dcv'],
    ['an IPv6 literal', 'https://[2001:db8::1]:8443', 'https://[2001:db8::1]:8443'],
    ['upper-case host', 'https://GW.Example.COM:8443', 'https://gw.example.com:8443'],
  ])('normalizes a gateway URL with %s', (_name, input, expected) => {
    expect(parseGatewayUrl(input)).toBe(expected);
  });

  it.each([
    ['without a scheme', 'gw.example.com:8443', "gateway URL 'gw.example.com:8443' must start with https://"],
    ['not a URL', 'https://exa mple.com', 'is not a URL'],
    ['another scheme', 'ftp://gw.example.com', 'must start with https://'],
    ['the dcv scheme', 'dcv://gw.example.com:8443', 'must start with https://'],
    ['credentials', 'https://u:p@gw.example.com', 'user name or password'],
    ['a query', 'https://gw.example.com/?a=1', 'query or a fragment'],
    ['a fragment', 'https://gw.example.com/#x', 'query or a fragment'],
  ])('refuses a gateway URL that is %s', (_name, input, message) => {
    expect(() => parseGatewayUrl(input)).toThrow(message);
  });

  it('percent-encodes a session id only when a fragment cannot carry it as it is', () => {
    expect(connectLinks('https://gw', TOKEN, 'i-0abc:console').url).toMatch(/#i-0abc:console$/);
    expect(connectLinks('https://gw', TOKEN, 'my desk#2').url).toMatch(/#my%20desk%232$/);
    expect(connectLinks('https://gw', TOKEN, 'bureau-é').nativeUrl).toMatch(/^dcv:\/\/gw\/\?authToken=.*#bureau-%C3%A9$/);
  });
});

describe('stored token state', () => {
  const GOOD = {
    hash: hashToken('x'),
    sessionId: 'agent1',
    user: 'alice',
    expiresAt: 1_800_000_000,
    maxUses: 3,
    usesLeft: 2,
    createdAt: '2026-11-26T00:00:00.000Z',
  };

  it('accepts a well-formed state, with optional CIDRs and revocation', () => {
    expect(parseTokenState(GOOD)).toEqual({ ok: true, state: GOOD });
    const full = { ...GOOD, clientCidrs: ['203.0.113.0/24', '2001:db8::/32'], groups: ['ops', 'Équipe A'], revokedAt: '2026-11-26T00:01:00.000Z' };
    expect(parseTokenState(full)).toEqual({ ok: true, state: full });
  });

  it.each([
    ['hash', { hash: 'ABC' }, 'hash must be 64 lower-case hex characters'],
    ['sessionId', { sessionId: '' }, 'sessionId is missing or invalid'],
    ['sessionId', { sessionId: 'a\u0007' }, 'sessionId is missing or invalid'],
    ['user', { user: undefined }, 'user is missing or invalid'],
    ['user', { user: 'x'.repeat(257) }, 'user is missing or invalid'],
    ['expiresAt', { expiresAt: '1800000000' }, 'expiresAt must be epoch seconds'],
    ['expiresAt', { expiresAt: Number.NaN }, 'expiresAt must be epoch seconds'],
    ['maxUses', { maxUses: 0 }, 'maxUses must be a positive integer'],
    ['usesLeft', { usesLeft: '2' }, 'usesLeft must be a non-negative integer'],
    ['usesLeft', { usesLeft: -1 }, 'usesLeft must be a non-negative integer'],
    ['usesLeft', { usesLeft: 1.5 }, 'usesLeft must be a non-negative integer'],
    ['clientCidrs', { clientCidrs: ['nope'] }, 'clientCidrs must be a list of CIDRs'],
    ['clientCidrs', { clientCidrs: '203.0.113.0/24' }, 'clientCidrs must be a list of CIDRs'],
    ['groups', { groups: 'ops' }, 'groups must be a list of group names'],
    ['groups', { groups: ['ops', 7] }, 'groups must be a list of group names (strings)'],
    ['groups', { groups: ['ops', ''] }, "groups entry '' must not be empty"],
    ['groups', { groups: ['o\nps'] }, "groups entry 'o\nps' must not contain control characters"],
    ['groups', { groups: ['ops '] }, "groups entry 'ops ' must not start or end with a space"],
    ['groups', { groups: ['g'.repeat(257)] }, `groups entry '${'g'.repeat(64)}' must be at most 256 characters`],
    ['groups', { groups: Array.from({ length: 101 }, (_, i) => `g${i}`) }, 'groups must have at most 100 entries'],
    ['createdAt', { createdAt: 5 }, 'createdAt must be an ISO time'],
    ['revokedAt', { revokedAt: true }, 'revokedAt must be an ISO time'],
  ])('refuses a bad %s, naming it', (_field, change, reason) => {
    expect(parseTokenState({ ...GOOD, ...change })).toEqual({ ok: false, reason });
  });
});
