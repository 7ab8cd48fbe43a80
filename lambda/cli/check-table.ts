import { DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CliError } from './cli-error.js';

/** Fails fast with a clear message when the table is missing, unreachable or not keyed as expected. */
export async function checkTable(client: DynamoDBClient, table: string, expectedKey = 'SessionId'): Promise<void> {
  try {
    const result = await client.send(new DescribeTableCommand({ TableName: table }));
    const key = result.Table?.KeySchema?.find((k) => k.KeyType === 'HASH')?.AttributeName;
    if (key !== expectedKey) throw new CliError(`table '${table}' has partition key '${key}', expected '${expectedKey}'`);
  } catch (error) {
    if (error instanceof CliError) throw error;
    const name = (error as Error).name;
    const region = await client.config.region().catch(() => 'unknown');
    if (name === 'ResourceNotFoundException') {
      throw new CliError(`table '${table}' does not exist in region ${region}`);
    }
    throw new CliError(`cannot reach DynamoDB table '${table}' in region ${region}: ${(error as Error).message}`);
  }
}
