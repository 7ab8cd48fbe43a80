import { execFile } from 'node:child_process';
import { PutItemCommand, ScanCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromItem } from '../../lambda/adapters/dynamodb-session-store';
import { CliError } from '../../lambda/cli/cli-error';
import { parseDiscoverArgs } from '../../lambda/cli/discover-command';
import { FakeFleet, fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
import { startEc2QueryServer, type Ec2QueryServer } from '../helpers/ec2-query-server';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { createDiscoveryTable } from '../helpers/discovery-table';
import { CLI_PATH as CLI, cliBaseEnv } from '../helpers/run-cli';

const TABLE = 'cli-discover';

let dynamo: LocalDynamo;
let ec2: Ec2QueryServer;
const fleet = new FakeFleet();

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The real CLI in a child process, configured only through the standard SDK environment variables. */
function cli(args: string[]): Promise<Run> {
  const env = {
    ...cliBaseEnv(),
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_MAX_ATTEMPTS: '1',
  };
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function tableItems() {
  const page = await dynamo.client().send(new ScanCommand({ TableName: TABLE, ConsistentRead: true }));
  return new Map((page.Items ?? []).map((raw) => [raw.SessionId!.S!, fromItem(raw)]));
}

beforeAll(async () => {
  dynamo = await startDynalite();
  await createDiscoveryTable(dynamo.client(), TABLE);
  ec2 = await startEc2QueryServer(fleet);
  // The field report's two hosts, as tags, plus one broken and one stopped instance.
  fleet.put(fleetInstance(1, { privateIp: '10.150.248.180', tags: { 'dcv:session-id': 'console', 'dcv:quic-port': '8443' } }));
  fleet.put(fleetInstance(2, { privateIp: '10.150.248.136', tags: { 'dcv:session-id': 'desktop' } }));
  fleet.put(fleetInstance(3, { tags: { 'dcv:session-id': 'broken', 'dcv:port': 'https' } }));
  fleet.put(fleetInstance(4, { state: 'stopped', tags: { 'dcv:session-id': 'sleeping' } }));
  fleet.put(fleetInstance(5, { tags: { 'dcv:session-id': 'ops=console' } }));
  await dynamo.client().send(new PutItemCommand({ TableName: TABLE, Item: { SessionId: { S: 'ops' }, DcvServerEndpoint: { S: '10.0.0.99' }, Source: { S: 'manual' } } }));
});

afterAll(async () => {
  await ec2?.close();
  await dynamo?.stop();
});

describe('dcv-resolver discover', () => {
  it('--dry-run prints what it would do and writes nothing', async () => {
    const run = await cli(['discover', '--table', TABLE, '--dry-run']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^ACTION\s+SESSION ID\s+INSTANCE\s+DETAIL$/m);
    expect(run.stdout).toMatch(new RegExp(`^would add\\s+console\\s+${instanceIdOf(1)}\\s+10\\.150\\.248\\.180:8443/ quic 8443$`, 'm'));
    expect(run.stdout).toMatch(new RegExp(`^would add\\s+desktop\\s+${instanceIdOf(2)}\\s+10\\.150\\.248\\.136:8443/$`, 'm'));
    expect(run.stdout).toMatch(new RegExp(`^conflict\\s+ops\\s+${instanceIdOf(5)}\\s+a manual item has this session id`, 'm'));
    expect(run.stdout).toMatch(new RegExp(`^unparsable\\s+-\\s+${instanceIdOf(3)}\\s+dcv:port 'https' must be a port number`, 'm'));
    expect(run.stdout).toMatch(/5 tagged instances, 2 added, 0 changed, 0 removed, 0 unchanged, 1 conflicts, 1 unparsable \(dry run: nothing written\)/);
    expect(run.stderr).toMatch(/listed 5 tagged instances \(1 pages\)/);
    expect([...(await tableItems()).keys()]).toEqual(['ops']);
  });

  it('writes the items, then a second run changes nothing', async () => {
    const first = await cli(['discover', '--table', TABLE]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^added\s+console\s/m);
    const items = await tableItems();
    expect(items.get('console')).toMatchObject({ DcvServerEndpoint: '10.150.248.180', HttpPort: 8443, QuicPort: 8443, Source: 'ec2' });
    expect(items.get('desktop')).toMatchObject({ DcvServerEndpoint: '10.150.248.136', Source: 'ec2' });
    expect(items.get('ops')).toEqual({ SessionId: 'ops', DcvServerEndpoint: '10.0.0.99', Source: 'manual' });

    const second = await cli(['discover', '--table', TABLE, '--json']);
    expect(second.code).toBe(0);
    const json = JSON.parse(second.stdout);
    expect(json.counts).toMatchObject({ added: 0, changed: 0, removed: 0, unchanged: 2, puts: 0, deletes: 0, conflicts: 1, unparsable: 1 });
    expect(json.unparsable).toEqual([{ instanceId: instanceIdOf(3), reason: expect.stringContaining('dcv:port') }]);
  });

  it('--json lists changes and removals after a stop and a retag', async () => {
    fleet.setState(instanceIdOf(2), 'stopped');
    fleet.setTags(instanceIdOf(1), { 'dcv:session-id': 'console', 'dcv:port': '9443' });
    const run = await cli(['discover', '--table', TABLE, '--json']);
    expect(run.code).toBe(0);
    const json = JSON.parse(run.stdout);
    expect(json.changed).toEqual([
      { sessionId: 'console', instanceId: instanceIdOf(1), changed: ['HttpPort', 'QuicPort'], item: expect.objectContaining({ HttpPort: 9443 }) },
    ]);
    expect(json.removed).toEqual([{ sessionId: 'desktop', instanceId: instanceIdOf(2), reason: `instance ${instanceIdOf(2)} is stopped` }]);
    expect((await tableItems()).has('desktop')).toBe(false);
  });

  it('an item edited by hand is left alone and listed as an edited conflict (table and JSON)', async () => {
    await dynamo.client().send(
      new UpdateItemCommand({ TableName: TABLE, Key: { SessionId: { S: 'console' } }, UpdateExpression: 'SET HttpPort = :p', ExpressionAttributeValues: { ':p': { N: '9000' } } }),
    );
    const before = await tableItems();
    const run = await cli(['discover', '--table', TABLE]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(`^conflict\\s+console\\s+${instanceIdOf(1)}\\s+edited by hand since discovery wrote it; left alone — set Source = manual to keep it, or delete the item to let discovery manage it again$`, 'm'),
    );
    expect(run.stdout).toMatch(/5 tagged instances, 0 added, 0 changed, 0 removed, 0 unchanged, 2 conflicts, 1 unparsable$/m);
    const json = JSON.parse((await cli(['discover', '--table', TABLE, '--json'])).stdout);
    expect(json.conflicts).toContainEqual({ kind: 'edited', sessionId: 'console', instanceId: instanceIdOf(1), reason: expect.stringMatching(/^edited by hand/) });
    expect(json.counts).toMatchObject({ changed: 0, removed: 0, puts: 0, deletes: 0, conflicts: 2 });
    expect(await tableItems()).toEqual(before);
    expect(before.get('console')).toMatchObject({ HttpPort: 9000, Source: 'ec2' });
  });

  it('an EC2 failure exits 1 and changes nothing', async () => {
    const before = await tableItems();
    fleet.setState(instanceIdOf(1), 'terminated');
    fleet.failure = () => Object.assign(new Error('You are not authorized'), { name: 'UnauthorizedOperation' });
    const run = await cli(['discover', '--table', TABLE]);
    fleet.failure = undefined;
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/dcv-resolver discover: nothing changed: instance listing failed after 0 instances: UnauthorizedOperation/);
    expect(await tableItems()).toEqual(before);
  });

  it('a missing table exits 1 with one clear line', async () => {
    const run = await cli(['discover', '--table', 'no-such-table']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/dcv-resolver discover: table 'no-such-table' does not exist in region us-east-1/);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});

describe('discover arguments (in process)', () => {
  it.each([
    [[], /--table NAME is required/],
    [['--table', ' '], /--table NAME is required/],
    [['--table', TABLE, '--tag-prefix', 'aws:x'], /--tag-prefix: .*reserved/],
    [['--table', TABLE, '--tag-prefix', ''], /--tag-prefix: tag prefix must not be empty/],
    [['--table', TABLE, '--bogus'], /Unknown option '--bogus'/],
    [['--table', TABLE, 'extra'], /Unexpected argument 'extra'/],
  ])('%j is a usage error (exit 2)', (args, message) => {
    let error: unknown;
    try {
      parseDiscoverArgs(args);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(2);
    expect((error as CliError).message).toMatch(message);
  });

  it('defaults', () => {
    expect(parseDiscoverArgs(['--table', TABLE])).toEqual({ table: TABLE, tagPrefix: 'dcv:', dryRun: false, json: false });
    expect(parseDiscoverArgs(['--table', TABLE, '--tag-prefix', 'corp/', '--dry-run', '--json'])).toEqual({ table: TABLE, tagPrefix: 'corp/', dryRun: true, json: true });
  });
});
