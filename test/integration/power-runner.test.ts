import { GetItemCommand, PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sdkDynamoApi, type DynamoApi } from '../../lambda/adapters/dynamodb-api';
import type { Metrics } from '../../lambda/core/metrics';
import { runPowerPass, type PowerPassSetup } from '../../lambda/power/power-runner';
import { createDiscoveryTable } from '../helpers/discovery-table';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { FakeFleet, fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
import { Ec2PowerModel } from '../helpers/ec2-power';
import { startEc2QueryServer, type Ec2QueryServer } from '../helpers/ec2-query-server';
import { RecordingLog } from '../helpers/recording-log';
import { startSsmServer, type SsmServer } from '../helpers/ssm-server';

// The pass in-process, for what the CLI test cannot arrange: EC2 refusing or throttling, a start that never
// finishes, hosts that never answer. Real wire protocols throughout (dynalite, loopback EC2 and SSM).
const MIN = 60_000;
let dynamo: LocalDynamo;
let ec2: Ec2QueryServer;
let ssm: SsmServer;
let fleet: FakeFleet;
let power: Ec2PowerModel;
let table = 0;
let tableName: string;

class RecordingMetrics implements Metrics {
  readonly counts: { name: string; dimensions?: Record<string, string>; value: number }[] = [];
  count(name: string, dimensions?: Record<string, string>, value = 1): void {
    this.counts.push({ name, ...(dimensions ? { dimensions: { ...dimensions } } : {}), value });
  }
  time(): void {}
  total(name: string, dimensions?: Record<string, string>): number {
    return this.counts.filter((c) => c.name === name && JSON.stringify(c.dimensions) === JSON.stringify(dimensions)).reduce((t, c) => t + c.value, 0);
  }
}

const stamp = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '.000000Z');
const line = (connections: number, leftMsAgo: number) =>
  `${JSON.stringify({ v: 1, sessions: [{ id: 'console', 'num-of-connections': connections, 'creation-time': stamp(Date.now() - 1440 * MIN), 'last-disconnection-time': stamp(Date.now() - leftMsAgo) }], gpu: null, errors: [] })}\n`;

function item(n: number, extra: Record<string, AttributeValue> = {}): Record<string, AttributeValue> {
  return {
    SessionId: { S: `desk-${n}` },
    DcvServerEndpoint: { S: '10.0.0.1' },
    Source: { S: 'ec2' },
    InstanceId: { S: instanceIdOf(n) },
    ...extra,
  };
}

async function put(n: number, tags: Record<string, string>, state: string, extra: Record<string, AttributeValue> = {}) {
  fleet.put(fleetInstance(n, { state, launchTime: new Date(Date.now() - 1440 * MIN), tags: { 'dcv:session-id': `desk-${n}`, ...tags } }));
  await dynamo.client().send(new PutItemCommand({ TableName: tableName, Item: item(n, extra) }));
}

const attr = async (n: number, name: string) =>
  (await dynamo.client().send(new GetItemCommand({ TableName: tableName, Key: { SessionId: { S: `desk-${n}` } }, ConsistentRead: true }))).Item?.[name]?.S;

function pass(extra: Partial<PowerPassSetup> & { dynamodb?: DynamoApi } = {}) {
  const log = new RecordingLog();
  const metrics = new RecordingMetrics();
  const run = runPowerPass(
    {
      ec2: new EC2Client({ endpoint: ec2.endpoint, maxAttempts: 1 }),
      ssm: new SSMClient({ endpoint: ssm.endpoint, maxAttempts: 1 }),
      dynamodb: extra.dynamodb ?? sdkDynamoApi(dynamo.client()),
    },
    {
      tableName,
      deadline: Date.now() + 25_000,
      signals: { commands: ['true'] },
      signalsOptions: { pollIntervalMs: 50 },
      ec2PowerOptions: { baseBackoffMs: 5 },
      log,
      metrics,
      ...extra,
    },
  );
  return { run, log, metrics };
}

beforeAll(async () => {
  dynamo = await startDynalite();
}, 30_000);

beforeEach(async () => {
  fleet = new FakeFleet();
  power = new Ec2PowerModel(fleet, { stoppingMs: 60_000 });
  ec2 = await startEc2QueryServer(fleet, power);
  ssm = await startSsmServer();
  tableName = `power-runner-${++table}`;
  await createDiscoveryTable(dynamo.client(), tableName);
});

afterEach(async () => {
  await ssm?.close();
  await ec2?.close();
});

afterAll(async () => {
  await dynamo?.stop();
});

