import { describe, expect, it } from 'vitest';
import { fingerprint } from '../../lambda/core/discovery/fingerprint';
import { parseInstanceTags, validateTagPrefix, type InstanceInfo } from '../../lambda/core/discovery/tag-parser';
import { parseSessionRecord } from '../../lambda/core/session-record';

const ID = 'i-0123456789abcdef0';

function instance(tags: Record<string, string>, extra: Partial<InstanceInfo> = {}): InstanceInfo {
  return {
    instanceId: ID,
    state: 'running',
    launchTime: Date.UTC(2025, 0, 1),
    privateIp: '10.150.248.180',
    privateDns: 'ip-10-150-248-180.ec2.internal',
    publicIp: '203.0.113.7',
    publicDns: 'ec2-203-0-113-7.compute-1.amazonaws.com',
    ipv6: '2001:db8::7',
    tags,
    ...extra,
  };
}

const base = { Source: 'ec2', InstanceId: ID, InstanceState: 'running', HttpPort: 8443, WebUrlPath: '/' };

describe('parseInstanceTags: what a running instance registers', () => {
  it.each([
    ['one id, all defaults', { 'dcv:session-id': 'agent1' }, [{ ...base, SessionId: 'agent1', DcvServerEndpoint: '10.150.248.180' }]],
    [
      'id=target',
      { 'dcv:session-id': 'agent1=console' },
      [{ ...base, SessionId: 'agent1', TargetSessionId: 'console', DcvServerEndpoint: '10.150.248.180' }],
    ],
    [
      'several entries, spaces trimmed',
      { 'dcv:session-id': ' a , b=console ' },
      [
        { ...base, SessionId: 'a', DcvServerEndpoint: '10.150.248.180' },
        { ...base, SessionId: 'b', TargetSessionId: 'console', DcvServerEndpoint: '10.150.248.180' },
      ],
    ],
    [
      '{instanceId} template in id and target',
      { 'dcv:session-id': '{instanceId}=console,desk-{instanceId}' },
      [
        { ...base, SessionId: ID, TargetSessionId: 'console', DcvServerEndpoint: '10.150.248.180' },
        { ...base, SessionId: `desk-${ID}`, DcvServerEndpoint: '10.150.248.180' },
      ],
    ],
    [
      'every optional tag',
      {
        'dcv:session-id': 'x',
        'dcv:port': '9443',
        'dcv:quic-port': '9444',
        'dcv:web-url-path': '/dcv',
        'dcv:address': 'public-dns',
        'dcv:allowed-client-cidrs': '10.0.0.0/8, 2001:db8::/32',
      },
      [
        {
          ...base,
          SessionId: 'x',
          HttpPort: 9443,
          QuicPort: 9444,
          WebUrlPath: '/dcv',
          DcvServerEndpoint: 'ec2-203-0-113-7.compute-1.amazonaws.com',
          AllowedClientCidrs: ['10.0.0.0/8', '2001:db8::/32'],
        },
      ],
    ],
    ['address private-dns', { 'dcv:session-id': 'x', 'dcv:address': 'private-dns' }, [{ ...base, SessionId: 'x', DcvServerEndpoint: 'ip-10-150-248-180.ec2.internal' }]],
    ['address public-ip', { 'dcv:session-id': 'x', 'dcv:address': 'public-ip' }, [{ ...base, SessionId: 'x', DcvServerEndpoint: '203.0.113.7' }]],
    ['address ipv6', { 'dcv:session-id': 'x', 'dcv:address': 'ipv6' }, [{ ...base, SessionId: 'x', DcvServerEndpoint: '2001:db8::7' }]],
    [
      'portal tags: users and groups trimmed, empty entries dropped; a pool',
      { 'dcv:session-id': 'x', 'dcv:allowed-users': ' alice@example.com ,, bob ,', 'dcv:allowed-groups': 'ops', 'dcv:pool': ' gpu-a ' },
      [{ ...base, SessionId: 'x', DcvServerEndpoint: '10.150.248.180', AllowedUsers: ['alice@example.com', 'bob'], AllowedGroups: ['ops'], Pool: 'gpu-a' }],
    ],
    [
      'portal tags apply to every session of the instance',
      { 'dcv:session-id': 'a,b', 'dcv:allowed-groups': 'Équipe A, ops' },
      [
        { ...base, SessionId: 'a', DcvServerEndpoint: '10.150.248.180', AllowedGroups: ['Équipe A', 'ops'] },
        { ...base, SessionId: 'b', DcvServerEndpoint: '10.150.248.180', AllowedGroups: ['Équipe A', 'ops'] },
      ],
    ],
    ['other tags are ignored', { 'dcv:session-id': 'x', Name: 'desk', 'dcvx:port': 'junk' }, [{ ...base, SessionId: 'x', DcvServerEndpoint: '10.150.248.180' }]],
  ])('%s', (_name, tags, expected) => {
    const result = parseInstanceTags(instance(tags));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    // Each item carries the fingerprint of exactly the attributes above.
    expect(result.records.map((r) => r.item)).toEqual(expected.map((e) => ({ ...e, DiscoveredHash: fingerprint(e) })));
    expect(result.records.map((r) => r.sessionId)).toEqual(expected.map((e) => e.SessionId));
    // Never an item the resolver would reject.
    for (const r of result.records) expect(parseSessionRecord(r.item).ok).toBe(true);
  });

  it('a bad portal tag stops the whole instance (nothing registered), like any bad tag', () => {
    const result = parseInstanceTags(instance({ 'dcv:session-id': 'a,b', 'dcv:allowed-users': 'alice', 'dcv:pool': 'no pool' }));
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining("dcv:pool 'no pool'") });
  });

  it('knows the portal tags under a configured prefix, and lists them among the known tags', () => {
    const result = parseInstanceTags(instance({ 'corp/session-id': 'a', 'corp/allowed-users': 'alice', 'corp/allowed-groups': 'ops', 'corp/pool': 'p1' }), 'corp/');
    expect(result.ok && result.records[0]!.item).toMatchObject({ AllowedUsers: ['alice'], AllowedGroups: ['ops'], Pool: 'p1' });
    const typo = parseInstanceTags(instance({ 'dcv:session-id': 'a', 'dcv:allowed-user': 'alice' }));
    expect(typo).toMatchObject({ ok: false, reason: expect.stringMatching(/unknown tag 'dcv:allowed-user' .*dcv:allowed-users, dcv:allowed-groups, dcv:pool/) });
  });

  it('dcv:user becomes DcvUser (trimmed) on every session of the instance', () => {
    const result = parseInstanceTags(instance({ 'dcv:session-id': 'a=console,b', 'dcv:user': ' CORP\\Administrator ' }));
    expect(result.ok && result.records.map((r) => r.item.DcvUser)).toEqual(['CORP\\Administrator', 'CORP\\Administrator']);
    const none = parseInstanceTags(instance({ 'dcv:session-id': 'a' }));
    expect(none.ok && none.records[0]!.item).not.toHaveProperty('DcvUser');
    const prefixed = parseInstanceTags(instance({ 'corp/session-id': 'a', 'corp/user': 'ubuntu' }), 'corp/');
    expect(prefixed.ok && prefixed.records[0]!.item.DcvUser).toBe('ubuntu');
  });

  it.each([
    ['empty', '  ', "dcv:user is empty; remove the tag to use the default"],
    ['too long', 'u'.repeat(257), "dcv:user 'uuuu"],
    ['a control character', 'ubu\tntu', "dcv:user 'ubu\tntu' must not contain control characters"],
  ])('a bad dcv:user (%s) registers nothing and names the tag', (_name, value, reason) => {
    const result = parseInstanceTags(instance({ 'dcv:session-id': 'a', 'dcv:user': value }));
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining(reason) });
  });

  it('uses a configured prefix and ignores the default one', () => {
    const result = parseInstanceTags(instance({ 'corp/dcv-session-id': 'a', 'corp/dcv-port': '1234', 'dcv:session-id': 'b' }), 'corp/dcv-');
    expect(result.ok && result.records.map((r) => [r.sessionId, r.item.HttpPort])).toEqual([['a', 1234]]);
  });
});

