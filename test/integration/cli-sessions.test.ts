import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchWriteItemCommand, PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sdkDynamoApi } from '../../lambda/adapters/dynamodb-api';
import { fromItem } from '../../lambda/adapters/dynamodb-session-store';
import { TableSessionAdminStore, toAttributes } from '../../lambda/adapters/session-admin-table';
import { ConcurrentChangeError } from '../../lambda/core/session-admin';
import type { RawItem } from '../../lambda/core/session-record';
import { cliBaseEnv } from '../helpers/run-cli';
import { FakeFleet, fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
import { startEc2QueryServer, type Ec2QueryServer } from '../helpers/ec2-query-server';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'bin/dcv-resolver.mjs');
/** Bound on any single wait for a child process. */
const WAIT_MS = 30_000;
// Each test spawns the CLI several times (about a second each here, several on a loaded 2-core runner).
vi.setConfig({ testTimeout: 240_000 });

let dynamo: LocalDynamo;
let ec2: Ec2QueryServer;
let dir: string;
/** A loopback port nothing listens on: "EC2 cannot be asked". */
let deadPort: number;
const fleet = new FakeFleet();
const children: ChildProcess[] = [];

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...cliBaseEnv(),
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_MAX_ATTEMPTS: '1',
    ...extra,
  };
}

/** The real CLI in a child process, configured only through the standard SDK environment variables. */
function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: dir, env: env(extraEnv), timeout: WAIT_MS, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function sessions(...args: string[]): Promise<Run> {
  return cli(['sessions', ...args]);
}

/** The CLI's own lines on stderr (the SDK may add a Node version warning of its own). */
function messages(run: Run): string[] {
  return run.stderr.split('\n').filter((line) => line.startsWith('dcv-resolver'));
}

// ---------------------------------------------------------------------------------------------------------
// The two stores, behind one small test interface.

interface Store {
  readonly args: string[];
  readonly where: RegExp;
  /** Writes items directly, bypassing the CLI (what the console or an editor would do). */
  seed(items: RawItem[]): Promise<void>;
  items(): Promise<Map<string, RawItem>>;
}

let tables = 0;

async function tableStore(): Promise<Store> {
  const name = `sessions-${++tables}`;
  await dynamo.createSessionTable(name);
  return {
    args: ['--table', name],
    where: new RegExp(`table '${name}' \\(region us-east-1\\)`),
    async seed(items) {
      for (const item of items) await dynamo.client().send(new PutItemCommand({ TableName: name, Item: toAttributes(item) }));
    },
    async items() {
      const page = await dynamo.client().send(new ScanCommand({ TableName: name, ConsistentRead: true }));
      return new Map((page.Items ?? []).map((raw) => [raw.SessionId!.S!, fromItem(raw)]));
    },
  };
}

let files = 0;

async function fileStore(): Promise<Store> {
  const file = join(dir, `sessions-${++files}.json`);
  writeFileSync(file, '[]\n');
  return {
    args: ['--sessions', file],
    where: new RegExp(`sessions file '${file.replaceAll('.', '\\.')}'`),
    async seed(items) {
      const current = JSON.parse(readFileSync(file, 'utf8')) as RawItem[];
      writeFileSync(file, JSON.stringify([...current.filter((c) => !items.some((i) => i.SessionId === c.SessionId)), ...items], null, 2));
    },
    async items() {
      return new Map((JSON.parse(readFileSync(file, 'utf8')) as RawItem[]).map((i) => [i.SessionId as string, i]));
    },
  };
}

