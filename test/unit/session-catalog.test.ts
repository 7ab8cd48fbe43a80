import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileSessionStore } from '../../lambda/adapters/file-session-store';
import { placeInPool } from '../../lambda/core/portal/pool-placement';
import { assertLeaseItem, leaseSessionId, mayClaim, readCatalog } from '../../lambda/core/portal/session-catalog';
import { parseResolveQuery, SessionResolver } from '../../lambda/core/resolve';
import type { RawItem } from '../../lambda/core/session-record';
import { LeasedSessionStore, MemorySessionStore } from '../../lambda/core/session-store';
import { RecordingLog } from '../helpers/recording-log';

const NOW = 1_800_000_000;

function lease(memberId: string, user: string, expiresAt: number): RawItem {
  return { SessionId: leaseSessionId(memberId), DcvServerEndpoint: '10.0.0.9', Source: 'lease', Pool: 'cad', LeaseUser: user, AllowedUsers: [user], ExpiresAt: expiresAt };
}

describe('mayClaim (the claim condition)', () => {
  it.each([
    ['no item yet', undefined, true],
    ["another user's live lease", lease('h', 'bob', NOW + 1), false],
    ["another user's lease expiring now", lease('h', 'bob', NOW), true],
    ["another user's expired lease", lease('h', 'bob', NOW - 100), true],
    ["the same user's live lease (renewal)", lease('h', 'alice', NOW + 100), true],
    ['an item whose ExpiresAt is not a number (never counts as expired)', { ...lease('h', 'bob', 0), ExpiresAt: '1' }, false],
    ['an item with no ExpiresAt and no LeaseUser', { SessionId: 'lease:h', DcvServerEndpoint: 'x' }, false],
  ])('%s', (_, current, expected) => {
    expect(mayClaim(current, lease('h', 'alice', NOW + 3600), NOW)).toBe(expected);
  });
});

describe('assertLeaseItem', () => {
  it.each([
    ['a SessionId without the lease: prefix', { ...lease('h', 'a', NOW), SessionId: 'h' }],
    ['a Source other than lease', { ...lease('h', 'a', NOW), Source: 'manual' }],
    ['no LeaseUser', { ...lease('h', 'a', NOW), LeaseUser: undefined }],
  ])('refuses %s', (_, item) => {
    expect(() => assertLeaseItem(item)).toThrow(/not a lease item/);
  });

  it('lets MemorySessionStore.claim refuse to overwrite a real session', async () => {
    const store = new MemorySessionStore([{ SessionId: 'desk', DcvServerEndpoint: '10.0.0.1' }]);
    await expect(store.claim({ ...lease('x', 'a', NOW + 1), SessionId: 'desk' }, NOW)).rejects.toThrow(TypeError);
    expect(await store.get('desk')).toEqual({ SessionId: 'desk', DcvServerEndpoint: '10.0.0.1' });
  });
});

describe('MemorySessionStore as catalog and lease store', () => {
  it('lists every item as stored, malformed ones included', async () => {
    const items = [{ SessionId: 'a', DcvServerEndpoint: '10.0.0.1' }, { SessionId: 'b', HttpPort: 'bad' }];
    expect(await new MemorySessionStore(items).list()).toEqual(items);
  });

  it('claims only under the condition, and the winner is what get returns', async () => {
    const store = new MemorySessionStore();
    expect(await store.claim(lease('h', 'bob', NOW + 60), NOW)).toBe(true);
    expect(await store.claim(lease('h', 'alice', NOW + 60), NOW)).toBe(false);
    expect(await store.get('lease:h')).toMatchObject({ LeaseUser: 'bob' });
    expect(await store.claim(lease('h', 'bob', NOW + 120), NOW)).toBe(true);
    expect(await store.get('lease:h')).toMatchObject({ LeaseUser: 'bob', ExpiresAt: NOW + 120 });
    expect(await store.claim(lease('h', 'alice', NOW + 999), NOW + 120)).toBe(true);
    expect(await store.get('lease:h')).toMatchObject({ LeaseUser: 'alice' });
  });
});

