import { describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, ServiceUnavailableError } from '../../lambda/core/errors';
import { DEFAULT_LEASE_SECONDS, leaseItem, placeInPool, portalEntries, type PlacementDeps } from '../../lambda/core/portal/pool-placement';
import { readCatalog, type SessionCatalog } from '../../lambda/core/portal/session-catalog';
import type { Principal } from '../../lambda/core/session-access';
import { parseSessionRecord, type RawItem, type SessionRecord } from '../../lambda/core/session-record';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { RecordingLog } from '../helpers/recording-log';

const NOW_MS = Date.UTC(2026, 0, 15, 9, 0, 0);
const NOW = NOW_MS / 1000;
const ALICE: Principal = { names: ['alice-sub', 'alice@example.com'], groups: ['engineers'] };
const BOB: Principal = { names: ['bob-sub', 'bob@example.com'], groups: ['engineers'] };
const MALLORY: Principal = { names: ['mallory-sub'], groups: ['contractors'] };
const CAROL: Principal = { names: ['carol-sub'], groups: ['engineers'] };

function host(id: string, extra: RawItem = {}): RawItem {
  return { SessionId: id, DcvServerEndpoint: `${id}.internal`, HttpPort: 8443, QuicPort: 8443, WebUrlPath: '/', TargetSessionId: 'console', Pool: 'cad', AllowedGroups: ['engineers'], ...extra };
}

function lease(memberId: string, user: string, expiresAt: number, extra: RawItem = {}): RawItem {
  return { SessionId: `lease:${memberId}`, DcvServerEndpoint: `${memberId}.internal`, Source: 'lease', Pool: 'cad', LeaseUser: user, AllowedUsers: [user], ExpiresAt: expiresAt, ...extra };
}

function records(items: RawItem[]): SessionRecord[] {
  return items.map((item) => {
    const parsed = parseSessionRecord(item);
    if (!parsed.ok) throw new Error(parsed.reason);
    return parsed.record;
  });
}

function deps(store: MemorySessionStore, extra: Partial<PlacementDeps> = {}): PlacementDeps & { log: RecordingLog } {
  return { catalog: store, leases: store, log: new RecordingLog(), now: () => NOW_MS, ...extra } as PlacementDeps & { log: RecordingLog };
}

describe('portalEntries', () => {
  const items = [
    { SessionId: 'alice-desk', DcvServerEndpoint: '10.0.0.1', AllowedUsers: ['alice@example.com'] },
    { SessionId: 'alice-old', DcvServerEndpoint: '10.0.0.2', AllowedUsers: ['ALICE@example.com'], ExpiresAt: NOW - 1 },
    { SessionId: 'alice-off', DcvServerEndpoint: '10.0.0.3', AllowedUsers: ['alice-sub'], Enabled: false },
    { SessionId: 'team', DcvServerEndpoint: '10.0.0.4', AllowedGroups: ['engineers'] },
    { SessionId: 'bob-desk', DcvServerEndpoint: '10.0.0.5', AllowedUsers: ['bob-sub'] },
    { SessionId: 'nobody', DcvServerEndpoint: '10.0.0.6' },
    host('cad-1'),
    host('cad-2'),
    host('cad-3', { Enabled: false }),
    host('cad-4', { ExpiresAt: NOW }),
    host('vip-1', { Pool: 'vip', AllowedGroups: undefined, AllowedUsers: ['bob-sub'] }),
    lease('cad-1', 'bob-sub', NOW + 60),
    lease('cad-2', 'alice-sub', NOW - 60),
  ];

  it('lists the sessions a user may open, in every state, without pool members or leases', () => {
    const { sessions } = portalEntries(records(items), ALICE, NOW);
    expect(sessions.map((s) => [s.sessionId, s.state])).toEqual([
      ['alice-desk', 'ready'],
      ['alice-off', 'disabled'],
      ['alice-old', 'expired'],
      ['team', 'ready'],
    ]);
    expect(sessions[0].record.dcvServerEndpoint).toBe('10.0.0.1');
  });

  it('shows a pool once, with the usable members the user may open and how many are free', () => {
    const { pools } = portalEntries(records(items), ALICE, NOW);
    expect(pools).toHaveLength(1);
    const [cad] = pools;
    expect(cad.pool).toBe('cad');
    // cad-3 is disabled and cad-4 expired at NOW; cad-1 is Bob's (live), cad-2's lease expired.
    expect(cad.members.map((m) => m.sessionId)).toEqual(['cad-1', 'cad-2']);
    expect(cad.free).toBe(1);
    expect(cad.lease).toBeUndefined();
  });

  it("shows the user's own live lease in its pool entry (matched by any of their names)", () => {
    const { pools, sessions } = portalEntries(records(items), BOB, NOW);
    expect(sessions.map((s) => s.sessionId)).toEqual(['bob-desk', 'team']);
    expect(pools.map((p) => p.pool)).toEqual(['cad', 'vip']);
    expect(pools[0].lease?.sessionId).toBe('lease:cad-1');
    expect(pools[0].free).toBe(1);
    expect(pools[1]).toMatchObject({ pool: 'vip', free: 1 });
    expect(pools[1].lease).toBeUndefined();
  });

  it('shows nothing to a user named nowhere, and no pool whose members are all unusable', () => {
    expect(portalEntries(records(items), MALLORY, NOW)).toEqual({ sessions: [], pools: [] });
    const onlyDown = records([host('d-1', { Pool: 'down', Enabled: false }), host('d-2', { Pool: 'down', ExpiresAt: NOW - 5 })]);
    expect(portalEntries(onlyDown, ALICE, NOW).pools).toEqual([]);
  });

  it('never lists a lease item as a session, even when its AllowedUsers names the user', () => {
    const { sessions } = portalEntries(records([lease('cad-1', 'alice-sub', NOW + 60)]), ALICE, NOW);
    expect(sessions).toEqual([]);
  });
});

