import { describe, expect, it } from 'vitest';
import {
  buildManualItem,
  itemProblem,
  parseExpiresAt,
  problemFromReason,
  sameItem,
  unstorableAttribute,
  type PutFlags,
} from '../../lambda/core/session-admin';
import { parseSessionRecord } from '../../lambda/core/session-record';

const NOW = Date.UTC(2026, 10, 26, 12, 0, 0); // 2026-11-26T12:00:00Z
const NOW_S = NOW / 1000;

describe('buildManualItem', () => {
  const base: PutFlags = { sessionId: 'console', endpoint: '10.150.248.180' };

  it('writes the defaults out, Source = manual and UpdatedAt = now', () => {
    const result = buildManualItem(base, NOW);
    expect(result).toEqual({
      ok: true,
      item: {
        SessionId: 'console',
        DcvServerEndpoint: '10.150.248.180',
        HttpPort: 8443,
        WebUrlPath: '/',
        Enabled: true,
        Source: 'manual',
        UpdatedAt: '2026-11-26T12:00:00.000Z',
      },
    });
  });

  it('maps every flag to its attribute, with ports as numbers', () => {
    const result = buildManualItem(
      {
        ...base,
        endpoint: ' dcv-1.example.internal ',
        port: '9443',
        quicPort: '9444',
        webUrlPath: '/dcv',
        target: 'console-0',
        allowedClientCidrs: ['10.0.0.0/8,192.168.1.0/24', '2001:db8::/32'],
        expiresAt: '+1h30m',
        disabled: true,
      },
      NOW,
    );
    expect(result.ok && result.item).toEqual({
      SessionId: 'console',
      DcvServerEndpoint: 'dcv-1.example.internal',
      HttpPort: 9443,
      QuicPort: 9444,
      WebUrlPath: '/dcv',
      TargetSessionId: 'console-0',
      Enabled: false,
      AllowedClientCidrs: ['10.0.0.0/8', '192.168.1.0/24', '2001:db8::/32'],
      ExpiresAt: NOW_S + 5400,
      Source: 'manual',
      UpdatedAt: '2026-11-26T12:00:00.000Z',
    });
    // What put writes, the resolver reads.
    expect(result.ok && parseSessionRecord(result.item).ok).toBe(true);
  });

  it('portal flags: names trimmed, comma lists and repeats joined, empty entries dropped; pool trimmed', () => {
    const result = buildManualItem({ ...base, allowedUsers: [' alice@example.com , bob', 'carol,'], allowedGroups: ['ops'], pool: ' gpu ' }, NOW);
    expect(result.ok && result.item).toMatchObject({ AllowedUsers: ['alice@example.com', 'bob', 'carol'], AllowedGroups: ['ops'], Pool: 'gpu' });
    expect(result.ok && parseSessionRecord(result.item).ok).toBe(true);
    // Left out, they are not written (put writes the whole item: that is how an attribute is cleared).
    const plain = buildManualItem(base, NOW);
    expect(plain.ok && Object.keys(plain.item)).not.toEqual(expect.arrayContaining(['AllowedUsers']));
    expect(plain.ok && ['AllowedUsers', 'AllowedGroups', 'Pool'].some((k) => k in plain.item)).toBe(false);
  });

  it('--dcv-user: DcvUser trimmed as the tag is; left out, not written', () => {
    const result = buildManualItem({ ...base, dcvUser: ' CORP\\Administrator ' }, NOW);
    expect(result.ok && result.item.DcvUser).toBe('CORP\\Administrator');
    expect(result.ok && parseSessionRecord(result.item).ok).toBe(true);
    const plain = buildManualItem(base, NOW);
    expect(plain.ok && 'DcvUser' in plain.item).toBe(false);
  });

  it.each([
    ['empty id', { sessionId: '' }, 'ID (SessionId) must not be empty'],
    ['id too long', { sessionId: 'x'.repeat(257) }, 'ID (SessionId) must be at most 256 characters'],
    ['control character in id', { sessionId: 'a\u0007b' }, 'ID (SessionId) must not contain control characters'],
    ['endpoint with a space', { endpoint: 'bad host' }, '--endpoint (DcvServerEndpoint) must be a host name or an IP address'],
    ['port 0', { port: '0' }, '--port (HttpPort) must be 1–65535'],
    ['port 70000', { port: '70000' }, '--port (HttpPort) must be 1–65535'],
    ['port not a number', { port: 'https' }, '--port (HttpPort) must be an integer 1–65535'],
    ['quic port not a number', { quicPort: '1.5' }, '--quic-port (QuicPort) must be an integer 1–65535'],
    ['path without slash', { webUrlPath: 'dcv' }, "--web-url-path (WebUrlPath) must start with '/'"],
    ['path with a space', { webUrlPath: '/a b' }, '--web-url-path (WebUrlPath) must not contain spaces or control characters'],
    ['empty target', { target: '' }, '--target (TargetSessionId) must not be empty'],
    ['bad CIDR', { allowedClientCidrs: ['10.0.0.0/33'] }, "--allowed-client-cidr (AllowedClientCidrs) '10.0.0.0/33' is not a CIDR"],
    ['no user names', { allowedUsers: [' , '] }, '--allowed-users (AllowedUsers) must name at least one entry (remove the attribute to name none)'],
    ['a user name with a control character', { allowedUsers: ['alice,b\u0007ob'] }, "--allowed-users (AllowedUsers) entry 'b\u0007ob' must not contain control characters"],
    ['a user name too long', { allowedUsers: ['u'.repeat(257)] }, `--allowed-users (AllowedUsers) entry '${'u'.repeat(64)}' must be at most 256 characters`],
    ['101 groups', { allowedGroups: [Array.from({ length: 101 }, (_, i) => `g${i}`).join(',')] }, '--allowed-groups (AllowedGroups) must have at most 100 entries'],
    ['no group names', { allowedGroups: [''] }, '--allowed-groups (AllowedGroups) must name at least one entry (remove the attribute to name none)'],
    ['a bad pool name', { pool: 'gpu pool' }, "--pool (Pool) must be 1–64 letters, digits, '.', '_' or '-' (starting with a letter or digit)"],
    ['an empty DCV user', { dcvUser: '  ' }, '--dcv-user (DcvUser) must not be empty'],
    ['a DCV user with a control character', { dcvUser: 'ubu\u0000ntu' }, '--dcv-user (DcvUser) must not contain control characters'],
    ['a DCV user too long', { dcvUser: 'u'.repeat(257) }, '--dcv-user (DcvUser) must be at most 256 characters'],
    ['an empty pool name', { pool: ' ' }, "--pool (Pool) must be 1–64 letters, digits, '.', '_' or '-' (starting with a letter or digit)"],
    ['past expiry', { expiresAt: '2020-01-01' }, "--expires-at (ExpiresAt) must be in the future ('2020-01-01' has passed; use disable or rm instead)"],
  ])('%s: names the flag, the attribute and the rule', (_name, change, message) => {
    const result = buildManualItem({ ...base, ...change }, NOW);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(`${result.problem.field} ${result.problem.rule}`).toBe(message);
  });
});

