import { describe, expect, it } from 'vitest';
import { parseIp } from '../../lambda/core/ip';
import {
  Attr,
  DEFAULT_HTTP_PORT,
  DEFAULT_WEB_URL_PATH,
  hasControlChars,
  isHostDown,
  MAX_PRINCIPAL_LENGTH,
  MAX_PRINCIPALS,
  MAX_SESSION_ID_LENGTH,
  POOL_NAME,
  principalProblem,
  parseSessionRecord,
  type RawItem,
  type SessionRecord,
} from '../../lambda/core/session-record';

const base = { SessionId: 'console', DcvServerEndpoint: '10.0.1.15' } as const;

function record(item: RawItem): SessionRecord {
  const result = parseSessionRecord(item);
  if (!result.ok) throw new Error(`expected a valid item, got: ${result.reason}`);
  return result.record;
}

describe('attribute names', () => {
  it('are exactly the names operators type in the console', () => {
    expect(Object.values(Attr)).toEqual([
      'SessionId',
      'DcvServerEndpoint',
      'HttpPort',
      'QuicPort',
      'WebUrlPath',
      'TargetSessionId',
      'Enabled',
      'AllowedClientCidrs',
      'ExpiresAt',
      'Source',
      'InstanceId',
      'InstanceState',
      'UpdatedAt',
      'DiscoveredHash',
      'AllowedUsers',
      'AllowedGroups',
      'Pool',
      'LeaseUser',
      'DcvUser',
      'AutoStopMinutes',
      'StartOnConnect',
      'Schedule',
      'LastVerifiedAt',
      'PowerStartAt',
      'PowerStopAt',
      'ScheduleStartAt',
      'IdleSince',
    ]);
    for (const [key, value] of Object.entries(Attr)) expect(key).toBe(value);
  });

  it('power runtime attributes never make an item malformed, whatever their value (they are bookkeeping)', () => {
    const junk = { LastVerifiedAt: 42, PowerStartAt: 'yesterday', PowerStopAt: null, ScheduleStartAt: ['x'], IdleSince: '' };
    expect(record({ ...base, ...junk })).toEqual(record({ ...base }));
  });
});

describe('parseSessionRecord: defaults', () => {
  it('fills every default of the contract for a minimal item', () => {
    const r = record({ ...base });
    expect(r).toEqual({
      sessionId: 'console',
      dcvServerEndpoint: '10.0.1.15',
      httpPort: DEFAULT_HTTP_PORT,
      quicPort: undefined,
      webUrlPath: DEFAULT_WEB_URL_PATH,
      targetSessionId: 'console',
      enabled: true,
      allowedClientCidrs: undefined,
      expiresAt: undefined,
      source: 'manual',
      instanceId: undefined,
      instanceState: undefined,
      updatedAt: undefined,
    });
    expect(DEFAULT_HTTP_PORT).toBe(8443);
    expect(DEFAULT_WEB_URL_PATH).toBe('/');
  });

  it('keeps every attribute of a full item', () => {
    const r = record({
      SessionId: 'i-0abc123',
      DcvServerEndpoint: 'dcv-1.example.internal',
      HttpPort: 443,
      QuicPort: 4443,
      WebUrlPath: '/dcv',
      TargetSessionId: 'console',
      Enabled: true,
      AllowedClientCidrs: ['203.0.113.0/24', '2001:db8::/32'],
      ExpiresAt: 1_900_000_000,
      Source: 'ec2',
      InstanceId: 'i-0abc123',
      InstanceState: 'running',
      UpdatedAt: '2025-02-03T10:15:30Z',
    });
    expect(r).toMatchObject({
      sessionId: 'i-0abc123',
      dcvServerEndpoint: 'dcv-1.example.internal',
      httpPort: 443,
      quicPort: 4443,
      webUrlPath: '/dcv',
      targetSessionId: 'console',
      enabled: true,
      expiresAt: 1_900_000_000,
      source: 'ec2',
      instanceId: 'i-0abc123',
      instanceState: 'running',
      updatedAt: '2025-02-03T10:15:30Z',
    });
    expect(r.allowedClientCidrs?.contains(parseIp('203.0.113.9')!)).toBe(true);
    expect(r.allowedClientCidrs?.contains(parseIp('2001:db8:5::1')!)).toBe(true);
    expect(r.allowedClientCidrs?.contains(parseIp('198.51.100.1')!)).toBe(false);
  });

  it('treats null attributes (DynamoDB NULL, console-cleared) as absent', () => {
    const r = record({ ...base, HttpPort: null, QuicPort: null, WebUrlPath: null, TargetSessionId: null, Enabled: null, AllowedClientCidrs: null, ExpiresAt: null, Source: null });
    expect(r).toMatchObject({ httpPort: 8443, quicPort: undefined, webUrlPath: '/', targetSessionId: 'console', enabled: true, source: 'manual' });
    expect(r.allowedClientCidrs).toBeUndefined();
    expect(r.expiresAt).toBeUndefined();
  });

  it('does not modify the item it was given', () => {
    const item = { ...base, QuicPort: null };
    record(item);
    expect(item).toEqual({ ...base, QuicPort: null });
  });
});

