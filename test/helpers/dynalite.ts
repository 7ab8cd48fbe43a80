import type { AddressInfo } from 'node:net';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import dynalite from 'dynalite';
import { fixDynaliteDocumentEquality } from './dynalite-document-equality';

/**
 * A real DynamoDB-compatible server on 127.0.0.1 (in memory), one per test file.
 * `endpoint` is what AWS_ENDPOINT_URL_DYNAMODB or a client's `endpoint` should be set to.
 */
export interface LocalDynamo {
  readonly endpoint: string;
  readonly port: number;
  client(): DynamoDBClient;
  createSessionTable(name: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startDynalite(options: { port?: number } = {}): Promise<LocalDynamo> {
  // Conditions compare lists and maps by value, as DynamoDB does (dynalite 4 does not).
  fixDynaliteDocumentEquality();
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const endpoint = `http://127.0.0.1:${port}`;
  const clients: DynamoDBClient[] = [];
  const client = () => {
    const c = new DynamoDBClient({ endpoint, region: 'us-east-1', maxAttempts: 1 });
    clients.push(c);
    return c;
  };
  return {
    endpoint,
    port,
    client,
    async createSessionTable(name: string) {
      await client().send(
        new CreateTableCommand({
          TableName: name,
          AttributeDefinitions: [{ AttributeName: 'SessionId', AttributeType: 'S' }],
          KeySchema: [{ AttributeName: 'SessionId', KeyType: 'HASH' }],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
    },
    async stop() {
      for (const c of clients) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
