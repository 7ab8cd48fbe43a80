import { CreateTableCommand, DeleteTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { INSTANCE_INDEX_NAME } from '../../lambda/core/discovery/table-index';

/**
 * The session table as the stack creates it for discovery: partition key SessionId plus the sparse,
 * keys-only `InstanceId` index event runs query (lib/session-discovery.ts adds the same index).
 */
export async function createDiscoveryTable(client: DynamoDBClient, name: string, options: { instanceIndex?: boolean } = {}): Promise<void> {
  const withIndex = options.instanceIndex ?? true;
  await client.send(
    new CreateTableCommand({
      TableName: name,
      AttributeDefinitions: [
        { AttributeName: 'SessionId', AttributeType: 'S' },
        ...(withIndex ? [{ AttributeName: 'InstanceId', AttributeType: 'S' as const }] : []),
      ],
      KeySchema: [{ AttributeName: 'SessionId', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      ...(withIndex
        ? {
            GlobalSecondaryIndexes: [
              {
                IndexName: INSTANCE_INDEX_NAME,
                KeySchema: [{ AttributeName: 'InstanceId', KeyType: 'HASH' }],
                Projection: { ProjectionType: 'KEYS_ONLY' },
              },
            ],
          }
        : {}),
    }),
  );
}

/** Replaces a plain session table (e.g. the bench's dynalite child made one) with the discovery table. */
export async function recreateAsDiscoveryTable(client: DynamoDBClient, name: string): Promise<void> {
  await client.send(new DeleteTableCommand({ TableName: name }));
  await createDiscoveryTable(client, name);
}
