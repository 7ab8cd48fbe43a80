import { describe, expect, it } from 'vitest';
import { toAttributeMap, unchangedSince } from '../../lambda/adapters/dynamodb-discovery-table';
import { Attr } from '../../lambda/core/session-record';

describe('unchangedSince: the condition that keeps discovery off items edited after it read them', () => {
  it('compares every attribute read, element by element for lists, and requires absent known attributes to stay absent', () => {
    const condition = unchangedSince(toAttributeMap({ SessionId: 'a', HttpPort: 8443, AllowedClientCidrs: ['10.0.0.0/8'], Source: 'ec2' }));
    const names = condition.ExpressionAttributeNames;
    const values = condition.ExpressionAttributeValues!;
    const resolved = condition.ConditionExpression.replace(/#n\d+/g, (p) => names[p]!).replace(/:v\d+/g, (p) => JSON.stringify(values[p]));
    expect(resolved.split(' AND ')).toEqual([
      'SessionId = {"S":"a"}',
      'HttpPort = {"N":"8443"}',
      'size(AllowedClientCidrs) = {"N":"1"}',
      'AllowedClientCidrs[0] = {"S":"10.0.0.0/8"}',
      'Source = {"S":"ec2"}',
      ...Object.values(Attr)
        .filter((a) => !['SessionId', 'HttpPort', 'AllowedClientCidrs', 'Source'].includes(a))
        .map((a) => `attribute_not_exists(${a})`),
    ]);
  });

  it('falls back to Source and UpdatedAt when the full condition would exceed DynamoDB’s 4 KB limit', () => {
    const cidrs = Array.from({ length: 300 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    const read = toAttributeMap({ SessionId: 'a', AllowedClientCidrs: cidrs, Source: 'ec2', UpdatedAt: '2025-01-01T00:00:00Z' });
    expect(unchangedSince(read)).toEqual({
      ConditionExpression: '#s = :ec2 AND #u = :u',
      ExpressionAttributeNames: { '#s': 'Source', '#u': 'UpdatedAt' },
      ExpressionAttributeValues: { ':ec2': { S: 'ec2' }, ':u': { S: '2025-01-01T00:00:00Z' } },
    });
  });
});

describe('toAttributeMap', () => {
  it('writes strings, numbers, booleans, lists; refuses anything else', () => {
    expect(toAttributeMap({ a: 's', b: 1, c: true, d: ['x'], e: undefined })).toEqual({ a: { S: 's' }, b: { N: '1' }, c: { BOOL: true }, d: { L: [{ S: 'x' }] } });
    expect(() => toAttributeMap({ a: { nested: 1 } })).toThrow(/cannot store a object/);
  });
});
