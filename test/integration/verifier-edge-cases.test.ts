import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdkDynamoApi } from '../../lambda/adapters/dynamodb-api';
import { DynamoDbTokenStore } from '../../lambda/adapters/dynamodb-token-store';
import { startLocalServer, type RunningServer } from '../../lambda/adapters/local-server';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { hashToken, mintToken } from '../../lambda/core/tokens/token';
import { MemoryTokenStore } from '../../lambda/core/tokens/token-store';
import { createResolverRouter } from '../../lambda/handlers/resolver-handler';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { RecordingLog } from '../helpers/recording-log';
import { runCli } from '../helpers/run-cli';
import { createTokensTable } from '../helpers/token-tables';
import { httpSend, parseAuthXml } from '../helpers/verify-http';

/**
 * Edge cases of the auth loop that once went wrong (found while writing the token tests): each states the
 * input and what the brief or issue 8 asks for.
 */
let work: string;
let server: RunningServer;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'token-bugs-'));
  writeFileSync(join(work, 'sessions.json'), JSON.stringify([{ SessionId: 'agent1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console' }]));
  const route = createResolverRouter({
    store: new MemorySessionStore([{ SessionId: 'agent1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console' }]),
    logger: new RecordingLog(),
    tokens: new MemoryTokenStore(),
  });
  server = await startLocalServer({ route, log: new RecordingLog(), host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

describe('token create --gateway', () => {
  it('refuses a plain http:// gateway with exit 2 (the gateway serves TLS)', async () => {
    const run = await runCli(['token', 'create', '--session', 'agent1', '--user', 'alice', '--gateway', 'http://gw.example.com:8443', '--tokens-dir', join(work, 'tokens'), '--sessions', join(work, 'sessions.json')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/gateway URL must start with https:\/\//);
  });
});

describe('verifier answers are XML on the verify path', () => {
  it('GET …/verifyToken/<server> is a 405 with a result="no" XML body', async () => {
    const reply = await httpSend(server.url, '/verifyToken/10.0.1.15', { method: 'GET' });
    expect(reply.status).toBe(405);
    expect(reply.type).toMatch(/^text\/xml\b/);
    expect(parseAuthXml(reply.body)).toMatchObject({ result: 'no' });
  });

  it('an oversized body (over 64 KiB) on …/verifyToken is a 413 with a result="no" XML body', async () => {
    const reply = await httpSend(server.url, '/verifyToken/10.0.1.15', { body: `sessionId=console&authenticationToken=x&pad=${'a'.repeat(70_000)}` });
    expect(reply.status).toBe(413);
    expect(reply.type).toMatch(/^text\/xml\b/);
  });

  it('bad percent-encoding in a form value (%ZZ) is a 400, as the brief lists', async () => {
    const reply = await httpSend(server.url, '/verifyToken/10.0.1.15', { body: `sessionId=con%ZZsole&authenticationToken=${mintToken()}` });
    expect(reply.status).toBe(400);
  });
});

describe('DynamoDbTokenStore.consume on a hand-edited item', () => {
  let dynamo: LocalDynamo;

  beforeAll(async () => {
    dynamo = await startDynalite();
    await createTokensTable(dynamo, 'Tokens');
  });

  afterAll(async () => {
    await dynamo.stop();
  });

  it('refuses (unknown) an item without UserName, as get() does, and takes no use', async () => {
    const log = new RecordingLog();
    const store = new DynamoDbTokenStore(sdkDynamoApi(dynamo.client()), 'Tokens', log);
    const hash = hashToken(mintToken());
    await dynamo.client().send(
      new PutItemCommand({
        TableName: 'Tokens',
        Item: {
          TokenHash: { S: hash },
          SessionId: { S: 'agent1' },
          ExpiresAt: { N: '2000000000' },
          MaxUses: { N: '5' },
          UsesLeft: { N: '5' },
          CreatedAt: { S: '2033-01-01T00:00:00.000Z' },
        },
      }),
    );
    expect(await store.get(hash)).toBeUndefined();
    expect(await store.consume(hash, 1_900_000_000)).toEqual({ ok: false, reason: 'unknown' });
  });
});

