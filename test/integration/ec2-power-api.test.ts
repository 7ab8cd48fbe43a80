import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SdkEc2PowerApi, createPowerEc2Client } from '../../lambda/adapters/ec2-power-api';
import { FakeFleet, fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
import { Ec2PowerModel } from '../helpers/ec2-power';
import { startEc2QueryServer, type Ec2QueryServer } from '../helpers/ec2-query-server';

// The adapter against the loopback EC2 (real Query protocol, real SDK), with a clock the test moves.
let clock = Date.UTC(2026, 2, 2, 8, 0, 0);
let fleet: FakeFleet;
let power: Ec2PowerModel;
let server: Ec2QueryServer;
let sleeps: number[];

// A fresh fleet, model and loopback server per test.
beforeEach(async () => {
  clock = Date.UTC(2026, 2, 2, 8, 0, 0);
  fleet = new FakeFleet();
  power = new Ec2PowerModel(fleet, { now: () => clock, pendingMs: 30_000, stoppingMs: 60_000 });
  server = await startEc2QueryServer(fleet, power);
  sleeps = [];
});

afterEach(async () => {
  await server?.close();
});

function client(): EC2Client {
  return new EC2Client({ endpoint: server.endpoint, maxAttempts: 1 });
}

function api(options: ConstructorParameters<typeof SdkEc2PowerApi>[1] = {}): SdkEc2PowerApi {
  return new SdkEc2PowerApi(client(), { sleep: async (ms) => void sleeps.push(ms), random: () => 1, ...options });
}

async function described(id: string) {
  const out = await client().send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-id', Values: [id] }] }));
  return out.Reservations![0]!.Instances![0]!;
}

function put(n: number, state: string): string {
  fleet.put(fleetInstance(n, { state, launchTime: new Date(Date.UTC(2025, 0, 1)) }));
  fleet.setState(instanceIdOf(n), state);
  return instanceIdOf(n);
}

describe('start', () => {
  it('takes a stopped instance through pending to running, with LaunchTime set to the start', async () => {
    const id = put(1, 'stopped');
    expect(await api().start([id])).toEqual([{ instanceId: id, outcome: 'accepted', previousState: 'stopped', currentState: 'pending' }]);
    const pending = await described(id);
    expect(pending.State).toEqual({ Code: 0, Name: 'pending' });
    expect(pending.LaunchTime!.getTime()).toBe(clock);

    clock += 29_999;
    expect((await described(id)).State?.Name).toBe('pending');
    clock += 1;
    expect((await described(id)).State).toEqual({ Code: 16, Name: 'running' });
    // Starting a running instance is accepted and changes nothing, as in EC2.
    expect(await api().start([id])).toEqual([{ instanceId: id, outcome: 'accepted', previousState: 'running', currentState: 'running' }]);
  });

  it('pins IncorrectInstanceState on the stopping instance and starts the others of the batch', async () => {
    const a = put(1, 'stopped');
    const b = put(2, 'stopping');
    const c = put(3, 'stopped');
    const adapter = api();
    const outcomes = await adapter.start([a, b, c]);
    expect(outcomes.map((o) => o.outcome)).toEqual(['accepted', 'incorrect-state', 'accepted']);
    expect(outcomes[1]).toMatchObject({ instanceId: b, message: expect.stringContaining(`'${b}' is not in a state from which it can be started`) });
    expect([power.state(a), power.state(b), power.state(c)]).toEqual(['pending', 'stopping', 'pending']);
    // The refused call of three changed nothing; halves [a,b] (refused), [c], then [a], [b].
    expect(power.calls.map((call) => call.instanceIds)).toEqual([[a, b, c], [a, b], [a], [b], [c]]);
    expect(adapter.calls).toBe(5);
  });

  it('reports InsufficientInstanceCapacity for the short instance only, and starts it once capacity is back', async () => {
    const ids = [1, 2, 3, 4, 5].map((n) => put(n, 'stopped'));
    power.insufficientCapacity.add(ids[3]!);
    const outcomes = await api().start(ids);
    expect(outcomes.map((o) => o.outcome)).toEqual(['accepted', 'accepted', 'accepted', 'insufficient-capacity', 'accepted']);
    expect(outcomes[3]).toMatchObject({ message: expect.stringContaining('sufficient g5.xlarge capacity') });
    expect(power.state(ids[3]!)).toBe('stopped');
    power.insufficientCapacity.clear();
    expect((await api().start([ids[3]!]))[0]).toMatchObject({ outcome: 'accepted', currentState: 'pending' });
  });

  it('names unknown and malformed ids not-found without blocking the valid ones', async () => {
    const a = put(1, 'stopped');
    const ghost = instanceIdOf(999);
    const outcomes = await api().start([a, ghost, 'i-NOTANID']);
    expect(outcomes).toEqual([
      { instanceId: a, outcome: 'accepted', previousState: 'stopped', currentState: 'pending' },
      { instanceId: ghost, outcome: 'not-found', message: `The instance ID '${ghost}' does not exist` },
      { instanceId: 'i-NOTANID', outcome: 'not-found', message: 'Invalid id: "i-NOTANID"' },
    ]);
  });

  it('retries throttling with backoff and succeeds when EC2 lets it through', async () => {
    const a = put(1, 'stopped');
    power.throttle = ({ index }) => index < 2;
    expect((await api({ baseBackoffMs: 100 }).start([a]))[0]).toMatchObject({ outcome: 'accepted', currentState: 'pending' });
    expect(sleeps).toEqual([100, 200]);
  });

  it('reports a batch still throttled after its retries as throttled, without splitting it', async () => {
    const ids = [1, 2, 3, 4].map((n) => put(n, 'stopped'));
    power.throttle = () => true;
    const adapter = api({ throttleRetries: 2 });
    const outcomes = await adapter.start(ids);
    expect(outcomes.map((o) => o.outcome)).toEqual(['throttled', 'throttled', 'throttled', 'throttled']);
    expect(outcomes[0]).toMatchObject({ message: 'Request limit exceeded.' });
    expect(power.calls).toHaveLength(3);
    expect(ids.map((id) => power.state(id))).toEqual(['stopped', 'stopped', 'stopped', 'stopped']);
  });

  it('sends 120 instances as 3 calls of at most 50, and answers in request order without duplicates', async () => {
    const ids = Array.from({ length: 120 }, (_, n) => put(n + 1, 'stopped'));
    const outcomes = await api().start([...ids, ids[0]!]);
    expect(outcomes.map((o) => o.instanceId)).toEqual(ids);
    expect(outcomes.every((o) => o.outcome === 'accepted')).toBe(true);
    expect(power.calls.map((c) => c.instanceIds.length)).toEqual([50, 50, 20]);
  });
});

describe('stop', () => {
  it('takes a running instance through stopping to stopped; a second stop while stopping is accepted as is', async () => {
    const id = put(1, 'running');
    expect(await api().stop([id])).toEqual([{ instanceId: id, outcome: 'accepted', previousState: 'running', currentState: 'stopping' }]);
    expect((await described(id)).State).toEqual({ Code: 64, Name: 'stopping' });
    clock += 30_000;
    expect(await api().stop([id])).toEqual([{ instanceId: id, outcome: 'accepted', previousState: 'stopping', currentState: 'stopping' }]);
    // Starting it now is refused until it has stopped.
    expect((await api().start([id]))[0]).toMatchObject({ outcome: 'incorrect-state' });
    clock += 30_000;
    expect((await described(id)).State).toEqual({ Code: 80, Name: 'stopped' });
    expect((await api().start([id]))[0]).toMatchObject({ outcome: 'accepted', previousState: 'stopped', currentState: 'pending' });
  });

  it('refuses to stop a pending instance (IncorrectInstanceState) until it runs', async () => {
    const id = put(1, 'stopped');
    power.setDelays(id, { pendingMs: Infinity });
    await api().start([id]);
    clock += 3_600_000;
    const refused = (await api().stop([id]))[0]!;
    expect(refused).toMatchObject({ outcome: 'incorrect-state', message: expect.stringContaining("never reached the 'running' state") });
    power.complete(id);
    expect((await api().stop([id]))[0]).toMatchObject({ outcome: 'accepted', previousState: 'running', currentState: 'stopping' });
  });

  it('maps an unreachable endpoint to failed with the network error code, never throwing', async () => {
    const dead = await startEc2QueryServer(new FakeFleet());
    const endpoint = dead.endpoint;
    await dead.close();
    const id = put(1, 'running');
    const outcomes = await new SdkEc2PowerApi(new EC2Client({ endpoint, maxAttempts: 1 })).stop([id]);
    expect(outcomes).toEqual([{ instanceId: id, outcome: 'failed', code: 'ECONNREFUSED', message: expect.any(String) }]);
  });
});

it('createPowerEc2Client reaches EC2 through AWS_ENDPOINT_URL_EC2, as the CLI will', async () => {
  const id = put(1, 'stopped');
  const saved = process.env.AWS_ENDPOINT_URL_EC2;
  process.env.AWS_ENDPOINT_URL_EC2 = server.endpoint;
  try {
    expect((await new SdkEc2PowerApi(createPowerEc2Client()).start([id]))[0]).toMatchObject({ outcome: 'accepted' });
  } finally {
    if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_EC2;
    else process.env.AWS_ENDPOINT_URL_EC2 = saved;
  }
  expect(power.calls).toHaveLength(1);
});
