import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetCommandInvocationCommand, ListCommandInvocationsCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SsmHostSignalsReader, createSignalsSsmClient, type SsmHostSignalsOptions } from '../../lambda/adapters/ssm-host-signals';
import { instanceIdOf } from '../helpers/ec2-fleet';
import { startSsmServer, truncateOutput, type SsmServer, type SsmServerOptions } from '../helpers/ssm-server';

// The reader against the loopback SSM, which really runs the commands with /bin/sh (dash) per host,
// each host with its own fake `dcv` first on PATH.
let root: string;
let server: SsmServer | undefined;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ssm-hosts-'));
});

afterEach(async () => {
  await server?.close();
  server = undefined;
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

let bins = 0;
/** A fake-bin directory whose `dcv` runs `body` (sh). */
function fakeBin(body: string): string {
  const dir = join(root, `bin${++bins}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'dcv'), `#!/bin/sh\n${body}\n`);
  chmodSync(join(dir, 'dcv'), 0o755);
  return dir;
}

// Stands in for the shipped signal script: one JSON line naming the host and DCV's session list.
const COMMANDS = ['set -e', 'sessions=$(dcv list-sessions -j)', 'printf \'{"host":"%s","sessions":%s}\\n\' "$AWS_SSM_INSTANCE_ID" "$sessions"'];

const IDLE = fakeBinLazy('echo \'[{"id":"console","num-of-connections":0}]\'');
function fakeBinLazy(body: string): () => string {
  let dir: string | undefined;
  return () => (dir ??= fakeBin(body));
}

async function start(options: SsmServerOptions = {}): Promise<SsmServer> {
  server = await startSsmServer(options);
  return server;
}

function client(): SSMClient {
  return new SSMClient({ endpoint: server!.endpoint, maxAttempts: 1 });
}

function reader(options: Partial<SsmHostSignalsOptions> = {}): SsmHostSignalsReader {
  return new SsmHostSignalsReader(client(), { command: { commands: COMMANDS }, pollIntervalMs: 50, ...options });
}

const soon = () => Date.now() + 30_000;
const line = (id: string) => `{"host":"${id}","sessions":[{"id":"console","num-of-connections":0}]}\n`;
const ops = (s: SsmServer) => s.ssm.calls.map((c) => c.operation);

describe('SsmHostSignalsReader', () => {
  it("runs the script on each host with that host's own dcv first on PATH", async () => {
    const s = await start();
    const a = instanceIdOf(1);
    const b = instanceIdOf(2);
    s.ssm.hosts.set(a, { binDir: fakeBin('echo \'[{"id":"alice"}]\'') });
    s.ssm.hosts.set(b, { binDir: fakeBin('echo \'[{"id":"bob"}]\'') });
    expect(await reader().read([a, b], soon())).toEqual([
      { instanceId: a, status: 'ok', stdout: `{"host":"${a}","sessions":[{"id":"alice"}]}\n` },
      { instanceId: b, status: 'ok', stdout: `{"host":"${b}","sessions":[{"id":"bob"}]}\n` },
    ]);
    expect(s.ssm.sendCommands()).toBe(1);
    const sent = s.ssm.calls[0]!.body;
    expect(sent).toMatchObject({ DocumentName: 'AWS-RunShellScript', InstanceIds: [a, b], TimeoutSeconds: 30, Parameters: { commands: COMMANDS, executionTimeout: ['20'] } });
  });

  it('sends 120 hosts as 3 commands (50, 50, 20) and polls by command, not by host', async () => {
    const s = await start();
    const ids = Array.from({ length: 120 }, (_, n) => instanceIdOf(n + 1));
    for (const id of ids) s.ssm.hosts.set(id, { binDir: IDLE() });
    const signals = await reader().read(ids, soon());
    expect(signals).toEqual(ids.map((id) => ({ instanceId: id, status: 'ok', stdout: line(id) })));
    const sends = s.ssm.calls.filter((c) => c.operation === 'SendCommand').map((c) => (c.body.InstanceIds as string[]).length);
    expect(sends.sort()).toEqual([20, 50, 50]);
    expect(ops(s).filter((o) => o === 'GetCommandInvocation')).toHaveLength(0);
    // Every poll is one ListCommandInvocations per command; never one call per host.
    const lists = s.ssm.calls.filter((c) => c.operation === 'ListCommandInvocations');
    expect(lists.every((c) => c.body.Details === true && c.body.MaxResults === 50)).toBe(true);
  });

  it('an unmanaged instance among managed ones: SSM refuses the batch, the reader reads the others and names it', async () => {
    const s = await start();
    const ids = [1, 2, 3, 4, 5].map(instanceIdOf);
    for (const id of ids) s.ssm.hosts.set(id, { binDir: IDLE() });
    s.ssm.hosts.set(ids[2]!, { unmanaged: true });
    s.ssm.hosts.delete(ids[4]!); // not even known to SSM
    s.ssm.hosts.set(ids[3]!, { pingStatus: 'ConnectionLost' });
    const signals = await reader().read(ids, soon());
    expect(signals[0]).toEqual({ instanceId: ids[0], status: 'ok', stdout: line(ids[0]!) });
    expect(signals[1]).toEqual({ instanceId: ids[1], status: 'ok', stdout: line(ids[1]!) });
    expect(signals[2]).toMatchObject({ status: 'unknown', cause: 'unmanaged', reason: expect.stringContaining('not a managed node') });
    expect(signals[3]).toMatchObject({ status: 'unknown', cause: 'agent-offline', reason: 'its SSM agent is not connected (PingStatus ConnectionLost)' });
    expect(signals[4]).toMatchObject({ status: 'unknown', cause: 'unmanaged' });
    // One refused SendCommand, one lookup, one resend to the online nodes.
    expect(ops(s).filter((o) => o !== 'ListCommandInvocations')).toEqual(['SendCommand', 'DescribeInstanceInformation', 'SendCommand']);
    expect(s.ssm.calls[1]!.body).toMatchObject({ Filters: [{ Key: 'InstanceIds', Values: ids }], MaxResults: 50 });
    expect(s.ssm.calls[2]!.body.InstanceIds).toEqual([ids[0], ids[1]]);
  });

  it('falls back to splitting the batch when the lookup is refused, and still pins the unmanaged one', async () => {
    const s = await start({ throttle: ({ operation }) => operation === 'DescribeInstanceInformation' });
    const ids = [1, 2, 3, 4].map(instanceIdOf);
    for (const id of ids) s.ssm.hosts.set(id, { binDir: IDLE() });
    s.ssm.hosts.set(ids[1]!, { unmanaged: true });
    const signals = await reader({ throttleRetries: 0 }).read(ids, soon());
    expect(signals.map((x) => x.status)).toEqual(['ok', 'unknown', 'ok', 'ok']);
    expect(signals[1]).toMatchObject({ cause: 'unmanaged', reason: expect.stringContaining('InvalidInstanceId') });
    const sends = s.ssm.calls.filter((c) => c.operation === 'SendCommand').map((c) => c.body.InstanceIds);
    expect(sends).toEqual([ids, [ids[0], ids[1]], [ids[0]], [ids[1]], [ids[2], ids[3]]]);
  });

  it('a host whose script hangs is killed at the execution timeout and reported timed-out; the others answer', async () => {
    const s = await start();
    const [fast, hung] = [instanceIdOf(1), instanceIdOf(2)];
    s.ssm.hosts.set(fast, { binDir: IDLE() });
    s.ssm.hosts.set(hung, { binDir: fakeBin('sleep 60') });
    const signals = await reader({ executionTimeoutSeconds: 1 }).read([fast, hung], soon());
    expect(signals[0]).toEqual({ instanceId: fast, status: 'ok', stdout: line(fast) });
    expect(signals[1]).toEqual({ instanceId: hung, status: 'unknown', cause: 'timed-out', reason: 'the script did not finish within 1 s (ExecutionTimedOut)' });
    const inv = [...s.ssm.commands.values()][0]!.invocations.get(hung)!;
    expect([inv.status, inv.responseCode]).toEqual(['TimedOut', 137]);
  });

  it('a failing host is unknown with its exit code and stderr; a host that wrote only warnings to stderr is read', async () => {
    const s = await start();
    const [broken, noisy] = [instanceIdOf(1), instanceIdOf(2)];
    s.ssm.hosts.set(broken, { binDir: fakeBin('echo "dcv: could not connect to the DCV server" >&2; exit 3') });
    s.ssm.hosts.set(noisy, { binDir: fakeBin('echo "warning: deprecated option" >&2; echo \'[]\'') });
    const signals = await reader().read([broken, noisy], soon());
    expect(signals[0]).toEqual({
      instanceId: broken,
      status: 'unknown',
      cause: 'failed',
      reason: 'the script failed (Failed, exit 3): ----------ERROR------- dcv: could not connect to the DCV server',
    });
    expect(signals[1]).toEqual({ instanceId: noisy, status: 'ok', stdout: `{"host":"${noisy}","sessions":[]}\n` });
  });

  it('runs with dash, as the Ubuntu agent does: bash-only syntax fails', async () => {
    const s = await start();
    const id = instanceIdOf(1);
    s.ssm.hosts.set(id, {});
    const [signal] = await reader({ command: { commands: ['[[ 1 == 1 ]] && echo bash'] } }).read([id], soon());
    expect(signal).toMatchObject({ status: 'unknown', cause: 'failed', reason: expect.stringContaining('[[: not found') });
  });

  it('output over 2,500 characters is fetched whole with GetCommandInvocation, for that host only', async () => {
    const s = await start();
    const [small, big] = [instanceIdOf(1), instanceIdOf(2)];
    const sessions = `[${Array.from({ length: 120 }, (_, n) => `{"id":"session-${String(n).padStart(4, '0')}"}`).join(',')}]`;
    expect(sessions.length).toBeGreaterThan(2500);
    s.ssm.hosts.set(small, { binDir: IDLE() });
    s.ssm.hosts.set(big, { binDir: fakeBin(`echo '${sessions}'`) });
    const signals = await reader().read([small, big], soon());
    expect(signals[0]).toEqual({ instanceId: small, status: 'ok', stdout: line(small) });
    expect(signals[1]).toEqual({ instanceId: big, status: 'ok', stdout: `{"host":"${big}","sessions":${sessions}}\n` });
    const gets = s.ssm.calls.filter((c) => c.operation === 'GetCommandInvocation');
    expect(gets.map((c) => c.body.InstanceId)).toEqual([big]);
  });

  it('output over 24,000 characters is unknown (SSM cut it), not parsed', async () => {
    const s = await start();
    const id = instanceIdOf(1);
    s.ssm.hosts.set(id, { binDir: fakeBin('i=0; while [ $i -lt 300 ]; do printf "%0100d" 0; i=$((i+1)); done') });
    const [signal] = await reader({ command: { commands: ['dcv'] } }).read([id], soon());
    expect(signal).toEqual({ instanceId: id, status: 'unknown', cause: 'truncated', reason: "its output reached SSM's 24000 characters and was cut" });
  });

  it('a host whose agent is offline never answers: unknown at the deadline, or DeliveryTimedOut once SSM gives up', async () => {
    let skew = 0;
    const s = await start({ now: () => Date.now() + skew });
    const [online, offline] = [instanceIdOf(1), instanceIdOf(2)];
    s.ssm.hosts.set(online, { binDir: IDLE() });
    s.ssm.hosts.set(offline, { pingStatus: 'ConnectionLost' });
    const atDeadline = await reader().read([online, offline], Date.now() + 1500);
    expect(atDeadline[0]).toMatchObject({ status: 'ok' });
    expect(atDeadline[1]).toMatchObject({ status: 'unknown', cause: 'deadline', reason: expect.stringContaining('last status Pending') });

    // SSM's clock passes the 30 s delivery timeout between two polls.
    const delivered = new SsmHostSignalsReader(client(), {
      command: { commands: COMMANDS },
      pollIntervalMs: 10,
      sleep: async () => {
        skew += 31_000;
        await new Promise((r) => setTimeout(r, 10));
      },
    });
    const [signal] = await delivered.read([offline], soon());
    expect(signal).toEqual({
      instanceId: offline,
      status: 'unknown',
      cause: 'timed-out',
      reason: 'the command was never delivered (DeliveryTimedOut after 30 s: agent offline?)',
    });
  });

  it('retries a throttled SendCommand, and reports api-error (not a crash) when SSM keeps refusing', async () => {
    const s = await start({ throttle: ({ index }) => index === 0 });
    const id = instanceIdOf(1);
    s.ssm.hosts.set(id, { binDir: IDLE() });
    const sleeps: number[] = [];
    const r = reader({ sleep: async (ms) => void sleeps.push(ms) });
    expect((await r.read([id], soon()))[0]).toMatchObject({ status: 'ok' });
    expect(sleeps[0]).toBe(250);

    await server!.close();
    const s2 = await start({ throttle: ({ operation }) => operation === 'SendCommand' });
    s2.ssm.hosts.set(id, { binDir: IDLE() });
    const [signal] = await reader({ throttleRetries: 1, sleep: async () => {} }).read([id], soon());
    expect(signal).toEqual({ instanceId: id, status: 'unknown', cause: 'api-error', reason: 'SendCommand failed: ThrottlingException: Rate exceeded' });
  });

  it('createSignalsSsmClient reaches SSM through AWS_ENDPOINT_URL_SSM, as the CLI will', async () => {
    const s = await start();
    const id = instanceIdOf(1);
    s.ssm.hosts.set(id, { binDir: IDLE() });
    const saved = process.env.AWS_ENDPOINT_URL_SSM;
    process.env.AWS_ENDPOINT_URL_SSM = s.endpoint;
    try {
      const r = new SsmHostSignalsReader(createSignalsSsmClient(), { command: { commands: COMMANDS }, pollIntervalMs: 50 });
      expect(await r.read([id], soon())).toEqual([{ instanceId: id, status: 'ok', stdout: line(id) }]);
    } finally {
      if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_SSM;
      else process.env.AWS_ENDPOINT_URL_SSM = saved;
    }
  });
});

describe('the loopback SSM itself (through the SDK)', () => {
  it('refuses the whole SendCommand when one instance is not managed, and more than 50 instances', async () => {
    const s = await start();
    s.ssm.hosts.set(instanceIdOf(1), {});
    const send = (ids: string[]) =>
      client().send(new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: ids, Parameters: { commands: ['true'] } }));
    await expect(send([instanceIdOf(1), instanceIdOf(2)])).rejects.toMatchObject({ name: 'InvalidInstanceId', message: expect.stringContaining(instanceIdOf(2)) });
    await expect(send(Array.from({ length: 51 }, (_, n) => instanceIdOf(n)))).rejects.toMatchObject({ name: 'ValidationException' });
    expect(s.ssm.commands.size).toBe(0);
  });

  it('cuts Output at 2,500 with the agent markers in ListCommandInvocations and stdout at 24,000 in GetCommandInvocation', async () => {
    const s = await start();
    const id = instanceIdOf(1);
    s.ssm.hosts.set(id, {});
    const sent = await client().send(
      new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: [id], Parameters: { commands: ['i=0; while [ $i -lt 250 ]; do printf "%0100d" $i; i=$((i+1)); done; echo oops >&2'] } }),
    );
    const commandId = sent.Command!.CommandId!;
    let got;
    for (let i = 0; i < 400; i++) {
      got = await client().send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id }));
      if (got.Status !== 'InProgress' && got.Status !== 'Pending') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(got).toMatchObject({ Status: 'Success', StatusDetails: 'Success', ResponseCode: 0, PluginName: 'aws:runShellScript', StandardErrorContent: 'oops\n' });
    expect(got!.StandardOutputContent).toHaveLength(24_000);
    const listed = await client().send(new ListCommandInvocationsCommand({ CommandId: commandId, Details: true }));
    const output = listed.CommandInvocations![0]!.CommandPlugins![0]!.Output!;
    expect(output).toHaveLength(2500);
    expect(output.endsWith('\n---Output truncated---\n----------ERROR-------\noops\n')).toBe(true);
    expect(listed.CommandInvocations![0]!.RequestedDateTime).toBeInstanceOf(Date);
  });

  it("reproduces the agent's TruncateOutput cases", () => {
    const long = 'x'.repeat(200);
    expect(truncateOutput('out', '', 100)).toBe('out');
    expect(truncateOutput('out', 'err', 100)).toBe('out\n----------ERROR-------\nerr');
    expect(truncateOutput(long, '', 100)).toBe(`${'x'.repeat(77)}\n---Output truncated---`);
    expect(truncateOutput('', long, 100)).toBe(`\n----------ERROR-------\n${'x'.repeat(53)}\n---Error truncated----`);
    expect(truncateOutput(long, long, 100)).toBe(`${'x'.repeat(15)}\n---Output truncated---\n----------ERROR-------\n${'x'.repeat(15)}\n---Error truncated----`);
  });
});
