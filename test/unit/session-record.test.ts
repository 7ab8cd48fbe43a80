import { describe, expect, it } from 'vitest';
import { parseIp } from '../../lambda/core/ip';
import {
  Attr,
  DEFAULT_HTTP_PORT,
  DEFAULT_WEB_URL_PATH,
  hasControlChars,
  MAX_SESSION_ID_LENGTH,
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
    ]);
    for (const [key, value] of Object.entries(Attr)) expect(key).toBe(value);
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