describe('parseSessionRecord: accepted spellings', () => {
  it.each([
    ['HttpPort as a number', { HttpPort: 8443 }, { httpPort: 8443 }],
    ['HttpPort as a numeric string', { HttpPort: '8443' }, { httpPort: 8443 }],
    ['HttpPort as a padded numeric string', { HttpPort: ' 8443 ' }, { httpPort: 8443 }],
    ['HttpPort with a leading zero', { HttpPort: '08443' }, { httpPort: 8443 }],
    ['HttpPort 1 (lowest)', { HttpPort: 1 }, { httpPort: 1 }],
    ['HttpPort 65535 (highest)', { HttpPort: '65535' }, { httpPort: 65535 }],
    ['QuicPort as a numeric string', { QuicPort: '4443' }, { quicPort: 4443 }],
    ['ExpiresAt as a numeric string', { ExpiresAt: '1900000000' }, { expiresAt: 1_900_000_000 }],
    ['ExpiresAt with a fraction', { ExpiresAt: 1_900_000_000.5 }, { expiresAt: 1_900_000_000.5 }],
    ['Enabled false', { Enabled: false }, { enabled: false }],
    ['an endpoint with surrounding spaces', { DcvServerEndpoint: ' 10.0.1.15 ' }, { dcvServerEndpoint: '10.0.1.15' }],
    ['an IPv6 endpoint', { DcvServerEndpoint: '2001:db8::15' }, { dcvServerEndpoint: '2001:db8::15' }],
    ['a DNS name endpoint', { DcvServerEndpoint: 'ip-10-0-1-15.ec2.internal' }, { dcvServerEndpoint: 'ip-10-0-1-15.ec2.internal' }],
    ['a fully-qualified endpoint with a trailing dot', { DcvServerEndpoint: 'dcv.example.com.' }, { dcvServerEndpoint: 'dcv.example.com.' }],
    ['a nested WebUrlPath', { WebUrlPath: '/team-a/dcv/' }, { webUrlPath: '/team-a/dcv/' }],
    ['Source ec2', { Source: 'ec2' }, { source: 'ec2' }],
    ['a SessionId of exactly 256 characters', { SessionId: 's'.repeat(256) }, { sessionId: 's'.repeat(256) }],
    ['unknown extra attributes', { Owner: 'alice', Notes: 'x' }, { sessionId: 'console' }],
  ] as const)('%s', (_name, attributes, expected) => {
    expect(record({ ...base, ...attributes })).toMatchObject(expected);
  });

  it('accepts a single-address CIDR and an empty allow-list (which admits nobody)', () => {
    const single = record({ ...base, AllowedClientCidrs: ['203.0.113.7'] }).allowedClientCidrs!;
    expect(single.contains(parseIp('203.0.113.7')!)).toBe(true);
    expect(single.contains(parseIp('203.0.113.8')!)).toBe(false);
    const empty = record({ ...base, AllowedClientCidrs: [] }).allowedClientCidrs!;
    expect(empty).toBeDefined();
    expect(empty.contains(parseIp('203.0.113.7')!)).toBe(false);
  });
});

