import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetItemCommand, PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectoryTokenStore } from '../../lambda/adapters/directory-token-store';
import { sdkDynamoApi } from '../../lambda/adapters/dynamodb-api';
import { createLiteDynamoApi } from '../../lambda/adapters/dynamodb-lite';
import { DynamoDbTokenStore } from '../../lambda/adapters/dynamodb-token-store';
import { SessionResolver } from '../../lambda/core/resolve';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { issueToken } from '../../lambda/core/tokens/issue-token';
import { hashToken, mintToken } from '../../lambda/core/tokens/token';
import type { TokenGrant, TokenState } from '../../lambda/core/tokens/token-grant';
import { MemoryTokenStore, type TokenStore } from '../../lambda/core/tokens/token-store';
import { TokenVerifier } from '../../lambda/core/tokens/verify-token';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { RecordingLog } from '../helpers/recording-log';
import { createTokensTable } from '../helpers/token-tables';

/**
 * One TokenStore contract, run against every store: memory, a token directory, and DynamoDB (over the
 * SDK and over the lean client) against dynalite. Then the verifier's whole loop on each store.
 */
const EXPIRES_AT = 2_000_000_000;
const NOW = EXPIRES_AT - 100;
const CONCURRENT_CALLERS = 200;

interface StoreUnderTest {
  readonly store: TokenStore;
  readonly log: RecordingLog;
  /** Writes a hand-edited, malformed record under `hash`; absent for stores with nothing persisted. */
  readonly corruptions?: Record<string, (hash: string) => Promise<void>>;
  /** The persisted form of a grant's groups (DynamoDB: the attribute value; directory: the JSON field). */
  readonly storedGroups?: (hash: string) => Promise<unknown>;
}

type StoreFactory = () => Promise<StoreUnderTest>;

let dynamo: LocalDynamo;
const tempDirs: string[] = [];
let tableCount = 0;

beforeAll(async () => {
  dynamo = await startDynalite();
});

