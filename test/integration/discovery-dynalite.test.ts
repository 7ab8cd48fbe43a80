import { DeleteItemCommand, PutItemCommand, ScanCommand, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbDiscoveryTable, SKIPPED_EDITED, SKIPPED_NEW } from '../../lambda/adapters/dynamodb-discovery-table';
import { sdkDynamoApi } from '../../lambda/adapters/dynamodb-api';
import { fromItem } from '../../lambda/adapters/dynamodb-session-store';
import { Ec2InstanceSource } from '../../lambda/adapters/ec2-instance-source';
import { createLogger } from '../../lambda/adapters/logger';
import { fingerprint, isUntouchedSinceDiscovery } from '../../lambda/core/discovery/fingerprint';
import { EDITED_REASON } from '../../lambda/core/discovery/reconcile';
import { DiscoveryService, type DiscoveryTable } from '../../lambda/core/discovery/run-discovery';
import type { RawItem } from '../../lambda/core/session-record';
import { runFullReconcile, type FullReconcileReport } from '../../lambda/discovery/discovery-runner';
import { createDiscoveryHandler, type DiscoveryHandlerResult } from '../../lambda/handlers/discovery-handler';
import { FakeFleet, fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { createDiscoveryTable } from '../helpers/discovery-table';
import { RecordingLog } from '../helpers/recording-log';

// A fleet of a few thousand over many pages; kept at this size so the file stays well under a minute.
const FLEET = 2000;
const PAGE = 150; // 14 pages
const TABLE = 'discovery-it';
const noSleep = async () => {};

const ec2Mock = mockClient(EC2Client);
const fleet = new FakeFleet();
let dynamo: LocalDynamo;
let db: DynamoDBClient;
// A change is an UpdateItem, an add a PutItem: both count as `puts`, as in discovery's own counts.
const writes = { PutItemCommand: 0, UpdateItemCommand: 0, DeleteItemCommand: 0 };

/** Instance n claims s<n>; every 10th also serves its console under its own instance id. */
function tagsFor(n: number): Record<string, string> {
  return { 'dcv:session-id': n % 10 === 0 ? `s${n},{instanceId}=console` : `s${n}`, Name: `desk-${n}` };
}

async function table(): Promise<Map<string, RawItem>> {
  const items = new Map<string, RawItem>();
  let start: Record<string, never> | undefined;
  do {
    const page = await db.send(new ScanCommand({ TableName: TABLE, ExclusiveStartKey: start, ConsistentRead: true }));
    for (const raw of page.Items ?? []) items.set(raw.SessionId!.S!, fromItem(raw));
    start = page.LastEvaluatedKey as typeof start;
  } while (start);
  return items;
}

function clients() {
  return { ec2: new EC2Client({}), dynamodb: sdkDynamoApi(db) };
}

function reconcile(extra: { log?: RecordingLog } = {}) {
  return runFullReconcile(clients(), { tableName: TABLE, ec2Options: { pageSize: PAGE, sleep: noSleep }, ...extra });
}

function countWrites(): typeof writes {
  return { ...writes };
}

function writesSince(before: ReturnType<typeof countWrites>) {
  return {
    puts: writes.PutItemCommand + writes.UpdateItemCommand - before.PutItemCommand - before.UpdateItemCommand,
    deletes: writes.DeleteItemCommand - before.DeleteItemCommand,
  };
}

beforeAll(async () => {
  dynamo = await startDynalite();
  await createDiscoveryTable(dynamo.client(), TABLE);
  db = dynamo.client();
  // Count the writes that actually reach the table, independently of discovery's own counters.
  db.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName as keyof typeof writes;
      if (name in writes) writes[name]++;
      return next(args);
    },
    { step: 'initialize', name: 'countWrites' },
  );
  ec2Mock.on(DescribeInstancesCommand).callsFake((input) => fleet.describe(input));
  for (let n = 1; n <= FLEET; n++) fleet.put(fleetInstance(n, { tags: tagsFor(n) }));
  // Untagged instances exist too; the tag-key filter keeps them out.
  for (let n = FLEET + 1; n <= FLEET + 50; n++) fleet.put(fleetInstance(n, { tags: { Name: 'build-box' } }));
});

afterAll(async () => {
  ec2Mock.restore();
  await dynamo?.stop();
});

