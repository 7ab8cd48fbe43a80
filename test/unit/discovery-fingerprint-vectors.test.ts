import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { toAttributeMap } from '../../lambda/adapters/dynamodb-discovery-table';
import { fromItem } from '../../lambda/adapters/dynamodb-session-store';
import { fingerprint, isUntouchedSinceDiscovery } from '../../lambda/core/discovery/fingerprint';
import { parseInstanceTags, type InstanceInfo } from '../../lambda/core/discovery/tag-parser';

/**
 * Known answers for `DiscoveredHash`, an upgrade contract: every item the previous release wrote must still
 * read as discovery's own after an upgrade, or discovery reports the whole fleet as hand-edited and stops
 * managing it. The items below are exactly what release 0.1.0 (fingerprint v1: sha256 hex of the
 * canonical JSON of every attribute but UpdatedAt and DiscoveredHash) stored; the hashes were computed once
 * by that code and pasted here. Never regenerate them: if the fingerprint must change, keep reading this form.
 */
interface Vector {
  readonly name: string;
  readonly instance: InstanceInfo;
  /** The item as stored in DynamoDB (AttributeValue JSON), one per session the instance's tags name. */
  readonly stored: readonly Record<string, AttributeValue>[];
}

const UPDATED_AT = { S: '2025-06-01T12:00:00.000Z' };

const VECTORS: readonly Vector[] = [
  {
    name: 'minimal: a session id tag only (defaults: private IP, port 8443, path /)',
    instance: { instanceId: 'i-0a1b2c3d4e5f60001', state: 'running', privateIp: '10.0.0.5', tags: { 'dcv:session-id': 'desk1' } },
    stored: [
      {
        SessionId: { S: 'desk1' },
        DcvServerEndpoint: { S: '10.0.0.5' },
        HttpPort: { N: '8443' },
        WebUrlPath: { S: '/' },
        Source: { S: 'ec2' },
        InstanceId: { S: 'i-0a1b2c3d4e5f60001' },
        InstanceState: { S: 'running' },
        DiscoveredHash: { S: 'c2fb43a6a7ea2a65d6aa1b9c170e26ada515abf0a35a36e2fa4b1a01194f3d1e' },
        UpdatedAt: UPDATED_AT,
      },
    ],
  },
  {
    name: 'every tag: ports, path, address kind, CIDRs, users, groups, pool, and a {instanceId}=target entry',
    instance: {
      instanceId: 'i-0a1b2c3d4e5f60002',
      state: 'running',
      privateIp: '10.0.0.6',
      privateDns: 'ip-10-0-0-6.ec2.internal',
      tags: {
        'dcv:session-id': 'gpu-7,{instanceId}=console',
        'dcv:port': '9443',
        'dcv:quic-port': '9444',
        'dcv:web-url-path': '/dcv/',
        'dcv:address': 'private-dns',
        'dcv:allowed-client-cidrs': '10.0.0.0/8, 2001:db8::/32',
        'dcv:allowed-users': 'alice@example.com, bob',
        'dcv:allowed-groups': 'ops, render-farm',
        'dcv:pool': 'gpu',
      },
    },
    stored: [
      {
        SessionId: { S: 'gpu-7' },
        DcvServerEndpoint: { S: 'ip-10-0-0-6.ec2.internal' },
        HttpPort: { N: '9443' },
        QuicPort: { N: '9444' },
        WebUrlPath: { S: '/dcv/' },
        AllowedClientCidrs: { L: [{ S: '10.0.0.0/8' }, { S: '2001:db8::/32' }] },
        AllowedUsers: { L: [{ S: 'alice@example.com' }, { S: 'bob' }] },
        AllowedGroups: { L: [{ S: 'ops' }, { S: 'render-farm' }] },
        Pool: { S: 'gpu' },
        Source: { S: 'ec2' },
        InstanceId: { S: 'i-0a1b2c3d4e5f60002' },
        InstanceState: { S: 'running' },
        DiscoveredHash: { S: '19e25ac4a38140ed6361129fd0c36ae0516289fe0f524364941c04bd480004fd' },
        UpdatedAt: UPDATED_AT,
      },
      {
        SessionId: { S: 'i-0a1b2c3d4e5f60002' },
        DcvServerEndpoint: { S: 'ip-10-0-0-6.ec2.internal' },
        HttpPort: { N: '9443' },
        QuicPort: { N: '9444' },
        WebUrlPath: { S: '/dcv/' },
        TargetSessionId: { S: 'console' },
        AllowedClientCidrs: { L: [{ S: '10.0.0.0/8' }, { S: '2001:db8::/32' }] },
        AllowedUsers: { L: [{ S: 'alice@example.com' }, { S: 'bob' }] },
        AllowedGroups: { L: [{ S: 'ops' }, { S: 'render-farm' }] },
        Pool: { S: 'gpu' },
        Source: { S: 'ec2' },
        InstanceId: { S: 'i-0a1b2c3d4e5f60002' },
        InstanceState: { S: 'running' },
        DiscoveredHash: { S: '553dbbda454786d754c78636b0bcfc458804bd1ff5bbb80cfd2556a5acf7f7bd' },
        UpdatedAt: UPDATED_AT,
      },
    ],
  },
  {
    name: 'unicode and JSON escapes: accented, CJK and astral-plane characters, quotes and a backslash',
    instance: {
      instanceId: 'i-0a1b2c3d4e5f60003',
      state: 'running',
      privateIp: '10.0.0.7',
      tags: {
        'dcv:session-id': 'café-☕=Sitzung-ü',
        'dcv:allowed-users': 'José Müller, 李雷, "q\\uote"',
        'dcv:allowed-groups': 'Équipe 🚀',
      },
    },
    stored: [
      {
        SessionId: { S: 'café-☕' },
        DcvServerEndpoint: { S: '10.0.0.7' },
        HttpPort: { N: '8443' },
        WebUrlPath: { S: '/' },
        TargetSessionId: { S: 'Sitzung-ü' },
        AllowedUsers: { L: [{ S: 'José Müller' }, { S: '李雷' }, { S: '"q\\uote"' }] },
        AllowedGroups: { L: [{ S: 'Équipe 🚀' }] },
        Source: { S: 'ec2' },
        InstanceId: { S: 'i-0a1b2c3d4e5f60003' },
        InstanceState: { S: 'running' },
        DiscoveredHash: { S: 'c24c269e1bae8c3ce05d6cdb36c07c02666c33307cf5bf81e146f2e897f84162' },
        UpdatedAt: UPDATED_AT,
      },
    ],
  },
  {
    // Added with desktops on demand (not a 0.1.0 item): the form this release writes for the power tags on a
    // stopped instance. Hash computed independently (Python: json.dumps(sort_keys, compact) → sha256).
    name: 'desktops on demand: auto-stop, start-on-connect and schedule on a stopped instance',
    instance: {
      instanceId: 'i-0a1b2c3d4e5f60004',
      state: 'stopped',
      privateIp: '10.0.0.8',
      tags: { 'dcv:session-id': 'gpu-desk', 'dcv:auto-stop': '30', 'dcv:start-on-connect': 'true', 'dcv:schedule': 'Mon-Fri 08:00-19:00 Europe/Paris' },
    },
    stored: [
      {
        SessionId: { S: 'gpu-desk' },
        DcvServerEndpoint: { S: '10.0.0.8' },
        HttpPort: { N: '8443' },
        WebUrlPath: { S: '/' },
        AutoStopMinutes: { N: '30' },
        StartOnConnect: { BOOL: true },
        Schedule: { S: 'Mon-Fri 08:00-19:00 Europe/Paris' },
        Source: { S: 'ec2' },
        InstanceId: { S: 'i-0a1b2c3d4e5f60004' },
        InstanceState: { S: 'stopped' },
        DiscoveredHash: { S: '53f0934aad3eced4239dad072309cabe7cf6cce3b1b051b2cd0453d00b44a25e' },
        UpdatedAt: UPDATED_AT,
      },
    ],
  },
];