describe('parseSessionRecord: malformed items name the attribute and the problem', () => {
  it.each([
    ['no endpoint', { DcvServerEndpoint: undefined }, 'DcvServerEndpoint is required'],
    ['a NULL endpoint', { DcvServerEndpoint: null }, 'DcvServerEndpoint is required'],
    ['an empty endpoint', { DcvServerEndpoint: '' }, 'DcvServerEndpoint must be a host name or an IP address'],
    ['an endpoint with a space', { DcvServerEndpoint: 'dcv host' }, 'DcvServerEndpoint must be a host name or an IP address'],
    ['an endpoint with a port', { DcvServerEndpoint: 'dcv.example.com:8443' }, 'DcvServerEndpoint must be a host name or an IP address'],
    ['an endpoint URL', { DcvServerEndpoint: 'https://dcv.example.com' }, 'DcvServerEndpoint must be a host name or an IP address'],
    ['an endpoint with a newline', { DcvServerEndpoint: 'dcv\nexample' }, 'DcvServerEndpoint must be a host name or an IP address'],
    ['a numeric endpoint', { DcvServerEndpoint: 10 }, expect.stringMatching(/^DcvServerEndpoint .*string/)],
    ['HttpPort 0', { HttpPort: 0 }, 'HttpPort must be 1–65535'],
    ['HttpPort 65536', { HttpPort: 65536 }, 'HttpPort must be 1–65535'],
    ['HttpPort "70000"', { HttpPort: '70000' }, 'HttpPort must be 1–65535'],
    ['HttpPort -1', { HttpPort: -1 }, 'HttpPort must be 1–65535'],
    ['HttpPort 1.5', { HttpPort: 1.5 }, 'HttpPort must be an integer'],
    ['HttpPort "8443.0"', { HttpPort: '8443.0' }, 'HttpPort must be an integer 1–65535'],
    ['HttpPort "https"', { HttpPort: 'https' }, 'HttpPort must be an integer 1–65535'],
    ['HttpPort ""', { HttpPort: '' }, 'HttpPort must be an integer 1–65535'],
    ['HttpPort true', { HttpPort: true }, 'HttpPort must be an integer 1–65535'],
    ['QuicPort 0', { QuicPort: 0 }, 'QuicPort must be 1–65535'],
    ['QuicPort "udp"', { QuicPort: 'udp' }, 'QuicPort must be an integer 1–65535'],
    ['WebUrlPath without a leading slash', { WebUrlPath: 'dcv' }, "WebUrlPath must start with '/'"],
    ['an empty WebUrlPath', { WebUrlPath: '' }, "WebUrlPath must start with '/'"],
    ['a WebUrlPath with a space', { WebUrlPath: '/my dcv' }, 'WebUrlPath must not contain spaces or control characters'],
    ['a WebUrlPath with a control character', { WebUrlPath: '/dcv\u0007' }, 'WebUrlPath must not contain spaces or control characters'],
    ['a WebUrlPath over 1024 characters', { WebUrlPath: `/${'p'.repeat(1024)}` }, 'WebUrlPath must be at most 1024 characters'],
    ['Enabled as the string "false"', { Enabled: 'false' }, 'Enabled must be a boolean (BOOL)'],
    ['Enabled as 0', { Enabled: 0 }, 'Enabled must be a boolean (BOOL)'],
    ['a CIDR that is not one', { AllowedClientCidrs: ['10.0.0.0/8', 'office'] }, "AllowedClientCidrs 'office' is not a CIDR"],
    ['a CIDR with a prefix too long', { AllowedClientCidrs: ['10.0.0.0/33'] }, "AllowedClientCidrs '10.0.0.0/33' is not a CIDR"],
    ['AllowedClientCidrs as a plain string', { AllowedClientCidrs: '10.0.0.0/8' }, expect.stringMatching(/^AllowedClientCidrs .*array/)],
    ['ExpiresAt as a date string', { ExpiresAt: '2030-01-01' }, 'ExpiresAt must be epoch seconds'],
    ['a negative ExpiresAt', { ExpiresAt: -1 }, expect.stringMatching(/^ExpiresAt /)],
    ['an unknown Source', { Source: 'terraform' }, "Source must be 'manual', 'ec2' or 'lease'"],
    ['no SessionId', { SessionId: undefined }, 'SessionId is required'],
    ['an empty SessionId', { SessionId: '' }, 'SessionId must not be empty'],
    ['a SessionId of 257 characters', { SessionId: 's'.repeat(257) }, 'SessionId must be at most 256 characters'],
    ['a SessionId with a control character', { SessionId: 'con\u0000sole' }, 'SessionId must not contain control characters'],
    ['an empty TargetSessionId', { TargetSessionId: '' }, 'TargetSessionId must not be empty'],
    ['a TargetSessionId with a control character', { TargetSessionId: 'con\tsole' }, 'TargetSessionId must not contain control characters'],
    ['a TargetSessionId of 257 characters', { TargetSessionId: 't'.repeat(257) }, 'TargetSessionId must be at most 256 characters'],
  ] as const)('%s', (_name, attributes, reason) => {
    const item: RawItem = { ...base, ...attributes };
    for (const key of Object.keys(item)) if (item[key] === undefined) delete item[key];
    expect(parseSessionRecord(item)).toEqual({ ok: false, reason });
  });
});

