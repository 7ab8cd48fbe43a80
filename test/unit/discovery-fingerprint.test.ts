import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { toAttributeMap } from '../../lambda/adapters/dynamodb-discovery-table';
import { fromItem } from '../../lambda/adapters/dynamodb-session-store';
import { fingerprint, isUntouchedSinceDiscovery, withFingerprint } from '../../lambda/core/discovery/fingerprint';
import { parseInstanceTags, type InstanceInfo } from '../../lambda/core/discovery/tag-parser';
import type { RawItem } from '../../lambda/core/session-record';

const ID = 'i-0123456789abcdef0';

/** Every optional tag, so the item has numbers (ports), a list (CIDRs) and a target. */
function discovered(): RawItem {
  const instance: InstanceInfo = {
    instanceId: ID,
    state: 'running',
    privateIp: '10.150.248.180',
    tags: {
      'dcv:session-id': 'desk=console',
      'dcv:port': '9443',
      'dcv:quic-port': '9444',
      'dcv:web-url-path': '/dcv',
      'dcv:allowed-client-cidrs': '10.0.0.0/8, 2001:db8::/32',
      'dcv:allowed-users': 'alice@example.com, bob',
      'dcv:allowed-groups': 'ops',
      'dcv:pool': 'gpu',
    },
  };
  const claim = parseInstanceTags(instance);
  if (!claim.ok) throw new Error(claim.reason);
  return claim.records[0]!.item;
}

describe('fingerprint of what discovery writes', () => {
  // Computed with the code before DcvUser existed: an instance without dcv:user keeps its DiscoveredHash, so
  // upgrading does not make discovery see every item as hand-edited (and leave the whole fleet alone).
  it('is unchanged by DcvUser for items that do not have it (known answers from before the attribute)', () => {
    expect(discovered().DiscoveredHash).toBe('e8c2f4fd44e8f837a8f044a954d44d33bbc7aec7dcfd642ac444ae117862692d');
    const minimal = parseInstanceTags({ instanceId: ID, state: 'running', privateIp: '10.150.248.180', tags: { 'dcv:session-id': 'console' } });
    expect(minimal.ok && minimal.records[0]!.item.DiscoveredHash).toBe('6828a776f52e0e9fad54f3baf75a81710404a8fe4320fec2ec23db5317310977');
  });

  it('covers DcvUser when the instance is tagged with it', () => {
    const tagged = parseInstanceTags({ instanceId: ID, state: 'running', privateIp: '10.150.248.180', tags: { 'dcv:session-id': 'console', 'dcv:user': 'ubuntu' } });
    const item = tagged.ok ? tagged.records[0]!.item : {};
    expect(item.DiscoveredHash).not.toBe('6828a776f52e0e9fad54f3baf75a81710404a8fe4320fec2ec23db5317310977');
    expect(isUntouchedSinceDiscovery(item)).toBe(true);
    expect(isUntouchedSinceDiscovery({ ...item, DcvUser: 'Administrator' })).toBe(false);
  });
});