const storedItems = VECTORS.flatMap((v) => v.stored.map((stored) => [`${v.name}: ${stored.SessionId!.S}`, stored] as const));

describe('DiscoveredHash known answers (items as release 0.1.0 stored them, and the desktops-on-demand form)', () => {
  it.each(storedItems)('%s still reads as discovery’s own, with the stored hash', (_name, stored) => {
    const read = fromItem(stored);
    expect(fingerprint(read)).toBe(stored.DiscoveredHash!.S);
    expect(isUntouchedSinceDiscovery(read)).toBe(true);
  });

  it.each(VECTORS.map((v) => [v.name, v] as const))('%s: the tag parser still builds exactly the stored items', (_name, vector) => {
    const claim = parseInstanceTags(vector.instance);
    if (!claim.ok) throw new Error(claim.reason);
    expect(claim.records.map((r) => toAttributeMap({ ...r.item, UpdatedAt: UPDATED_AT.S }))).toEqual(vector.stored);
  });

  it('is sha256 (hex) of the canonical JSON: keys sorted, UpdatedAt and DiscoveredHash left out', () => {
    const canonical =
      '{"DcvServerEndpoint":"10.0.0.5","HttpPort":8443,"InstanceId":"i-0a1b2c3d4e5f60001","InstanceState":"running","SessionId":"desk1","Source":"ec2","WebUrlPath":"/"}';
    const digest = createHash('sha256').update(canonical).digest('hex');
    expect(digest).toBe('c2fb43a6a7ea2a65d6aa1b9c170e26ada515abf0a35a36e2fa4b1a01194f3d1e');
    expect(fingerprint(fromItem(VECTORS[0]!.stored[0]!))).toBe(digest);
  });
});
