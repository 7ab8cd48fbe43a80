import { describe, expect, it } from 'vitest';
import {
  describeSession,
  formatSessionTable,
  listEntries,
  portalAccess,
  powerSettings,
  sessionRow,
  sessionsFileText,
  verdict,
} from '../../lambda/core/session-admin-format';
import { parseSessionsFile } from '../../lambda/adapters/file-session-store';

const NOW = Date.UTC(2026, 10, 26, 12, 0, 0);
const HOUR = 3600;

describe('sessionRow', () => {
  it.each([
    [
      'valid item: resolver values with defaults',
      { SessionId: 'console', DcvServerEndpoint: '10.0.0.1', QuicPort: '8443' },
      { id: 'console', endpoint: '10.0.0.1', http: '8443', quic: '8443', path: '/', target: '-', source: 'manual', enabled: 'yes', expiry: '-', instance: '-', pool: '-', access: '-', dcvUser: '-', note: '' },
    ],
    [
      'discovered, aliased, disabled, expiring',
      { SessionId: 'a', DcvServerEndpoint: 'h', TargetSessionId: 'console', Enabled: false, Source: 'ec2', InstanceId: 'i-1', ExpiresAt: NOW / 1000 + HOUR },
      { id: 'a', endpoint: 'h', http: '8443', quic: '-', path: '/', target: 'console', source: 'ec2', enabled: 'no', expiry: '2026-11-26T13:00:00Z', instance: 'i-1', pool: '-', access: '-', dcvUser: '-', note: '' },
    ],
    [
      'expired',
      { SessionId: 'old', DcvServerEndpoint: 'h', ExpiresAt: NOW / 1000 },
      expect.objectContaining({ expiry: '2026-11-26T12:00:00Z', note: 'expired' }),
    ],
    [
      'malformed: stored values and the reason',
      { SessionId: 'bad', DcvServerEndpoint: 'h', HttpPort: 70000, Enabled: 'yes' },
      { id: 'bad', endpoint: 'h', http: '70000', quic: '-', path: '-', target: '-', source: '-', enabled: 'yes', expiry: '-', instance: '-', pool: '-', access: '-', dcvUser: '-', note: 'malformed: HttpPort must be 1–65535' },
    ],
    [
      'portal: pool and access (users, then groups)',
      { SessionId: 'p', DcvServerEndpoint: 'h', Pool: 'gpu', AllowedUsers: ['alice@example.com', 'bob'], AllowedGroups: ['ops'] },
      expect.objectContaining({ pool: 'gpu', access: 'alice@example.com,bob,group:ops', note: '' }),
    ],
    [
      'portal: malformed access shows what is stored',
      { SessionId: 'p', DcvServerEndpoint: 'h', AllowedUsers: 'alice', Pool: 'a b' },
      expect.objectContaining({ pool: 'a b', access: '["alice",null]', note: expect.stringMatching(/^malformed: AllowedUsers /) }),
    ],
    [
      'DcvUser: the name the verifier answers DCV with',
      { SessionId: 'w', DcvServerEndpoint: 'h', DcvUser: 'CORP\\Administrator' },
      expect.objectContaining({ dcvUser: 'CORP\\Administrator', note: '' }),
    ],
    [
      'DcvUser malformed: what is stored, and why the item is skipped',
      { SessionId: 'w', DcvServerEndpoint: 'h', DcvUser: 'ubuntu ' },
      expect.objectContaining({ dcvUser: 'ubuntu ', note: 'malformed: DcvUser must not start or end with a space' }),
    ],
    [
      'portal: malformed item with valid lists still shows them',
      { SessionId: 'p', DcvServerEndpoint: 'h', HttpPort: 0, AllowedGroups: ['ops'] },
      expect.objectContaining({ access: 'group:ops' }),
    ],
  ])('%s', (_name, item, row) => {
    expect(sessionRow(item, NOW)).toEqual(row);
  });
});

describe('formatSessionTable', () => {
  it('aligns columns under a header and keeps the note whole', () => {
    const text = formatSessionTable([
      sessionRow({ SessionId: 'console', DcvServerEndpoint: '10.150.248.180' }, NOW),
      sessionRow({ SessionId: 'b', DcvServerEndpoint: 'h', HttpPort: 0 }, NOW),
    ]);
    expect(text.split('\n')).toEqual([
      'ID       ENDPOINT        HTTP  QUIC  PATH  TARGET  SOURCE  ENABLED  EXPIRES  INSTANCE  POOL  ACCESS  DCV USER  NOTE',
      'console  10.150.248.180  8443  -     /     -       manual  yes      -        -         -     -       -',
      'b        h               0     -     -     -       -       -        -        -         -     -       -         malformed: HttpPort must be 1–65535',
    ]);
  });

  it('cuts long cells and flattens control characters, one line per row', () => {
    const text = formatSessionTable([sessionRow({ SessionId: `x\ny${'z'.repeat(60)}`, DcvServerEndpoint: 'h' }, NOW)]);
    const lines = text.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/^x\?yz{36}… /);
    expect(lines[1]).toMatch(/malformed: SessionId must not contain control characters$/);
  });
});