describe('leaseItem', () => {
  it('copies where to connect and sets who holds it until when; the item parses as a lease record', () => {
    const member = { SessionId: 'cad-1', DcvServerEndpoint: '10.1.2.3', HttpPort: 9443, QuicPort: 9444, WebUrlPath: '/dcv', TargetSessionId: 'console', Pool: 'cad', AllowedGroups: ['engineers'], AllowedClientCidrs: ['10.0.0.0/8'], InstanceId: 'i-1' };
    const [record] = records([member]);
    const item = leaseItem({ record, item: member }, { pool: 'cad', user: 'alice-sub', nowMs: NOW_MS + 400, leaseSeconds: 3600 });
    expect(item).toEqual({
      SessionId: 'lease:cad-1',
      DcvServerEndpoint: '10.1.2.3',
      HttpPort: 9443,
      QuicPort: 9444,
      WebUrlPath: '/dcv',
      TargetSessionId: 'console',
      AllowedClientCidrs: ['10.0.0.0/8'],
      Source: 'lease',
      Pool: 'cad',
      LeaseUser: 'alice-sub',
      AllowedUsers: ['alice-sub'],
      ExpiresAt: NOW + 3600,
      UpdatedAt: new Date(NOW_MS + 400).toISOString(),
    });
    const parsed = parseSessionRecord(item);
    expect(parsed.ok && parsed.record).toMatchObject({ sessionId: 'lease:cad-1', source: 'lease', pool: 'cad', leaseUser: 'alice-sub', allowedUsers: ['alice-sub'], targetSessionId: 'console', expiresAt: NOW + 3600 });
  });

  it("carries the member's DcvUser, so DCV sees the lease holder as the member's owner; none when the member has none", () => {
    const member = { SessionId: 'cad-1', DcvServerEndpoint: '10.1.2.3', TargetSessionId: 'console', Pool: 'cad', DcvUser: 'ubuntu' };
    const [record] = records([member]);
    const item = leaseItem({ record, item: member }, { pool: 'cad', user: 'alice-sub', nowMs: NOW_MS, leaseSeconds: 3600 });
    expect(item.DcvUser).toBe('ubuntu');
    const parsed = parseSessionRecord(item);
    expect(parsed.ok && parsed.record).toMatchObject({ dcvUser: 'ubuntu', leaseUser: 'alice-sub' });
    const plain = { SessionId: 'cad-2', DcvServerEndpoint: '10.1.2.4', Pool: 'cad' };
    const [plainRecord] = records([plain]);
    expect(leaseItem({ record: plainRecord, item: plain }, { pool: 'cad', user: 'u', nowMs: NOW_MS, leaseSeconds: 3600 })).not.toHaveProperty('DcvUser');
  });

  it('never outlives the member, and leaves out a QUIC port the member does not have', () => {
    const member = { SessionId: 'cad-1', DcvServerEndpoint: '10.1.2.3', Pool: 'cad', ExpiresAt: NOW + 100 };
    const [record] = records([member]);
    const item = leaseItem({ record, item: member }, { pool: 'cad', user: 'u', nowMs: NOW_MS, leaseSeconds: 3600 });
    expect(item.ExpiresAt).toBe(NOW + 100);
    expect(item).not.toHaveProperty('QuicPort');
    expect(item.TargetSessionId).toBe('cad-1');
    expect(parseSessionRecord(item).ok).toBe(true);
  });
});