describe('hasControlChars', () => {
  it.each([
    ['plain text', 'console', false],
    ['unicode letters', 'sessão-東京', false],
    ['a space', 'my session', false],
    ['NUL', 'a\u0000b', true],
    ['tab', 'a\tb', true],
    ['newline', 'a\nb', true],
    ['unit separator (end of C0)', 'a\u001fb', true],
    ['DEL', 'a\u007fb', true],
    ['a C1 control', 'a\u0085b', true],
    ['end of C1', 'a\u009fb', true],
    ['first character after C1', 'a\u00a0b', false],
  ])('%s -> %s', (_name, value, expected) => {
    expect(hasControlChars(value)).toBe(expected);
  });

  it('bounds session ids at 256 characters', () => {
    expect(MAX_SESSION_ID_LENGTH).toBe(256);
  });
});

describe('parseSessionRecord: portal attributes (AllowedUsers, AllowedGroups, Pool, LeaseUser)', () => {
  it('keeps them on the record, and leaves them off when absent', () => {
    const r = record({
      ...base,
      AllowedUsers: ['alice@example.com', 'bob'],
      AllowedGroups: ['ops'],
      Pool: 'gpu-a.1_x',
      Source: 'lease',
      LeaseUser: 'alice@example.com',
    });
    expect(r).toMatchObject({ allowedUsers: ['alice@example.com', 'bob'], allowedGroups: ['ops'], pool: 'gpu-a.1_x', source: 'lease', leaseUser: 'alice@example.com' });
    const plain = record({ ...base });
    for (const key of ['allowedUsers', 'allowedGroups', 'pool', 'leaseUser']) expect(plain).not.toHaveProperty(key);
    // NULL (console-cleared) is absent too.
    expect(record({ ...base, AllowedUsers: null, AllowedGroups: null, Pool: null, LeaseUser: null })).not.toHaveProperty('allowedUsers');
  });

  it(`accepts exactly ${MAX_PRINCIPALS} entries of up to ${MAX_PRINCIPAL_LENGTH} characters, and unicode names`, () => {
    const names = Array.from({ length: MAX_PRINCIPALS }, (_, i) => `${'u'.repeat(MAX_PRINCIPAL_LENGTH - 3)}${String(i).padStart(3, '0')}`);
    expect(record({ ...base, AllowedUsers: names }).allowedUsers).toEqual(names);
    expect(record({ ...base, AllowedGroups: ['Équipe 東京'] }).allowedGroups).toEqual(['Équipe 東京']);
  });

  it.each([
    ['AllowedUsers as a plain string', { AllowedUsers: 'alice' }, 'AllowedUsers must be an array (L or SS) of strings, not string'],
    ['AllowedGroups as a number', { AllowedGroups: 7 }, 'AllowedGroups must be an array (L or SS) of strings, not number'],
    ['AllowedUsers as a map', { AllowedUsers: { alice: true } }, 'AllowedUsers must be an array (L or SS) of strings, not object'],
    ['AllowedUsers with a number', { AllowedUsers: ['alice', 42] }, 'AllowedUsers must be an array of strings, not one with a number'],
    ['AllowedGroups with a nested list', { AllowedGroups: [['ops']] }, 'AllowedGroups must be an array of strings, not one with a array'],
    ['AllowedGroups with null', { AllowedGroups: ['ops', null] }, 'AllowedGroups must be an array of strings, not one with a null'],
    ['an empty AllowedUsers list', { AllowedUsers: [] }, 'AllowedUsers must name at least one entry (remove the attribute to name none)'],
    ['an empty AllowedGroups list', { AllowedGroups: [] }, 'AllowedGroups must name at least one entry (remove the attribute to name none)'],
    ['an empty user name', { AllowedUsers: ['alice', ''] }, "AllowedUsers entry '' must not be empty"],
    ['a blank group name', { AllowedGroups: ['  '] }, "AllowedGroups entry '  ' must not be empty"],
    [
      'a user name over 256 characters',
      { AllowedUsers: ['a'.repeat(MAX_PRINCIPAL_LENGTH + 1)] },
      `AllowedUsers entry '${'a'.repeat(64)}' must be at most 256 characters`,
    ],
    ['a user name with a newline', { AllowedUsers: ['alice\nbob'] }, "AllowedUsers entry 'alice\nbob' must not contain control characters"],
    ['a group name with a C1 control', { AllowedGroups: ['ops\u0085'] }, "AllowedGroups entry 'ops\u0085' must not contain control characters"],
    ['101 users', { AllowedUsers: Array.from({ length: 101 }, (_, i) => `u${i}`) }, 'AllowedUsers must have at most 100 entries'],
    ['101 groups', { AllowedGroups: Array.from({ length: 101 }, (_, i) => `g${i}`) }, 'AllowedGroups must have at most 100 entries'],
    ['Pool as a number', { Pool: 5 }, 'Pool must be a string, not number'],
    ['an empty Pool', { Pool: '' }, "Pool must be 1–64 letters, digits, '.', '_' or '-' (starting with a letter or digit)"],
    ['a Pool with a space', { Pool: 'gpu pool' }, "Pool must be 1–64 letters, digits, '.', '_' or '-' (starting with a letter or digit)"],
    ['a Pool starting with a dash', { Pool: '-gpu' }, "Pool must be 1–64 letters, digits, '.', '_' or '-' (starting with a letter or digit)"],
    ['a Pool with a colon', { Pool: 'lease:gpu' }, "Pool must be 1–64 letters, digits, '.', '_' or '-' (starting with a letter or digit)"],
    ['a Pool of 65 characters', { Pool: 'p'.repeat(65) }, "Pool must be 1–64 letters, digits, '.', '_' or '-' (starting with a letter or digit)"],
    ['LeaseUser as a list', { LeaseUser: ['alice'] }, 'LeaseUser must be a string, not array'],
    ['an empty LeaseUser', { LeaseUser: '' }, 'LeaseUser must not be empty'],
    ['a LeaseUser of 257 characters', { LeaseUser: 'l'.repeat(257) }, 'LeaseUser must be at most 256 characters'],
    ['a LeaseUser with a tab', { LeaseUser: 'al\tice' }, 'LeaseUser must not contain control characters'],
    ['a user name with a trailing space (console typo)', { AllowedUsers: ['alice '] }, "AllowedUsers entry 'alice ' must not start or end with a space"],
    ['a group name with a leading space', { AllowedGroups: [' ops'] }, "AllowedGroups entry ' ops' must not start or end with a space"],
  ] as const)('%s', (_name, attributes, reason) => {
    expect(parseSessionRecord({ ...base, ...attributes })).toEqual({ ok: false, reason });
  });

  it('checks them after the older attributes, in the order AllowedUsers, AllowedGroups, Pool, LeaseUser', () => {
    expect(parseSessionRecord({ ...base, HttpPort: 0, AllowedUsers: [] })).toEqual({ ok: false, reason: 'HttpPort must be 1–65535' });
    expect(parseSessionRecord({ ...base, LeaseUser: '', Pool: '', AllowedGroups: [], AllowedUsers: 'x' })).toMatchObject({
      reason: expect.stringMatching(/^AllowedUsers /),
    });
    expect(parseSessionRecord({ ...base, LeaseUser: '', Pool: '' })).toMatchObject({ reason: expect.stringMatching(/^Pool /) });
  });

  it('pool names: 1–64 of letters, digits, . _ - starting with a letter or digit', () => {
    for (const ok of ['a', '0', 'gpu-pool_1.x', 'p'.repeat(64)]) expect(POOL_NAME.test(ok)).toBe(true);
    for (const bad of ['', '.a', '_a', 'a b', 'a/b', 'a:b', 'é', 'p'.repeat(65)]) expect(POOL_NAME.test(bad)).toBe(false);
  });

  it('principalProblem: the rule shared with tokens and the portal', () => {
    expect(principalProblem('alice')).toBeUndefined();
    expect(principalProblem(' ')).toBe('must not be empty');
    expect(principalProblem('x'.repeat(257))).toBe('must be at most 256 characters');
    expect(principalProblem('x'.repeat(256))).toBeUndefined();
    expect(principalProblem('a\u007fb')).toBe('must not contain control characters');
    expect(principalProblem(' alice')).toBe('must not start or end with a space');
    expect(principalProblem('Équipe A')).toBeUndefined();
  });
});