describe('full reconcile against dynalite, EC2 mocked at the SDK', () => {
  const expectedIds = FLEET + FLEET / 10;

  it('registers every running tagged instance from an empty table, over many pages', async () => {
    const callsBefore = fleet.calls;
    const before = countWrites();
    const report = await reconcile();
    expect(report.result.abortReason).toBeUndefined();
    expect(fleet.calls - callsBefore).toBe(Math.ceil(FLEET / PAGE));
    expect(report.ec2Calls).toBe(Math.ceil(FLEET / PAGE));
    expect(report.result.counts).toMatchObject({ instances: FLEET, added: expectedIds, changed: 0, removed: 0, unchanged: 0, failed: 0 });
    expect(writesSince(before)).toEqual({ puts: expectedIds, deletes: 0 });
    expect(report.writes).toBe(expectedIds);

    const items = await table();
    expect(items.size).toBe(expectedIds);
    expect(items.get('s7')).toMatchObject({
      SessionId: 's7',
      DcvServerEndpoint: '10.0.0.7',
      HttpPort: 8443,
      WebUrlPath: '/',
      Source: 'ec2',
      InstanceId: instanceIdOf(7),
      InstanceState: 'running',
      UpdatedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      DiscoveredHash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(items.get(instanceIdOf(20))).toMatchObject({ TargetSessionId: 'console', InstanceId: instanceIdOf(20) });
    // Written, then read back through DynamoDB's types: every item still matches its fingerprint.
    for (const item of items.values()) expect(isUntouchedSinceDiscovery(item)).toBe(true);
  });

  it('a second run over the unchanged fleet writes nothing', async () => {
    const snapshot = await table();
    const before = countWrites();
    const report = await reconcile();
    expect(writesSince(before)).toEqual({ puts: 0, deletes: 0 });
    expect(report.result.counts).toMatchObject({ unchanged: expectedIds, added: 0, changed: 0, removed: 0, puts: 0, deletes: 0 });
    expect(await table()).toEqual(snapshot);
  });

  it('stops, retags, manual items: each lands as expected, manual items untouched', async () => {
    for (let n = 101; n <= 200; n++) fleet.setState(instanceIdOf(n), n % 2 ? 'stopped' : 'terminated');
    for (let n = 201; n <= 250; n++) fleet.setTags(instanceIdOf(n), { 'dcv:session-id': `s${n}`, 'dcv:port': '9443', 'dcv:quic-port': '9443' });
    for (let n = 251; n <= 260; n++) fleet.setTags(instanceIdOf(n), { 'dcv:session-id': `renamed${n}` });
    fleet.setTags(instanceIdOf(261), { 'dcv:session-id': 's261', 'dcv:port': 'https' }); // unparsable
    // An operator takes over s5 (Source manual) and stops instance 5: discovery must leave s5 alone.
    await db.send(new UpdateItemCommand({ TableName: TABLE, Key: { SessionId: { S: 's5' } }, UpdateExpression: 'SET #s = :m', ExpressionAttributeNames: { '#s': 'Source' }, ExpressionAttributeValues: { ':m': { S: 'manual' } } }));
    fleet.setState(instanceIdOf(5), 'stopped');
    // A manual item with an id an instance now claims: the manual item wins.
    await db.send(new PutItemCommand({ TableName: TABLE, Item: { SessionId: { S: 'desktop' }, DcvServerEndpoint: { S: '10.150.248.136' } } }));
    fleet.setTags(instanceIdOf(262), { 'dcv:session-id': 's262,desktop' });

    const log = new RecordingLog();
    const before = countWrites();
    const report = await reconcile({ log });
    const counts = report.result.counts;
    // Removed: 100 stopped/terminated + their 10 console ids, 5 console ids dropped by the retags (210…250),
    // 10 renamed + 260's console id, 1 unparsable. Instance 5's item is manual now and stays.
    const removed = 100 + 10 + 5 + 10 + 1 + 1;
    expect(counts).toMatchObject({ removed, changed: 50, added: 10, conflicts: 1, unparsable: 1, failed: 0, skipped: 0 });
    expect(writesSince(before)).toEqual({ puts: 60, deletes: removed });

    const items = await table();
    expect(items.has('s101')).toBe(false);
    expect(items.has(instanceIdOf(110))).toBe(false);
    expect(items.get('s201')).toMatchObject({ HttpPort: 9443, QuicPort: 9443 });
    expect(items.has('s251')).toBe(false);
    expect(items.get('renamed251')).toMatchObject({ InstanceId: instanceIdOf(251) });
    expect(items.has('s261')).toBe(false);
    expect(items.get('s5')).toMatchObject({ Source: 'manual', InstanceId: instanceIdOf(5) });
    expect(items.get('desktop')).toEqual({ SessionId: 'desktop', DcvServerEndpoint: '10.150.248.136' });
    expect(items.get('s262')).toMatchObject({ Source: 'ec2' });
    expect(report.result.plan.conflicts).toEqual([
      expect.objectContaining({ kind: 'manual', sessionId: 'desktop', instanceId: instanceIdOf(262) }),
    ]);
    expect(report.result.plan.unparsable).toEqual([{ instanceId: instanceIdOf(261), reason: expect.stringContaining("dcv:port 'https'") }]);
    expect(log.entries.some((e) => e.level === 'warn' && e.fields.sessionId === 'desktop')).toBe(true);

    const again = countWrites();
    await reconcile();
    expect(writesSince(again)).toEqual({ puts: 0, deletes: 0 });
  });

  it('an operator edit between plan and write is never overwritten or deleted', async () => {
    fleet.setTags(instanceIdOf(304), { 'dcv:session-id': 's304', 'dcv:port': '7443' }); // plan: change s304
    fleet.setState(instanceIdOf(301), 'stopped'); // plan: remove s301
    fleet.setTags(instanceIdOf(302), { 'dcv:session-id': 's302,late-manual' }); // plan: add late-manual
    fleet.setTags(instanceIdOf(303), { 'dcv:session-id': 's303', 'dcv:port': '7443' }); // plan: change s303, untouched by the operator

    const inner = new DynamoDbDiscoveryTable(sdkDynamoApi(db), TABLE, { log: new RecordingLog() });
    const operatorEditsAfterRead: DiscoveryTable = {
      async *scan() {
        yield* inner.scan();
        // The operator works in the console while discovery is planning.
        await db.send(new UpdateItemCommand({ TableName: TABLE, Key: { SessionId: { S: 's304' } }, UpdateExpression: 'SET HttpPort = :p', ExpressionAttributeValues: { ':p': { S: '8444' } } }));
        await db.send(new UpdateItemCommand({ TableName: TABLE, Key: { SessionId: { S: 's301' } }, UpdateExpression: 'SET Enabled = :f', ExpressionAttributeValues: { ':f': { BOOL: false } } }));
        await db.send(new PutItemCommand({ TableName: TABLE, Item: { SessionId: { S: 'late-manual' }, DcvServerEndpoint: { S: '10.1.1.1' }, Source: { S: 'manual' } } }));
      },
      readScoped: (request) => inner.readScoped(request),
      apply: (change, updatedAt) => inner.apply(change, updatedAt),
    };
    const service = new DiscoveryService(new Ec2InstanceSource(new EC2Client({}), { pageSize: PAGE, sleep: noSleep }), operatorEditsAfterRead, { log: new RecordingLog() });
    const result = await service.reconcileAll();

    expect(result.skipped.map((s) => [s.change.kind, s.change.sessionId, s.reason])).toEqual([
      ['add', 'late-manual', SKIPPED_NEW],
      ['remove', 's301', SKIPPED_EDITED],
      ['change', 's304', SKIPPED_EDITED],
    ]);
    expect(result.applied.map((c) => `${c.kind} ${c.sessionId}`)).toEqual(['change s303']);
    const items = await table();
    expect(items.get('s304')).toMatchObject({ HttpPort: '8444', Source: 'ec2' });
    expect(items.get('s301')).toMatchObject({ Enabled: false, Source: 'ec2' });
    expect(items.get('late-manual')).toEqual({ SessionId: 'late-manual', DcvServerEndpoint: '10.1.1.1', Source: 'manual' });
    expect(items.get('s303')).toMatchObject({ HttpPort: 7443 });

    // They still say Source = ec2, but they no longer match what discovery wrote: the next run leaves them
    // alone too and reports them (late-manual stays untouched as well).
    const edited = await table();
    const next = await reconcile();
    expect(next.result.applied).toEqual([]);
    expect(next.result.plan.conflicts.filter((c) => c.kind === 'edited').map((c) => [c.sessionId, c.instanceId])).toEqual([
      ['s301', instanceIdOf(301)],
      ['s304', instanceIdOf(304)],
    ]);
    const after = await table();
    for (const id of ['s301', 's304', 'late-manual']) expect(after.get(id)).toEqual(edited.get(id));
  });

  it('an item edited by hand between runs is never overwritten or removed; deleting it hands it back', async () => {
    const id = 's701';
    const instanceId = instanceIdOf(701);
    // The operator edits the discovered item in the console (an UpdateItem), leaving Source = ec2.
    await db.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: { SessionId: { S: id } },
        UpdateExpression: 'SET HttpPort = :p, DcvServerEndpoint = :e',
        ExpressionAttributeValues: { ':p': { N: '9999' }, ':e': { S: 'desk-701.example.com' } },
      }),
    );
    const editedItem = (await table()).get(id)!;
    expect(editedItem).toMatchObject({ HttpPort: 9999, DcvServerEndpoint: 'desk-701.example.com', Source: 'ec2', InstanceId: instanceId });
    const conflict = { kind: 'edited', sessionId: id, instanceId, reason: EDITED_REASON };
    const conflictsOn = (report: FullReconcileReport) => report.result.plan.conflicts.filter((c) => c.sessionId === id);

    // Next run: nothing written, the item exactly as the operator left it, reported once (and logged).
    const log = new RecordingLog();
    let before = countWrites();
    let report = await reconcile({ log });
    expect(writesSince(before)).toEqual({ puts: 0, deletes: 0 });
    expect(report.result.counts).toMatchObject({ added: 0, changed: 0, removed: 0, skipped: 0, failed: 0 });
    expect(conflictsOn(report)).toEqual([conflict]);
    expect((await table()).get(id)).toEqual(editedItem);
    expect(log.entries.some((e) => e.level === 'warn' && e.fields.sessionId === id && e.fields.kind === 'edited')).toBe(true);

    // The tags change as well: still not overwritten.
    fleet.setTags(instanceId, { 'dcv:session-id': id, 'dcv:port': '7443' });
    before = countWrites();
    report = await reconcile();
    expect(writesSince(before)).toEqual({ puts: 0, deletes: 0 });
    expect(conflictsOn(report)).toEqual([conflict]);

    // The instance stops: neither the full run nor the state-change event removes the item.
    fleet.setState(instanceId, 'stopped');
    before = countWrites();
    report = await reconcile();
    expect(writesSince(before)).toEqual({ puts: 0, deletes: 0 });
    expect(conflictsOn(report)).toEqual([conflict]);
    const service = new DiscoveryService(
      new Ec2InstanceSource(new EC2Client({}), { sleep: noSleep }),
      new DynamoDbDiscoveryTable(sdkDynamoApi(db), TABLE, { log: new RecordingLog() }),
      { log: new RecordingLog() },
    );
    const event = await service.reconcileInstances([instanceId], 'state-change stopped');
    expect(event.counts).toMatchObject({ removed: 0, puts: 0, deletes: 0, conflicts: 1 });
    expect(event.plan.conflicts).toEqual([conflict]);
    expect((await table()).get(id)).toEqual(editedItem);

    // The operator deletes the item and the instance runs again: discovery registers it afresh, from the tags.
    await db.send(new DeleteItemCommand({ TableName: TABLE, Key: { SessionId: { S: id } } }));
    fleet.setState(instanceId, 'running');
    before = countWrites();
    report = await reconcile();
    expect(writesSince(before)).toEqual({ puts: 1, deletes: 0 });
    expect(report.result.counts).toMatchObject({ added: 1, changed: 0, removed: 0 });
    expect(conflictsOn(report)).toEqual([]);
    const recreated = (await table()).get(id)!;
    expect(recreated).toMatchObject({ HttpPort: 7443, DcvServerEndpoint: '10.0.2.189', Source: 'ec2', InstanceId: instanceId });
    expect(isUntouchedSinceDiscovery(recreated)).toBe(true);

    // Discovery's again: an unchanged fleet writes nothing, and the next stop removes it.
    before = countWrites();
    await reconcile();
    expect(writesSince(before)).toEqual({ puts: 0, deletes: 0 });
    fleet.setState(instanceId, 'stopped');
    report = await reconcile();
    expect(writesSince(before)).toEqual({ puts: 0, deletes: 1 });
    expect(report.result.applied.map((c) => `${c.kind} ${c.sessionId}`)).toEqual([`remove ${id}`]);
    expect((await table()).has(id)).toBe(false);
  });

  it('a Source = ec2 item created by hand (no DiscoveredHash) is left alone, even for a stopped or claiming instance', async () => {
    // Instance 101 has been stopped since an earlier test; instance 702 runs and claims s702.
    const byHand = (sessionId: string, instance: number) => ({
      SessionId: { S: sessionId },
      DcvServerEndpoint: { S: '10.77.0.1' },
      Source: { S: 'ec2' },
      InstanceId: { S: instanceIdOf(instance) },
    });
    await db.send(new PutItemCommand({ TableName: TABLE, Item: byHand('handmade', 101) }));
    await db.send(new DeleteItemCommand({ TableName: TABLE, Key: { SessionId: { S: 's702' } } }));
    await db.send(new PutItemCommand({ TableName: TABLE, Item: byHand('s702', 702) }));
    const before = countWrites();
    const report = await reconcile();
    expect(writesSince(before)).toEqual({ puts: 0, deletes: 0 });
    expect(report.result.plan.conflicts.filter((c) => c.sessionId === 'handmade' || c.sessionId === 's702')).toEqual([
      { kind: 'edited', sessionId: 'handmade', instanceId: instanceIdOf(101), reason: EDITED_REASON },
      { kind: 'edited', sessionId: 's702', instanceId: instanceIdOf(702), reason: EDITED_REASON },
    ]);
    const items = await table();
    expect(items.get('handmade')).toEqual({ SessionId: 'handmade', DcvServerEndpoint: '10.77.0.1', Source: 'ec2', InstanceId: instanceIdOf(101) });
    expect(items.get('s702')).toEqual({ SessionId: 's702', DcvServerEndpoint: '10.77.0.1', Source: 'ec2', InstanceId: instanceIdOf(702) });
  });

  it('a scan that fails on a middle page changes nothing, even with instances gone', async () => {
    for (let n = 400; n <= 450; n++) fleet.setState(instanceIdOf(n), 'terminated');
    fleet.setTags(instanceIdOf(461), { 'dcv:session-id': 's461', 'dcv:port': '1111' });
    const snapshot = await table();
    const first = fleet.calls;
    fleet.failure = ({ index }) => (index - first === 6 ? Object.assign(new Error('InternalFailure'), { name: 'UnauthorizedOperation' }) : undefined);
    const before = countWrites();
    const log = new RecordingLog();
    const report = await reconcile({ log });
    fleet.failure = undefined;

    expect(report.result.abortReason).toMatch(/instance listing failed after 900 instances: UnauthorizedOperation/);
    expect(report.result.plan.aborted).toBe(true);
    expect(writesSince(before)).toEqual({ puts: 0, deletes: 0 });
    expect(await table()).toEqual(snapshot);
    expect(log.entries.some((e) => e.level === 'error' && e.message.includes('aborted'))).toBe(true);
  });

  it('throttling that outlasts the retries also aborts without writing', async () => {
    const snapshot = await table();
    const first = fleet.calls;
    const throttled = () => Object.assign(new Error('Request limit exceeded.'), { name: 'RequestLimitExceeded' });
    fleet.failure = ({ index }) => (index - first >= 3 ? throttled() : undefined);
    const before = countWrites();
    const report = await runFullReconcile(clients(), { tableName: TABLE, ec2Options: { pageSize: PAGE, sleep: noSleep, pageRetries: 4 } });
    fleet.failure = undefined;
    expect(report.result.abortReason).toMatch(/RequestLimitExceeded/);
    expect(report.ec2Calls).toBe(3 + 1 + 4); // three good pages, then the first try and four retries of page 4
    expect(writesSince(before)).toEqual({ puts: 0, deletes: 0 });
    expect(await table()).toEqual(snapshot);
  });

  it('throttling on a page is retried with backoff, resuming from that page', async () => {
    const first = fleet.calls;
    const sleeps: number[] = [];
    fleet.failure = ({ index }) =>
      index - first === 5 || index - first === 6 ? Object.assign(new Error('slow down'), { name: 'RequestLimitExceeded' }) : undefined;
    const before = countWrites();
    const report = await runFullReconcile(clients(), {
      tableName: TABLE,
      ec2Options: { pageSize: PAGE, random: () => 1, baseBackoffMs: 100, sleep: async (ms) => void sleeps.push(ms) },
    });
    fleet.failure = undefined;
    expect(report.result.abortReason).toBeUndefined();
    expect(sleeps).toEqual([100, 200]);
    expect(report.ec2Calls).toBe(Math.ceil(report.result.counts.instances / PAGE) + 2);
    // The terminated instances from the aborted runs are removed now, and s461 takes its new port.
    const removed = 51 + 6; // 400..450, six of them (every 10th) also serving a console id
    expect(report.result.counts).toMatchObject({ removed, changed: 1, added: 0 });
    expect(writesSince(before)).toEqual({ puts: 1, deletes: removed });
    const items = await table();
    expect(items.has('s400')).toBe(false);
    expect(items.get('s461')).toMatchObject({ HttpPort: 1111 });
  });
});