describe('readCatalog', () => {
  it('returns the records that validate, each with its item, and logs each one skipped', async () => {
    const good = { SessionId: 'a', DcvServerEndpoint: '10.0.0.1', AllowedUsers: ['x'] };
    const log = new RecordingLog();
    const entries = await readCatalog(new MemorySessionStore([good, { SessionId: 'b', DcvServerEndpoint: '10.0.0.2', Pool: 'no spaces' }]), log);
    expect(entries.map((e) => e.record.sessionId)).toEqual(['a']);
    expect(entries[0].item).toBe(good);
    expect(log.find('malformed session item skipped', 'warn').map((e) => e.fields)).toEqual([
      { sessionId: 'b', reason: "Pool must be 1–64 letters, digits, '.', '_' or '-' (starting with a letter or digit)" },
    ]);
  });
});

describe('LeasedSessionStore over the sessions file', () => {
  let dir: string;
  let file: FileSessionStore;
  const members = [
    { SessionId: 'cad-1', DcvServerEndpoint: '10.0.1.1', Pool: 'cad', AllowedGroups: ['eng'], TargetSessionId: 'console' },
    { SessionId: 'desk', DcvServerEndpoint: '10.0.1.9', AllowedUsers: ['alice'] },
  ];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'leased-store-'));
    writeFileSync(join(dir, 'sessions.json'), JSON.stringify(members));
    file = new FileSessionStore(join(dir, 'sessions.json'), { log: new RecordingLog(), pollIntervalMs: 60_000 });
  });
  afterEach(() => {
    file.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('FileSessionStore.list returns the file’s items', async () => {
    expect(await file.list()).toEqual(members);
  });

  it('keeps leases in memory, leaves the file alone, and resolves lease ids like any session', async () => {
    let nowMs = NOW * 1000;
    const store = new LeasedSessionStore(file, () => nowMs);
    const placed = await placeInPool({ catalog: store, leases: store, log: new RecordingLog(), now: () => nowMs, leaseSeconds: 60 }, { pool: 'cad', principal: { names: ['alice'], groups: ['eng'] }, user: 'alice' });
    expect(placed.sessionId).toBe('lease:cad-1');
    expect(await file.list()).toEqual(members);
    expect((await store.list()).map((i) => i.SessionId)).toEqual(['cad-1', 'desk', 'lease:cad-1']);

    const resolver = new SessionResolver({ store, log: new RecordingLog(), now: () => nowMs });
    const answer = await resolver.resolve(parseResolveQuery(new URLSearchParams({ sessionId: 'lease:cad-1', transport: 'HTTP' })));
    expect(answer).toEqual({ SessionId: 'console', TransportProtocol: 'HTTP', DcvServerEndpoint: '10.0.1.1', Port: 8443, WebUrlPath: '/' });
    expect(await store.get('desk')).toEqual(members[1]);

    // Past ExpiresAt the lease no longer resolves nor lists, and another user may take the host.
    nowMs += 60_000;
    await expect(resolver.resolve(parseResolveQuery(new URLSearchParams({ sessionId: 'lease:cad-1', transport: 'HTTP' })))).rejects.toThrow(/expired/);
    expect((await store.list()).map((i) => i.SessionId)).toEqual(['cad-1', 'desk']);
    expect(await store.claim(lease('cad-1', 'bob', NOW + 3600), nowMs / 1000)).toBe(true);
  });

  it("answers a lease id it does not hold from the base store, and refuses another user's live lease", async () => {
    const store = new LeasedSessionStore(file, () => NOW * 1000);
    expect(await store.get('lease:cad-1')).toBeUndefined();
    expect(await store.claim(lease('cad-1', 'bob', NOW + 60), NOW)).toBe(true);
    expect(await store.claim(lease('cad-1', 'alice', NOW + 60), NOW)).toBe(false);
    expect(await store.get('lease:cad-1')).toMatchObject({ LeaseUser: 'bob' });
  });
});
