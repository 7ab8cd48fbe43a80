import { DeleteItemCommand, PutItemCommand, ScanCommand, UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DynamoApi, DynamoOperation } from '../../lambda/adapters/dynamodb-api';
import { DynamoDbDiscoveryTable, SKIPPED_EDITED } from '../../lambda/adapters/dynamodb-discovery-table';
import { DynamoLiteClient } from '../../lambda/adapters/dynamodb-lite';
import { fromItem } from '../../lambda/adapters/dynamodb-session-store';
import { Ec2InstanceSource } from '../../lambda/adapters/ec2-instance-source';
import { createLogger } from '../../lambda/adapters/logger';
import { DiscoveryService, type DiscoveryTable } from '../../lambda/core/discovery/run-discovery';
import type { RawItem } from '../../lambda/core/session-record';
import { createDiscoveryHandler } from '../../lambda/handlers/discovery-handler';
import { createDiscoveryTable } from '../helpers/discovery-table';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { FakeFleet, fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
import { RecordingLog } from '../helpers/recording-log';

/**
 * Event runs on the InstanceId index, against dynalite, through the function's lean client: they read
 * only what the named instances hold or want (no Scan), and stay correct when the index lags the table
 * (DynamoDB's global secondary indexes are eventually consistent): the index only says where to look,
 * the items are read strongly consistent, and every write is conditional.
 */
const FLEET = 1500;
const TABLE = 'discovery-index-it';
const PLAIN_TABLE = 'discovery-no-index-it';

const ec2Mock = mockClient(EC2Client);
const fleet = new FakeFleet();
let dynamo: LocalDynamo;
let db: DynamoDBClient;
let lite: DynamoLiteClient;

/** Counts the operations sent, and lets a test rewrite what the index answers (a lagging index). */
class ObservedApi implements DynamoApi {
  counts: Partial<Record<DynamoOperation, number>> = {};
  indexView?: (instanceId: string, keys: string[]) => string[];

  constructor(private readonly inner: DynamoApi) {}

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async call<T = Record<string, any>>(operation: DynamoOperation, input: Record<string, unknown>): Promise<T> {
    this.counts[operation] = (this.counts[operation] ?? 0) + 1;
    const answer = await this.inner.call<T>(operation, input);
    if (operation !== 'Query' || !this.indexView) return answer;
    const page = answer as { Items?: Record<string, { S?: string }>[] };
    const instanceId = (input.ExpressionAttributeValues as Record<string, { S: string }>)[':i']!.S;
    const keys = this.indexView(instanceId, (page.Items ?? []).map((i) => i.SessionId!.S!));
    return { ...page, Items: keys.map((k) => ({ SessionId: { S: k }, InstanceId: { S: instanceId } })), Count: keys.length } as T;
  }

  take(): Partial<Record<DynamoOperation, number>> {
    const counts = this.counts;
    this.counts = {};
    return counts;
  }
}

let api: ObservedApi;
let log: RecordingLog;

function service(table: DiscoveryTable = new DynamoDbDiscoveryTable(api, TABLE, { log })): DiscoveryService {
  return new DiscoveryService(new Ec2InstanceSource(new EC2Client({}), { sleep: async () => {} }), table, { log });
}

async function items(table = TABLE): Promise<Map<string, RawItem>> {
  const out = new Map<string, RawItem>();
  let start: Record<string, never> | undefined;
  do {
    const page = await db.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start, ConsistentRead: true }));
    for (const raw of page.Items ?? []) out.set(raw.SessionId!.S!, fromItem(raw));
    start = page.LastEvaluatedKey as typeof start;
  } while (start);
  return out;
}

beforeAll(async () => {
  dynamo = await startDynalite();
  db = dynamo.client();
  await createDiscoveryTable(db, TABLE);
  await createDiscoveryTable(db, PLAIN_TABLE, { instanceIndex: false });
  lite = new DynamoLiteClient({ endpoint: dynamo.endpoint, deadlineMs: 10_000, attemptTimeoutMs: 5000 });
  ec2Mock.on(DescribeInstancesCommand).callsFake((input) => fleet.describe(input));
  // Every 10th instance also serves its console under its own id: two items for one instance.
  for (let n = 1; n <= FLEET; n++) {
    fleet.put(fleetInstance(n, { tags: { 'dcv:session-id': n % 10 === 0 ? `s${n},{instanceId}=console` : `s${n}` } }));
  }
  api = new ObservedApi(lite);
  log = new RecordingLog();
  for (const table of [TABLE, PLAIN_TABLE]) {
    const full = await service(new DynamoDbDiscoveryTable(api, table, { log })).reconcileAll();
    expect(full.counts).toMatchObject({ added: FLEET + FLEET / 10, failed: 0 });
  }
});

afterAll(async () => {
  ec2Mock.restore();
  lite?.close();
  await dynamo?.stop();
});

beforeEach(() => {
  api.take();
  api.indexView = undefined;
  log = new RecordingLog();
});

