import { UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sdkDynamoApi, type DynamoApi } from '../../lambda/adapters/dynamodb-api';
import { createLiteDynamoApi } from '../../lambda/adapters/dynamodb-lite';
import { createResolveDynamoClient } from '../../lambda/adapters/dynamodb-session-store';
import { DynamoDbTokenStore } from '../../lambda/adapters/dynamodb-token-store';
import { SessionResolver } from '../../lambda/core/resolve';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { hashToken, mintToken } from '../../lambda/core/tokens/token';
import type { TokenGrant } from '../../lambda/core/tokens/token-grant';
import { TokenVerifier } from '../../lambda/core/tokens/verify-token';
import { startLoopbackDynamo, type LoopbackDynamo } from '../contract/loopback-dynamo';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { RecordingLog } from '../helpers/recording-log';
import { createTokensTable } from '../helpers/token-tables';

/**
 * Taking a use survives the table client's retries. A proxy in front of dynalite lets dynalite apply the
 * first UpdateItem and withholds its answer until the client's attempt timeout closes the connection; the
 * client then sends the same request again. The verifier must still answer yes, with exactly one use
 * taken — for both clients: the lean one (Lambda) and the AWS SDK one `serve --tokens-table` builds.
 */
const EXPIRES_AT = 2_000_000_000;
const NOW = EXPIRES_AT - 100;
/** Long enough that dynalite answers the retry on a loaded 2-core runner; the withheld attempt waits for it. */
const ATTEMPT_TIMEOUT_MS = 1500;

let dynamo: LocalDynamo;
let proxy: LoopbackDynamo;
let tableCount = 0;
const sdkClients: DynamoDBClient[] = [];

beforeAll(async () => {
  dynamo = await startDynalite();
  proxy = await startLoopbackDynamo(dynamo.endpoint);
});

afterEach(() => {
  delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
});

afterAll(async () => {
  for (const client of sdkClients) client.destroy();
  await proxy.close();
  await dynamo.stop();
});

const clients: Record<string, () => DynamoApi> = {
  'lean client': () =>
    createLiteDynamoApi({
      endpoint: proxy.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret' },
      attemptTimeoutMs: ATTEMPT_TIMEOUT_MS,
      deadlineMs: 4 * ATTEMPT_TIMEOUT_MS,
      maxAttempts: 3,
    }),
  'AWS SDK client (serve)': () => {
    // The client `serve` builds, pointed at the proxy the standard way (read on its first request).
    process.env.AWS_ENDPOINT_URL_DYNAMODB = proxy.endpoint;
    const client = createResolveDynamoClient({ requestTimeoutMs: ATTEMPT_TIMEOUT_MS, maxAttempts: 3 });
    sdkClients.push(client);
    return sdkDynamoApi(client);
  },
};

async function newStore(api: DynamoApi): Promise<DynamoDbTokenStore> {
  const table = `Tokens${++tableCount}`;
  await createTokensTable(dynamo, table);
  return new DynamoDbTokenStore(api, table, new RecordingLog());
}

function grant(maxUses: number): TokenGrant & { token: string } {
  const token = mintToken();
  return { token, hash: hashToken(token), sessionId: 'agent1', user: 'alice', expiresAt: EXPIRES_AT, maxUses, createdAt: '2033-05-18T03:31:00.000Z' };
}

/** The UpdateItem requests the proxy saw since `from`. */
function updatesSince(from: number): Record<string, unknown>[] {
  return proxy.seen
    .slice(from)
    .filter((r) => r.headers['x-amz-target'] === 'DynamoDB_20120810.UpdateItem')
    .map((r) => r.body);
}

for (const [name, makeApi] of Object.entries(clients)) {
  describe(`a use taken by an UpdateItem whose answer came too late: ${name}`, () => {
    it('one-use token: consume answers ok, the retry is the same request, exactly one use is taken', async () => {
      const store = await newStore(makeApi());
      const g = grant(1);
      await store.put(g);
      const from = proxy.seen.length;
      const lateBefore = proxy.late();
      proxy.script(['late']);
      expect(await store.consume(g.hash, NOW)).toEqual({ ok: true, usesLeft: 0 });
      // The scenario happened: dynalite applied the first request, the client sent it again.
      expect(proxy.late()).toBe(lateBefore + 1);
      const updates = updatesSince(from);
      expect(updates.length).toBeGreaterThanOrEqual(2);
      for (const update of updates) expect(update).toEqual(updates[0]);
      expect(await store.get(g.hash)).toMatchObject({ usesLeft: 0 });
      expect(await store.consume(g.hash, NOW)).toEqual({ ok: false, reason: 'used-up' });
      await store.close();
    });

    it('three-use token: the retry does not take a second use', async () => {
      const store = await newStore(makeApi());
      const g = grant(3);
      await store.put(g);
      proxy.script(['late']);
      expect(await store.consume(g.hash, NOW)).toEqual({ ok: true, usesLeft: 2 });
      expect(await store.get(g.hash)).toMatchObject({ usesLeft: 2 });
      expect(await store.consume(g.hash, NOW)).toEqual({ ok: true, usesLeft: 1 });
      await store.close();
    });

    it('revoked between the applied use and the retry: still ok (the use was taken before the revoke)', async () => {
      const store = await newStore(makeApi());
      const g = grant(2);
      await store.put(g);
      // The revoke goes straight to dynalite, after the first attempt was applied and before the retry is.
      let revoked!: Promise<void>;
      const applied = proxy.whenLate().then(() => {
        revoked = dynamo
          .client()
          .send(
            new UpdateItemCommand({
              TableName: store.tableName,
              Key: { TokenHash: { S: g.hash } },
              UpdateExpression: 'SET RevokedAt = :at',
              ExpressionAttributeValues: { ':at': { S: new Date(NOW * 1000).toISOString() } },
            }),
          )
          .then(() => undefined);
        return revoked;
      });
      proxy.script(['late', { waitFor: applied }, { waitFor: applied }]);
      expect(await store.consume(g.hash, NOW)).toEqual({ ok: true, usesLeft: 1 });
      await revoked;
      expect(await store.get(g.hash)).toMatchObject({ usesLeft: 1, revokedAt: new Date(NOW * 1000).toISOString() });
      expect(await store.consume(g.hash, NOW)).toEqual({ ok: false, reason: 'revoked' });
      await store.close();
    });

    it('the verifier end to end: yes, then used-up for a one-use token', async () => {
      const store = await newStore(makeApi());
      const log = new RecordingLog();
      const sessions = new SessionResolver({
        store: new MemorySessionStore([{ SessionId: 'agent1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console' }]),
        log,
      });
      const verifier = new TokenVerifier({ tokens: store, sessions, log, now: () => NOW * 1000 });
      const g = grant(1);
      await store.put(g);
      const ask = { serverSessionId: 'console', token: g.token, server: '10.0.1.15' };
      // The verifier reads the grant (GetItem, answered), then takes the use (UpdateItem, answered late).
      proxy.script(['forward', 'late']);
      const lateBefore = proxy.late();
      expect(await verifier.verify(ask)).toMatchObject({ result: 'yes', user: 'alice', usesLeft: 0 });
      expect(proxy.late()).toBe(lateBefore + 1);
      expect(await verifier.verify(ask)).toMatchObject({ result: 'no', reason: 'used-up' });
      expect(await store.get(g.hash)).toMatchObject({ usesLeft: 0 });
      await store.close();
    });
  });
}
