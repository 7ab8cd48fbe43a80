import { GetItemCommand, PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdkDynamoApi } from '../../lambda/adapters/dynamodb-api';
import { DynamoDbPowerTable } from '../../lambda/adapters/dynamodb-power-table';
import { createDiscoveryTable } from '../helpers/discovery-table';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { RecordingLog } from '../helpers/recording-log';

// The pass's table adapter against dynalite: what it reads, and that its writes never clobber anything.
const TABLE = 'power-table';
let dynamo: LocalDynamo;
let table: DynamoDbPowerTable;
const log = new RecordingLog();

const put = (item: Record<string, AttributeValue>) => dynamo.client().send(new PutItemCommand({ TableName: TABLE, Item: item }));
const get = async (sessionId: string) =>
  (await dynamo.client().send(new GetItemCommand({ TableName: TABLE, Key: { SessionId: { S: sessionId } }, ConsistentRead: true }))).Item;
const ec2Item = (sessionId: string, instanceId: string, extra: Record<string, AttributeValue> = {}) => ({
  SessionId: { S: sessionId },
  DcvServerEndpoint: { S: '10.0.0.1' },
  Source: { S: 'ec2' },
  InstanceId: { S: instanceId },
  ...extra,
});

beforeAll(async () => {
  dynamo = await startDynalite();
  await createDiscoveryTable(dynamo.client(), TABLE);
  table = new DynamoDbPowerTable(sdkDynamoApi(dynamo.client()), TABLE, log);
  await put(ec2Item('a', 'i-1', { AutoStopMinutes: { N: '30' }, StartOnConnect: { BOOL: true }, IdleSince: { S: '2026-12-07T10:00:00.000Z' } }));
  await put(ec2Item('b', 'i-1', { LastVerifiedAt: { S: '2026-12-07T11:00:00.000Z' } }));
  await put(ec2Item('c', 'i-2', { Schedule: { S: 'Mon-Fri 08:00-19:00 Europe/Paris' } }));
  await put(ec2Item('bad', 'i-3', { AutoStopMinutes: { S: 'thirty' } }));
  await put({ SessionId: { S: 'manual' }, DcvServerEndpoint: { S: '10.0.0.2' }, InstanceId: { S: 'i-1' }, AutoStopMinutes: { N: '5' } });
}, 30_000);

afterAll(async () => {
  await dynamo?.stop();
});

describe('DynamoDbPowerTable', () => {
  it('reads discovered items grouped by instance; skips a malformed one with a log line; ignores manual items', async () => {
    const byInstance = await table.readItems();
    expect([...byInstance.keys()].sort()).toEqual(['i-1', 'i-2']);
    expect(byInstance.get('i-1')?.sort((x, y) => x.sessionId.localeCompare(y.sessionId))).toEqual([
      { sessionId: 'a', instanceId: 'i-1', autoStopMinutes: 30, startOnConnect: true, idleSince: '2026-12-07T10:00:00.000Z' },
      { sessionId: 'b', instanceId: 'i-1', lastVerifiedAt: '2026-12-07T11:00:00.000Z' },
    ]);
    expect(log.entries).toContainEqual({ level: 'warn', message: 'power: item skipped', fields: { sessionId: 'bad', reason: 'AutoStopMinutes is not a positive whole number' } });
  });

  it('sets a runtime attribute only while it still holds what was read', async () => {
    // Read as absent, but present now: a claim that lost.
    expect(await table.write({ sessionId: 'a', instanceId: 'i-1', attribute: 'IdleSince', value: '2026-12-07T11:30:00.000Z' })).toBe('conflict');
    // Read as a different value (someone changed it in between).
    expect(await table.write({ sessionId: 'a', instanceId: 'i-1', attribute: 'IdleSince', value: 'x', read: '2026-12-07T09:00:00.000Z' })).toBe('conflict');
    expect((await get('a'))?.IdleSince).toEqual({ S: '2026-12-07T10:00:00.000Z' });
    expect(
      await table.write({ sessionId: 'a', instanceId: 'i-1', attribute: 'IdleSince', value: '2026-12-07T11:30:00.000Z', read: '2026-12-07T10:00:00.000Z' }),
    ).toBe('written');
    expect((await get('a'))?.IdleSince).toEqual({ S: '2026-12-07T11:30:00.000Z' });
  });

  it('claims once: the second claim of an absent attribute loses', async () => {
    const claim = { sessionId: 'c', instanceId: 'i-2', attribute: 'PowerStartAt' as const, value: '2026-12-07T12:00:00.000Z' };
    expect(await table.write(claim)).toBe('written');
    expect(await table.write({ ...claim, value: '2026-12-07T12:00:01.000Z' })).toBe('conflict');
    expect(await table.write({ sessionId: 'c', instanceId: 'i-2', attribute: 'PowerStartAt', read: claim.value })).toBe('written');
    expect((await get('c'))?.PowerStartAt).toBeUndefined();
  });

  it('never writes an item that no longer belongs to the instance, nor creates one', async () => {
    await put(ec2Item('moved', 'i-9'));
    expect(await table.write({ sessionId: 'moved', instanceId: 'i-1', attribute: 'PowerStopAt', value: 'now' })).toBe('conflict');
    expect((await get('moved'))?.PowerStopAt).toBeUndefined();
    expect(await table.write({ sessionId: 'gone', instanceId: 'i-1', attribute: 'PowerStopAt', value: 'now' })).toBe('conflict');
    expect(await get('gone')).toBeUndefined();
    // Only the one attribute changes: the operator's other attributes are untouched.
    expect(await get('a')).toMatchObject({ AutoStopMinutes: { N: '30' }, StartOnConnect: { BOOL: true }, DcvServerEndpoint: { S: '10.0.0.1' } });
  });
});
