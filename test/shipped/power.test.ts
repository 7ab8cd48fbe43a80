import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { functionAssetDir } from '../../lib/function-assets';
import { fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
import { dcvSessions, writeFakeDcvHost } from '../helpers/fake-dcv-host';
import { emfLines } from '../helpers/emf';
import { instanceArn, tableArn, type AwsCall } from './harness/aws-recorder';
import { denied } from './harness/iam-check';
import { RIC_ENTRY, type RunningFunction } from './harness/lambda-runtime-api';
import { synthesize, type Synthesized } from './harness/synthesized';
import { ruleDeliveries, scheduledEvent, type RuleDelivery } from './harness/wiring';
import { startWorld, type World } from './harness/world';

/**
 * The power pass as it ships: the default stack's power bundle from the cloud assembly, through a Lambda
 * runtime client, with the template's handler and environment (its SIGNALS_DOCUMENT is the stack's own
 * document, registered in the loopback SSM with the template's content, so the shipped host script really
 * runs against each host's fake dcv). Discovery registers the fleet first, as in an account. Every call the
 * pass makes must be one its role allows, evaluated with the instances' real tags.
 */
let synth: Synthesized;
let world: World;
let root: string;
let power: RunningFunction;
let discovery: RunningFunction;
let powerId: string;
let discoveryId: string;
let sessionsTable: string;
let schedule: RuleDelivery;

const MIN = 60_000;
const IDLE = instanceIdOf(1);
const CONNECTED = instanceIdOf(2);
const UNTAGGED = instanceIdOf(3);
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '.123456Z');

beforeAll(async () => {
  synth = synthesize('ShippedPower', { allowAnySource: true });
  powerId = synth.functionId('PowerFunction');
  discoveryId = synth.functionId('DiscoveryFunction');
  sessionsTable = synth.tableName('Sessions');
  [schedule] = ruleDeliveries(synth, powerId);
  world = await startWorld(synth);
  root = mkdtempSync(path.join(tmpdir(), 'shipped-power-'));

  const now = Date.now();
  const longAgo = new Date(now - 1440 * MIN);
  const host = (id: string, name: string, connections: number) => {
    const files = writeFakeDcvHost(path.join(root, name), dcvSessions([['console', connections, iso(now - 1440 * MIN), iso(now - 120 * MIN)]]));
    world.ssm.hosts.set(id, { binDir: files.bin });
  };
  // Idle for two hours under a 5-minute auto-stop; the same but with a client connected; no power tag at all.
  world.fleet.put(fleetInstance(1, { launchTime: longAgo, tags: { 'dcv:session-id': 'desk-1', 'dcv:auto-stop': '5' } }));
  host(IDLE, 'idle', 0);
  world.fleet.put(fleetInstance(2, { launchTime: longAgo, tags: { 'dcv:session-id': 'desk-2', 'dcv:auto-stop': '5' } }));
  host(CONNECTED, 'connected', 1);
  world.fleet.put(fleetInstance(3, { launchTime: longAgo, tags: { 'dcv:session-id': 'desk-3' } }));
  host(UNTAGGED, 'untagged', 0);

  [discovery, power] = await Promise.all([world.start(discoveryId), world.start(powerId)]);
  const discovered = await discovery.invoke(scheduledEvent(ruleDeliveries(synth, discoveryId).find((d) => d.scheduleExpression)!));
  expect(discovered.error, discovered.logs).toBeUndefined();
}, 120_000);

afterAll(async () => {
  await world?.stop();
  synth?.remove();
  if (root) rmSync(root, { recursive: true, force: true });
});

const callsOf = (functionId: string) => world.calls().filter((c) => c.accessKeyId === world.accessKeyOf(functionId));
const item = async (sessionId: string) =>
  (await world.dynamo.client().send(new GetItemCommand({ TableName: sessionsTable, Key: { SessionId: { S: sessionId } }, ConsistentRead: true }))).Item;