describe('event-driven reconcile through the Lambda handler', () => {
  const logger = createLogger({ logLevel: 'SILENT' });
  // Direct invocations (EventBridge → Lambda) answer with the run's counts.
  const handler = () => {
    const handle = createDiscoveryHandler({
      service: new DiscoveryService(new Ec2InstanceSource(new EC2Client({}), { sleep: noSleep }), new DynamoDbDiscoveryTable(sdkDynamoApi(db), TABLE, { log: new RecordingLog() }), { log: new RecordingLog() }),
      logger,
    });
    return (event: unknown, ctx: never) => handle(event, ctx) as Promise<DiscoveryHandlerResult>;
  };
  const context = { functionName: 'discovery', awsRequestId: 'req-1' } as never;
  const stateChange = (id: string, state: string) => ({
    source: 'aws.ec2',
    'detail-type': 'EC2 Instance State-change Notification',
    detail: { 'instance-id': id, state },
  });
  const tagChange = (id: string) => ({
    source: 'aws.tag',
    'detail-type': 'Tag Change on Resource',
    resources: [`arn:aws:ec2:us-east-1:123456789012:instance/${id}`],
    detail: { service: 'ec2', 'resource-type': 'instance', 'changed-tag-keys': ['dcv:session-id'] },
  });

  it('a terminate event removes that instance’s items; nothing else is written', async () => {
    fleet.setState(instanceIdOf(500), 'terminated');
    fleet.setState(instanceIdOf(501), 'stopped'); // no event for this one: left for the schedule
    const before = countWrites();
    const result = await handler()(stateChange(instanceIdOf(500), 'terminated'), context);
    expect(result.counts).toMatchObject({ removed: 2, added: 0, changed: 0 });
    expect(writesSince(before)).toEqual({ puts: 0, deletes: 2 });
    const items = await table();
    expect(items.has('s500')).toBe(false);
    expect(items.has(instanceIdOf(500))).toBe(false);
    expect(items.has('s501')).toBe(true);
  });

  it('trusts the describe, not the event: a late "running" event for a stopped instance removes its item', async () => {
    const result = await handler()(stateChange(instanceIdOf(501), 'running'), context);
    expect(result.counts.removed).toBe(1);
    expect((await table()).has('s501')).toBe(false);
  });

  it('an instance that no longer exists has its items removed', async () => {
    fleet.instances.delete(instanceIdOf(502));
    await handler()(stateChange(instanceIdOf(502), 'terminated'), context);
    expect((await table()).has('s502')).toBe(false);
  });

  it('a tag change registers the new ids and removes the old one; repeating it writes nothing', async () => {
    fleet.setTags(instanceIdOf(503), { 'dcv:session-id': 'agent1=console,agent2' });
    const result = await handler()(tagChange(instanceIdOf(503)), context);
    expect(result.counts).toMatchObject({ added: 2, removed: 1 });
    const items = await table();
    expect(items.get('agent1')).toMatchObject({ TargetSessionId: 'console', InstanceId: instanceIdOf(503), DcvServerEndpoint: '10.0.1.247' });
    expect(items.has('s503')).toBe(false);
    const before = countWrites();
    await handler()(tagChange(instanceIdOf(503)), context);
    expect(writesSince(before)).toEqual({ puts: 0, deletes: 0 });
  });

  it('a claim on an id another instance holds is decided by launch time, describing the holder', async () => {
    // Instance 504 (launched later than 503) now also wants agent1: 503 keeps it.
    fleet.setTags(instanceIdOf(504), { 'dcv:session-id': 's504,agent1' });
    const lost = await handler()(tagChange(instanceIdOf(504)), context);
    expect(lost.counts).toMatchObject({ conflicts: 1, changed: 0, removed: 0 });
    expect((await table()).get('agent1')).toMatchObject({ InstanceId: instanceIdOf(503) });
    // 503 stops: the event for 503 hands agent1 to 504, as a full run would.
    fleet.setState(instanceIdOf(503), 'stopped');
    await handler()(stateChange(instanceIdOf(503), 'stopped'), context);
    await handler()(tagChange(instanceIdOf(504)), context);
    expect((await table()).get('agent1')).toMatchObject({ InstanceId: instanceIdOf(504), DcvServerEndpoint: '10.0.1.248' });
  });

  it('a scheduled event runs the full reconcile', async () => {
    const result = await handler()({ source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} }, context);
    expect(result.trigger).toBe('schedule');
    expect(result.counts.instances).toBeGreaterThan(1000);
  });

  it('fails the invocation (for the DLQ) on an unusable event or an aborted scan', async () => {
    await expect(handler()({ source: 'aws.s3', 'detail-type': 'x' }, context)).rejects.toThrow(/unsupported event/);
    fleet.failure = () => Object.assign(new Error('denied'), { name: 'UnauthorizedOperation' });
    await expect(handler()({ source: 'aws.events', 'detail-type': 'Scheduled Event' }, context)).rejects.toThrow(/aborted, nothing changed/);
    await expect(handler()(stateChange(instanceIdOf(7), 'running'), context)).rejects.toThrow(/denied/);
    fleet.failure = undefined;
  });

  it('fails the invocation when a write fails', async () => {
    fleet.setTags(instanceIdOf(601), { 'dcv:session-id': 's601', 'dcv:port': '6000' });
    const failing = createDiscoveryHandler({
      service: new DiscoveryService(
        new Ec2InstanceSource(new EC2Client({}), { sleep: noSleep }),
        {
          scan: () => new DynamoDbDiscoveryTable(sdkDynamoApi(db), TABLE, { log: new RecordingLog() }).scan(),
          readScoped: (request) => new DynamoDbDiscoveryTable(sdkDynamoApi(db), TABLE, { log: new RecordingLog() }).readScoped(request),
          apply: async () => {
            throw Object.assign(new Error('boom'), { name: 'InternalServerError' });
          },
        },
        { log: new RecordingLog() },
      ),
      logger,
    });
    await expect(failing(tagChange(instanceIdOf(601)), context)).rejects.toThrow(/1 write\(s\) failed \(first: change 's601': InternalServerError: boom\)/);
  });
});

