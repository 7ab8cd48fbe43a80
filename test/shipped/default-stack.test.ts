import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DeleteItemCommand, GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { functionAssetDir } from '../../lib/function-assets';
import { sdkDynamoApi } from '../../lambda/adapters/dynamodb-api';
import { DynamoDbSessionStore } from '../../lambda/adapters/dynamodb-session-store';
import { DynamoDbTokenStore } from '../../lambda/adapters/dynamodb-token-store';
import { silentLog } from '../../lambda/core/log';
import { SessionResolver } from '../../lambda/core/resolve';
import { issueToken } from '../../lambda/core/tokens/issue-token';
import { fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
import { functionUrlEvent } from '../helpers/function-url-event';
import { parseAuthXml, verifyForm } from '../helpers/verify-http';
import { denied } from './harness/iam-check';
import { RIC_ENTRY, type RunningFunction } from './harness/lambda-runtime-api';
import { synthesize, type Synthesized } from './harness/synthesized';
import { deliver, ruleDeliveries, ruleFor, scheduledEvent, sqsBatch, stateChangeEvent, tagChangeEvent, type RuleDelivery } from './harness/wiring';
import { startWorld, type World } from './harness/world';

/**
 * The default stack (`-c allowAnySource=true`: resolver with the verifier, EC2 discovery) as it ships: both
 * functions run from their bundles in the cloud assembly, through a Lambda runtime client, with the template's
 * handler, environment and tables, on the Node.js running this suite. Discovery registers what EC2 reports,
 * the resolver answers the gateway from what discovery wrote, the verifier takes a use, and every AWS call
 * either function made is one its role allows.
 */
let synth: Synthesized;
let world: World;
let discovery: RunningFunction;
let resolver: RunningFunction;
let discoveryId: string;
let resolverId: string;
let deliveries: RuleDelivery[];
let sessionsTable: string;
let tokensTable: string;

const TAGGED = instanceIdOf(1);
const OTHER = instanceIdOf(2);

beforeAll(async () => {
  synth = synthesize('ShippedDefault', { allowAnySource: true });
  resolverId = synth.functionId('Resolver');
  discoveryId = synth.functionId('DiscoveryFunction');
  sessionsTable = synth.tableName('Sessions');
  tokensTable = synth.tableName('Tokens');
  deliveries = ruleDeliveries(synth, discoveryId);
  world = await startWorld(synth);
  [discovery, resolver] = await Promise.all([world.start(discoveryId), world.start(resolverId)]);
}, 120_000);

afterAll(async () => {
  await world?.stop();
  synth?.remove();
});

const item = async (sessionId: string) =>
  (await world.dynamo.client().send(new GetItemCommand({ TableName: sessionsTable, Key: { SessionId: { S: sessionId } }, ConsistentRead: true }))).Item;

async function send(fn: RunningFunction, event: unknown) {
  const answer = await fn.invoke(event);
  expect(answer.error, `${answer.error?.errorType}: ${answer.error?.errorMessage}\n${answer.logs}`).toBeUndefined();
  return answer.result;
}

/** An EventBridge event through the path the template wires for it (direct, or the event queue). */
async function fire(event: Record<string, unknown>) {
  const delivery = ruleFor(deliveries, event);
  const result = await send(discovery, deliver(delivery, event));
  if (delivery.via.kind === 'queue') expect(result).toEqual({ batchItemFailures: [] });
  return result;
}

describe('the shipped functions of the default stack', () => {
  it('are exactly the resolver, discovery and the power pass (test/shipped/power.test.ts), each an ESM bundle at the handler the template names', () => {
    expect([...synth.functions].sort()).toEqual([discoveryId, resolverId, synth.functionId('PowerFunction')].sort());
    for (const id of synth.functions) {
      const props = synth.template.Resources[id]!.Properties;
      expect(props.Handler).toBe('index.handler');
      expect(['nodejs22.x', 'nodejs24.x']).toContain(props.Runtime);
      expect(existsSync(path.join(synth.assetDir(id), 'index.mjs'))).toBe(true);
    }
    // What these tests run is the package's assets/ as `npm pack` ships them, byte for byte.
    for (const [id, name] of [[resolverId, 'resolver'], [discoveryId, 'discovery']] as const) {
      const shipped = readFileSync(path.join(functionAssetDir(name, true), 'index.mjs'));
      expect(readFileSync(path.join(synth.assetDir(id), 'index.mjs')).equals(shipped), id).toBe(true);
    }
    // Schedule direct; instance state and tag events through the event queue, reporting partial failures.
    expect(deliveries.map((d) => [d.scheduleExpression ? 'schedule' : (d.eventPattern!.source as string[])[0], d.via.kind]).sort()).toEqual([
      ['aws.ec2', 'queue'],
      ['aws.tag', 'queue'],
      ['schedule', 'direct'],
    ]);
    expect(deliveries.every((d) => d.via.kind === 'direct' || d.via.reportBatchItemFailures)).toBe(true);
  });

  it("load through AWS's own runtime interface client where it is installed (always in CI)", () => {
    // .ci/run builds aws-lambda-ric into .lambda-ric/; elsewhere the harness's bootstrap.mjs stands in.
    if (process.env.CI) expect(RIC_ENTRY).toSatisfy(existsSync);
    const expected = existsSync(RIC_ENTRY) ? 'aws-lambda-ric' : 'bootstrap.mjs';
    expect([discovery.runtimeClient, resolver.runtimeClient]).toEqual([expected, expected]);
  });

  it('discovery: a scheduled run registers a tagged running instance and nothing else', async () => {
    world.fleet.put(fleetInstance(1, { tags: { 'dcv:session-id': 'desk-1=console', 'dcv:quic-port': '8443' }, privateIp: '10.0.0.11' }));
    world.fleet.put(fleetInstance(2, { tags: { Name: 'not a dcv host' }, privateIp: '10.0.0.12' }));
    const result = await fire(scheduledEvent(deliveries.find((d) => d.scheduleExpression)!));
    expect(result).toMatchObject({ trigger: 'schedule', counts: expect.objectContaining({ puts: 1 }) });
    expect(await item('desk-1')).toMatchObject({
      SessionId: { S: 'desk-1' },
      DcvServerEndpoint: { S: '10.0.0.11' },
      TargetSessionId: { S: 'console' },
      QuicPort: { N: '8443' },
      InstanceId: { S: TAGGED },
      Source: { S: 'ec2' },
    });
    expect(world.fleet.instances.has(OTHER)).toBe(true);
  });

  it('resolver: answers the gateway from the item discovery wrote, and 404 for an unknown session', async () => {
    const hit = (await send(resolver, functionUrlEvent({ rawQueryString: 'sessionId=desk-1&transport=QUIC' }))) as { statusCode: number; body: string };
    expect(hit.statusCode).toBe(200);
    expect(JSON.parse(hit.body)).toEqual({ SessionId: 'console', TransportProtocol: 'QUIC', DcvServerEndpoint: '10.0.0.11', Port: 8443, WebUrlPath: '/' });
    const miss = (await send(resolver, functionUrlEvent({ rawQueryString: 'sessionId=nobody&transport=HTTP' }))) as { statusCode: number };
    expect(miss.statusCode).toBe(404);
  });

  it('discovery: a tag change through the event queue updates the item', async () => {
    const tags = { 'dcv:session-id': 'desk-1=console', 'dcv:quic-port': '8443', 'dcv:port': '9443' };
    world.fleet.setTags(TAGGED, tags);
    await fire(tagChangeEvent(TAGGED, ['dcv:port'], tags));
    expect((await item('desk-1'))?.HttpPort).toEqual({ N: '9443' });
  });

  it('discovery: leaves a hand-edited item alone on the next full run', async () => {
    await world.dynamo.client().send(
      new UpdateItemCommand({
        TableName: sessionsTable,
        Key: { SessionId: { S: 'desk-1' } },
        UpdateExpression: 'SET WebUrlPath = :p',
        ExpressionAttributeValues: { ':p': { S: '/edited-by-hand' } },
      }),
    );
    const result = await fire(scheduledEvent(deliveries.find((d) => d.scheduleExpression)!));
    expect(result).toMatchObject({ counts: expect.objectContaining({ puts: 0, deletes: 0 }) });
    expect((await item('desk-1'))?.WebUrlPath).toEqual({ S: '/edited-by-hand' });
    // As the log line says: delete the item to let discovery manage it again.
    await world.dynamo.client().send(new DeleteItemCommand({ TableName: sessionsTable, Key: { SessionId: { S: 'desk-1' } } }));
    await fire(scheduledEvent(deliveries.find((d) => d.scheduleExpression)!));
    expect((await item('desk-1'))?.Source).toEqual({ S: 'ec2' });
  });

  it('verifier: a token for the discovered session is accepted at its server, and a use is taken', async () => {
    const client = world.dynamo.client();
    const issued = await issueToken(
      { tokens: new DynamoDbTokenStore(sdkDynamoApi(client), tokensTable), sessions: new SessionResolver({ store: new DynamoDbSessionStore(client, sessionsTable), log: silentLog }) },
      { sessionId: 'desk-1', user: 'alice', maxUses: 2 },
    );
    const verify = (server: string) =>
      send(resolver, {
        ...functionUrlEvent({ method: 'POST', path: `/verifyToken/${server}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
        body: Buffer.from(verifyForm({ sessionId: 'console', authenticationToken: issued.token, clientAddress: '203.0.113.5' })).toString('base64'),
        isBase64Encoded: true,
      }) as Promise<{ statusCode: number; body: string }>;
    const wrongServer = await verify('10.0.0.99');
    expect(parseAuthXml(wrongServer.body)).toMatchObject({ result: 'no' });
    const yes = await verify('10.0.0.11');
    expect(yes.statusCode).toBe(200);
    expect(parseAuthXml(yes.body)).toEqual({ result: 'yes', username: 'alice' });
    expect(parseAuthXml((await verify('10.0.0.11')).body)).toEqual({ result: 'yes', username: 'alice' });
    expect(parseAuthXml((await verify('10.0.0.11')).body)).toMatchObject({ result: 'no' });
  });

  it('verifier: an instance tagged dcv:user answers DCV with that name, and logs the person beside it', async () => {
    world.fleet.put(fleetInstance(3, { tags: { 'dcv:session-id': 'desk-3=console', 'dcv:user': 'ubuntu' }, privateIp: '10.0.0.13' }));
    await fire(scheduledEvent(deliveries.find((d) => d.scheduleExpression)!));
    expect((await item('desk-3'))?.DcvUser).toEqual({ S: 'ubuntu' });
    const client = world.dynamo.client();
    const issued = await issueToken(
      { tokens: new DynamoDbTokenStore(sdkDynamoApi(client), tokensTable), sessions: new SessionResolver({ store: new DynamoDbSessionStore(client, sessionsTable), log: silentLog }) },
      { sessionId: 'desk-3', user: 'alice@example.com', maxUses: 1 },
    );
    const answer = await resolver.invoke({
      ...functionUrlEvent({ method: 'POST', path: '/verifyToken/10.0.0.13', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      body: Buffer.from(verifyForm({ sessionId: 'console', authenticationToken: issued.token, clientAddress: '203.0.113.5' })).toString('base64'),
      isBase64Encoded: true,
    });
    expect(answer.error).toBeUndefined();
    expect(parseAuthXml((answer.result as { body: string }).body)).toEqual({ result: 'yes', username: 'ubuntu' });
    const line = answer.logs
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.route === 'verifyToken');
    expect(line).toMatchObject({ result: 'yes', user: 'alice@example.com', dcvUser: 'ubuntu', tokenId: issued.tokenId });
  });

  it('verifier: a yes on a desktop on demand records LastVerifiedAt on its item (the power pass counts it as activity)', async () => {
    world.fleet.put(fleetInstance(4, { tags: { 'dcv:session-id': 'desk-4=console', 'dcv:auto-stop': '30' }, privateIp: '10.0.0.14' }));
    await fire(scheduledEvent(deliveries.find((d) => d.scheduleExpression)!));
    expect((await item('desk-4'))?.AutoStopMinutes).toEqual({ N: '30' });
    const client = world.dynamo.client();
    const issued = await issueToken(
      { tokens: new DynamoDbTokenStore(sdkDynamoApi(client), tokensTable), sessions: new SessionResolver({ store: new DynamoDbSessionStore(client, sessionsTable), log: silentLog }) },
      { sessionId: 'desk-4', user: 'alice', maxUses: 1 },
    );
    const before = Date.now();
    const answer = await resolver.invoke({
      ...functionUrlEvent({ method: 'POST', path: '/verifyToken/10.0.0.14', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      body: Buffer.from(verifyForm({ sessionId: 'console', authenticationToken: issued.token, clientAddress: '203.0.113.5' })).toString('base64'),
      isBase64Encoded: true,
    });
    expect(parseAuthXml((answer.result as { body: string }).body)).toEqual({ result: 'yes', username: 'alice' });
    const marked = Date.parse((await item('desk-4'))?.LastVerifiedAt?.S ?? '');
    expect(marked).toBeGreaterThanOrEqual(before - 1000);
    expect(marked).toBeLessThanOrEqual(Date.now());
    // (The role check below covers this UpdateItem: the resolver may write that attribute only.)
    expect(answer.logs).not.toContain('LastVerifiedAt not recorded');
  });

  it('discovery: a stop through the event queue removes the item; an unusable message alone is reported failed', async () => {
    world.fleet.setState(TAGGED, 'stopped');
    await fire(stateChangeEvent(TAGGED, 'stopped'));
    expect(await item('desk-1')).toBeUndefined();

    const queue = deliveries.find((d) => d.via.kind === 'queue')!.via as { queueArn: string };
    const batch = sqsBatch(queue.queueArn, [JSON.stringify(stateChangeEvent(OTHER, 'running')), '{"not":"an event"}']);
    const result = await send(discovery, batch);
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: batch.Records[1]!.messageId }] });
  });

  it('discovery: a manual item of the same id is never taken over', async () => {
    await world.dynamo.client().send(
      new PutItemCommand({ TableName: sessionsTable, Item: { SessionId: { S: 'desk-1' }, DcvServerEndpoint: { S: '10.0.0.50' }, Source: { S: 'manual' } } }),
    );
    world.fleet.setState(TAGGED, 'running');
    await fire(stateChangeEvent(TAGGED, 'running'));
    expect(await item('desk-1')).toMatchObject({ DcvServerEndpoint: { S: '10.0.0.50' }, Source: { S: 'manual' } });
  });

  it("every AWS call each function made is allowed by its role in the template", async () => {
    const calls = world.calls();
    for (const id of [discoveryId, resolverId]) {
      const mine = calls.filter((c) => c.accessKeyId === world.accessKeyOf(id));
      expect(mine.length, id).toBeGreaterThan(0);
      expect(await denied(synth, id, mine), id).toEqual([]);
    }
    // Nothing unattributed (every call was signed by one of the functions or by this test's own client).
    const known = new Set([world.accessKeyOf(discoveryId), world.accessKeyOf(resolverId), 'AKIDTESTTESTTEST']);
    expect(calls.filter((c) => !known.has(c.accessKeyId))).toEqual([]);
    // Discovery used what event runs need (the instance index), the resolver only reads and takes uses.
    expect(new Set(calls.filter((c) => c.accessKeyId === world.accessKeyOf(discoveryId)).map((c) => c.action))).toContain('dynamodb:Query');
  });
});