describe('parseSessionRecord: DcvUser (the name the verifier answers DCV with)', () => {
  it.each(['ubuntu', 'Administrator', 'CORP\\alice', 'alice@example.com', 'Jane Doe', 'u'.repeat(256)])('accepts %s as it is', (name) => {
    expect(record({ ...base, DcvUser: name })).toMatchObject({ dcvUser: name });
  });

  it('absent or NULL: no dcvUser (the verifier answers with the token user)', () => {
    expect(record({ ...base })).not.toHaveProperty('dcvUser');
    expect(record({ ...base, DcvUser: null })).not.toHaveProperty('dcvUser');
  });

  it.each([
    ['empty', { DcvUser: '' }, 'DcvUser must not be empty'],
    ['only spaces', { DcvUser: '   ' }, 'DcvUser must not be empty'],
    ['257 characters', { DcvUser: 'u'.repeat(257) }, 'DcvUser must be at most 256 characters'],
    ['a newline', { DcvUser: 'ubuntu\n' }, 'DcvUser must not contain control characters'],
    ['a DEL', { DcvUser: 'ubu\u007fntu' }, 'DcvUser must not contain control characters'],
    ['a trailing space (DCV compares byte for byte)', { DcvUser: 'ubuntu ' }, 'DcvUser must not start or end with a space'],
    ['a number', { DcvUser: 1000 }, 'DcvUser must be a string, not number'],
    ['a list', { DcvUser: ['ubuntu'] }, 'DcvUser must be a string, not array'],
  ] as const)('a malformed item (skipped, never served): %s', (_name, attributes, reason) => {
    expect(parseSessionRecord({ ...base, ...attributes })).toEqual({ ok: false, reason });
  });
});