// Deleting keeps the helper honest: the table scan above must see deletions immediately.
it('table() sees a delete immediately', async () => {
  await db.send(new DeleteItemCommand({ TableName: TABLE, Key: { SessionId: { S: 's1' } } }));
  expect((await table()).has('s1')).toBe(false);
});

describe('conditional writes match every attribute type an operator can leave on an item', () => {
  const odd = (id: string) => ({
    SessionId: { S: id },
    DcvServerEndpoint: { S: '10.9.9.9' },
    HttpPort: { S: '8443' }, // typed as a string in the console
    AllowedClientCidrs: { L: [{ S: '10.0.0.0/8' }, { S: '192.168.0.0/16' }] },
    Source: { S: 'ec2' },
    InstanceId: { S: 'i-0fffffffffffffff0' },
    Notes: { M: { owner: { S: 'ops' }, tickets: { L: [{ N: '1' }, { N: '2' }] } } },
    Flags: { SS: ['b', 'a'] },
    Cleared: { NULL: true },
  });

  it('an unchanged item is removed; the same item edited after the read is left alone', async () => {
    await db.send(new PutItemCommand({ TableName: TABLE, Item: odd('odd-1') }));
    await db.send(new PutItemCommand({ TableName: TABLE, Item: odd('odd-2') }));
    const store = new DynamoDbDiscoveryTable(sdkDynamoApi(db), TABLE, { log: new RecordingLog() });
    const snapshot = await store.readScoped({ instanceIds: [], sessionIds: ['odd-1', 'odd-2'] });
    const [one, two] = ['odd-1', 'odd-2'].map((id) => snapshot.current.find((c) => c.sessionId === id)!);
    // Edit odd-2 deep inside the map after the read.
    await db.send(new UpdateItemCommand({ TableName: TABLE, Key: { SessionId: { S: 'odd-2' } }, UpdateExpression: 'SET Notes.tickets[1] = :n', ExpressionAttributeValues: { ':n': { N: '3' } } }));
    const removeOne = await store.apply({ kind: 'remove', sessionId: 'odd-1', previous: one!, reason: 'test' }, 'now');
    const removeTwo = await store.apply({ kind: 'remove', sessionId: 'odd-2', previous: two!, reason: 'test' }, 'now');
    expect(removeOne).toEqual({ status: 'applied' });
    expect(removeTwo).toEqual({ status: 'skipped', reason: SKIPPED_EDITED });
    const items = await table();
    expect(items.has('odd-1')).toBe(false);
    expect(items.get('odd-2')).toMatchObject({ Notes: { owner: 'ops', tickets: [1, 3] } });
  });
});