describe('parseInstanceTags: instances that register nothing without an error', () => {
  it.each(['pending', 'stopping', 'stopped', 'shutting-down', 'terminated'])('state %s', (state) => {
    // Even broken tags are not reported for an instance that is not running: its addresses are not final.
    const result = parseInstanceTags(instance({ 'dcv:session-id': 'a', 'dcv:port': 'junk' }, { state }));
    expect(result).toMatchObject({ ok: true, records: [] });
  });

  it('running without the session-id tag', () => {
    expect(parseInstanceTags(instance({ 'dcv:port': '8443' }))).toMatchObject({ ok: true, records: [] });
  });
});

describe('parseInstanceTags: every malformed case names the instance tag and the reason', () => {
  it.each([
    ['empty session-id', { 'dcv:session-id': '' }, /empty session id/],
    ['blank session-id', { 'dcv:session-id': '  ' }, /empty session id/],
    ['empty entry between commas', { 'dcv:session-id': 'a,,b' }, /empty session id/],
    ['trailing comma', { 'dcv:session-id': 'a,' }, /empty session id/],
    ['empty id before =', { 'dcv:session-id': '=console' }, /empty session id/],
    ['empty target', { 'dcv:session-id': 'a=' }, /empty target/],
    ['two =', { 'dcv:session-id': 'a=b=c' }, /more than one '='/],
    ['same id twice', { 'dcv:session-id': 'a,a=console' }, /'a' more than once/],
    ['id too long', { 'dcv:session-id': 'x'.repeat(257) }, /SessionId must be at most 256/],
    ['control character in id', { 'dcv:session-id': 'a\u0007b' }, /SessionId must not contain control/],
    ['port not a number', { 'dcv:session-id': 'a', 'dcv:port': 'https' }, /dcv:port 'https' must be a port number/],
    ['port zero', { 'dcv:session-id': 'a', 'dcv:port': '0' }, /dcv:port '0' must be a port/],
    ['port too big', { 'dcv:session-id': 'a', 'dcv:port': '65536' }, /dcv:port '65536'/],
    ['port negative', { 'dcv:session-id': 'a', 'dcv:port': '-1' }, /dcv:port '-1'/],
    ['port fractional', { 'dcv:session-id': 'a', 'dcv:port': '8443.5' }, /dcv:port '8443.5'/],
    ['port empty', { 'dcv:session-id': 'a', 'dcv:port': '' }, /dcv:port is empty/],
    ['quic-port bad', { 'dcv:session-id': 'a', 'dcv:quic-port': 'udp' }, /dcv:quic-port 'udp'/],
    ['web-url-path without /', { 'dcv:session-id': 'a', 'dcv:web-url-path': 'dcv' }, /WebUrlPath must start with '\/'/],
    ['web-url-path with a space', { 'dcv:session-id': 'a', 'dcv:web-url-path': '/a b' }, /WebUrlPath must not contain spaces/],
    ['address unknown kind', { 'dcv:session-id': 'a', 'dcv:address': 'elastic-ip' }, /dcv:address 'elastic-ip' must be one of/],
    ['bad CIDR', { 'dcv:session-id': 'a', 'dcv:allowed-client-cidrs': '10.0.0.0/8,10.0.0.0/33' }, /'10.0.0.0\/33' is not an IPv4 or IPv6 CIDR/],
    ['CIDR word', { 'dcv:session-id': 'a', 'dcv:allowed-client-cidrs': 'office' }, /'office' is not/],
    ['CIDR list only commas', { 'dcv:session-id': 'a', 'dcv:allowed-client-cidrs': ',' }, /lists no CIDR/],
    ['CIDR empty entry', { 'dcv:session-id': 'a', 'dcv:allowed-client-cidrs': '10.0.0.0/8,' }, /entry '' is not/],
    ['allowed-users empty', { 'dcv:session-id': 'a', 'dcv:allowed-users': ' ' }, /dcv:allowed-users is empty/],
    ['allowed-users only commas', { 'dcv:session-id': 'a', 'dcv:allowed-users': ' , ,' }, /dcv:allowed-users lists no name/],
    ['allowed-groups only commas', { 'dcv:session-id': 'a', 'dcv:allowed-groups': ',' }, /dcv:allowed-groups lists no name/],
    ['allowed-users with a control character', { 'dcv:session-id': 'a', 'dcv:allowed-users': 'alice,b\u0007ob' }, /dcv:allowed-users entry 'b\u0007ob' must not contain control characters/],
    ['allowed-groups with a control character', { 'dcv:session-id': 'a', 'dcv:allowed-groups': 'o\u0085ps' }, /dcv:allowed-groups entry .* must not contain control characters/],
    ['allowed-users over 100 names', { 'dcv:session-id': 'a', 'dcv:allowed-users': Array.from({ length: 101 }, (_, i) => `u${i}`).join(',') }, /dcv:allowed-users lists 101 names; at most 100/],
    ['allowed-users name over 256 characters', { 'dcv:session-id': 'a', 'dcv:allowed-users': 'u'.repeat(257) }, /dcv:allowed-users entry 'u{64}' must be at most 256 characters/],
    ['pool with a space', { 'dcv:session-id': 'a', 'dcv:pool': 'gpu pool' }, /dcv:pool 'gpu pool' must be 1–64 letters, digits/],
    ['pool with a colon', { 'dcv:session-id': 'a', 'dcv:pool': 'a:b' }, /dcv:pool 'a:b' must be/],
    ['pool too long', { 'dcv:session-id': 'a', 'dcv:pool': 'p'.repeat(65) }, /dcv:pool 'p{65}' must be/],
    ['pool empty', { 'dcv:session-id': 'a', 'dcv:pool': '' }, /dcv:pool is empty/],
    ['a lease id (reserved for the portal)', { 'dcv:session-id': 'a,lease:desk' }, /'lease:desk': ids starting with 'lease:' are reserved/],
    ['a lease id through the template', { 'dcv:session-id': 'lease:{instanceId}' }, /ids starting with 'lease:' are reserved/],
    ['unknown tag under the prefix (typo)', { 'dcv:session-id': 'a', 'dcv:prot': '9443' }, /unknown tag 'dcv:prot'/],
  ])('%s', (_name, tags, reason) => {
    const result = parseInstanceTags(instance(tags));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.instance.instanceId).toBe(ID);
    expect(result.reason).toMatch(reason);
  });

  it.each([
    ['public-ip', { publicIp: undefined }, /no public ip/],
    ['public-dns', { publicDns: undefined }, /no public dns/],
    ['private-dns', { privateDns: undefined }, /no private dns/],
    ['ipv6', { ipv6: undefined }, /no ipv6/],
    ['private-ip', { privateIp: undefined }, /no private ip/],
  ] as const)('chosen address %s missing on the instance', (kind, missing, reason) => {
    const tags: Record<string, string> = kind === 'private-ip' ? { 'dcv:session-id': 'a' } : { 'dcv:session-id': 'a', 'dcv:address': kind };
    const result = parseInstanceTags(instance(tags, missing));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });
});