describe('runPowerPass: EC2 refusals get a clear line and a metric, and are not retried blindly', () => {
  it('a stop still throttled after retries: reported as throttled, the stop claim released', async () => {
    await put(1, { 'dcv:auto-stop': '30' }, 'running', { AutoStopMinutes: { N: '30' } });
    ssm.ssm.hosts.set(instanceIdOf(1), { stdout: line(0, 120 * MIN) });
    power.throttle = ({ action }) => action === 'StopInstances';
    const { run, log, metrics } = pass();
    const result = await run;
    expect(result.actions).toEqual([]);
    expect(result.failures).toEqual([{ instanceId: instanceIdOf(1), action: 'stop', outcome: 'throttled', message: expect.any(String) }]);
    expect(metrics.total('PowerFailures', { Outcome: 'throttled' })).toBe(1);
    expect(log.entries).toContainEqual(
      expect.objectContaining({ level: 'error', message: 'power: stop refused', fields: expect.objectContaining({ instanceId: instanceIdOf(1), why: 'EC2 throttled the call after retries' }) }),
    );
    expect(power.state(instanceIdOf(1))).toBe('running');
    expect(await attr(1, 'PowerStopAt')).toBeUndefined();
    // Throttling is retried a bounded number of times, never split into one call per instance.
    expect(power.calls.filter((c) => c.action === 'StopInstances').length).toBe(3);
  });

  it('IncorrectInstanceState (the instance changed state after the listing): reported, claim released, window still served', async () => {
    await put(2, { 'dcv:schedule': 'Mon-Sun 00:00-24:00 UTC' }, 'stopped', { Schedule: { S: 'Mon-Sun 00:00-24:00 UTC' } });
    // The instance starts stopping between the listing and the start (a race no listing can see).
    const real = sdkDynamoApi(dynamo.client());
    const racing: DynamoApi = {
      async call<T>(operation: Parameters<DynamoApi['call']>[0], input: Record<string, unknown>): Promise<T> {
        const out = await real.call<T>(operation, input);
        if (operation === 'UpdateItem' && JSON.stringify(input).includes('PowerStartAt') && String(input.UpdateExpression).startsWith('SET')) {
          fleet.setState(instanceIdOf(2), 'stopping');
        }
        return out;
      },
    };
    const { run, log, metrics } = pass({ dynamodb: racing });
    const result = await run;
    expect(result.failures).toEqual([expect.objectContaining({ instanceId: instanceIdOf(2), action: 'start', outcome: 'incorrect-state' })]);
    expect(metrics.total('PowerFailures', { Outcome: 'incorrect-state' })).toBe(1);
    expect(log.entries).toContainEqual(expect.objectContaining({ message: 'power: start refused', fields: expect.objectContaining({ why: 'EC2 says the instance is in the wrong state for it' }) }));
    expect(await attr(2, 'PowerStartAt')).toBeUndefined();
    expect(await attr(2, 'ScheduleStartAt')).toBeDefined();
  });

  it('a start still pending after its deadline is counted stuck on every pass while it lasts, and alarmed on', async () => {
    await put(3, { 'dcv:start-on-connect': 'true' }, 'pending', { StartOnConnect: { BOOL: true }, PowerStartAt: { S: new Date(Date.now() - 11 * MIN).toISOString() } });
    for (let i = 0; i < 2; i++) {
      const { run, log, metrics } = pass();
      const result = await run;
      expect(result.counts.startsStuck).toBe(1);
      expect(metrics.total('PowerStartsStuck')).toBe(1);
      expect(log.entries).toContainEqual(expect.objectContaining({ level: 'error', message: 'power: start stuck', fields: expect.objectContaining({ instanceId: instanceIdOf(3) }) }));
    }
    expect(power.calls).toEqual([]);
  });
});

describe('runPowerPass: hosts that do not answer in time are unknown, never stopped', () => {
  it('an agent that never picks the command up: unknown (deadline) within the pass, the others still read', async () => {
    await put(4, { 'dcv:auto-stop': '30' }, 'running', { AutoStopMinutes: { N: '30' } });
    await put(5, { 'dcv:auto-stop': '30' }, 'running', { AutoStopMinutes: { N: '30' } });
    ssm.ssm.hosts.set(instanceIdOf(4), { pingStatus: 'ConnectionLost' });
    ssm.ssm.hosts.set(instanceIdOf(5), { stdout: line(0, 120 * MIN) });
    const started = Date.now();
    const { run, metrics } = pass({ deadline: Date.now() + 22_000 });
    const result = await run;
    // The first read waits until the deadline less what the confirming read and the stops need.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(metrics.total('PowerSignalsUnknown', { Cause: 'deadline' })).toBe(1);
    expect(result.actions).toEqual([{ instanceId: instanceIdOf(5), action: 'stop', reason: expect.stringContaining('no DCV client for') }]);
    expect(power.state(instanceIdOf(4))).toBe('running');
  }, 30_000);
});