describe('portal: pool tags and lease items', () => {
  const lease = (member: string, extra: Record<string, { S: string } | { N: string }> = {}) => ({
    SessionId: { S: `lease:${member}` },
    DcvServerEndpoint: { S: '10.0.9.1' },
    HttpPort: { N: '8443' },
    Source: { S: 'lease' },
    Pool: { S: 'gpu' },
    LeaseUser: { S: 'alice@example.com' },
    AllowedUsers: { L: [{ S: 'alice@example.com' }] },
    UpdatedAt: { S: '2026-01-01T00:00:00.000Z' },
    ...extra,
  });

  it('pool and access tags land on the discovered item, which reads back untouched; a second run leaves it', async () => {
    fleet.setTags(instanceIdOf(902), { 'dcv:session-id': 's902', 'dcv:pool': 'gpu', 'dcv:allowed-groups': ' ops , gpu-users ', 'dcv:allowed-users': 'bob' });
    fleet.setTags(instanceIdOf(903), { 'dcv:session-id': 'lease:s903' });
    const report = await reconcile();
    expect(report.result.abortReason).toBeUndefined();
    const items = await table();
    expect(items.get('s902')).toMatchObject({ Pool: 'gpu', AllowedGroups: ['ops', 'gpu-users'], AllowedUsers: ['bob'], Source: 'ec2' });
    expect(isUntouchedSinceDiscovery(items.get('s902')!)).toBe(true);
    // An instance may not claim a lease id: reported, nothing registered (its old item s903 is removed).
    expect(report.result.plan.unparsable).toContainEqual({ instanceId: instanceIdOf(903), reason: expect.stringContaining("reserved for the portal's pool leases") });
    expect(items.has('lease:s903')).toBe(false);
    const again = await reconcile();
    expect(again.result.applied.map((c) => c.sessionId)).not.toContain('s902');
  });

  it('discovery never touches Source = lease items: not on a full reconcile, not when the member stops or is terminated', async () => {
    // An expired lease, a live one naming its member's instance, one without expiry, and one that even
    // carries a matching DiscoveredHash: only its Source keeps discovery from removing it with its instance.
    const hashed = lease('s907', { InstanceId: { S: instanceIdOf(907) } });
    const items0 = [
      lease('s904', { ExpiresAt: { N: '1' } }),
      lease('s905', { ExpiresAt: { N: String(Math.floor(Date.now() / 1000) + 3600) }, InstanceId: { S: instanceIdOf(905) } }),
      lease('s906'),
      { ...hashed, DiscoveredHash: { S: fingerprint(fromItem(hashed)) } },
    ];
    for (const Item of items0) await db.send(new PutItemCommand({ TableName: TABLE, Item }));
    const before = await table();
    fleet.setState(instanceIdOf(904), 'stopped');
    fleet.setState(instanceIdOf(905), 'terminated');
    fleet.setState(instanceIdOf(907), 'terminated');

    const full = await reconcile();
    expect(full.result.abortReason).toBeUndefined();
    expect(full.result.applied.filter((c) => c.sessionId.startsWith('lease:'))).toEqual([]);
    // The members' own ec2 items go, as always; the leases stay exactly as written.
    let items = await table();
    expect(items.has('s904')).toBe(false);
    expect(items.has('s905')).toBe(false);
    for (const id of ['lease:s904', 'lease:s905', 'lease:s906', 'lease:s907']) expect(items.get(id)).toEqual(before.get(id));
    expect(isUntouchedSinceDiscovery(items.get('lease:s907')!)).toBe(true);

    // Event-driven: the terminate event reads the instance's items by InstanceId, the lease among them.
    const handle = createDiscoveryHandler({
      service: new DiscoveryService(new Ec2InstanceSource(new EC2Client({}), { sleep: noSleep }), new DynamoDbDiscoveryTable(sdkDynamoApi(db), TABLE, { log: new RecordingLog() }), { log: new RecordingLog() }),
      logger: createLogger({ logLevel: 'SILENT' }),
    });
    const event = { source: 'aws.ec2', 'detail-type': 'EC2 Instance State-change Notification', detail: { 'instance-id': instanceIdOf(905), state: 'terminated' } };
    await handle(event, { functionName: 'discovery', awsRequestId: 'req-lease' } as never);
    items = await table();
    expect(items.get('lease:s905')).toEqual(before.get('lease:s905'));
  });
});