const DISCOVERED: RawItem = {
  SessionId: 'found',
  DcvServerEndpoint: '10.0.0.1',
  HttpPort: 8443,
  WebUrlPath: '/',
  Source: 'ec2',
  InstanceId: instanceIdOf(1),
  InstanceState: 'running',
  DiscoveredHash: 'abc',
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cli-sessions-'));
  dynamo = await startDynalite();
  fleet.put(fleetInstance(1, { tags: { 'dcv:session-id': 'found' } }));
  fleet.put(fleetInstance(2, { state: 'stopped', tags: { 'dcv:session-id': 'sleeping' } }));
  ec2 = await startEc2QueryServer(fleet);
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  deadPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await ec2?.close();
  await dynamo?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe.each([
  ['table (dynalite)', tableStore],
  ['sessions file', fileStore],
])('sessions against a %s', (_kind, makeStore) => {
  it('put → get → list → disable → enable → rm, with the exact output and exit codes', async () => {
    const store = await makeStore();
    const put = await sessions('put', 'console', ...store.args, '--endpoint', '10.150.248.180', '--quic-port', '8443', '--allowed-client-cidr', '10.0.0.0/8');
    expect(put.code).toBe(0);
    expect(put.stdout).toMatch(new RegExp(`^added session 'console' in ${store.where.source}\n`));
    expect(put.stdout).toContain('resolves: HTTP → 10.150.248.180:8443/; QUIC → 10.150.248.180:8443/; only for clients in 10.0.0.0/8\n');
    const written = (await store.items()).get('console')!;
    expect(written).toEqual({
      SessionId: 'console',
      DcvServerEndpoint: '10.150.248.180',
      HttpPort: 8443,
      QuicPort: 8443,
      WebUrlPath: '/',
      Enabled: true,
      AllowedClientCidrs: ['10.0.0.0/8'],
      Source: 'manual',
      UpdatedAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
    });

    await sessions('put', 'alias', ...store.args, '--endpoint', 'dcv-2.internal', '--port', '9443', '--target', 'console', '--expires-at', '+2h', '--disabled');
    const list = await sessions('list', ...store.args);
    expect(list.code).toBe(0);
    const lines = list.stdout.split('\n');
    expect(lines[0]).toMatch(/^ID\s+ENDPOINT\s+HTTP\s+QUIC\s+PATH\s+TARGET\s+SOURCE\s+ENABLED\s+EXPIRES\s+INSTANCE\s+POOL\s+ACCESS\s+DCV USER\s+NOTE$/);
    expect(lines[1]).toMatch(/^alias\s+dcv-2\.internal\s+9443\s+-\s+\/\s+console\s+manual\s+no\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+-\s+-\s+-\s+-$/);
    expect(lines[2]).toMatch(/^console\s+10\.150\.248\.180\s+8443\s+8443\s+\/\s+-\s+manual\s+yes\s+-\s+-\s+-\s+-\s+-$/);
    expect(list.stdout).toMatch(new RegExp(`\n\n2 sessions in ${store.where.source}\n$`));

    const get = await sessions('get', 'console', ...store.args);
    expect(get.code).toBe(0);
    expect(get.stdout).toMatch(/^SessionId\s+"console"\nDcvServerEndpoint\s+"10\.150\.248\.180"\nHttpPort\s+8443\n/);

    const disable = await sessions('disable', 'console', ...store.args);
    expect(disable.code).toBe(0);
    expect(disable.stdout).toContain("session 'console' disabled in");
    expect((await store.items()).get('console')).toMatchObject({ Enabled: false, AllowedClientCidrs: ['10.0.0.0/8'] });
    const again = await sessions('disable', 'console', ...store.args);
    expect(again.stdout).toContain("session 'console' is already disabled; nothing written");
    expect((await sessions('enable', 'console', ...store.args)).code).toBe(0);
    expect((await store.items()).get('console')).toMatchObject({ Enabled: true });

    const rm = await sessions('rm', 'alias', ...store.args);
    expect(rm.code).toBe(0);
    expect(rm.stdout).toMatch(/^removed session 'alias' from /);
    expect(messages(rm)).toEqual([]);
    expect([...(await store.items()).keys()]).toEqual(['console']);
  });

  it('portal options: --allowed-users, --allowed-groups, --pool written, shown by list and get; put without them clears them', async () => {
    const store = await makeStore();
    const put = await sessions(
      'put', 'desk', ...store.args, '--endpoint', '10.0.0.9',
      '--allowed-users', 'alice@example.com, bob', '--allowed-users', 'carol', '--allowed-groups', 'ops,,gpu-users', '--pool', 'gpu',
    );
    expect(put.code).toBe(0);
    expect(put.stdout).toContain('resolves: HTTP → 10.0.0.9:8443/; QUIC not offered\nportal: users alice@example.com, bob, carol; groups ops, gpu-users; member of pool gpu\n');
    expect((await store.items()).get('desk')).toMatchObject({
      AllowedUsers: ['alice@example.com', 'bob', 'carol'],
      AllowedGroups: ['ops', 'gpu-users'],
      Pool: 'gpu',
      Source: 'manual',
    });

    const list = await sessions('list', ...store.args);
    const row = list.stdout.split('\n')[1]!;
    expect(row).toMatch(/^desk\s+10\.0\.0\.9\s+.*\s+gpu\s+alice@example\.com,bob,carol,group:ops,g…\s+-$/);
    const json = JSON.parse((await sessions('list', '--json', ...store.args)).stdout);
    expect(json[0]).toMatchObject({ sessionId: 'desk', valid: true, item: { AllowedGroups: ['ops', 'gpu-users'], Pool: 'gpu' } });

    const get = await sessions('get', 'desk', ...store.args);
    expect(get.stdout).toMatch(/\nAllowedUsers\s+\["alice@example\.com","bob","carol"\]\nAllowedGroups\s+\["ops","gpu-users"\]\nPool\s+"gpu"\n/);
    expect(get.stdout).toMatch(/\nportal: users alice@example\.com, bob, carol; groups ops, gpu-users; member of pool gpu\n$/);

    // put writes the whole item: leaving the options out clears them, and the portal line goes too.
    const again = await sessions('put', 'desk', ...store.args, '--endpoint', '10.0.0.9');
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain('portal:');
    const cleared = (await store.items()).get('desk')!;
    for (const attribute of ['AllowedUsers', 'AllowedGroups', 'Pool']) expect(cleared).not.toHaveProperty(attribute);

    for (const [args, message] of [
      [['--allowed-users', ' , '], '--allowed-users (AllowedUsers) must name at least one entry (remove the attribute to name none); nothing written'],
      [['--allowed-groups', 'ops,b\u0007ad'], "--allowed-groups (AllowedGroups) entry 'b\u0007ad' must not contain control characters; nothing written"],
      [['--pool', 'gpu pool'], "--pool (Pool) must be 1–64 letters, digits, '.', '_' or '-' (starting with a letter or digit); nothing written"],
    ] as const) {
      const bad = await sessions('put', 'desk2', ...store.args, '--endpoint', '10.0.0.9', ...args);
      expect(bad.code).toBe(1);
      expect(messages(bad)).toEqual([`dcv-resolver sessions: ${message}`]);
    }
    expect((await store.items()).has('desk2')).toBe(false);
  });

  it('--dcv-user: DcvUser written, shown by put, list and get; put without it clears it; a bad one is refused', async () => {
    const store = await makeStore();
    const put = await sessions('put', 'win', ...store.args, '--endpoint', '10.0.0.7', '--target', 'console', '--dcv-user', 'CORP\\Administrator');
    expect(put.code, put.stderr).toBe(0);
    expect(put.stdout).toContain("; the verifier answers DCV as 'CORP\\Administrator' (DcvUser)\n");
    expect((await store.items()).get('win')).toMatchObject({ DcvUser: 'CORP\\Administrator', Source: 'manual' });
    const row = (await sessions('list', ...store.args)).stdout.split('\n')[1]!;
    expect(row).toMatch(/^win\s+10\.0\.0\.7\s+.*\s+-\s+CORP\\Administrator$/);
    const get = await sessions('get', 'win', ...store.args);
    expect(get.stdout).toMatch(/\nDcvUser\s+"CORP\\\\Administrator"\n/);

    expect((await sessions('put', 'win', ...store.args, '--endpoint', '10.0.0.7')).code).toBe(0);
    expect((await store.items()).get('win')).not.toHaveProperty('DcvUser');

    const bad = await sessions('put', 'win2', ...store.args, '--endpoint', '10.0.0.7', '--dcv-user', 'ubu\u0007ntu');
    expect(bad.code).toBe(1);
    expect(messages(bad)).toEqual(['dcv-resolver sessions: --dcv-user (DcvUser) must not contain control characters; nothing written']);
    expect((await store.items()).has('win2')).toBe(false);
  });

  it('refuses bad values: exit 1, the field and the rule named, nothing written', async () => {
    const store = await makeStore();
    const cases: [string[], string][] = [
      [['--endpoint', 'h', '--port', '70000'], '--port (HttpPort) must be 1–65535; nothing written'],
      [['--endpoint', 'h', '--allowed-client-cidr', '10.0.0.0/8', '--allowed-client-cidr', '300.0.0.0/8'], "--allowed-client-cidr (AllowedClientCidrs) '300.0.0.0/8' is not a CIDR; nothing written"],
    ];
    for (const [flags, message] of cases) {
      const run = await sessions('put', 'x', ...store.args, ...flags);
      expect(run.code).toBe(1);
      expect(messages(run)).toEqual([`dcv-resolver sessions: ${message}`]);
    }
    expect((await store.items()).size).toBe(0);
  });

  it('a malformed item: listed and marked, and get gives the exact reason the resolver skips it', async () => {
    const store = await makeStore();
    await store.seed([
      { SessionId: 'good', DcvServerEndpoint: '10.0.0.1' },
      { SessionId: 'bad', DcvServerEndpoint: '10.0.0.2', HttpPort: 70000 },
      { SessionId: 'worse', DcvServerEndpoint: '10.0.0.3', Enabled: 'false' },
    ]);
    const list = await sessions('list', ...store.args);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^bad\s+10\.0\.0\.2\s+70000\s.*\smalformed: HttpPort must be 1–65535$/m);
    expect(list.stdout).toMatch(/^worse\s.*\smalformed: Enabled must be a boolean \(BOOL\)$/m);
    expect(list.stdout).toContain('3 sessions (2 malformed: the resolver skips them)');
    const json = JSON.parse((await sessions('list', ...store.args, '--json')).stdout);
    expect(json.map((e: { sessionId: string; valid: boolean }) => [e.sessionId, e.valid])).toEqual([
      ['bad', false],
      ['good', true],
      ['worse', false],
    ]);
    expect(json[0]).toMatchObject({ reason: 'HttpPort must be 1–65535', item: { SessionId: 'bad', HttpPort: 70000 } });

    const get = await sessions('get', 'bad', ...store.args);
    expect(get.code).toBe(0);
    expect(get.stdout).toContain('malformed: the resolver skips this item (answers 404): HttpPort must be 1–65535');
    const getJson = JSON.parse((await sessions('get', 'worse', ...store.args, '--json')).stdout);
    expect(getJson).toMatchObject({ sessionId: 'worse', valid: false, reason: 'Enabled must be a boolean (BOOL)' });
  });

  it('get, enable, disable and rm of a missing id fail with exit 1', async () => {
    const store = await makeStore();
    for (const sub of ['get', 'enable', 'disable', 'rm']) {
      const run = await sessions(sub, 'ghost', ...store.args);
      expect(run.code, sub).toBe(1);
      expect(messages(run)).toEqual([expect.stringMatching(new RegExp(`^dcv-resolver sessions: no session 'ghost' in ${store.where.source}$`))]);
    }
    expect((await store.items()).size).toBe(0);
  });

  it('put over a discovered item needs --force, and says discovery will leave it alone', async () => {
    const store = await makeStore();
    await store.seed([DISCOVERED]);
    const refused = await sessions('put', 'found', ...store.args, '--endpoint', '10.9.9.9');
    expect(refused.code).toBe(1);
    expect(messages(refused)[0]).toBe(
      `dcv-resolver sessions: session 'found' was discovered from instance ${instanceIdOf(1)} (Source = ec2); replacing it makes it Source = manual, and discovery leaves it alone from then on: add --force to do that. Nothing written`,
    );
    expect((await store.items()).get('found')).toEqual(DISCOVERED);

    const forced = await sessions('put', 'found', ...store.args, '--endpoint', '10.9.9.9', '--force');
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/^replaced session 'found' in /);
    expect(messages(forced).join('\n')).toContain('it is now Source = manual: discovery will leave it alone from then on');
    const item = (await store.items()).get('found')!;
    expect(item).toMatchObject({ DcvServerEndpoint: '10.9.9.9', Source: 'manual' });
    expect(item).not.toHaveProperty('DiscoveredHash');
    expect(item).not.toHaveProperty('InstanceId');
  });

  it('import is all or nothing: one invalid record → every problem reported, nothing written', async () => {
    const store = await makeStore();
    await store.seed([{ SessionId: 'kept', DcvServerEndpoint: '10.0.0.1' }]);
    const file = join(dir, `import-bad-${files}-${tables}.json`);
    writeFileSync(
      file,
      JSON.stringify([
        { SessionId: 'a', DcvServerEndpoint: '10.0.0.5' },
        { SessionId: 'b', DcvServerEndpoint: '10.0.0.6', HttpPort: 70000 },
        { SessionId: 'c', DcvServerEndpoint: '10.0.0.7', WebUrlPath: 'x' },
        { SessionId: 'a', DcvServerEndpoint: '10.0.0.8' },
      ]),
    );
    const run = await sessions('import', file, ...store.args);
    expect(run.code).toBe(1);
    expect(messages(run)).toEqual([
      `dcv-resolver sessions: ${file}: record 1 (SessionId 'b'): HttpPort must be 1–65535`,
      `dcv-resolver sessions: ${file}: record 2 (SessionId 'c'): WebUrlPath must start with '/'`,
      `dcv-resolver sessions: ${file}: record 3 (SessionId 'a'): SessionId appears more than once (first at record 0)`,
      `dcv-resolver sessions: ${file}: 3 invalid record(s); nothing written`,
    ]);
    expect([...(await store.items()).keys()]).toEqual(['kept']);
  });

  it('import: added/replaced/unchanged counts; a changed discovered item only with --force', async () => {
    const store = await makeStore();
    await store.seed([{ SessionId: 'same', DcvServerEndpoint: '10.0.0.1' }, { SessionId: 'old', DcvServerEndpoint: '10.0.0.2' }, DISCOVERED]);
    const file = join(dir, `import-ok-${files}-${tables}.json`);
    const records = [
      { SessionId: 'same', DcvServerEndpoint: '10.0.0.1' },
      { SessionId: 'old', DcvServerEndpoint: '10.0.0.22', HttpPort: '9443' },
      { SessionId: 'new', DcvServerEndpoint: '10.0.0.3', AllowedClientCidrs: ['192.168.0.0/16'] },
      { SessionId: 'found', DcvServerEndpoint: '10.0.0.4' },
    ];
    writeFileSync(file, JSON.stringify(records));
    const refused = await sessions('import', file, ...store.args);
    expect(refused.code).toBe(1);
    expect(messages(refused)).toEqual([
      `dcv-resolver sessions: ${file}: SessionId 'found' would replace a discovered item (Source = ec2, instance ${instanceIdOf(1)})`,
      'dcv-resolver sessions: 1 record(s) would replace discovered items; nothing written (add --force to replace them)',
    ]);
    expect((await store.items()).get('old')).toEqual({ SessionId: 'old', DcvServerEndpoint: '10.0.0.2' });
    expect((await store.items()).has('new')).toBe(false);

    const forced = await sessions('import', file, ...store.args, '--force');
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(new RegExp(`^imported .* into ${store.where.source}: 1 added, 2 replaced, 1 unchanged\n$`));
    const items = await store.items();
    for (const record of records) expect(items.get(record.SessionId)).toEqual(record);

    const rerun = await sessions('import', file, ...store.args);
    expect(rerun.stdout).toMatch(/: 0 added, 0 replaced, 4 unchanged\n$/);
  });

  it('export writes a sorted 2-space sessions file (stdout or FILE, not over an existing FILE without --force)', async () => {
    const store = await makeStore();
    const items = [
      { SessionId: 'zeta', DcvServerEndpoint: '10.0.0.9', HttpPort: 8443 },
      { SessionId: 'alpha', DcvServerEndpoint: '10.0.0.1', QuicPort: 8443, AllowedClientCidrs: ['10.0.0.0/8'] },
      { SessionId: 'bad', DcvServerEndpoint: '10.0.0.2', HttpPort: 0 },
    ];
    await store.seed(items);
    const expected = `${JSON.stringify([items[1], items[2], items[0]], null, 2)}\n`;
    const stdout = await sessions('export', ...store.args);
    expect(stdout.code).toBe(0);
    expect(stdout.stdout).toBe(expected);
    expect(messages(stdout)).toEqual(["dcv-resolver sessions: warning: 'bad' is malformed (HttpPort must be 1–65535); exported as it is, the resolver skips it"]);

    const target = join(dir, `export-${files}-${tables}.json`);
    const toFile = await sessions('export', target, ...store.args);
    expect(toFile.code).toBe(0);
    expect(readFileSync(target, 'utf8')).toBe(expected);
    const again = await sessions('export', target, ...store.args);
    expect(again.code).toBe(1);
    expect(messages(again)).toContain(`dcv-resolver sessions: ${target} exists; add --force to replace it. Nothing written`);
    writeFileSync(target, 'old');
    expect((await sessions('export', target, ...store.args, '--force')).code).toBe(0);
    expect(readFileSync(target, 'utf8')).toBe(expected);
  });
});

