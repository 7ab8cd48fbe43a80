import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
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