describe('validateTagPrefix', () => {
  it.each(['dcv:', 'corp/dcv-', 'x'])('accepts %j', (prefix) => expect(validateTagPrefix(prefix)).toBe(prefix));
  it.each([
    ['', /must not be empty/],
    ['aws:dcv:', /reserved/],
    ['AWS:x', /reserved/],
    ['dcv;', /may contain only/],
    ['p'.repeat(120), /at most 108/],
  ])('rejects %j', (prefix, reason) => expect(() => validateTagPrefix(prefix)).toThrow(reason));
});

describe('parseInstanceTags: desktops on demand (dcv:auto-stop, dcv:start-on-connect, dcv:schedule)', () => {
  const power = {
    'dcv:session-id': 'a=console,b',
    'dcv:auto-stop': ' 30 ',
    'dcv:start-on-connect': 'true',
    'dcv:schedule': ' Mon-Fri 08:00-19:00 Europe/Paris;Sat 09:00-12:00 America/New_York ',
  };
  const powerAttrs = { AutoStopMinutes: 30, StartOnConnect: true, Schedule: 'Mon-Fri 08:00-19:00 Europe/Paris;Sat 09:00-12:00 America/New_York' };

  it('become AutoStopMinutes (N), StartOnConnect (BOOL) and Schedule (S, trimmed) on every session, in the fingerprint', () => {
    const result = parseInstanceTags(instance(power));
    const expected = [
      { ...base, SessionId: 'a', TargetSessionId: 'console', DcvServerEndpoint: '10.150.248.180', ...powerAttrs },
      { ...base, SessionId: 'b', DcvServerEndpoint: '10.150.248.180', ...powerAttrs },
    ];
    expect(result.ok && result.records.map((r) => r.item)).toEqual(expected.map((e) => ({ ...e, DiscoveredHash: fingerprint(e) })));
  });

  it('each tag alone, under a configured prefix; start-on-connect=false is written as false', () => {
    const one = (tags: Record<string, string>) => {
      const result = parseInstanceTags(instance({ 'corp/session-id': 'a', ...tags }), 'corp/');
      if (!result.ok) throw new Error(result.reason);
      return result.records[0]!.item;
    };
    expect(one({ 'corp/auto-stop': '5' })).toMatchObject({ AutoStopMinutes: 5 });
    expect(one({ 'corp/auto-stop': '1440' })).toMatchObject({ AutoStopMinutes: 1440 });
    expect(one({ 'corp/start-on-connect': 'FALSE' })).toMatchObject({ StartOnConnect: false });
    expect(one({ 'corp/schedule': 'sat-sun 00:00-24:00 UTC' })).toMatchObject({ Schedule: 'sat-sun 00:00-24:00 UTC' });
    const item = one({ 'corp/auto-stop': '5' });
    expect(item).not.toHaveProperty('StartOnConnect');
    expect(item).not.toHaveProperty('Schedule');
  });

  it.each(['stopped', 'stopping', 'pending'])('a %s instance with any of the tags keeps its items, with InstanceState', (state) => {
    for (const tag of ['dcv:auto-stop', 'dcv:start-on-connect', 'dcv:schedule'] as const) {
      const value = { 'dcv:auto-stop': '30', 'dcv:start-on-connect': 'true', 'dcv:schedule': 'Mon 08:00-09:00 UTC' }[tag];
      const result = parseInstanceTags(instance({ 'dcv:session-id': 'a', [tag]: value }, { state }));
      expect(result.ok && result.records.map((r) => r.item)).toEqual([
        expect.objectContaining({ SessionId: 'a', DcvServerEndpoint: '10.150.248.180', InstanceState: state, Source: 'ec2', InstanceId: ID }),
      ]);
    }
  });

  it('a stopped instance tagged to be reached on its public address is recorded at its private IP until it runs again', () => {
    const tags = { 'dcv:session-id': 'a', 'dcv:address': 'public-ip', 'dcv:start-on-connect': 'true' };
    const stopped = parseInstanceTags(instance(tags, { state: 'stopped', publicIp: undefined, publicDns: undefined }));
    expect(stopped.ok && stopped.records[0]!.item).toMatchObject({ DcvServerEndpoint: '10.150.248.180', InstanceState: 'stopped' });
    // Running, the missing address is an error as always.
    const running = parseInstanceTags(instance(tags, { publicIp: undefined }));
    expect(running).toMatchObject({ ok: false, reason: expect.stringMatching(/no public ip/) });
  });

  it.each(['shutting-down', 'terminated'])('a %s instance registers nothing, tags or not', (state) => {
    expect(parseInstanceTags(instance(power, { state }))).toMatchObject({ ok: true, records: [] });
  });

  it('a stopped instance with the tags but a bad one is reported (nothing registered), as a running one is', () => {
    const result = parseInstanceTags(instance({ 'dcv:session-id': 'a', 'dcv:auto-stop': '30', 'dcv:port': 'junk' }, { state: 'stopped' }));
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining("dcv:port 'junk'") });
  });

  it.each([
    ['auto-stop under 5', { 'dcv:auto-stop': '4' }, "dcv:auto-stop '4' must be whole minutes 5–1440"],
    ['auto-stop over a day', { 'dcv:auto-stop': '1441' }, "dcv:auto-stop '1441' must be whole minutes 5–1440"],
    ['auto-stop with a unit', { 'dcv:auto-stop': '30m' }, "dcv:auto-stop '30m' must be whole minutes"],
    ['auto-stop fractional', { 'dcv:auto-stop': '7.5' }, "dcv:auto-stop '7.5' must be whole minutes"],
    ['auto-stop empty', { 'dcv:auto-stop': ' ' }, 'dcv:auto-stop is empty; remove the tag'],
    ['start-on-connect yes', { 'dcv:start-on-connect': 'yes' }, "dcv:start-on-connect 'yes' must be true or false"],
    ['schedule with an unknown zone', { 'dcv:schedule': 'Mon-Fri 08:00-19:00 Europe/Pariss' }, "dcv:schedule 'Mon-Fri 08:00-19:00 Europe/Pariss': 'Europe/Pariss' is not an IANA time zone"],
    ['schedule with an offset for a zone', { 'dcv:schedule': 'Mon-Fri 08:00-19:00 +01:00' }, "'+01:00' is not an IANA time zone"],
    ['schedule with a bad day', { 'dcv:schedule': 'Mon-Fry 08:00-19:00 UTC' }, "'Fry' is not a day"],
    ['schedule with a bad time', { 'dcv:schedule': 'Mon 8:00-19:00 UTC' }, "'8:00' is not a time HH:MM"],
    ['schedule with an empty window', { 'dcv:schedule': 'Mon 08:00-19:00 UTC;' }, "dcv:schedule '' must be DAYS HH:MM-HH:MM ZONE"],
  ])('a bad value registers nothing and names the tag: %s', (_name, tags, reason) => {
    for (const state of ['running', 'stopped']) {
      const result = parseInstanceTags(instance({ 'dcv:session-id': 'a', ...tags }, { state }));
      expect(result).toMatchObject({ ok: false, reason: expect.stringContaining(reason) });
    }
  });
});
