import { CreateTableCommand, ScanCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import type { LocalDynamo } from './dynalite';

/** A tokens table as the stack creates it: partition key `TokenHash` (S), on demand. */
export async function createTokensTable(dynamo: LocalDynamo, name: string): Promise<void> {
  await dynamo.client().send(
    new CreateTableCommand({
      TableName: name,
      AttributeDefinitions: [{ AttributeName: 'TokenHash', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'TokenHash', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
}

/** Every item of a table, raw (for checking what was stored, e.g. that no token is). */
export async function scanAll(dynamo: LocalDynamo, name: string): Promise<Record<string, AttributeValue>[]> {
  const items: Record<string, AttributeValue>[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await dynamo.client().send(new ScanCommand({ TableName: name, ConsistentRead: true, ExclusiveStartKey: start }));
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}