describe('bad usage', () => {
  it.each([
    [['put', 'x', '--sessions', 'f.json'], '--endpoint HOST is required'],
    [['put', '--sessions', 'f.json', '--endpoint', 'h'], 'ID is required'],
    [['put', 'x', 'y', '--sessions', 'f.json', '--endpoint', 'h'], "unexpected argument 'y'"],
    [['list', '--bogus', '--sessions', 'f.json'], "Unknown option '--bogus'"],
    [['list'], 'give exactly one of --table NAME or --sessions FILE'],
    [['list', '--table', 'T', '--sessions', 'f.json'], 'give exactly one of --table NAME or --sessions FILE'],
    [['frobnicate', '--sessions', 'f.json'], "unknown subcommand 'frobnicate'"],
  ])('sessions %j: exit 2 with the usage', async (args, message) => {
    const run = await sessions(...args);
    expect(run.code).toBe(2);
    expect(messages(run)[0]).toContain(`dcv-resolver sessions: ${message}`);
    expect(run.stderr).toContain('Usage: dcv-resolver sessions');
  });
});

describe('--help', () => {
  it.each(['list', 'get', 'put', 'enable', 'disable', 'rm', 'import', 'export'])('sessions %s --help', async (sub) => {
    const run = await cli(['sessions', sub, '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^Usage: dcv-resolver sessions ${sub} `));
    expect(run.stdout).toContain('--table NAME');
  });

  it('sessions --help lists the subcommands; the top-level help lists sessions', async () => {
    const run = await cli(['sessions', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: dcv-resolver sessions <list\|get\|put\|enable\|disable\|rm\|import\|export>/);
    expect((await cli(['--help'])).stdout).toMatch(/^ {2}sessions\s+list, show, add/m);
  });
});

describe('sessions against a table only', () => {
  it('list pages through a table of several thousand items (Scan pages of 1,000), sorted, none missing', async () => {
    const store = await tableStore();
    const name = store.args[1]!;
    const count = 3500;
    const ids = Array.from({ length: count }, (_, i) => `s${String(i).padStart(5, '0')}`);
    for (let i = 0; i < count; i += 25) {
      const requests = ids.slice(i, i + 25).map((id, j) => ({
        PutRequest: { Item: toAttributes({ SessionId: id, DcvServerEndpoint: `10.0.${(i + j) >> 8}.${(i + j) & 255}`, ...(i + j === 1234 ? { HttpPort: 0 } : {}) }) },
      }));
      await dynamo.client().send(new BatchWriteItemCommand({ RequestItems: { [name]: requests } }));
    }
    const list = await sessions('list', ...store.args);
    expect(list.code).toBe(0);
    const rows = list.stdout.split('\n').slice(1, count + 1);
    expect(rows.map((r) => r.split(/\s+/)[0])).toEqual(ids);
    expect(rows[1234]).toMatch(/malformed: HttpPort must be 1–65535$/);
    expect(list.stdout).toContain(`${count} sessions (1 malformed: the resolver skips them)`);

    const json = JSON.parse((await sessions('list', ...store.args, '--json')).stdout) as { sessionId: string }[];
    expect(json.map((e) => e.sessionId)).toEqual(ids);
  });

  it('the adapter follows LastEvaluatedKey page by page (and reports progress per page)', async () => {
    const store = await tableStore();
    const name = store.args[1]!;
    await store.seed(Array.from({ length: 7 }, (_, i) => ({ SessionId: `p${i}`, DcvServerEndpoint: 'h' })));
    const admin = new TableSessionAdminStore(sdkDynamoApi(dynamo.client()), name, { pageSize: 2 });
    const progress: number[] = [];
    const listed = await admin.list((p) => progress.push(p.pages));
    expect(listed.map((s) => s.item.SessionId).sort()).toEqual(['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6']);
    expect(progress).toEqual([1, 2, 3, 4]);
  });

  it('a change between read and write is detected by the condition, not overwritten', async () => {
    const store = await tableStore();
    const name = store.args[1]!;
    const admin = new TableSessionAdminStore(sdkDynamoApi(dynamo.client()), name);
    await store.seed([{ SessionId: 'x', DcvServerEndpoint: 'h', AllowedClientCidrs: ['10.0.0.0/8'] }]);
    const read = (await admin.get('x'))!;
    // Someone edits a list element in the console meanwhile.
    await store.seed([{ SessionId: 'x', DcvServerEndpoint: 'h', AllowedClientCidrs: ['10.0.0.0/16'] }]);
    await expect(admin.putIf({ item: { SessionId: 'x', DcvServerEndpoint: 'new' }, expected: { kind: 'unchanged', current: read } })).rejects.toBeInstanceOf(
      ConcurrentChangeError,
    );
    await expect(admin.deleteIf(read)).rejects.toBeInstanceOf(ConcurrentChangeError);
    await expect(admin.putIf({ item: { SessionId: 'x', DcvServerEndpoint: 'new' }, expected: { kind: 'absent' } })).rejects.toBeInstanceOf(ConcurrentChangeError);
    expect((await store.items()).get('x')).toEqual({ SessionId: 'x', DcvServerEndpoint: 'h', AllowedClientCidrs: ['10.0.0.0/16'] });
    // Read again, and the same write goes through.
    await admin.putIf({ item: { SessionId: 'x', DcvServerEndpoint: 'new' }, expected: { kind: 'unchanged', current: (await admin.get('x'))! } });
    await admin.deleteIf((await admin.get('x'))!);
    await expect(admin.updateIf(read, { Enabled: false })).rejects.toBeInstanceOf(ConcurrentChangeError);
    expect((await store.items()).size).toBe(0);
  });

  it('rm of a discovered item warns while its instance runs, says so when EC2 cannot be asked, and is quiet when it is stopped', async () => {
    const store = await tableStore();
    await store.seed([DISCOVERED, { ...DISCOVERED, SessionId: 'sleeping', InstanceId: instanceIdOf(2) }, { ...DISCOVERED, SessionId: 'again' }]);
    const running = await sessions('rm', 'found', ...store.args);
    expect(running.code).toBe(0);
    expect(running.stdout).toMatch(/^removed session 'found' from /);
    expect(messages(running)).toEqual([
      `dcv-resolver sessions: warning: session 'found' was discovered from instance ${instanceIdOf(1)}, which is still running: discovery will recreate the session on its next run (remove the instance's session-id tag, or stop it, to keep it gone)`,
    ]);

    const stopped = await sessions('rm', 'sleeping', ...store.args);
    expect(stopped.code).toBe(0);
    expect(messages(stopped)).toEqual([]);

    const unreachable = await cli(['sessions', 'rm', 'again', ...store.args], { AWS_ENDPOINT_URL_EC2: `http://127.0.0.1:${deadPort}` });
    expect(unreachable.code).toBe(0);
    expect(messages(unreachable)).toEqual([
      expect.stringMatching(
        new RegExp(`^dcv-resolver sessions: warning: session 'again' was discovered from instance ${instanceIdOf(1)}, and EC2 could not be asked whether it still runs \\(.+\\); if it does, discovery will recreate the session on its next run$`),
      ),
    ]);
    expect((await store.items()).size).toBe(0);
  });

  it('disable of a discovered item says discovery now treats it as a hand edit', async () => {
    const store = await tableStore();
    await store.seed([DISCOVERED]);
    const run = await sessions('disable', 'found', ...store.args);
    expect(run.code).toBe(0);
    expect(messages(run)).toEqual([expect.stringContaining("discovery now sees a hand edit and leaves it alone (reported as an 'edited' conflict)")]);
  });

  it('a missing table is exit 1 with the table and region named', async () => {
    const run = await sessions('list', '--table', 'no-such-table');
    expect(run.code).toBe(1);
    expect(messages(run)).toEqual(["dcv-resolver sessions: table 'no-such-table' (region us-east-1) does not exist"]);
  });
});

describe('sessions file only', () => {
  it('a broken sessions file is exit 1 naming the file and the problem; it is never rewritten', async () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '[{"SessionId": "a"');
    for (const args of [['list'], ['put', 'x', '--endpoint', 'h']]) {
      const run = await sessions(...args, '--sessions', file);
      expect(run.code).toBe(1);
      expect(messages(run)[0]).toMatch(/^dcv-resolver sessions: sessions file '.*broken\.json': not valid JSON/);
    }
    expect(readFileSync(file, 'utf8')).toBe('[{"SessionId": "a"');
  });

  it('put creates a missing file; no temp file is left behind', async () => {
    const sub = mkdtempSync(join(dir, 'new-'));
    const file = join(sub, 'sessions.json');
    const run = await sessions('put', 'first', '--sessions', file, '--endpoint', '10.0.0.1');
    expect(run.code).toBe(0);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([expect.objectContaining({ SessionId: 'first', Source: 'manual' })]);
    expect(readdirSync(sub)).toEqual(['sessions.json']);
  });
});

// ---------------------------------------------------------------------------------------------------------
// The graduation path: a gateway host on a sessions file moves to the table.

interface Served {
  readonly url: string;
  stop(): Promise<void>;
}

async function serve(args: string[], extraEnv: Record<string, string> = {}): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', ...args], { cwd: dir, env: env(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  child.stdout!.resume();
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), WAIT_MS);
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString('utf8');
      const match = /serving on (http:\/\/\S+) /.exec(err);
      if (match) {
        clearTimeout(deadline);
        resolve(match[1]!);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(deadline);
      reject(new Error(`serve exited with ${code}: ${err}`));
    });
  });
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

