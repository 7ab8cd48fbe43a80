import { PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { startDynalite } from '../test/helpers/dynalite';

/**
 * Child process: dynalite on 127.0.0.1 with one session table, seeded with plain items (strings,
 * numbers, booleans). Sends { endpoint } to the parent, then serves until the parent goes away.
 */
function toAttribute(value: unknown): AttributeValue {
  if (typeof value === 'number') return { N: String(value) };
  if (typeof value === 'boolean') return { BOOL: value };
  if (Array.isArray(value)) return { L: value.map(toAttribute) };
  return { S: String(value) };
}

const [table, itemsJson] = process.argv.slice(2);
const dynamo = await startDynalite();
await dynamo.createSessionTable(table!);
const client = dynamo.client();
for (const item of JSON.parse(itemsJson ?? '[]') as Record<string, unknown>[]) {
  const Item = Object.fromEntries(Object.entries(item).map(([k, v]) => [k, toAttribute(v)]));
  await client.send(new PutItemCommand({ TableName: table, Item }));
}
process.send!({ endpoint: dynamo.endpoint });
// The parent's exit closes the IPC channel: leave with it, never linger.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