describe('placeInPool', () => {
  it('leases a free member the user may open and stores the lease item', async () => {
    const store = new MemorySessionStore([host('cad-1'), host('cad-2')]);
    const placed = await placeInPool(deps(store, { leaseSeconds: 600 }), { pool: 'cad', principal: ALICE, user: 'alice-sub' });
    expect(placed.sessionId).toMatch(/^lease:cad-[12]$/);
    expect(placed).toMatchObject({ source: 'lease', pool: 'cad', leaseUser: 'alice-sub', allowedUsers: ['alice-sub'], expiresAt: NOW + 600, targetSessionId: 'console', httpPort: 8443, quicPort: 8443 });
    expect(placed.dcvServerEndpoint).toBe(`${placed.sessionId.slice('lease:'.length)}.internal`);
    expect(await store.get(placed.sessionId)).toMatchObject({ LeaseUser: 'alice-sub', ExpiresAt: NOW + 600 });
  });

  it('defaults to an 8-hour lease', async () => {
    const store = new MemorySessionStore([host('cad-1')]);
    const placed = await placeInPool(deps(store), { pool: 'cad', principal: ALICE, user: 'alice-sub' });
    expect(placed.expiresAt).toBe(NOW + DEFAULT_LEASE_SECONDS);
    expect(DEFAULT_LEASE_SECONDS).toBe(8 * 3600);
  });

  it('renews the user’s own live lease: same host back, later expiry', async () => {
    const hosts = Array.from({ length: 8 }, (_, i) => host(`cad-${i}`));
    const store = new MemorySessionStore([...hosts, lease('cad-5', 'alice-sub', NOW + 30)]);
    const d = deps(store, { leaseSeconds: 600 });
    const placed = await placeInPool(d, { pool: 'cad', principal: ALICE, user: 'alice-sub' });
    expect(placed.sessionId).toBe('lease:cad-5');
    expect(placed.expiresAt).toBe(NOW + 600);
    expect(d.log.find('pool host leased')[0].fields).toMatchObject({ renewed: true, sessionId: 'lease:cad-5' });
    // Exactly one lease item: renewing wrote over the old one instead of taking a second host.
    expect((await store.list()).filter((i) => String(i.SessionId).startsWith('lease:'))).toHaveLength(1);
  });

  it('gives the same user the same host on a second Connect', async () => {
    const store = new MemorySessionStore(Array.from({ length: 10 }, (_, i) => host(`cad-${i}`)));
    const first = await placeInPool(deps(store), { pool: 'cad', principal: BOB, user: 'bob-sub' });
    const second = await placeInPool(deps(store, { now: () => NOW_MS + 5000 }), { pool: 'cad', principal: BOB, user: 'bob-sub' });
    expect(second.sessionId).toBe(first.sessionId);
    expect(second.expiresAt).toBe(first.expiresAt! + 5);
  });

  it("places a user whose live lease's host has stopped on another host (the resolver refuses the old lease)", async () => {
    const ec2 = { Source: 'ec2', InstanceId: 'i-0abc' };
    const store = new MemorySessionStore([host('cad-1', { ...ec2, InstanceState: 'stopped' }), host('cad-2', { ...ec2, InstanceState: 'running' }), lease('cad-1', 'alice-sub', NOW + 600)]);
    const placed = await placeInPool(deps(store), { pool: 'cad', principal: ALICE, user: 'alice-sub' });
    expect(placed).toMatchObject({ sessionId: 'lease:cad-2', dcvServerEndpoint: 'cad-2.internal', leaseUser: 'alice-sub' });
  });

  it("takes over another user's expired lease", async () => {
    const store = new MemorySessionStore([host('cad-1'), lease('cad-1', 'bob-sub', NOW)]);
    const placed = await placeInPool(deps(store), { pool: 'cad', principal: ALICE, user: 'alice-sub' });
    expect(placed).toMatchObject({ sessionId: 'lease:cad-1', leaseUser: 'alice-sub' });
  });

  it('skips disabled and expired members and hosts held by a live lease', async () => {
    const store = new MemorySessionStore([
      host('cad-1', { Enabled: false }),
      host('cad-2', { ExpiresAt: NOW - 1 }),
      host('cad-3'),
      host('cad-4'),
      lease('cad-3', 'bob-sub', NOW + 1),
    ]);
    const placed = await placeInPool(deps(store), { pool: 'cad', principal: ALICE, user: 'alice-sub' });
    expect(placed.sessionId).toBe('lease:cad-4');
    await expect(placeInPool(deps(store), { pool: 'cad', principal: CAROL, user: 'carol-sub' })).rejects.toThrow(ConflictError);
  });

  it('answers 409 "no free host in pool NAME" when every member is leased', async () => {
    const store = new MemorySessionStore([host('cad-1'), lease('cad-1', 'bob-sub', NOW + 60)]);
    const error = await placeInPool(deps(store), { pool: 'cad', principal: ALICE, user: 'alice-sub' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConflictError);
    expect(error).toMatchObject({ statusCode: 409, message: 'no free host in pool cad' });
    expect(await store.get('lease:cad-1')).toMatchObject({ LeaseUser: 'bob-sub' });
  });

  it('only tries members the user may open', async () => {
    const store = new MemorySessionStore([host('cad-1'), host('cad-2', { AllowedGroups: ['admins'] }), lease('cad-1', 'bob-sub', NOW + 60)]);
    await expect(placeInPool(deps(store), { pool: 'cad', principal: ALICE, user: 'alice-sub' })).rejects.toThrow('no free host in pool cad');
    expect(await store.get('lease:cad-2')).toBeUndefined();
  });

  it.each([
    ['a pool that does not exist', 'render', ALICE],
    ['a pool none of whose members the user may open', 'cad', MALLORY],
    ['a pool whose members are all unusable', 'down', ALICE],
  ])('refuses %s with the same 404', async (_, pool, principal) => {
    const store = new MemorySessionStore([host('cad-1'), host('down-1', { Pool: 'down', Enabled: false })]);
    const error = await placeInPool(deps(store), { pool, principal, user: principal.names[0] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error).toMatchObject({ statusCode: 404, message: `no pool '${pool}'` });
    expect((await store.list()).some((i) => String(i.SessionId).startsWith('lease:'))).toBe(false);
  });

  it('refuses a name that cannot be a pool with a 404 that does not echo it', async () => {
    const store = new MemorySessionStore([host('cad-1')]);
    const error = await placeInPool(deps(store), { pool: '<script>', principal: ALICE, user: 'alice-sub' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ statusCode: 404, message: 'no such pool' });
  });

  it('skips a malformed member with a log line and places on a good one', async () => {
    const store = new MemorySessionStore([host('cad-1', { HttpPort: 'eighty' }), host('cad-2')]);
    const d = deps(store);
    const placed = await placeInPool(d, { pool: 'cad', principal: ALICE, user: 'alice-sub' });
    expect(placed.sessionId).toBe('lease:cad-2');
    expect(d.log.find('malformed session item skipped', 'warn').map((e) => e.fields)).toEqual([{ sessionId: 'cad-1', reason: 'HttpPort must be an integer 1–65535' }]);
  });

  it('turns a store failure into a logged 503', async () => {
    const failing: SessionCatalog = { list: () => Promise.reject(new Error('throttled')) };
    const store = new MemorySessionStore([host('cad-1')]);
    const d = deps(store, { catalog: failing });
    await expect(placeInPool(d, { pool: 'cad', principal: ALICE, user: 'alice-sub' })).rejects.toThrow(ServiceUnavailableError);
    expect(d.log.find('session store failed', 'error')[0].fields).toMatchObject({ pool: 'cad', cause: { message: 'throttled' } });

    const d2 = deps(store, { leases: { claim: () => Promise.reject(new Error('timeout')) } });
    await expect(placeInPool(d2, { pool: 'cad', principal: ALICE, user: 'alice-sub' })).rejects.toThrow(ServiceUnavailableError);
    expect(d2.log.find('lease write failed', 'error')[0].fields).toMatchObject({ sessionId: 'lease:cad-1' });
  });

  it('refuses to place a user whose key cannot be a LeaseUser', async () => {
    const store = new MemorySessionStore([host('cad-1')]);
    await expect(placeInPool(deps(store), { pool: 'cad', principal: ALICE, user: ' ' })).rejects.toMatchObject({ statusCode: 400 });
  });
});

describe('placeInPool under concurrent Connects (memory store)', () => {
  const USERS = 20;
  const HOSTS = 5;

  it(`${USERS} users on ${HOSTS} hosts: exactly ${HOSTS} leases, on distinct hosts; the rest get 409`, async () => {
    const store = new MemorySessionStore(Array.from({ length: HOSTS }, (_, i) => host(`cad-${i}`)));
    const users = Array.from({ length: USERS }, (_, i) => `user-${i}`);
    const results = await Promise.allSettled(
      users.map((user) => placeInPool(deps(store), { pool: 'cad', principal: { names: [user], groups: ['engineers'] }, user })),
    );
    const placed = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    expect(placed).toHaveLength(HOSTS);
    expect(new Set(placed.map((p) => p.sessionId)).size).toBe(HOSTS);
    expect(refused).toHaveLength(USERS - HOSTS);
    for (const reason of refused) expect(reason).toMatchObject({ statusCode: 409, message: 'no free host in pool cad' });
    // The store agrees with what the callers were told: each lease item names the user it was given to.
    const stored = (await readCatalog(store, new RecordingLog())).filter((e) => e.record.source === 'lease');
    expect(stored.map((e) => [e.record.sessionId, e.record.leaseUser]).sort()).toEqual(placed.map((p) => [p.sessionId, p.leaseUser]).sort());
  });

  it('spreads users over the hosts: each user has their own order, not one shared first choice', async () => {
    const firstChoices = new Map<string, number>();
    for (let i = 0; i < 100; i++) {
      const store = new MemorySessionStore(Array.from({ length: HOSTS }, (_, h) => host(`cad-${h}`)));
      const user = `person-${i}@example.com`;
      const placed = await placeInPool(deps(store), { pool: 'cad', principal: { names: [user], groups: ['engineers'] }, user });
      firstChoices.set(placed.sessionId, (firstChoices.get(placed.sessionId) ?? 0) + 1);
    }
    // Deterministic (a hash, not Math.random), so this is a fixed property of these 100 names, not a flaky draw.
    expect(firstChoices.size).toBe(HOSTS);
    expect(Math.max(...firstChoices.values())).toBeLessThanOrEqual(35);
  });

  it('the same user connecting several times at once ends on one host', async () => {
    const store = new MemorySessionStore(Array.from({ length: HOSTS }, (_, i) => host(`cad-${i}`)));
    const placed = await Promise.all(Array.from({ length: 6 }, () => placeInPool(deps(store), { pool: 'cad', principal: ALICE, user: 'alice-sub' })));
    expect(new Set(placed.map((p) => p.sessionId)).size).toBe(1);
    expect((await store.list()).filter((i) => String(i.SessionId).startsWith('lease:'))).toHaveLength(1);
  });
});