describe('fingerprint', () => {
  it('is a sha256 hex digest', () => {
    expect(fingerprint({ SessionId: 'a' })).toMatch(/^[0-9a-f]{64}$/);
  });

  it('does not depend on key order, at the top or inside maps', () => {
    const a = { SessionId: 'a', HttpPort: 8443, Notes: { owner: 'ops', tickets: [1, 2] }, Source: 'ec2' };
    const b = { Source: 'ec2', Notes: { tickets: [1, 2], owner: 'ops' }, HttpPort: 8443, SessionId: 'a' };
    expect(fingerprint(b)).toBe(fingerprint(a));
  });

  it('leaves out UpdatedAt and DiscoveredHash (and undefined values), nothing else', () => {
    const item = { SessionId: 'a', Source: 'ec2' };
    expect(fingerprint({ ...item, UpdatedAt: '2025-01-01T00:00:00Z', DiscoveredHash: 'x', Enabled: undefined })).toBe(fingerprint(item));
    expect(fingerprint({ ...item, InstanceState: 'running' })).not.toBe(fingerprint(item));
  });

  it.each([
    ['a number retyped as a string', { HttpPort: 8443 }, { HttpPort: '8443' }],
    ['a boolean retyped as a string', { Enabled: true }, { Enabled: 'true' }],
    ['an attribute cleared to NULL', { WebUrlPath: '/' }, { WebUrlPath: null }],
    ['an attribute removed', { WebUrlPath: '/' }, {}],
    ['an attribute added', {}, { Notes: 'desk 4' }],
    ['a list reordered', { AllowedClientCidrs: ['10.0.0.0/8', '2001:db8::/32'] }, { AllowedClientCidrs: ['2001:db8::/32', '10.0.0.0/8'] }],
    ['a list as one string', { AllowedClientCidrs: ['10.0.0.0/8'] }, { AllowedClientCidrs: '10.0.0.0/8' }],
    ['a value that only differs in case', { DcvServerEndpoint: 'desk.example.com' }, { DcvServerEndpoint: 'Desk.example.com' }],
  ])('tells apart %s', (_name, a, b) => {
    const base = { SessionId: 'a', Source: 'ec2' };
    expect(fingerprint({ ...base, ...a })).not.toBe(fingerprint({ ...base, ...b }));
  });

  it('is the same for the item the tag parser builds and the item read back after the write (N, L, BOOL)', () => {
    const item = discovered();
    const written = toAttributeMap({ ...item, Enabled: true, UpdatedAt: '2025-06-01T12:00:00.000Z' });
    expect(written.HttpPort).toEqual({ N: '9443' });
    expect(written.AllowedClientCidrs).toEqual({ L: [{ S: '10.0.0.0/8' }, { S: '2001:db8::/32' }] });
    const read = fromItem(written);
    expect(fingerprint(read)).toBe(fingerprint({ ...item, Enabled: true }));
    // Without the extra BOOL the read-back item is exactly what discovery wrote.
    expect(isUntouchedSinceDiscovery(fromItem(toAttributeMap({ ...item, UpdatedAt: 'now' })))).toBe(true);
  });

  it('reads a list stored as a string set (same order) the same as the list', () => {
    const item = discovered();
    const asL = toAttributeMap(item);
    const asSS: Record<string, AttributeValue> = { ...asL, AllowedClientCidrs: { SS: ['10.0.0.0/8', '2001:db8::/32'] } };
    expect(fingerprint(fromItem(asSS))).toBe(fingerprint(fromItem(asL)));
  });
});

describe('isUntouchedSinceDiscovery', () => {
  it('true for the item as discovery builds it, whatever UpdatedAt says', () => {
    expect(isUntouchedSinceDiscovery(discovered())).toBe(true);
    expect(isUntouchedSinceDiscovery({ ...discovered(), UpdatedAt: '2030-01-01T00:00:00Z' })).toBe(true);
  });

  it('false once any attribute is edited, added or removed', () => {
    const item = discovered();
    expect(isUntouchedSinceDiscovery({ ...item, HttpPort: 8443 })).toBe(false);
    // The portal attributes are content too: widening who may open a session by hand is an edit.
    expect(item).toMatchObject({ AllowedUsers: ['alice@example.com', 'bob'], AllowedGroups: ['ops'], Pool: 'gpu' });
    expect(isUntouchedSinceDiscovery({ ...item, AllowedUsers: ['alice@example.com', 'bob', 'mallory'] })).toBe(false);
    expect(isUntouchedSinceDiscovery({ ...item, AllowedUsers: ['bob', 'alice@example.com'] })).toBe(false);
    expect(isUntouchedSinceDiscovery({ ...item, AllowedGroups: ['admins'] })).toBe(false);
    expect(isUntouchedSinceDiscovery({ ...item, Pool: 'other' })).toBe(false);
    expect(isUntouchedSinceDiscovery({ ...item, LeaseUser: 'mallory' })).toBe(false);
    const { AllowedGroups: _groups, ...withoutGroups } = item;
    expect(isUntouchedSinceDiscovery(withoutGroups)).toBe(false);
    expect(isUntouchedSinceDiscovery({ ...item, Enabled: false })).toBe(false);
    const { QuicPort: _dropped, ...withoutQuic } = item;
    expect(isUntouchedSinceDiscovery(withoutQuic)).toBe(false);
  });

  it('false without a DiscoveredHash, or with one that is not a string or not this content', () => {
    const { DiscoveredHash: hash, ...content } = discovered();
    expect(isUntouchedSinceDiscovery(content)).toBe(false);
    expect(isUntouchedSinceDiscovery({ ...content, DiscoveredHash: null })).toBe(false);
    expect(isUntouchedSinceDiscovery({ ...content, DiscoveredHash: 42 })).toBe(false);
    expect(isUntouchedSinceDiscovery({ ...content, DiscoveredHash: String(hash).toUpperCase() })).toBe(false);
    expect(isUntouchedSinceDiscovery({ ...content, DiscoveredHash: fingerprint({ ...content, SessionId: 'other' }) })).toBe(false);
    expect(isUntouchedSinceDiscovery(withFingerprint(content))).toBe(true);
  });
});
