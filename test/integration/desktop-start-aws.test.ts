import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EC2Client } from '@aws-sdk/client-ec2';
import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsDesktopStart } from '../../lambda/adapters/desktop-start-aws';
import { sdkDynamoApi } from '../../lambda/adapters/dynamodb-api';
import { loadHostSignalsScript } from '../../lambda/adapters/host-signals-script';
import { createDiscoveryTable } from '../helpers/discovery-table';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { FakeFleet, fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
import { Ec2PowerModel } from '../helpers/ec2-power';
import { startEc2QueryServer, type Ec2QueryServer } from '../helpers/ec2-query-server';
import { dcvSessions, writeFakeDcvHost } from '../helpers/fake-dcv-host';
import { RecordingLog } from '../helpers/recording-log';
import { startSsmServer, type SsmServer } from '../helpers/ssm-server';

/** The AWS adapter of Start and open against dynalite, a loopback EC2 and a loopback SSM running the shipped script. */
const TABLE = 'desktop-start-aws';
const I1 = instanceIdOf(1);
const I2 = instanceIdOf(2);
const I3 = instanceIdOf(3);
const credentials = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' };

let dynamo: LocalDynamo;
let ec2: Ec2QueryServer;
let ssm: SsmServer;
let root: string;
let port: AwsDesktopStart;
const fleet = new FakeFleet();
const power = new Ec2PowerModel(fleet, { pendingMs: Infinity });

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'desktop-start-aws-'));
  [dynamo, ssm] = await Promise.all([startDynalite(), startSsmServer()]);
  ec2 = await startEc2QueryServer(fleet, power);
  await createDiscoveryTable(dynamo.client(), TABLE);
  fleet.put(fleetInstance(1, { state: 'stopped', tags: { 'dcv:session-id': 'desk-b,desk-c', 'dcv:start-on-connect': 'true' } }));
  fleet.put(fleetInstance(2, { state: 'running', tags: { 'dcv:session-id': 'other', 'dcv:start-on-connect': 'true' } }));
  ssm.ssm.hosts.set(I1, { binDir: writeFakeDcvHost(join(root, 'h1'), dcvSessions([['console', 0, '2026-12-07T09:00:00.123456Z', '']])).bin });
  ssm.ssm.hosts.set(I2, { binDir: join(root, 'no-dcv') });
  ssm.ssm.hosts.set(I3, { unmanaged: true });
  port = new AwsDesktopStart({
    ec2: new EC2Client({ endpoint: ec2.endpoint, region: 'us-east-1', credentials, maxAttempts: 1 }),
    ssm: new SSMClient({ endpoint: ssm.endpoint, region: 'us-east-1', credentials, maxAttempts: 1 }),
    dynamodb: sdkDynamoApi(dynamo.client()),
    tableName: TABLE,
    signals: { commands: loadHostSignalsScript() },
    log: new RecordingLog(),
  });
  // Discovery through the adapter itself writes the instance's items.
  await port.refresh(I1);
  // A manual item naming the instance, with a smaller id: never the anchor (the pass only reads Source=ec2).
  await dynamo.client().send(new PutItemCommand({ TableName: TABLE, Item: { SessionId: { S: 'desk-a' }, DcvServerEndpoint: { S: '10.9.9.9' }, InstanceId: { S: I1 }, Source: { S: 'manual' } } }));
}, 60_000);

afterAll(async () => {
  await Promise.allSettled([ssm?.close(), ec2?.close(), dynamo?.stop()]);
  if (root) rmSync(root, { recursive: true, force: true });
});

const item = async (sessionId: string) => (await dynamo.client().send(new GetItemCommand({ TableName: TABLE, Key: { SessionId: { S: sessionId } }, ConsistentRead: true }))).Item;

