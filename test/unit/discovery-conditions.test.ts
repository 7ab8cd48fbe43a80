import { describe, expect, it } from 'vitest';
import { toAttributeMap, unchangedSince } from '../../lambda/adapters/dynamodb-discovery-table';
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

  it('refuses (no condition at all) rather than weaken one that would pass DynamoDB’s 4 KB limit', () => {
    const many = Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`Extra${i}`, 'x']));
    expect(unchangedSince(toAttributeMap({ SessionId: 'a', Source: 'ec2', ...many }))).toBeUndefined();
  });
});

describe('toAttributeMap', () => {
  it('writes strings, numbers, booleans, lists; refuses anything else', () => {
    expect(toAttributeMap({ a: 's', b: 1, c: true, d: ['x'], e: undefined })).toEqual({ a: { S: 's' }, b: { N: '1' }, c: { BOOL: true }, d: { L: [{ S: 'x' }] } });
    expect(() => toAttributeMap({ a: { nested: 1 } })).toThrow(/cannot store a object/);
  });
});
