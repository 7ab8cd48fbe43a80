import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliError } from '../../lambda/cli/cli-error';
import { parsePowerArgs } from '../../lambda/cli/power-command';
import { createDiscoveryTable } from '../helpers/discovery-table';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { FakeFleet, fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
import { Ec2PowerModel } from '../helpers/ec2-power';
import { startEc2QueryServer, type Ec2QueryServer } from '../helpers/ec2-query-server';
import { dcvSessions, writeFakeDcvHost } from '../helpers/fake-dcv-host';
import { CLI_PATH, cliBaseEnv, REPO_ROOT, type CliRun } from '../helpers/run-cli';
import { startSsmServer, type SsmServer } from '../helpers/ssm-server';

// `dcv-resolver power` as a user runs it: the built CLI in a child process, configured only through the
// standard SDK endpoint variables, against dynalite, a loopback EC2 with real state transitions, and a
// loopback SSM that runs the shipped host script under /bin/sh against each host's fake dcv/nvidia-smi.
const TABLE = 'cli-power';
const MIN = 60_000;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '.123456Z');

let dynamo: LocalDynamo;
let ec2: Ec2QueryServer;
let ssm: SsmServer;
let root: string;
const fleet = new FakeFleet();
const power = new Ec2PowerModel(fleet);

const id = {
  idle: instanceIdOf(1),
  connected: instanceIdOf(2),
  recent: instanceIdOf(3),
  gpu: instanceIdOf(4),
  unmanaged: instanceIdOf(5),
  untagged: instanceIdOf(6),
  scheduled: instanceIdOf(7),
  windows: instanceIdOf(8),
  noCapacity: instanceIdOf(9),
};

function cli(args: string[]): Promise<CliRun> {
  const env = {
    ...cliBaseEnv(),
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    AWS_ENDPOINT_URL_SSM: ssm.endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_MAX_ATTEMPTS: '1',
  };
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_PATH, ...args], { cwd: REPO_ROOT, env, timeout: 90_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function items(): Promise<Map<string, Record<string, string>>> {
  const page = await dynamo.client().send(new ScanCommand({ TableName: TABLE, ConsistentRead: true }));
  return new Map(
    (page.Items ?? []).map((raw) => [raw.SessionId!.S!, Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, v.S ?? v.N ?? String(v.BOOL)]))]),
  );
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'cli-power-'));
  dynamo = await startDynalite();
  await createDiscoveryTable(dynamo.client(), TABLE);
  ec2 = await startEc2QueryServer(fleet, power);
  ssm = await startSsmServer();
  const now = Date.now();
  const dayAgo = new Date(now - 1440 * MIN);
  const host = (n: number, name: string, sessions: Parameters<typeof dcvSessions>[0], gpu?: number[]) => {
    const files = writeFakeDcvHost(join(root, name), dcvSessions(sessions, gpu));
    ssm.ssm.hosts.set(instanceIdOf(n), { binDir: files.bin });
  };
  const created = iso(now - 1440 * MIN);
  const put = (n: number, tags: Record<string, string>, state = 'running') =>
    fleet.put(fleetInstance(n, { state, launchTime: dayAgo, tags: { 'dcv:session-id': `desk-${n}`, ...tags } }));

  put(1, { 'dcv:auto-stop': '30' });
  host(1, 'idle', [['console', 0, created, iso(now - 120 * MIN)]]);
  put(2, { 'dcv:auto-stop': '30' });
  host(2, 'connected', [['console', 1, created, iso(now - 120 * MIN)]]);
  put(3, { 'dcv:auto-stop': '30' });
  host(3, 'recent', [['console', 0, created, iso(now - 5 * MIN)]]);
  put(4, { 'dcv:auto-stop': '30' });
  host(4, 'gpu', [['console', 0, created, iso(now - 120 * MIN)]], [3, 92]);
  put(5, { 'dcv:auto-stop': '30' });
  ssm.ssm.hosts.set(id.unmanaged, { unmanaged: true });
  put(6, {});
  host(6, 'untagged', [['console', 0, created, iso(now - 120 * MIN)]]);
  put(7, { 'dcv:schedule': 'Mon-Sun 00:00-24:00 UTC' }, 'stopped');
  host(7, 'scheduled', [['console', 0, iso(now), '']]);
  put(8, { 'dcv:auto-stop': '30' });
  // EC2 answers `windows` (the SDK's type spells it `Windows`).
  fleet.update(id.windows, (i) => ({ ...i, Platform: 'windows' as 'Windows' }));
  put(9, { 'dcv:schedule': 'Mon-Sun 00:00-24:00 UTC' }, 'stopped');
  power.insufficientCapacity.add(id.noCapacity);

  const discovered = await cli(['discover', '--table', TABLE]);
  expect(discovered.code, discovered.stderr).toBe(0);
  expect((await items()).size).toBe(9);
}, 60_000);