describe('desktops on demand: a power-tagged instance keeps its items while it is not running', () => {
  const id = instanceIdOf;
  const handle = () =>
    createDiscoveryHandler({
      service: new DiscoveryService(new Ec2InstanceSource(new EC2Client({}), { sleep: noSleep }), new DynamoDbDiscoveryTable(sdkDynamoApi(db), TABLE, { log: new RecordingLog() }), { log: new RecordingLog() }),
      logger: createLogger({ logLevel: 'SILENT' }),
    });
  const stateChange = (n: number, state: string) => ({
    source: 'aws.ec2',
    'detail-type': 'EC2 Instance State-change Notification',
    detail: { 'instance-id': id(n), state },
  });
  const context = { functionName: 'discovery', awsRequestId: 'req-power' } as never;

  it('full reconcile: each of the three tags keeps the items of a stopped, pending or stopping instance, with InstanceState; an untagged one is removed', async () => {
    fleet.setTags(id(950), { 'dcv:session-id': 's950', 'dcv:auto-stop': '30' });
    fleet.setTags(id(951), { 'dcv:session-id': 's951', 'dcv:start-on-connect': 'true' });
    fleet.setTags(id(952), { 'dcv:session-id': 's952', 'dcv:schedule': 'Mon-Fri 08:00-19:00 Europe/Paris' });
    await reconcile();
    let items = await table();
    expect(items.get('s950')).toMatchObject({ AutoStopMinutes: 30, InstanceState: 'running' });
    expect(items.get('s951')).toMatchObject({ StartOnConnect: true, InstanceState: 'running' });
    expect(items.get('s952')).toMatchObject({ Schedule: 'Mon-Fri 08:00-19:00 Europe/Paris', InstanceState: 'running' });
    expect(items.get('s953')).toMatchObject({ InstanceState: 'running' });

    for (const [n, state] of [[950, 'stopped'], [951, 'pending'], [952, 'stopping'], [953, 'stopped']] as const) fleet.setState(id(n), state);
    const report = await reconcile();
    expect(report.result.applied.map((c) => [c.sessionId, c.kind])).toEqual([
      ['s950', 'change'],
      ['s951', 'change'],
      ['s952', 'change'],
      ['s953', 'remove'],
    ]);
    items = await table();
    expect(items.get('s950')).toMatchObject({ AutoStopMinutes: 30, InstanceState: 'stopped', DcvServerEndpoint: '10.0.3.182', Source: 'ec2' });
    expect(items.get('s951')).toMatchObject({ StartOnConnect: true, InstanceState: 'pending' });
    expect(items.get('s952')).toMatchObject({ Schedule: 'Mon-Fri 08:00-19:00 Europe/Paris', InstanceState: 'stopping' });
    expect(items.has('s953')).toBe(false);
    // Still discovery's own (a later run manages them), and a second run writes nothing for them.
    for (const sid of ['s950', 's951', 's952']) expect(isUntouchedSinceDiscovery(items.get(sid)!)).toBe(true);
    const again = await reconcile();
    expect(again.result.applied.map((c) => c.sessionId).filter((sid) => /^s95[0-3]$/.test(sid))).toEqual([]);

    // Running again: the items say so.
    fleet.setState(id(950), 'running');
    await reconcile();
    expect((await table()).get('s950')).toMatchObject({ InstanceState: 'running' });
  });

  it('events: stopping, then stopped, update InstanceState; terminated removes the items', async () => {
    fleet.setTags(id(954), { 'dcv:session-id': 's954,{instanceId}=console', 'dcv:auto-stop': '15' });
    await handle()(stateChange(954, 'running'), context);
    for (const state of ['stopping', 'stopped']) {
      fleet.setState(id(954), state);
      const result = (await handle()(stateChange(954, state), context)) as DiscoveryHandlerResult;
      expect(result.counts).toMatchObject({ changed: 2, removed: 0 });
      const items = await table();
      expect([items.get('s954')?.InstanceState, items.get(id(954))?.InstanceState]).toEqual([state, state]);
    }
    fleet.setState(id(954), 'terminated');
    await handle()(stateChange(954, 'terminated'), context);
    const items = await table();
    expect(items.has('s954')).toBe(false);
    expect(items.has(id(954))).toBe(false);
  });

  it('a bad value registers nothing for that instance (its items removed), and is reported with the tag', async () => {
    fleet.setTags(id(955), { 'dcv:session-id': 's955', 'dcv:start-on-connect': 'true' });
    fleet.setState(id(955), 'stopped');
    await reconcile();
    expect((await table()).get('s955')).toMatchObject({ InstanceState: 'stopped' });
    fleet.setTags(id(955), { 'dcv:session-id': 's955', 'dcv:start-on-connect': 'true', 'dcv:schedule': 'Mon-Fri 08:00-19:00 Europe/Pariss' });
    const log = new RecordingLog();
    const report = await reconcile({ log });
    expect(report.result.plan.unparsable).toContainEqual({
      instanceId: id(955),
      reason: "dcv:schedule 'Mon-Fri 08:00-19:00 Europe/Pariss': 'Europe/Pariss' is not an IANA time zone (e.g. Europe/Paris, America/New_York, UTC)",
    });
    expect(JSON.stringify(log.entries)).toContain('Europe/Pariss');
    expect((await table()).has('s955')).toBe(false);
  });

  it('a running instance wins a session id over a stopped one that launched earlier', async () => {
    fleet.setTags(id(956), { 'dcv:session-id': 'shared-desk', 'dcv:auto-stop': '60' });
    fleet.setState(id(956), 'stopped');
    fleet.setTags(id(957), { 'dcv:session-id': 'shared-desk' });
    const report = await reconcile();
    expect((await table()).get('shared-desk')).toMatchObject({ InstanceId: id(957), InstanceState: 'running' });
    expect(report.result.plan.conflicts).toContainEqual({
      kind: 'duplicate',
      sessionId: 'shared-desk',
      instanceId: id(956),
      reason: `also claimed by ${id(957)}, which wins (it is running; this instance is stopped)`,
    });
  });
});
