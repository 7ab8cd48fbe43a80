import { DeleteItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdkDynamoApi, type DynamoApi } from '../../lambda/adapters/dynamodb-api';
import { createLiteDynamoApi } from '../../lambda/adapters/dynamodb-lite';
import { DynamoApiSessionStore, toAttributes } from '../../lambda/adapters/dynamodb-lite-session-store';
import { DynamoSessionCatalog } from '../../lambda/adapters/dynamodb-session-catalog';
import { placeInPool, portalEntries } from '../../lambda/core/portal/pool-placement';
import { leaseSessionId, readCatalog } from '../../lambda/core/portal/session-catalog';
import { parseResolveQuery, SessionResolver } from '../../lambda/core/resolve';
import type { RawItem } from '../../lambda/core/session-record';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { RecordingLog } from '../helpers/recording-log';

/** The portal's catalog and leases against a real DynamoDB-compatible server (dynalite), through both clients. */
const NOW_MS = Date.now();
const NOW = Math.floor(NOW_MS / 1000);

let dynamo: LocalDynamo;
let tables = 0;
beforeAll(async () => {
  dynamo = await startDynalite();
});
afterAll(() => dynamo.stop());

async function table(items: RawItem[]): Promise<string> {
  const name = `Sessions${++tables}`;
  await dynamo.createSessionTable(name);
  const client = dynamo.client();
  for (const item of items) await client.send(new PutItemCommand({ TableName: name, Item: toAttributes(item) }));
  return name;
}

function host(id: string, extra: RawItem = {}): RawItem {
  return { SessionId: id, DcvServerEndpoint: `10.0.2.${id.replace(/\D/g, '') || 0}`, HttpPort: 8443, TargetSessionId: 'console', Pool: 'cad', AllowedGroups: ['engineers'], ...extra };
}

function lease(memberId: string, user: string, expiresAt: number): RawItem {
  return { SessionId: leaseSessionId(memberId), DcvServerEndpoint: '10.0.2.1', Source: 'lease', Pool: 'cad', LeaseUser: user, AllowedUsers: [user], ExpiresAt: expiresAt };
}

const clients: Array<[string, () => DynamoApi]> = [
  ['the lean client (Lambda)', () => createLiteDynamoApi({ endpoint: dynamo.endpoint })],
  ['the AWS SDK (serve --table)', () => sdkDynamoApi(dynamo.client())],
];