describe('an event run reads through the index, never the whole table', () => {
  it('a stop: one Query, one BatchGetItem, the deletes; no Scan', async () => {
    fleet.setState(instanceIdOf(20), 'stopped');
    const result = await service().reconcileInstances([instanceIdOf(20)], 'state-change stopped');
    expect(result.counts).toMatchObject({ removed: 2, added: 0, changed: 0, failed: 0, skipped: 0, ec2Calls: 1 });
    expect(api.take()).toEqual({ Query: 1, BatchGetItem: 1, DeleteItem: 2 });
    const after = await items();
    expect(after.has('s20')).toBe(false);
    expect(after.has(instanceIdOf(20))).toBe(false);
    expect(after.size).toBe(FLEET + FLEET / 10 - 2);
  });

  it('a start and a retag: the wanted ids are read by key; an unchanged event writes nothing', async () => {
    fleet.setState(instanceIdOf(20), 'running');
    fleet.setTags(instanceIdOf(21), { 'dcv:session-id': 's21,extra21', 'dcv:port': '9443' });
    const result = await service().reconcileInstances([instanceIdOf(20), instanceIdOf(21)], 'tag-change');
    expect(result.counts).toMatchObject({ added: 3, changed: 1, removed: 0, failed: 0 });
    expect(api.take()).toEqual({ Query: 2, BatchGetItem: 1, PutItem: 3, UpdateItem: 1 });
    expect((await items()).get('s21')).toMatchObject({ HttpPort: 9443, InstanceId: instanceIdOf(21) });
    const again = await service().reconcileInstances([instanceIdOf(20), instanceIdOf(21)], 'tag-change');
    expect(again.counts).toMatchObject({ unchanged: 4, added: 0, changed: 0, removed: 0, puts: 0, deletes: 0 });
    expect(api.take()).toEqual({ Query: 2, BatchGetItem: 1 });
  });

  it('a claim on an id another instance holds: the holder is described and its items read, still no Scan', async () => {
    // 31 (launched later) wants s30, which 30 holds: 30 keeps it, as a full run decides.
    fleet.setTags(instanceIdOf(31), { 'dcv:session-id': 's31,s30' });
    const lost = await service().reconcileInstances([instanceIdOf(31)], 'tag-change');
    expect(lost.plan.conflicts).toEqual([expect.objectContaining({ kind: 'duplicate', sessionId: 's30', instanceId: instanceIdOf(31) })]);
    expect(lost.counts).toMatchObject({ added: 0, changed: 0, removed: 0, ec2Calls: 2 });
    expect(api.take()).toEqual({ Query: 2, BatchGetItem: 2 });
    expect((await items()).get('s30')).toMatchObject({ InstanceId: instanceIdOf(30) });
  });
});