describe('parseExpiresAt', () => {
  it.each([
    ['+30s', NOW_S + 30],
    ['+8h', NOW_S + 8 * 3600],
    ['+1d12h', NOW_S + 36 * 3600],
    ['+2w', NOW_S + 14 * 86_400],
    ['2026-12-01', Date.UTC(2026, 11, 1) / 1000],
    ['2026-12-01T18:00:00Z', Date.UTC(2026, 11, 1, 18) / 1000],
    ['2026-12-01T18:00Z', Date.UTC(2026, 11, 1, 18) / 1000],
    ['2026-12-01T19:00:00+01:00', Date.UTC(2026, 11, 1, 18) / 1000],
    ['2026-12-01T18:00:00.250Z', Date.UTC(2026, 11, 1, 18) / 1000 + 1],
  ])('%s → %d', (text, expected) => {
    expect(parseExpiresAt(text, NOW)).toEqual({ ok: true, epochSeconds: expected });
  });

  it.each([
    ['8h', /must be \+DURATION/],
    ['+8', /must be \+DURATION/],
    ['+0h', /longer than zero/],
    ['2026-12-01T18:00:00', /must be \+DURATION/], // no zone: would depend on the host
    ['2026-13-01', /is not a real date/],
    ['tomorrow', /must be \+DURATION/],
    ['2026-11-26T12:00:00Z', /must be in the future/],
  ])('%s is refused', (text, rule) => {
    const result = parseExpiresAt(text, NOW);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.rule).toMatch(rule);
  });
});

describe('itemProblem', () => {
  it.each([
    [{ SessionId: 'a', DcvServerEndpoint: 'h' }, undefined],
    [{ SessionId: 'a', DcvServerEndpoint: 'h', HttpPort: '8443' }, undefined],
    [{ SessionId: 'a' }, { field: 'DcvServerEndpoint', rule: 'is required' }],
    [{ SessionId: 'a', DcvServerEndpoint: 'h', Enabled: 'false' }, { field: 'Enabled', rule: 'must be a boolean (BOOL)' }],
    [{ SessionId: 'a', DcvServerEndpoint: 'h', Source: 'cli' }, { field: 'Source', rule: "must be 'manual', 'ec2' or 'lease'" }],
    [{ SessionId: 'a', DcvServerEndpoint: 'h', Note: { nested: 1 } }, { field: 'Note', rule: expect.stringContaining('must be a string') }],
    [{ SessionId: 'a', DcvServerEndpoint: 'h', Tags: [1, 2] }, { field: 'Tags', rule: expect.stringContaining('list of strings') }],
  ])('%j → %j', (item, problem) => {
    expect(itemProblem(item)).toEqual(problem);
  });

  it('storable values: strings, finite numbers, booleans, null, lists of strings', () => {
    expect(unstorableAttribute({ a: 's', b: 1, c: true, d: null, e: ['x'] })).toBeUndefined();
    expect(unstorableAttribute({ n: Infinity })?.field).toBe('n');
  });

  it('splits the resolver reason into attribute and rule', () => {
    expect(problemFromReason('HttpPort must be 1–65535')).toEqual({ field: 'HttpPort', rule: 'must be 1–65535' });
  });
});

describe('sameItem', () => {
  it.each([
    [{ a: 1, b: 'x' }, { b: 'x', a: 1 }, true],
    [{ a: 1 }, { a: '1' }, false],
    [{ a: ['x', 'y'] }, { a: ['y', 'x'] }, false],
    [{ a: 1 }, { a: 1, b: null }, false],
  ])('%j vs %j → %s', (a, b, same) => {
    expect(sameItem(a, b)).toBe(same);
  });
});