const call = (action: string, resources: string[], extra: Partial<AwsCall> = {}): AwsCall => ({
  accessKeyId: 'x',
  service: action.split(':')[0] as AwsCall['service'],
  action,
  resources,
  ...extra,
});

describe('the shipped power function', () => {
  it('is the package’s power bundle, byte for byte, invoked directly by a one-minute schedule', () => {
    const shipped = readFileSync(path.join(functionAssetDir('power', true), 'index.mjs'));
    expect(readFileSync(path.join(synth.assetDir(powerId), 'index.mjs')).equals(shipped)).toBe(true);
    expect(ruleDeliveries(synth, powerId)).toEqual([expect.objectContaining({ scheduleExpression: 'rate(1 minute)', via: { kind: 'direct' } })]);
    const document = Object.values(synth.documentNames);
    expect(document).toHaveLength(1);
    expect(synth.template.Resources[powerId]!.Properties.Environment.Variables.SIGNALS_DOCUMENT).toEqual({ Ref: Object.keys(synth.documentNames)[0] });
    // AWS's own runtime interface client where .lambda-ric/ has it built (the harness's bootstrap elsewhere).
    expect(power.runtimeClient).toBe(existsSync(RIC_ENTRY) ? 'aws-lambda-ric' : 'bootstrap.mjs');
  });

  it('a scheduled pass stops the idle tagged host only; the connected and the untagged ones keep running', async () => {
    const answer = await power.invoke(scheduledEvent(schedule));
    expect(answer.error, `${answer.error?.errorType}: ${answer.error?.errorMessage}\n${answer.logs}`).toBeUndefined();
    expect(answer.result).toMatchObject({ actions: 1, failures: 0 });

    expect(world.power.calls).toEqual([{ action: 'StopInstances', instanceIds: [IDLE] }]);
    expect(world.power.state(IDLE)).toMatch(/stopping|stopped/);
    expect(world.power.state(CONNECTED)).toBe('running');
    expect(world.power.state(UNTAGGED)).toBe('running');
    // The pass recorded its stop on the item (its claim), and nothing on the others.
    expect((await item('desk-1'))?.PowerStopAt).toBeDefined();
    expect((await item('desk-2'))?.PowerStopAt).toBeUndefined();

    // One summary line and the metrics, under service=power.
    expect(answer.logs).toMatch(/power pass done/);
    const metrics = emfLines(answer.logs);
    expect(metrics.some((l) => l.service === 'power' && l.PowerStops === 1)).toBe(true);
    expect(metrics.some((l) => l.service === 'power' && l.PowerPasses === 1)).toBe(true);
  }, 90_000);

  it('read the hosts only with the stack’s document, never a shell command, and never asked the untagged host', () => {
    const sends = world.ssm.calls.filter((c) => c.operation === 'SendCommand');
    expect(sends.length).toBeGreaterThan(0);
    for (const send of sends) {
      expect(send.body.DocumentName).toBe(Object.values(synth.documentNames)[0]);
      expect(send.body.Parameters).toBeUndefined();
      expect(send.body.InstanceIds).not.toContain(UNTAGGED);
    }
  });

  it('made only calls its role allows, with the instances’ tags as AWS would evaluate them', async () => {
    const calls = callsOf(powerId);
    const actions = new Set(calls.map((c) => c.action));
    for (const expected of ['ec2:DescribeInstances', 'ec2:StopInstances', 'ssm:SendCommand', 'dynamodb:Scan', 'dynamodb:UpdateItem']) expect(actions).toContain(expected);
    expect(calls.find((c) => c.action === 'ec2:StopInstances')!.resources).toEqual([instanceArn(IDLE)]);
    expect(await denied(synth, powerId, calls, world.instanceTags)).toEqual([]);
  });

  it('its role refuses the untagged host, another document or a shell, and any other attribute of an item', async () => {
    const doc = `arn:aws:ssm:us-east-1:123456789012:document/${Object.values(synth.documentNames)[0]}`;
    const desk1 = { keys: [{ SessionId: { S: 'desk-1' } }] };
    const refusals: [string, AwsCall][] = [
      ['stop an untagged instance', call('ec2:StopInstances', [instanceArn(UNTAGGED)])],
      ['start an untagged instance', call('ec2:StartInstances', [instanceArn(UNTAGGED)])],
      // auto-stop alone never lets it start an instance.
      ['start an auto-stop-only instance', call('ec2:StartInstances', [instanceArn(IDLE)])],
      ['send AWS-RunShellScript', call('ssm:SendCommand', ['arn:aws:ssm:us-east-1::document/AWS-RunShellScript', instanceArn(IDLE)])],
      ['send the document to an untagged instance', call('ssm:SendCommand', [doc, instanceArn(UNTAGGED)])],
      ['update another attribute', call('dynamodb:UpdateItem', [tableArn(sessionsTable)], { ...desk1, attributes: ['SessionId', 'DcvServerEndpoint'] })],
      ['ask for the old item back', call('dynamodb:UpdateItem', [tableArn(sessionsTable)], { ...desk1, attributes: ['SessionId', 'InstanceId', 'IdleSince'], returnValues: 'ALL_OLD' })],
      ['put an item', call('dynamodb:PutItem', [tableArn(sessionsTable)], desk1)],
      ['read the table’s index', call('dynamodb:Scan', [`${tableArn(sessionsTable)}/index/ByInstanceId`])],
    ];
    for (const [what, refused] of refusals) {
      const findings = await denied(synth, powerId, [refused], world.instanceTags);
      expect(findings, what).toHaveLength(1);
      // An AWS-owned document's ARN has no account, which the evaluator's resource patterns cannot place: it
      // reports that call as not evaluable, which the check counts as refused too. Everything else is decided.
      if (!what.includes('AWS-RunShellScript')) expect(findings[0], what).not.toMatch(/not evaluable/);
    }
    // The shell document with an account in its ARN is decided, and refused: the role names one document only.
    expect(await denied(synth, powerId, [call('ssm:SendCommand', ['arn:aws:ssm:us-east-1:123456789012:document/AWS-RunShellScript'])])).toEqual([
      'ssm:SendCommand on arn:aws:ssm:us-east-1:123456789012:document/AWS-RunShellScript',
    ]);
    // The same checks allow what the pass needs: a stop and a read of the tagged host, a runtime attribute.
    expect(
      await denied(
        synth,
        powerId,
        [
          call('ec2:StopInstances', [instanceArn(IDLE)]),
          call('ssm:SendCommand', [`arn:aws:ssm:us-east-1:123456789012:document/${Object.values(synth.documentNames)[0]}`, instanceArn(CONNECTED)]),
          call('dynamodb:UpdateItem', [tableArn(sessionsTable)], { keys: [{ SessionId: { S: 'desk-1' } }], attributes: ['SessionId', 'InstanceId', 'IdleSince'] }),
        ],
        world.instanceTags,
      ),
    ).toEqual([]);
  });

  it('a pass that cannot list EC2 fails the invocation (Lambda counts an error: the PowerErrors alarm), and stops nothing', async () => {
    const stops = world.power.calls.length;
    world.fleet.failure = () => Object.assign(new Error('You are not authorized to perform this operation.'), { name: 'UnauthorizedOperation' });
    try {
      const answer = await power.invoke(scheduledEvent(schedule));
      expect(answer.error, answer.logs).toBeDefined();
      expect(`${answer.error!.errorType}: ${answer.error!.errorMessage}`).toMatch(/not authorized|UnauthorizedOperation/);
    } finally {
      world.fleet.failure = undefined;
    }
    expect(world.power.calls).toHaveLength(stops);
  }, 60_000);
});