describe('AwsDesktopStart', () => {
  it('refresh: discovery for one instance writes its items with its state', async () => {
    expect((await item('desk-b'))?.InstanceState?.S).toBe('stopped');
    expect((await item('desk-c'))?.Source?.S).toBe('ec2');
    expect(await item('other')).toBeUndefined();
  });

  it("refresh with itemRefresh 'stack-discovery' (the portal function) writes nothing: the stack's discovery does", async () => {
    const writes: string[] = [];
    const api = sdkDynamoApi(dynamo.client());
    const inStack = new AwsDesktopStart({
      ec2: new EC2Client({ endpoint: ec2.endpoint, region: 'us-east-1', credentials, maxAttempts: 1 }),
      ssm: new SSMClient({ endpoint: ssm.endpoint, region: 'us-east-1', credentials, maxAttempts: 1 }),
      dynamodb: { call: (operation, input) => (writes.push(operation), api.call(operation, input)) },
      tableName: TABLE,
      signals: { documentName: 'HostSignals' },
      itemRefresh: 'stack-discovery',
      log: new RecordingLog(),
    });
    await inStack.refresh(I2);
    expect(writes).toEqual([]);
    expect(await item('other')).toBeUndefined();
  });

  it('instanceState: EC2’s state; undefined for an instance EC2 does not return', async () => {
    expect(await port.instanceState(I1)).toBe('stopped');
    expect(await port.instanceState(I2)).toBe('running');
    expect(await port.instanceState(instanceIdOf(99))).toBeUndefined();
  });

  it('anchor: the smallest SessionId among the instance’s Source=ec2 items, with its claim as stored', async () => {
    expect(await port.anchor(I1)).toEqual({ sessionId: 'desk-b' });
    expect(await port.anchor(instanceIdOf(99))).toBeUndefined();
  });

  it('writeClaim: only the first of two claims is written; a removal needs the value written', async () => {
    const claim = { sessionId: 'desk-b', instanceId: I1, attribute: 'PowerStartAt' as const, value: '2026-12-07T10:00:00.000Z' };
    const results = await Promise.all([port.writeClaim(claim), port.writeClaim({ ...claim, value: '2026-12-07T10:00:00.001Z' })]);
    expect(results.sort()).toEqual(['conflict', 'written']);
    const held = (await item('desk-b'))!.PowerStartAt!.S!;
    expect(await port.anchor(I1)).toEqual({ sessionId: 'desk-b', powerStartAt: held });
    expect(await port.writeClaim({ sessionId: 'desk-b', instanceId: I1, attribute: 'PowerStartAt', read: 'something else' })).toBe('conflict');
    // Another instance's id in the condition: refused too.
    expect(await port.writeClaim({ sessionId: 'desk-b', instanceId: I2, attribute: 'PowerStartAt', read: held })).toBe('conflict');
    expect(await port.writeClaim({ sessionId: 'desk-b', instanceId: I1, attribute: 'PowerStartAt', read: held })).toBe('written');
    expect((await item('desk-b'))!.PowerStartAt).toBeUndefined();
  });

  it('start: one StartInstances, accepted with the new state', async () => {
    expect(await port.start(I1)).toEqual({ instanceId: I1, outcome: 'accepted', previousState: 'stopped', currentState: 'pending' });
    expect(power.calls.filter((c) => c.action === 'StartInstances')).toEqual([{ action: 'StartInstances', instanceIds: [I1] }]);
  });

  it('dcvSessions: the ids DCV lists; without dcv, or not a managed node: why', async () => {
    expect(await port.dcvSessions(I1, Date.now() + 10_000)).toEqual({ ok: true, sessionIds: ['console'] });
    expect(await port.dcvSessions(I2, Date.now() + 10_000)).toEqual({ ok: false, reason: 'DCV cannot be asked (dcv-missing)' });
    const unmanaged = await port.dcvSessions(I3, Date.now() + 10_000);
    expect(unmanaged).toMatchObject({ ok: false, reason: expect.stringContaining('not a managed node') });
  });
});