describe('parseSessionRecord: desktops on demand (AutoStopMinutes, StartOnConnect, Schedule, InstanceState)', () => {
  it('keeps them on the record, and leaves them off when absent or NULL', () => {
    const schedule = 'Mon-Fri 08:00-19:00 Europe/Paris; Sat 10:00-12:00 America/New_York';
    expect(record({ ...base, AutoStopMinutes: 30, StartOnConnect: true, Schedule: schedule })).toMatchObject({
      autoStopMinutes: 30,
      startOnConnect: true,
      schedule,
    });
    const bare = record({ ...base, AutoStopMinutes: null, StartOnConnect: null, Schedule: null });
    for (const key of ['autoStopMinutes', 'startOnConnect', 'schedule']) expect(bare).not.toHaveProperty(key);
    expect(record({ ...base, StartOnConnect: false })).toMatchObject({ startOnConnect: false });
  });

  it.each([
    [5, 5],
    [1440, 1440],
    ['30', 30],
    [' 60 ', 60],
  ] as const)('AutoStopMinutes %j reads as %d (typed as N or as a string in the console)', (stored, minutes) => {
    expect(record({ ...base, AutoStopMinutes: stored }).autoStopMinutes).toBe(minutes);
  });

  it.each([
    ['4 minutes', { AutoStopMinutes: 4 }, 'AutoStopMinutes must be whole minutes 5–1440'],
    ['1441 minutes', { AutoStopMinutes: 1441 }, 'AutoStopMinutes must be whole minutes 5–1440'],
    ['a fraction', { AutoStopMinutes: 7.5 }, 'AutoStopMinutes must be whole minutes 5–1440'],
    ['a word', { AutoStopMinutes: 'soon' }, 'AutoStopMinutes must be whole minutes 5–1440'],
    ['a boolean', { AutoStopMinutes: true }, 'AutoStopMinutes must be whole minutes 5–1440'],
    ['StartOnConnect as a string', { StartOnConnect: 'true' }, 'StartOnConnect must be a boolean (BOOL)'],
    ['Schedule as a number', { Schedule: 8 }, 'Schedule must be a string, not number'],
    ['Schedule with an unknown zone', { Schedule: 'Mon-Fri 08:00-19:00 Europe/Pariss' }, "Schedule 'Mon-Fri 08:00-19:00 Europe/Pariss': 'Europe/Pariss' is not an IANA time zone (e.g. Europe/Paris, America/New_York, UTC)"],
    ['Schedule without a zone', { Schedule: 'Mon-Fri 08:00-19:00' }, "Schedule 'Mon-Fri 08:00-19:00' must be DAYS HH:MM-HH:MM ZONE, e.g. 'Mon-Fri 08:00-19:00 Europe/Paris'"],
    ['InstanceState as a number', { InstanceState: 16 }, 'InstanceState must be a string, not number'],
  ] as const)('a malformed item (skipped, never served): %s', (_name, attributes, reason) => {
    expect(parseSessionRecord({ ...base, ...attributes })).toEqual({ ok: false, reason });
  });

  it('isHostDown: an InstanceState other than running; absent means a host nobody tracks (manual items)', () => {
    expect(isHostDown(record({ ...base }))).toBe(false);
    expect(isHostDown(record({ ...base, InstanceState: 'running' }))).toBe(false);
    for (const state of ['stopped', 'stopping', 'pending', 'Running', '']) expect(isHostDown(record({ ...base, InstanceState: state }))).toBe(true);
  });
});