describe.each(clients)('DynamoSessionCatalog over %s', (_, api) => {
  it('lists every item, across Scan pages, converted like the resolver reads them', async () => {
    const items = Array.from({ length: 25 }, (_, i) => ({ SessionId: `s-${i}`, DcvServerEndpoint: '10.0.0.1', AllowedUsers: ['a'], HttpPort: 8443, Enabled: i % 2 === 0 }));
    const name = await table(items);
    const log = new RecordingLog();
    const scans: unknown[] = [];
    const counting: DynamoApi = { call: (operation, input) => (scans.push(input), api().call(operation, input)) };
    const listed = await new DynamoSessionCatalog(counting, name, { log, pageSize: 10 }).list();
    expect(scans).toHaveLength(3);
    expect(listed).toHaveLength(25);
    expect(listed.map((i) => i.SessionId).sort()).toEqual(items.map((i) => i.SessionId).sort());
    expect(listed.find((i) => i.SessionId === 's-7')).toEqual(items[7]);
    expect(log.find('session list capped')).toEqual([]);
  });

  it('caps the list and logs that it did', async () => {
    const name = await table(Array.from({ length: 30 }, (_, i) => host(`h${i}`)));
    const log = new RecordingLog();
    const listed = await new DynamoSessionCatalog(api(), name, { log, maxItems: 12 }).list();
    expect(listed).toHaveLength(12);
    expect(log.find('session list capped', 'warn').map((e) => e.fields)).toEqual([{ table: name, maxItems: 12 }]);
  });

  it('claims under the condition: new, renewal by the holder, refused for another user, taken over once expired', async () => {
    const name = await table([host('h1')]);
    const catalog = new DynamoSessionCatalog(api(), name, { log: new RecordingLog() });
    const store = new DynamoApiSessionStore(api(), name);
    expect(await catalog.claim(lease('h1', 'bob', NOW + 60), NOW)).toBe(true);
    expect(await catalog.claim(lease('h1', 'alice', NOW + 60), NOW)).toBe(false);
    expect(await store.get('lease:h1')).toMatchObject({ LeaseUser: 'bob', ExpiresAt: NOW + 60, AllowedUsers: ['bob'] });
    expect(await catalog.claim(lease('h1', 'bob', NOW + 120), NOW)).toBe(true);
    expect(await store.get('lease:h1')).toMatchObject({ LeaseUser: 'bob', ExpiresAt: NOW + 120 });
    expect(await catalog.claim(lease('h1', 'alice', NOW + 999), NOW + 120)).toBe(true);
    expect(await store.get('lease:h1')).toMatchObject({ LeaseUser: 'alice' });
  });

  it('refuses to write anything but a lease item, and reports a store failure as an error', async () => {
    const name = await table([host('h1')]);
    const catalog = new DynamoSessionCatalog(api(), name, { log: new RecordingLog() });
    await expect(catalog.claim({ ...host('h1'), Source: 'lease', LeaseUser: 'x' }, NOW)).rejects.toThrow(/not a lease item/);
    await expect(new DynamoSessionCatalog(api(), 'NoSuchTable', { log: new RecordingLog() }).claim(lease('h1', 'a', NOW + 1), NOW)).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await expect(new DynamoSessionCatalog(api(), 'NoSuchTable', { log: new RecordingLog() }).list()).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });

  it('places users, and the resolver answers the lease id with the member host', async () => {
    const name = await table([host('h1'), host('h2', { Enabled: false }), host('h3', { AllowedGroups: ['admins'] }), { SessionId: 'desk', DcvServerEndpoint: '10.0.9.9', AllowedUsers: ['alice'] }]);
    const catalog = new DynamoSessionCatalog(api(), name, { log: new RecordingLog() });
    const deps = { catalog, leases: catalog, log: new RecordingLog(), now: () => NOW_MS, leaseSeconds: 3600 };
    const alice = { names: ['alice'], groups: ['engineers'] };
    const placed = await placeInPool(deps, { pool: 'cad', principal: alice, user: 'alice' });
    expect(placed).toMatchObject({ sessionId: 'lease:h1', dcvServerEndpoint: '10.0.2.1', leaseUser: 'alice' });
    await expect(placeInPool(deps, { pool: 'cad', principal: { names: ['bob'], groups: ['engineers'] }, user: 'bob' })).rejects.toMatchObject({ statusCode: 409 });

    const resolver = new SessionResolver({ store: new DynamoApiSessionStore(api(), name), log: new RecordingLog(), now: () => NOW_MS });
    expect(await resolver.resolve(parseResolveQuery(new URLSearchParams({ sessionId: 'lease:h1', transport: 'HTTP' })))).toEqual({
      SessionId: 'console',
      TransportProtocol: 'HTTP',
      DcvServerEndpoint: '10.0.2.1',
      Port: 8443,
      WebUrlPath: '/',
    });

    const entries = portalEntries((await readCatalog(catalog, new RecordingLog())).map((e) => e.record), alice, NOW);
    expect(entries.sessions.map((s) => s.sessionId)).toEqual(['desk']);
    expect(entries.pools).toMatchObject([{ pool: 'cad', free: 0, lease: { sessionId: 'lease:h1' } }]);
  });

  it('a lease stops resolving once its member host is stopped, moved or deleted; Open again follows a move; it resolves again when the host is back', async () => {
    const name = await table([host('h1', { Source: 'ec2', InstanceId: 'i-0abc', InstanceState: 'running' })]);
    const catalog = new DynamoSessionCatalog(api(), name, { log: new RecordingLog() });
    const open = () => placeInPool({ catalog, leases: catalog, log: new RecordingLog(), now: () => NOW_MS }, { pool: 'cad', principal: { names: ['alice'], groups: ['engineers'] }, user: 'alice' });
    expect((await open()).sessionId).toBe('lease:h1');

    const client = dynamo.client();
    const putMember = (extra: RawItem) => client.send(new PutItemCommand({ TableName: name, Item: toAttributes(host('h1', { Source: 'ec2', InstanceId: 'i-0abc', ...extra })) }));
    const resolver = new SessionResolver({ store: new DynamoApiSessionStore(api(), name), log: new RecordingLog(), now: () => NOW_MS });
    const ask = () => resolver.resolve(parseResolveQuery(new URLSearchParams({ sessionId: 'lease:h1', transport: 'HTTP' }))).then((a) => a.DcvServerEndpoint, (e: unknown) => e);
    const refused = (why: string) => ({ statusCode: 404, code: 'lease-member-gone', message: `session 'lease:h1': its pool host is no longer available (${why})` });

    expect(await ask()).toBe('10.0.2.1');
    // Discovery keeps a stopped instance's item with its state…
    await putMember({ InstanceState: 'stopped' });
    expect(await ask()).toMatchObject(refused("session 'h1': the host is stopped (InstanceState stopped)"));
    // …moves it when the instance comes back on another address…
    await putMember({ InstanceState: 'running', DcvServerEndpoint: '10.0.2.77' });
    expect(await ask()).toMatchObject(refused("session 'h1' is now on 10.0.2.77, not 10.0.2.1"));
    // (Open again renews the user's lease onto the member's current address.)
    expect(await open()).toMatchObject({ sessionId: 'lease:h1', dcvServerEndpoint: '10.0.2.77' });
    expect(await ask()).toBe('10.0.2.77');
    // …and deletes it once the instance is terminated.
    await client.send(new DeleteItemCommand({ TableName: name, Key: { SessionId: { S: 'h1' } } }));
    expect(await ask()).toMatchObject(refused("no session 'h1'"));
    await putMember({ InstanceState: 'running', DcvServerEndpoint: '10.0.2.77' });
    expect(await ask()).toBe('10.0.2.77');
  });
});