function resolveSession(baseUrl: string, sessionId: string): Promise<{ status: number; body: string }> {
  const url = new URL(`/resolveSession?sessionId=${encodeURIComponent(sessionId)}&transport=HTTP`, baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'POST', agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.setTimeout(WAIT_MS, () => req.destroy(new Error('request timed out')));
    req.end();
  });
}

describe('graduation: from a sessions file to the table', () => {
  it('serve --sessions picks up a sessions put; export → import → serve --table answers the same', async () => {
    const file = join(dir, 'gateway-host.json');
    writeFileSync(file, readFileSync(join(ROOT, 'sessions.example.json')));
    const fromFile = await serve(['--sessions', file]);
    expect((await resolveSession(fromFile.url, 'lab')).status).toBe(404);

    const put = await sessions('put', 'lab', '--sessions', file, '--endpoint', '10.150.248.77', '--port', '9443', '--target', 'console');
    expect(put.code).toBe(0);
    const expected = '{"SessionId":"console","TransportProtocol":"HTTP","DcvServerEndpoint":"10.150.248.77","Port":9443,"WebUrlPath":"/"}';
    // serve polls the file twice a second.
    await expect.poll(() => resolveSession(fromFile.url, 'lab'), { timeout: 10_000, interval: 100 }).toEqual({ status: 200, body: expected });
    await fromFile.stop();

    const exported = join(dir, 'graduate.json');
    expect((await sessions('export', exported, '--sessions', file)).code).toBe(0);
    await dynamo.createSessionTable('Graduated');
    const imported = await sessions('import', exported, '--table', 'Graduated');
    expect(imported.code).toBe(0);
    expect(imported.stdout).toMatch(/: 3 added, 0 replaced, 0 unchanged\n$/);

    const fromTable = await serve(['--table', 'Graduated']);
    try {
      expect(await resolveSession(fromTable.url, 'lab')).toEqual({ status: 200, body: expected });
      expect(await resolveSession(fromTable.url, 'console')).toEqual({
        status: 200,
        body: '{"SessionId":"console","TransportProtocol":"HTTP","DcvServerEndpoint":"10.150.248.180","Port":8443,"WebUrlPath":"/"}',
      });
    } finally {
      await fromTable.stop();
    }
    // And back: the table exported is the file it came from, item for item.
    const back = await sessions('export', '--table', 'Graduated');
    expect(JSON.parse(back.stdout)).toEqual(JSON.parse(readFileSync(exported, 'utf8')));
  });
});
