import { describe, expect, it } from 'vitest';
import type { DynamoApi } from '../../lambda/adapters/dynamodb-api';
import { DynamoDbDiscoveryTable, SKIPPED_ADDED_PREFIX, SKIPPED_UNCHECKABLE, toAttributeMap, unchangedSince } from '../../lambda/adapters/dynamodb-discovery-table';
import { RecordingLog } from '../helpers/recording-log';
import { Attr } from '../../lambda/core/session-record';

function resolved(condition: ReturnType<typeof unchangedSince>): string[] {
  if (!condition) throw new Error('no condition');
  const names = condition.ExpressionAttributeNames;
  const values = condition.ExpressionAttributeValues!;
  return condition.ConditionExpression.replace(/#n\d+/g, (p) => names[p]!)
    .replace(/:v\d+/g, (p) => JSON.stringify(values[p]))
    .split(' AND ');
}

describe('unchangedSince: the condition that keeps discovery off items edited after it read them', () => {
  it('compares every attribute read as a whole value (lists too) and requires absent known attributes to stay absent', () => {
    const condition = unchangedSince(toAttributeMap({ SessionId: 'a', HttpPort: 8443, AllowedClientCidrs: ['10.0.0.0/8'], Source: 'ec2' }), ['Extra']);
    expect(resolved(condition)).toEqual([
      'SessionId = {"S":"a"}',
      'HttpPort = {"N":"8443"}',
      'AllowedClientCidrs = {"L":[{"S":"10.0.0.0/8"}]}',
      'Source = {"S":"ec2"}',
      ...Object.values(Attr)
        .filter((a) => !['SessionId', 'HttpPort', 'AllowedClientCidrs', 'Source'].includes(a))
        .map((a) => `attribute_not_exists(${a})`),
      'attribute_not_exists(Extra)',
    ]);
  });

  it('stays exact for any item size: 100 users, 100 groups and 300 CIDRs give the same expression as one of each', () => {
    const item = (n: number) =>
      toAttributeMap({
        SessionId: 'a',
        AllowedUsers: Array.from({ length: n }, (_, i) => `u${i}`),
        AllowedGroups: Array.from({ length: n }, (_, i) => `g${i}`),
        AllowedClientCidrs: Array.from({ length: 3 * n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`),
        Source: 'ec2',
        UpdatedAt: '2025-01-01T00:00:00Z',
      });
    const big = unchangedSince(item(100))!;
    expect(big.ConditionExpression).toBe(unchangedSince(item(1))!.ConditionExpression);
    expect(big.ExpressionAttributeValues![big.ConditionExpression.match(/#n1 = (:v\d+)/)![1]!]).toEqual(item(100).AllowedUsers);
    expect(resolved(big)).toContain('Source = {"S":"ec2"}');
  });

  it('refuses (no condition at all) rather than weaken one past DynamoDB’s limits: 4 KB, or 300 operators', () => {
    const extras = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`X${i}`, 'x']));
    expect(unchangedSince(toAttributeMap({ SessionId: 'a', Source: 'ec2', ...extras(400) }))).toBeUndefined();
    // 160 short attributes: the text stays under 4 KB (40 more parts than 120, each at most 18 bytes),
    // but 160 comparisons plus the ANDs between all parts is over 300 operators.
    const fewer = unchangedSince(toAttributeMap({ SessionId: 'a', Source: 'ec2', ...extras(120) }));
    expect(fewer).toBeDefined();
    expect(fewer!.ConditionExpression.length + 40 * ' AND #n000 = :v000'.length).toBeLessThan(4096);
    expect(unchangedSince(toAttributeMap({ SessionId: 'a', Source: 'ec2', ...extras(160) }))).toBeUndefined();
  });

  it('a write whose condition cannot be exact is refused and reported skipped, with no request made', async () => {
    const calls: string[] = [];
    const api = { call: async (operation: string) => void calls.push(operation) } as unknown as DynamoApi;
    const table = new DynamoDbDiscoveryTable(api, 'T', { log: new RecordingLog() });
    const item = { SessionId: 'a', Source: 'ec2', DcvServerEndpoint: '10.0.0.1', ...Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`X${i}`, 'x'])) };
    const previous = { sessionId: 'a', item, token: toAttributeMap(item) };
    const change = await table.apply({ kind: 'change', sessionId: 'a', instanceId: 'i-1', item: { ...item, DcvServerEndpoint: '10.0.0.2' }, previous, changed: ['DcvServerEndpoint'] }, 'now');
    const remove = await table.apply({ kind: 'remove', sessionId: 'a', previous, reason: 'gone' }, 'now');
    expect([change, remove]).toEqual([
      { status: 'skipped', reason: SKIPPED_UNCHECKABLE },
      { status: 'skipped', reason: SKIPPED_UNCHECKABLE },
    ]);
    expect(calls).toEqual([]);
  });
});

describe('toAttributeMap', () => {
  it('writes strings, numbers, booleans, lists; refuses anything else', () => {
    expect(toAttributeMap({ a: 's', b: 1, c: true, d: ['x'], e: undefined })).toEqual({ a: { S: 's' }, b: { N: '1' }, c: { BOOL: true }, d: { L: [{ S: 'x' }] } });
    expect(() => toAttributeMap({ a: { nested: 1 } })).toThrow(/cannot store a object/);
  });
});

describe('DynamoDbDiscoveryTable.apply when an attribute no condition can name appears (scripted DynamoDB answers)', () => {
  const read = { SessionId: 'a', DcvServerEndpoint: '10.0.0.1', Source: 'ec2', Stale: 'x' };
  const next = { SessionId: 'a', DcvServerEndpoint: '10.0.0.2', Source: 'ec2' };
  const previous = { sessionId: 'a', item: read, token: toAttributeMap(read) };
  const conditionFailed = Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' });

  /** Answers each call with the next scripted answer (an Error is thrown) and records every request. */
  function scripted(...answers: (Record<string, unknown> | Error)[]) {
    const requests: { operation: string; input: Record<string, any> }[] = [];
    const api = {
      call: async (operation: string, input: Record<string, any>) => {
        requests.push({ operation, input });
        const answer = answers.shift();
        if (answer instanceof Error) throw answer;
        return answer ?? {};
      },
    } as unknown as DynamoApi;
    return { table: new DynamoDbDiscoveryTable(api, 'T', { log: new RecordingLog() }), requests };
  }

  /** An expression with its placeholders filled in. */
  function spelled(input: Record<string, any>, key: string): string {
    return String(input[key])
      .replace(/#n\d+/g, (p) => input.ExpressionAttributeNames[p])
      .replace(/:v\d+/g, (p) => JSON.stringify(input.ExpressionAttributeValues[p]));
  }

  it('a change: never names the added attribute; undoes its own write on condition that it is still there', async () => {
    const withNotes = toAttributeMap({ ...next, UpdatedAt: 'now', Notes: 'desk 4' });
    const { table, requests } = scripted({ Attributes: withNotes }, {});
    const outcome = await table.apply({ kind: 'change', sessionId: 'a', instanceId: 'i-1', item: next, previous, changed: ['DcvServerEndpoint'] }, 'now');
    expect(outcome).toEqual({ status: 'skipped', reason: `${SKIPPED_ADDED_PREFIX} (Notes); discovery undid its write; left alone` });
    expect(requests.map((r) => r.operation)).toEqual(['UpdateItem', 'UpdateItem']);
    const [write, undo] = requests.map((r) => r.input);
    expect(write!.ReturnValues).toBe('ALL_NEW');
    expect(spelled(write!, 'UpdateExpression')).toBe('SET DcvServerEndpoint = {"S":"10.0.0.2"}, Source = {"S":"ec2"}, UpdatedAt = {"S":"now"} REMOVE Stale');
    expect(spelled(undo!, 'UpdateExpression')).toBe('SET DcvServerEndpoint = {"S":"10.0.0.1"}, Source = {"S":"ec2"}, Stale = {"S":"x"} REMOVE UpdatedAt');
    expect(spelled(undo!, 'ConditionExpression').split(' AND ')).toEqual([
      'SessionId = {"S":"a"}',
      'DcvServerEndpoint = {"S":"10.0.0.2"}',
      'Source = {"S":"ec2"}',
      'UpdatedAt = {"S":"now"}',
      'attribute_not_exists(Stale)',
    ]);
    for (const r of requests) expect(JSON.stringify(r.input.ExpressionAttributeNames)).not.toContain('Notes');
  });

  it('a change: when the item changed again before the undo, it is left as it is (still skipped, nothing lost)', async () => {
    const { table } = scripted({ Attributes: toAttributeMap({ ...next, UpdatedAt: 'now', Notes: 'n' }) }, conditionFailed);
    const outcome = await table.apply({ kind: 'change', sessionId: 'a', instanceId: 'i-1', item: next, previous, changed: ['DcvServerEndpoint'] }, 'now');
    expect(outcome).toEqual({ status: 'skipped', reason: `${SKIPPED_ADDED_PREFIX} (Notes); edited again before discovery could undo its write; left as it is` });
  });

  it('a removal: puts the deleted item back exactly (only if its key is still free)', async () => {
    const deleted = toAttributeMap({ ...read, Notes: 'desk 4' });
    const { table, requests } = scripted({ Attributes: deleted }, {});
    const outcome = await table.apply({ kind: 'remove', sessionId: 'a', previous, reason: 'gone' }, 'now');
    expect(outcome).toEqual({ status: 'skipped', reason: `${SKIPPED_ADDED_PREFIX} (Notes); discovery put the item back; left alone` });
    expect(requests.map((r) => [r.operation, r.input.ReturnValues])).toEqual([['DeleteItem', 'ALL_OLD'], ['PutItem', undefined]]);
    expect(requests[1]!.input).toMatchObject({ Item: deleted, ConditionExpression: 'attribute_not_exists(#k)', ExpressionAttributeNames: { '#k': 'SessionId' } });
  });

  it('a removal that cannot be put back fails the write and carries the whole removed item (for the log)', async () => {
    const deleted = toAttributeMap({ ...read, Notes: 'desk 4' });
    const { table } = scripted({ Attributes: deleted }, conditionFailed);
    const error = await table.apply({ kind: 'remove', sessionId: 'a', previous, reason: 'gone' }, 'now').catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe('Error');
    expect((error as Error).message).toContain('removed a, which had gained Notes since it was read, and could not put it back');
    expect((error as Error).message).toContain(JSON.stringify(deleted));
  });

  it('nothing added: one request, applied', async () => {
    const { table, requests } = scripted({ Attributes: toAttributeMap({ ...next, UpdatedAt: 'now' }) }, { Attributes: toAttributeMap(read) });
    expect(await table.apply({ kind: 'change', sessionId: 'a', instanceId: 'i-1', item: next, previous, changed: ['DcvServerEndpoint'] }, 'now')).toEqual({ status: 'applied' });
    expect(await table.apply({ kind: 'remove', sessionId: 'a', previous, reason: 'gone' }, 'now')).toEqual({ status: 'applied' });
    expect(requests.map((r) => r.operation)).toEqual(['UpdateItem', 'DeleteItem']);
  });
});