describe.each(clients)('concurrent Connects against DynamoDB over %s', (_, api) => {
  const USERS = 20;
  const HOSTS = 5;

  it(`${USERS} users on ${HOSTS} hosts: exactly ${HOSTS} leases, on distinct hosts; the rest get 409`, async () => {
    const name = await table(Array.from({ length: HOSTS }, (_, i) => host(`h${i}`)));
    // One client per user, as concurrent Lambda invocations would have.
    const results = await Promise.allSettled(
      Array.from({ length: USERS }, (_, i) => {
        const catalog = new DynamoSessionCatalog(api(), name, { log: new RecordingLog() });
        const user = `user-${i}`;
        return placeInPool({ catalog, leases: catalog, log: new RecordingLog(), now: () => NOW_MS }, { pool: 'cad', principal: { names: [user], groups: ['engineers'] }, user });
      }),
    );
    const placed = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    expect(placed).toHaveLength(HOSTS);
    expect(new Set(placed.map((p) => p.sessionId)).size).toBe(HOSTS);
    for (const reason of refused) expect(reason).toMatchObject({ statusCode: 409, message: 'no free host in pool cad' });
    expect(refused).toHaveLength(USERS - HOSTS);

    // The table agrees: one lease item per host, each naming the user who was told they have it.
    const stored = (await readCatalog(new DynamoSessionCatalog(api(), name, { log: new RecordingLog() }), new RecordingLog())).filter((e) => e.record.source === 'lease');
    expect(stored.map((e) => `${e.record.sessionId}=${e.record.leaseUser}`).sort()).toEqual(placed.map((p) => `${p.sessionId}=${p.leaseUser}`).sort());
  });

  it('the same user connecting several times at once, then again later, gets one host', async () => {
    const name = await table(Array.from({ length: HOSTS }, (_, i) => host(`h${i}`)));
    const connect = (nowMs: number) => {
      const catalog = new DynamoSessionCatalog(api(), name, { log: new RecordingLog() });
      return placeInPool({ catalog, leases: catalog, log: new RecordingLog(), now: () => nowMs }, { pool: 'cad', principal: { names: ['alice'], groups: ['engineers'] }, user: 'alice' });
    };
    const first = await Promise.all(Array.from({ length: 4 }, () => connect(NOW_MS)));
    expect(new Set(first.map((p) => p.sessionId)).size).toBe(1);
    const later = await connect(NOW_MS + 60_000);
    expect(later.sessionId).toBe(first[0].sessionId);
    expect(later.expiresAt).toBe(first[0].expiresAt! + 60);
  });
});
