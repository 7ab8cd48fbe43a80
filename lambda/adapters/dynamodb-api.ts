import {
  BatchGetItemCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  UpdateItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';

/**
 * The few DynamoDB operations our stores use, in DynamoDB's own JSON wire shape (the SDK's command
 * inputs and outputs for these operations are exactly that shape). Two implementations: the AWS SDK
 * (discovery, the CLI, `serve`) and, where cold start matters, a lean signed client. Errors carry the
 * service's error type as `name` (e.g. 'ConditionalCheckFailedException'), as the SDK's do.
 */
export type DynamoOperation = 'GetItem' | 'BatchGetItem' | 'PutItem' | 'UpdateItem' | 'DeleteItem' | 'Scan' | 'Query' | 'DescribeTable';

export interface DynamoApi {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  call<T = Record<string, any>>(operation: DynamoOperation, input: Record<string, unknown>): Promise<T>;
  close?(): void;
}

const COMMANDS = {
  GetItem: GetItemCommand,
  BatchGetItem: BatchGetItemCommand,
  PutItem: PutItemCommand,
  UpdateItem: UpdateItemCommand,
  DeleteItem: DeleteItemCommand,
  Scan: ScanCommand,
  Query: QueryCommand,
  DescribeTable: DescribeTableCommand,
} as const;

/** The AWS SDK client behind the DynamoApi seam. */
export function sdkDynamoApi(client: DynamoDBClient): DynamoApi {
  return {
    async call(operation, input) {
      const Command = COMMANDS[operation] as unknown as new (input: unknown) => Parameters<DynamoDBClient['send']>[0];
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      return (await client.send(new Command(input))) as any;
    },
    close: () => client.destroy(),
  };
}