describe('a lagging index never leads to a wrong write', () => {
  it('an item not in the index yet is left for the full reconcile, which removes it', async () => {
    fleet.setState(instanceIdOf(40), 'stopped');
    // The index has not caught up with the write that created s40 (nor the console item).
    api.indexView = (instanceId, keys) => (instanceId === instanceIdOf(40) ? [] : keys);
    const result = await service().reconcileInstances([instanceIdOf(40)], 'state-change stopped');
    expect(result.counts).toMatchObject({ removed: 0, added: 0, changed: 0, failed: 0, skipped: 0 });
    expect((await items()).has('s40')).toBe(true);
    api.indexView = undefined;
    const full = await service().reconcileAll();
    expect(full.applied.map((c) => `${c.kind} ${c.sessionId}`).sort()).toEqual([`remove ${instanceIdOf(40)}`, 'remove s40']);
  });

  it('a running instance whose items are missing from the index still sees them by key: no duplicate add, no change', async () => {
    api.indexView = () => [];
    const result = await service().reconcileInstances([instanceIdOf(50)], 'state-change running');
    expect(result.counts).toMatchObject({ unchanged: 2, added: 0, changed: 0, removed: 0, skipped: 0, puts: 0, deletes: 0 });
  });

  it('an index entry for an item since deleted, handed to another instance, or made manual: none of them is touched', async () => {
    fleet.setState(instanceIdOf(60), 'stopped');
    const s61 = (await items()).get('s61')!;
    // The index is stale: it still lists under instance 60 an item since deleted (s60), one taken over by
    // hand as manual (s61) and one that belongs to another instance (s62, instance 62's; say it moved).
    await db.send(new DeleteItemCommand({ TableName: TABLE, Key: { SessionId: { S: 's60' } } }));
    await db.send(new UpdateItemCommand({ TableName: TABLE, Key: { SessionId: { S: 's61' } }, UpdateExpression: 'SET #s = :m', ExpressionAttributeNames: { '#s': 'Source' }, ExpressionAttributeValues: { ':m': { S: 'manual' } } }));
    api.indexView = (instanceId, keys) => (instanceId === instanceIdOf(60) ? [...keys, 's60', 's61', 's62'] : keys);
    const before = await items();
    const result = await service().reconcileInstances([instanceIdOf(60)], 'state-change stopped');
    // Only the console item instance 60 really still holds goes.
    expect(result.applied.map((c) => `${c.kind} ${c.sessionId}`)).toEqual([`remove ${instanceIdOf(60)}`]);
    expect(result.counts).toMatchObject({ removed: 1, skipped: 0, failed: 0, conflicts: 0 });
    const after = await items();
    expect(after.get('s61')).toEqual({ ...s61, Source: 'manual' });
    expect(after.get('s62')).toEqual(before.get('s62'));
    expect(after.has('s60')).toBe(false);
  });

  it('an item edited by hand after the consistent read is skipped by its conditional write', async () => {
    fleet.setState(instanceIdOf(70), 'stopped');
    const inner = new DynamoDbDiscoveryTable(api, TABLE, { log });
    const editsAfterRead: DiscoveryTable = {
      scan: () => inner.scan(),
      async readScoped(request) {
        const snapshot = await inner.readScoped(request);
        await db.send(new UpdateItemCommand({ TableName: TABLE, Key: { SessionId: { S: 's70' } }, UpdateExpression: 'SET HttpPort = :p', ExpressionAttributeValues: { ':p': { N: '9999' } } }));
        return snapshot;
      },
      apply: (change, updatedAt) => inner.apply(change, updatedAt),
    };
    const result = await service(editsAfterRead).reconcileInstances([instanceIdOf(70)], 'state-change stopped');
    expect(result.skipped.map((s) => [s.change.sessionId, s.reason])).toEqual([['s70', SKIPPED_EDITED]]);
    expect(result.applied.map((c) => c.sessionId)).toEqual([instanceIdOf(70)]);
    expect((await items()).get('s70')).toMatchObject({ HttpPort: 9999, Source: 'ec2' });
  });

  it('a manual item created after the read with an id the instance wants is not overwritten', async () => {
    fleet.setTags(instanceIdOf(80), { 'dcv:session-id': 's80,late80' });
    const inner = new DynamoDbDiscoveryTable(api, TABLE, { log });
    const manualAfterRead: DiscoveryTable = {
      scan: () => inner.scan(),
      async readScoped(request) {
        const snapshot = await inner.readScoped(request);
        await db.send(new PutItemCommand({ TableName: TABLE, Item: { SessionId: { S: 'late80' }, DcvServerEndpoint: { S: '10.8.8.8' }, Source: { S: 'manual' } } }));
        return snapshot;
      },
      apply: (change, updatedAt) => inner.apply(change, updatedAt),
    };
    const result = await service(manualAfterRead).reconcileInstances([instanceIdOf(80)], 'tag-change');
    expect(result.counts).toMatchObject({ added: 0, skipped: 1 });
    expect((await items()).get('late80')).toEqual({ SessionId: 'late80', DcvServerEndpoint: '10.8.8.8', Source: 'manual' });
  });
});

describe('a table without the index (just deployed, still backfilling)', () => {
  it('the event run falls back to a consistent Scan, says so, and decides the same', async () => {
    fleet.setState(instanceIdOf(90), 'stopped');
    const table = new DynamoDbDiscoveryTable(api, PLAIN_TABLE, { log });
    const result = await service(table).reconcileInstances([instanceIdOf(90)], 'state-change stopped');
    expect(result.applied.map((c) => `${c.kind} ${c.sessionId}`)).toEqual([`remove ${instanceIdOf(90)}`, 'remove s90']);
    const counts = api.take();
    expect(counts.Query).toBe(1);
    expect(counts.Scan).toBeGreaterThanOrEqual(1);
    expect(log.entries.filter((e) => e.level === 'warn').map((e) => e.message)).toEqual(['instance index unavailable; scanning the table for this event']);
    expect((await items(PLAIN_TABLE)).has('s90')).toBe(false);
  });
});

describe('a burst of queued events through the handler', () => {
  it('one batch: one describe, one Query per instance, one BatchGetItem; only the stopped instances lose their items', async () => {
    const stopped = Array.from({ length: 25 }, (_, i) => 101 + i);
    for (const n of stopped) fleet.setState(instanceIdOf(n), 'stopped');
    const callsBefore = fleet.calls;
    const handler = createDiscoveryHandler({ service: service(), logger: createLogger({ logLevel: 'SILENT' }) });
    const event = (n: number) => ({
      source: 'aws.ec2',
      'detail-type': 'EC2 Instance State-change Notification',
      detail: { 'instance-id': instanceIdOf(n), state: 'stopped' },
    });
    // The same instance twice (EventBridge delivers at least once): one run covers both.
    const bodies = [...stopped.map(event), event(101)];
    const batch = { Records: bodies.map((body, i) => ({ messageId: `m${i}`, eventSource: 'aws:sqs', body: JSON.stringify(body) })) };
    const answer = await handler(batch, { functionName: 'discovery', awsRequestId: 'r' } as never);
    expect(answer).toEqual({ batchItemFailures: [] });
    expect(fleet.calls - callsBefore).toBe(1);
    expect(api.take()).toEqual({ Query: 25, BatchGetItem: 1, DeleteItem: 25 + 2 });
    const after = await items();
    for (const n of stopped) expect(after.has(`s${n}`)).toBe(false);
    expect(after.has('s126')).toBe(true);
  });
});