afterAll(async () => {
  await dynamo.stop();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function grant(overrides: Partial<TokenGrant> = {}): TokenGrant & { token: string } {
  const token = mintToken();
  return {
    token,
    hash: hashToken(token),
    sessionId: 'agent1',
    user: 'alice',
    expiresAt: EXPIRES_AT,
    maxUses: 3,
    createdAt: new Date((NOW - 10) * 1000).toISOString(),
    ...overrides,
  };
}

async function collect(store: TokenStore): Promise<TokenState[]> {
  const all: TokenState[] = [];
  for await (const state of store.list()) all.push(state);
  return all;
}

async function newTokensTable(): Promise<string> {
  const name = `Tokens${++tableCount}`;
  await createTokensTable(dynamo, name);
  return name;
}

/** What a hand-edit in the DynamoDB console could leave behind. */
function dynamoCorruptions(table: string): Record<string, (hash: string) => Promise<void>> {
  const base = (hash: string): Record<string, AttributeValue> => ({
    TokenHash: { S: hash },
    SessionId: { S: 'agent1' },
    UserName: { S: 'mallory' },
    ExpiresAt: { N: String(EXPIRES_AT) },
    MaxUses: { N: '5' },
    UsesLeft: { N: '5' },
    CreatedAt: { S: '2033-01-01T00:00:00.000Z' },
  });
  const put = (item: Record<string, AttributeValue>) => dynamo.client().send(new PutItemCommand({ TableName: table, Item: item })).then(() => undefined);
  return {
    'UsesLeft typed as a string': (hash) => put({ ...base(hash), UsesLeft: { S: '5' } }),
    'ExpiresAt typed as a string': (hash) => put({ ...base(hash), ExpiresAt: { S: String(EXPIRES_AT) } }),
    'a negative UsesLeft': (hash) => put({ ...base(hash), UsesLeft: { N: '-1' }, MaxUses: { N: '1' } }),
    'Groups typed as a string': (hash) => put({ ...base(hash), Groups: { S: 'ops' } }),
    'Groups with 101 names': (hash) => put({ ...base(hash), Groups: { SS: Array.from({ length: 101 }, (_, i) => `g${i}`) } }),
    'UseIds typed as a string': (hash) => put({ ...base(hash), UseIds: { S: 'abc' } }),
  };
}

function directoryCorruptions(dir: string): Record<string, (hash: string) => Promise<void>> {
  const write = async (hash: string, text: string) => {
    mkdirSync(join(dir, hash), { recursive: true });
    writeFileSync(join(dir, hash, 'grant.json'), text);
  };
  const valid = { sessionId: 'agent1', user: 'mallory', expiresAt: EXPIRES_AT, maxUses: 5, createdAt: '2033-01-01T00:00:00.000Z' };
  return {
    'a grant.json that is not JSON': (hash) => write(hash, '{"sessionId": "agent1", "user": "mallory", '),
    'maxUses typed as a string': (hash) => write(hash, JSON.stringify({ ...valid, maxUses: '5' })),
    'a grant.json without its user': (hash) => write(hash, JSON.stringify({ ...valid, user: undefined })),
    'groups that is not a list': (hash) => write(hash, JSON.stringify({ ...valid, groups: 'ops' })),
    'a group with a control character': (hash) => write(hash, JSON.stringify({ ...valid, groups: ['ops\u0000'] })),
  };
}

function dynamoStoredGroups(table: string): (hash: string) => Promise<unknown> {
  return async (hash) => (await dynamo.client().send(new GetItemCommand({ TableName: table, Key: { TokenHash: { S: hash } } }))).Item?.Groups;
}

const factories: Record<string, StoreFactory> = {
  memory: async () => ({ store: new MemoryTokenStore(), log: new RecordingLog() }),
  directory: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'token-store-'));
    tempDirs.push(dir);
    const log = new RecordingLog();
    const tokens = join(dir, 'tokens');
    return {
      store: new DirectoryTokenStore(tokens, log),
      log,
      corruptions: directoryCorruptions(tokens),
      storedGroups: async (hash) => JSON.parse(readFileSync(join(tokens, hash, 'grant.json'), 'utf8')).groups,
    };
  },
  'dynamodb (SDK)': async () => {
    const table = await newTokensTable();
    const log = new RecordingLog();
    return { store: new DynamoDbTokenStore(sdkDynamoApi(dynamo.client()), table, log), log, corruptions: dynamoCorruptions(table), storedGroups: dynamoStoredGroups(table) };
  },
  'dynamodb (lean client)': async () => {
    const table = await newTokensTable();
    const log = new RecordingLog();
    const api = createLiteDynamoApi({
      endpoint: dynamo.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret' },
      // Atomicity is under test here, not latency: a loaded 2-core machine must not turn into timeouts.
      attemptTimeoutMs: 20_000,
      deadlineMs: 30_000,
    });
    return { store: new DynamoDbTokenStore(api, table, log), log, corruptions: dynamoCorruptions(table), storedGroups: dynamoStoredGroups(table) };
  },
};