afterAll(async () => {
  await ssm?.close();
  await ec2?.close();
  await dynamo?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('dcv-resolver power', () => {
  it('--dry-run reads the hosts and says what it would do; starts, stops and writes nothing', async () => {
    const before = await items();
    const run = await cli(['power', '--table', TABLE, '--dry-run', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.dryRun).toBe(true);
    expect(out.actions).toEqual([
      { instanceId: id.scheduled, action: 'start', reason: expect.stringContaining('schedule window opened') },
      { instanceId: id.noCapacity, action: 'start', reason: expect.stringContaining('schedule window opened') },
      { instanceId: id.idle, action: 'stop', reason: expect.stringMatching(/^no DCV client for 1[12]\d min \(limit 30\)/) },
    ]);
    expect(power.calls).toEqual([]);
    expect(await items()).toEqual(before);
    // Requests grow with pages and batches, not hosts: 1 DescribeInstances page, 1 SendCommand for 5 hosts.
    expect(out.requests.ec2).toBe(1);
    expect(ssm.ssm.sendCommands()).toBeLessThanOrEqual(2);
  }, 90_000);

  it('--at evaluates schedules at that time (dry runs only)', async () => {
    expect(() => parsePowerArgs(['--table', 'T', '--at', '2026-12-07T08:00:00Z'])).toThrow(CliError);
    expect(() => parsePowerArgs(['--table', 'T', '--dry-run', '--at', '2026-12-07T08:00:00'])).toThrow(/with a zone/);
    expect(parsePowerArgs(['--table', 'T', '--dry-run', '--at', '2026-12-07T09:00:00+01:00']).at).toBe(Date.parse('2026-12-07T08:00:00Z'));
  });

  it('stops the idle host only, starts the scheduled one, records what it decided, exits 1 for the refused start', async () => {
    const run = await cli(['power', '--table', TABLE]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(new RegExp(`^stopped\\s+${id.idle}\\s+no DCV client for`, 'm'));
    expect(run.stdout).toMatch(new RegExp(`^started\\s+${id.scheduled}\\s+schedule window opened`, 'm'));
    expect(run.stdout).toMatch(new RegExp(`^start failed\\s+${id.noCapacity}\\s+insufficient-capacity`, 'm'));
    expect(run.stderr).toMatch(/1 start\/stop request\(s\) failed/);
    // Unknown means in use, and says why, naming the host.
    expect(run.stderr).toMatch(new RegExp(`warn power: signals unknown, never stopped instanceId=${id.unmanaged} .*cause=unmanaged`));
    expect(run.stderr).toMatch(new RegExp(`instanceId=${id.windows} .*cause=windows`));

    expect(power.state(id.idle)).toMatch(/stopping|stopped/);
    for (const kept of [id.connected, id.recent, id.gpu, id.unmanaged, id.untagged, id.windows]) expect(power.state(kept)).toBe('running');
    expect(power.state(id.scheduled)).toMatch(/pending|running/);
    expect(power.state(id.noCapacity)).toBe('stopped');
    // Never a host read for nothing: the untagged one was not even asked.
    const asked = ssm.ssm.calls.filter((c) => c.operation === 'SendCommand').flatMap((c) => c.body.InstanceIds as string[]);
    expect(asked).not.toContain(id.untagged);

    const table = await items();
    expect(table.get('desk-1')?.PowerStopAt).toBeDefined();
    expect(table.get('desk-3')?.IdleSince).toBeDefined();
    expect(table.get('desk-2')?.IdleSince).toBeUndefined();
    expect(table.get('desk-7')).toMatchObject({ PowerStartAt: expect.any(String), ScheduleStartAt: expect.any(String) });
    // A refused start leaves no claim, and the window stays served: reported, not retried every minute.
    expect(table.get('desk-9')?.PowerStartAt).toBeUndefined();
    expect(table.get('desk-9')?.ScheduleStartAt).toBeDefined();
  }, 90_000);

  it('a second pass starts nothing again, finishes the bookkeeping, and respects a user who stopped the scheduled desktop', async () => {
    power.settle();
    const stops = power.calls.filter((c) => c.action === 'StopInstances').length;
    const second = await cli(['power', '--table', TABLE, '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout).actions).toEqual([]);
    const table = await items();
    expect(table.get('desk-1')?.PowerStopAt).toBeUndefined(); // stopped: claim served
    expect(table.get('desk-7')?.PowerStartAt).toBeUndefined(); // running and DCV lists its session: usable

    fleet.setState(id.scheduled, 'stopped');
    const third = await cli(['power', '--table', TABLE, '--json']);
    expect(JSON.parse(third.stdout).actions).toEqual([]);
    expect(power.state(id.scheduled)).toBe('stopped');
    expect(power.calls.filter((c) => c.action === 'StopInstances').length).toBe(stops);
  }, 90_000);

  it('refuses bad arguments with exit 2 and the usage', async () => {
    const run = await cli(['power']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--table NAME is required/);
    const bad = await cli(['power', '--table', TABLE, '--timeout', '0']);
    expect(bad.code).toBe(2);
  });
});