describe('verdict', () => {
  it.each([
    [{ SessionId: 'c', DcvServerEndpoint: 'h' }, 'resolves: HTTP → h:8443/; QUIC not offered'],
    [
      { SessionId: 'c', DcvServerEndpoint: 'h', QuicPort: 9000, TargetSessionId: 'console', AllowedClientCidrs: ['10.0.0.0/8'], ExpiresAt: NOW / 1000 + HOUR },
      "resolves: HTTP → h:8443/ as session 'console'; QUIC → h:9000/; only for clients in 10.0.0.0/8; until 2026-11-26T13:00:00Z",
    ],
    [{ SessionId: 'c', DcvServerEndpoint: 'h', AllowedClientCidrs: [] }, 'resolves: HTTP → h:8443/; QUIC not offered; admits no client (AllowedClientCidrs is empty)'],
    [{ SessionId: 'c', DcvServerEndpoint: 'h', Enabled: false }, 'does not resolve: disabled (Enabled = false)'],
    [{ SessionId: 'c', DcvServerEndpoint: 'h', InstanceState: 'running' }, 'resolves: HTTP → h:8443/; QUIC not offered'],
    [{ SessionId: 'c', DcvServerEndpoint: 'h', InstanceState: 'stopped' }, 'does not resolve: the host is not running (InstanceState = "stopped")'],
    [{ SessionId: 'c', DcvServerEndpoint: 'h', ExpiresAt: NOW / 1000 - 1 }, 'does not resolve: expired at 2026-11-26T11:59:59Z'],
    [{ SessionId: 'c', DcvServerEndpoint: 'h', WebUrlPath: 'x' }, "malformed: the resolver skips this item (answers 404): WebUrlPath must start with '/'"],
  ])('%j', (item, text) => {
    expect(verdict(item, NOW)).toBe(text);
  });
});

describe('desktops on demand in list and get', () => {
  const item = { SessionId: 'c', DcvServerEndpoint: 'h', Source: 'ec2', InstanceId: 'i-1', AutoStopMinutes: 30, StartOnConnect: true, Schedule: 'Mon-Fri 08:00-19:00 Europe/Paris' };

  it('list: a host that is not running is noted; a running one is not', () => {
    expect(sessionRow({ ...item, InstanceState: 'stopping' }, NOW).note).toBe('host not running (InstanceState = "stopping")');
    expect(sessionRow({ ...item, InstanceState: 'running' }, NOW).note).toBe('');
  });

  it('get: the power settings under the verdict; none for a session without them', () => {
    const text = describeSession({ ...item, InstanceState: 'stopped' }, NOW);
    expect(text).toMatch(/^AutoStopMinutes +30$/m);
    expect(text.split('\n').slice(-2)).toEqual([
      'does not resolve: the host is not running (InstanceState = "stopped")',
      'power: stops after 30 minutes with nobody connected; the portal may start it (StartOnConnect); runs in Mon-Fri 08:00-19:00 Europe/Paris',
    ]);
    expect(powerSettings({ SessionId: 'c', DcvServerEndpoint: 'h' })).toBeUndefined();
    expect(powerSettings({ SessionId: 'c', DcvServerEndpoint: 'h', StartOnConnect: false })).toBe('power: not started by the portal');
  });
});

describe('describeSession', () => {
  it('lists attributes in the record order as JSON values, then the verdict', () => {
    const text = describeSession({ Zed: 'extra', HttpPort: '8443', SessionId: 'c', DcvServerEndpoint: 'h', ExpiresAt: NOW / 1000 }, NOW);
    expect(text).toBe(
      [
        'SessionId          "c"',
        'DcvServerEndpoint  "h"',
        'HttpPort           "8443"',
        `ExpiresAt          ${NOW / 1000}  (2026-11-26T12:00:00Z)`,
        'Zed                "extra"',
        '',
        'does not resolve: expired at 2026-11-26T12:00:00Z',
      ].join('\n'),
    );
  });
});

describe('portalAccess (get and put)', () => {
  it.each([
    ['no portal attribute: no line', { SessionId: 'c', DcvServerEndpoint: 'h' }, undefined],
    ['malformed: no line (the verdict says why)', { SessionId: 'c', DcvServerEndpoint: 'h', AllowedUsers: [] }, undefined],
    ['users and groups', { SessionId: 'c', DcvServerEndpoint: 'h', AllowedUsers: ['alice', 'bob'], AllowedGroups: ['ops'] }, 'portal: users alice, bob; groups ops'],
    ['a pool member nobody may open', { SessionId: 'c', DcvServerEndpoint: 'h', Pool: 'gpu' }, 'portal: shown to nobody (no AllowedUsers or AllowedGroups); member of pool gpu'],
    [
      'a lease',
      { SessionId: 'lease:c', DcvServerEndpoint: 'h', Source: 'lease', Pool: 'gpu', LeaseUser: 'alice', AllowedUsers: ['alice'] },
      'portal: users alice; lease in pool gpu; held by alice',
    ],
  ])('%s', (_name, item, line) => {
    expect(portalAccess(item)).toBe(line);
  });

  it('get shows the portal line after the verdict', () => {
    const text = describeSession({ SessionId: 'c', DcvServerEndpoint: 'h', AllowedGroups: ['ops'] }, NOW);
    expect(text.split('\n').slice(-2)).toEqual(['resolves: HTTP → h:8443/; QUIC not offered', 'portal: groups ops']);
    expect(text).toContain('AllowedGroups      ["ops"]');
  });
});

describe('listEntries and sessionsFileText', () => {
  const items = [
    { SessionId: 'b', DcvServerEndpoint: 'h' },
    { SessionId: 'a', DcvServerEndpoint: 'h', HttpPort: -1 },
  ];

  it('list --json: sorted, with the verdict', () => {
    expect(listEntries(items)).toEqual([
      { sessionId: 'a', valid: false, reason: 'HttpPort must be 1–65535', item: items[1] },
      { sessionId: 'b', valid: true, item: items[0] },
    ]);
  });

  it('export: a 2-space JSON array sorted by id that the sessions file parser accepts', () => {
    const text = sessionsFileText(items);
    expect(text).toBe(`${JSON.stringify([items[1], items[0]], null, 2)}\n`);
    expect([...parseSessionsFile(text, 'x').keys()]).toEqual(['a', 'b']);
  });
});