/** The TokenStore contract: what every adapter must do the same way. */
function tokenStoreContract(name: string, factory: StoreFactory): void {
  describe(`TokenStore contract: ${name}`, () => {
    let subject: StoreUnderTest;

    beforeAll(async () => {
      subject = await factory();
    });

    afterAll(async () => {
      await subject.store.close?.();
    });

    it('put then get returns the grant with all its uses left; list includes it; never the token', async () => {
      const g = grant({ clientCidrs: ['203.0.113.0/24', '2001:db8::/32'], maxUses: 4 });
      const { token, ...stored } = g;
      await subject.store.put(stored);
      expect(await subject.store.get(g.hash)).toEqual({ ...stored, usesLeft: 4 });
      const listed = (await collect(subject.store)).find((s) => s.hash === g.hash);
      expect(listed).toEqual({ ...stored, usesLeft: 4 });
      expect(JSON.stringify(await collect(subject.store))).not.toContain(token);
      expect(await subject.store.get(hashToken(mintToken()))).toBeUndefined();
    });

    it('keeps a grant’s groups (a list; none stored when there are none)', async () => {
      const g = grant({ groups: ['ops', 'Équipe A'] });
      const { token: _token, ...stored } = g;
      await subject.store.put(stored);
      expect(await subject.store.get(g.hash)).toEqual({ ...stored, usesLeft: 3 });
      expect((await collect(subject.store)).find((s) => s.hash === g.hash)?.groups).toEqual(['ops', 'Équipe A']);
      const plain = grant();
      await subject.store.put(plain);
      expect(await subject.store.get(plain.hash)).not.toHaveProperty('groups');
      if (subject.storedGroups) {
        const persisted = await subject.storedGroups(g.hash);
        expect(persisted).toEqual(name.startsWith('dynamodb') ? { L: [{ S: 'ops' }, { S: 'Équipe A' }] } : ['ops', 'Équipe A']);
        expect(await subject.storedGroups(plain.hash)).toBeUndefined();
      }
    });

    it('the verifier checks the stored user and groups against the session’s AllowedUsers / AllowedGroups', async () => {
      const sessions = new SessionResolver({
        store: new MemorySessionStore([
          { SessionId: 'team', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console', AllowedUsers: ['carol'], AllowedGroups: ['ops'] },
        ]),
        log: subject.log,
      });
      const nowMs = NOW * 1000;
      const deps = { tokens: subject.store, sessions, now: () => nowMs - 1000 };
      const byGroup = await issueToken(deps, { sessionId: 'team', user: 'dave', groups: ['staff', 'ops'] });
      const byName = await issueToken(deps, { sessionId: 'team', user: 'carol' });
      await expect(issueToken(deps, { sessionId: 'team', user: 'dave', groups: ['staff'] })).rejects.toMatchObject({ statusCode: 403 });
      // Issued without the session check: only the verifier stands in the way.
      const unchecked = await issueToken({ tokens: subject.store, now: () => nowMs - 1000 }, { sessionId: 'team', user: 'dave', groups: ['staff'] });
      const verifier = new TokenVerifier({ tokens: subject.store, sessions, log: subject.log, now: () => nowMs });
      const ask = (token: string) => ({ serverSessionId: 'console', token, server: '10.0.1.15' });
      expect(await verifier.verify(ask(byGroup.token))).toMatchObject({ result: 'yes', user: 'dave' });
      expect(await verifier.verify(ask(byName.token))).toMatchObject({ result: 'yes', user: 'carol' });
      expect(await verifier.verify(ask(unchecked.token))).toMatchObject({ result: 'no', reason: 'user-not-allowed' });
      expect(await subject.store.get(hashToken(unchecked.token))).toMatchObject({ usesLeft: 3 });
    });

    it('put of an existing hash throws and leaves the first grant as it was', async () => {
      const g = grant({ user: 'first' });
      await subject.store.put(g);
      await expect(subject.store.put({ ...g, user: 'second', maxUses: 50 })).rejects.toThrow();
      expect(await subject.store.get(g.hash)).toMatchObject({ user: 'first', maxUses: 3, usesLeft: 3 });
    });

    it('consume counts down, then refuses a used-up token (and a refusal burns nothing)', async () => {
      const g = grant({ maxUses: 2 });
      await subject.store.put(g);
      expect(await subject.store.consume(g.hash, NOW)).toEqual({ ok: true, usesLeft: 1 });
      expect(await subject.store.consume(g.hash, NOW)).toEqual({ ok: true, usesLeft: 0 });
      expect(await subject.store.consume(g.hash, NOW)).toEqual({ ok: false, reason: 'used-up' });
      expect(await subject.store.get(g.hash)).toMatchObject({ usesLeft: 0, maxUses: 2 });
    });

    it('expiry at the boundary: one second before is fine, nowSeconds === expiresAt is refused, after too', async () => {
      const g = grant({ maxUses: 5 });
      await subject.store.put(g);
      expect(await subject.store.consume(g.hash, EXPIRES_AT - 1)).toEqual({ ok: true, usesLeft: 4 });
      expect(await subject.store.consume(g.hash, EXPIRES_AT - 0.001)).toEqual({ ok: true, usesLeft: 3 });
      expect(await subject.store.consume(g.hash, EXPIRES_AT)).toEqual({ ok: false, reason: 'expired' });
      expect(await subject.store.consume(g.hash, EXPIRES_AT + 1)).toEqual({ ok: false, reason: 'expired' });
      expect(await subject.store.get(g.hash)).toMatchObject({ usesLeft: 3 });
    });

    it('revoke: consume refuses a revoked token; revoking twice keeps the first time; unknown → false', async () => {
      const g = grant();
      await subject.store.put(g);
      const first = new Date((NOW - 5) * 1000);
      expect(await subject.store.revoke(g.hash, first)).toBe(true);
      expect(await subject.store.revoke(g.hash, new Date(NOW * 1000))).toBe(true);
      expect(await subject.store.consume(g.hash, NOW)).toEqual({ ok: false, reason: 'revoked' });
      expect(await subject.store.get(g.hash)).toMatchObject({ revokedAt: first.toISOString(), usesLeft: 3 });
      expect(await subject.store.revoke(hashToken(mintToken()), new Date())).toBe(false);
      expect(await subject.store.revoke('not-a-hash', new Date())).toBe(false);
    });

    it('consume of an unknown hash (or something that is not a hash) is refused as unknown', async () => {
      expect(await subject.store.consume(hashToken(mintToken()), NOW)).toEqual({ ok: false, reason: 'unknown' });
      expect(await subject.store.consume('../../etc/passwd', NOW)).toEqual({ ok: false, reason: 'unknown' });
    });

    it(`${CONCURRENT_CALLERS} concurrent consumes: exactly one ok for a one-use token, exactly three for a three-use token`, async () => {
      for (const maxUses of [1, 3]) {
        const g = grant({ maxUses });
        await subject.store.put(g);
        const started = performance.now();
        const outcomes = await Promise.all(Array.from({ length: CONCURRENT_CALLERS }, () => subject.store.consume(g.hash, NOW)));
        const ms = performance.now() - started;
        const ok = outcomes.filter((o) => o.ok);
        const refused = outcomes.filter((o) => !o.ok);
        // eslint-disable-next-line no-console
        console.log(
          `token store ${name}: ${CONCURRENT_CALLERS} concurrent consumes of a ${maxUses}-use token: ${ok.length} ok, ${refused.length} used-up, in ${ms.toFixed(0)} ms`,
        );
        expect(ok).toHaveLength(maxUses);
        expect(ok.map((o) => (o as { usesLeft: number }).usesLeft).sort()).toEqual(Array.from({ length: maxUses }, (_, i) => i));
        expect(refused.every((o) => !o.ok && o.reason === 'used-up')).toBe(true);
        expect(await subject.store.get(g.hash)).toMatchObject({ usesLeft: 0 });
      }
    });

    it('the verifier loop: issue → yes → yes again → revoke → no (and the store never holds the token)', async () => {
      const sessions = new SessionResolver({
        store: new MemorySessionStore([{ SessionId: 'agent1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console' }]),
        log: subject.log,
      });
      const nowMs = NOW * 1000;
      const issued = await issueToken(
        { tokens: subject.store, sessions, now: () => nowMs - 1000 },
        { sessionId: 'agent1', user: 'alice', gatewayUrl: 'https://gw.example.com:8443' },
      );
      expect(issued.url).toBe(`https://gw.example.com:8443/?authToken=${issued.token}#agent1`);
      expect(issued.dcvServerEndpoint).toBe('10.0.1.15');
      expect(JSON.stringify(await collect(subject.store))).not.toContain(issued.token);

      const verifier = new TokenVerifier({ tokens: subject.store, sessions, log: subject.log, now: () => nowMs });
      const ask = { serverSessionId: 'console', token: issued.token, clientAddress: '203.0.113.9', server: '10.0.1.15' };
      expect(await verifier.verify(ask)).toMatchObject({ result: 'yes', user: 'alice', usesLeft: 2 });
      expect(await verifier.verify(ask)).toMatchObject({ result: 'yes', user: 'alice', usesLeft: 1 });
      expect(await verifier.verify({ ...ask, server: '10.0.2.20' })).toMatchObject({ result: 'no', reason: 'wrong-server' });
      expect(await subject.store.revoke(hashToken(issued.token), new Date(nowMs))).toBe(true);
      const refused = await verifier.verify(ask);
      expect(refused).toMatchObject({ result: 'no', reason: 'revoked' });
      expect(JSON.stringify(refused)).not.toContain(issued.token);
      // The refused attempts took nothing: one use is still left, but revoked.
      expect(await subject.store.get(hashToken(issued.token))).toMatchObject({ usesLeft: 1 });
      expect(JSON.stringify(subject.log.entries)).not.toContain(issued.token);
    });

  });
}

/** Malformed persisted records: unknown and logged, never accepted (by the store or the verifier). */
function malformedRecords(name: string, factory: StoreFactory): void {
  describe(`hand-edited records: ${name}`, () => {
    let subject: StoreUnderTest;

    beforeAll(async () => {
      subject = await factory();
    });

    afterAll(async () => {
      await subject.store.close?.();
    });

    it('each malformed record reads as unknown, is logged (without a token), is refused by consume and the verifier', async () => {
      const corruptions = Object.entries(subject.corruptions!);
      expect(corruptions.length).toBeGreaterThan(0);
      const sessions = new SessionResolver({
        store: new MemorySessionStore([{ SessionId: 'agent1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console' }]),
        log: subject.log,
      });
      const verifier = new TokenVerifier({ tokens: subject.store, sessions, log: subject.log, now: () => NOW * 1000 });
      for (const [kind, corrupt] of corruptions) {
        const token = mintToken();
        const hash = hashToken(token);
        await corrupt(hash);
        subject.log.clear();
        expect(await subject.store.get(hash), kind).toBeUndefined();
        const warnings = subject.log.atLevel('warn');
        expect(warnings.length, kind).toBeGreaterThan(0);
        expect(warnings[0]!.message, kind).toMatch(/^malformed token (item|grant) skipped$/);
        expect(String(warnings[0]!.fields.reason), kind).not.toBe('');
        expect((await collect(subject.store)).some((s) => s.hash === hash), kind).toBe(false);
        expect(await verifier.verify({ serverSessionId: 'console', token, server: '10.0.1.15' }), kind).toMatchObject({ result: 'no', reason: 'unknown' });
        expect(await subject.store.consume(hash, NOW), kind).toEqual({ ok: false, reason: 'unknown' });
        expect(JSON.stringify(subject.log.entries), kind).not.toContain(token);
      }
    });
  });
}

for (const [name, factory] of Object.entries(factories)) {
  tokenStoreContract(name, factory);
  if (name !== 'memory') malformedRecords(name, factory);
}

describe('DirectoryTokenStore on disk', () => {
  it('keeps one folder per token hash with grant.json and one use-N file per use; never the token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'token-dir-'));
    tempDirs.push(dir);
    const store = new DirectoryTokenStore(dir);
    const g = grant({ maxUses: 3 });
    const { token, ...stored } = g;
    await store.put(stored);
    await store.consume(g.hash, NOW);
    await store.consume(g.hash, NOW);
    expect(readdirSync(dir)).toEqual([g.hash]);
    expect(readdirSync(join(dir, g.hash)).sort()).toEqual(['grant.json', 'use-1', 'use-2']);
    // A second store on the same folder (a restarted `serve`) sees the same count.
    expect(await new DirectoryTokenStore(dir).consume(g.hash, NOW)).toEqual({ ok: true, usesLeft: 0 });
    expect(await new DirectoryTokenStore(dir).consume(g.hash, NOW)).toEqual({ ok: false, reason: 'used-up' });
    expect(JSON.stringify(readdirSync(dir, { recursive: true }))).not.toContain(token);
  });
});
