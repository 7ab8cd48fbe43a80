import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll } from 'vitest';
import { createLiteDynamoApi } from '../../lambda/adapters/dynamodb-lite';
import { DynamoApiSessionStore } from '../../lambda/adapters/dynamodb-lite-session-store';
import { createResolveDynamoClient, DynamoDbSessionStore } from '../../lambda/adapters/dynamodb-session-store';
import { FileSessionStore } from '../../lambda/adapters/file-session-store';
import { silentLog } from '../../lambda/core/log';
import type { RawItem } from '../../lambda/core/session-record';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { sessionStoreContract } from './session-store.contract';

/** Every SessionStore adapter, through the one contract. The DynamoDB ones run against dynalite. */
const TABLE = 'ContractSessions';

function toAttribute(value: unknown): AttributeValue {
  if (typeof value === 'number') return { N: String(value) };
  if (typeof value === 'boolean') return { BOOL: value };
  if (Array.isArray(value)) return { L: value.map(toAttribute) };
  return { S: String(value) };
}

let dynamo: LocalDynamo;
beforeAll(async () => {
  dynamo = await startDynalite();
  await dynamo.createSessionTable(TABLE);
});
afterAll(() => dynamo.stop());

async function putItem(item: RawItem): Promise<void> {
  const Item = Object.fromEntries(Object.entries(item).map(([key, value]) => [key, toAttribute(value)]));
  await dynamo.client().send(new PutItemCommand({ TableName: TABLE, Item }));
}

async function seeded(items: RawItem[]): Promise<void> {
  for (const item of items) await putItem(item);
}

sessionStoreContract({
  name: 'memory',
  async create(items) {
    const store = new MemorySessionStore(items);
    return { store, put: async (item) => store.put(item) };
  },
});

sessionStoreContract({
  name: 'sessions file',
  async create(items) {
    const dir = mkdtempSync(join(tmpdir(), 'contract-'));
    const file = join(dir, 'sessions.json');
    const current = new Map(items.map((item) => [String(item.SessionId), item]));
    writeFileSync(file, JSON.stringify([...current.values()]));
    const store = new FileSessionStore(file, { log: silentLog, pollIntervalMs: 60_000 });
    return {
      store,
      // An operator saves the file; the store's reload (what its poll triggers) picks it up.
      async put(item) {
        current.set(String(item.SessionId), item);
        writeFileSync(file, JSON.stringify([...current.values()]));
        store.reload();
      },
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    };
  },
});

sessionStoreContract({
  name: 'DynamoDB over the AWS SDK (serve --table)',
  async create(items) {
    await seeded(items);
    const store = new DynamoDbSessionStore(dynamo.client(), TABLE);
    return { store, put: putItem };
  },
  network: {
    upstream: () => dynamo.endpoint,
    table: TABLE,
    fromEnv: () => new DynamoDbSessionStore(createResolveDynamoClient(), TABLE),
  },
});

sessionStoreContract({
  name: 'DynamoDB over the lean client (the Lambda entry)',
  async create(items) {
    await seeded(items);
    const store = new DynamoApiSessionStore(createLiteDynamoApi({ endpoint: dynamo.endpoint }), TABLE);
    return { store, put: putItem };
  },
  network: {
    upstream: () => dynamo.endpoint,
    table: TABLE,
    fromEnv: () => new DynamoApiSessionStore(createLiteDynamoApi(), TABLE),
  },
});

