import { DescribeTableCommand, PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';

let dynamo: LocalDynamo;
beforeAll(async () => {
  dynamo = await startDynalite();
});
afterAll(() => dynamo.stop());

it('starts a loopback DynamoDB-compatible server with a SessionId-keyed table', async () => {
  await dynamo.createSessionTable('helper-check');
  const table = await dynamo.client().send(new DescribeTableCommand({ TableName: 'helper-check' }));
  expect(dynamo.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(table.Table?.KeySchema).toEqual([{ AttributeName: 'SessionId', KeyType: 'HASH' }]);
  expect(table.Table?.TableStatus).toBe('ACTIVE');
});

it('compares lists and maps by value in conditions, as DynamoDB does (dynalite 4 alone never matches them)', async () => {
  const table = 'helper-documents';
  await dynamo.createSessionTable(table);
  const client = dynamo.client();
  const Item = { SessionId: { S: 'a' }, AllowedUsers: { L: [{ S: 'u1' }, { N: '2' }, { NULL: true }] }, Memo: { M: { by: { S: 'ops' }, n: { N: '1' } } } };
  await client.send(new PutItemCommand({ TableName: table, Item }));
  const putIf = (condition: string, values: Record<string, AttributeValue>) =>
    client.send(new PutItemCommand({ TableName: table, Item, ConditionExpression: condition, ExpressionAttributeValues: values })).then(
      () => 'applied',
      (error: Error) => error.name,
    );
  const failed = 'ConditionalCheckFailedException';
  expect(await putIf('AllowedUsers = :l AND Memo = :m', { ':l': Item.AllowedUsers, ':m': { M: { n: { N: '1.0' }, by: { S: 'ops' } } } })).toBe('applied');
  expect(await putIf('AllowedUsers <> :l', { ':l': Item.AllowedUsers })).toBe(failed);
  expect(await putIf('AllowedUsers = :l', { ':l': { L: [{ N: '2' }, { S: 'u1' }, { NULL: true }] } })).toBe(failed); // order matters
  expect(await putIf('AllowedUsers = :l', { ':l': { L: [{ S: 'u1' }, { N: '2' }] } })).toBe(failed);
  expect(await putIf('AllowedUsers = :l', { ':l': { SS: ['u1', '2'] } })).toBe(failed); // a set is not a list
  expect(await putIf('Memo = :m', { ':m': { M: { by: { S: 'ops' } } } })).toBe(failed);
  expect(await putIf('Memo = :m', { ':m': { M: { by: { S: 'ops' }, n: { S: '1' } } } })).toBe(failed);
  expect(await putIf('Absent = :l', { ':l': Item.AllowedUsers })).toBe(failed);
  // Everything else as dynalite evaluates it.
  expect(await putIf('size(AllowedUsers) = :n AND AllowedUsers[0] = :s AND attribute_not_exists(Absent)', { ':n': { N: '3' }, ':s': { S: 'u1' } })).toBe('applied');
  expect(await putIf('size(AllowedUsers) = :n', { ':n': { N: '2' } })).toBe(failed);
});
