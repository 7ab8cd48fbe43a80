import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RawItem } from '../../lambda/core/session-record';
import type { SessionStore } from '../../lambda/core/session-store';
import { INTERNAL, PROVISIONED, startBlackHole, startLoopbackDynamo, THROTTLING, type LoopbackDynamo } from './loopback-dynamo';

/**
 * The SessionStore contract: what the resolver relies on from every store adapter. Each adapter's test
 * file calls `sessionStoreContract` with a factory; network adapters (DynamoDB) also give `fromEnv`, and
 * then face the network half of the contract through loopback servers in front of (or instead of) dynalite.
 */
export interface ContractStore {
  readonly store: SessionStore;
  /** Writes (or replaces) an item the way an operator would (a table write, a saved and reloaded file). */
  readonly put: (item: RawItem) => Promise<void>;
  readonly cleanup?: () => Promise<void> | void;
}

export interface NetworkAdapter {
  /** The dynalite endpoint holding the table `table` seeded with the contract's items. */
  readonly upstream: () => string;
  readonly table: string;
  /**
   * A store configured the way production configures it: from the process environment (credentials,
   * AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL), which the contract sets before calling.
   */
  readonly fromEnv: () => SessionStore;
}

export interface StoreAdapter {
  readonly name: string;
  /** A store holding exactly these items. */
  readonly create: (items: RawItem[]) => Promise<ContractStore>;
  readonly network?: NetworkAdapter;
}

/** Items as a store holds them; the DynamoDB adapters seed the same items as attribute values. */
export const CONTRACT_ITEMS: RawItem[] = [
  { SessionId: 'console', DcvServerEndpoint: '10.0.1.15', HttpPort: 8443, QuicPort: 4443, Enabled: true, AllowedClientCidrs: ['203.0.113.0/24', '2001:db8::/32'] },
  { SessionId: 'minimal', DcvServerEndpoint: 'dcv-min.example.internal' },
  { SessionId: 'typed-as-strings', DcvServerEndpoint: '10.0.1.16', HttpPort: '9443', ExpiresAt: 1_900_000_000 },
];

/** A clock bound that only catches a hang: wide, so a loaded 2-core runner never trips it (the attempts carry the assertion). */
const HANG_MS = 10_000;

const ENV_KEYS = ['AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ENDPOINT_URL'] as const;

/** Credential scope of a SigV4 Authorization header: access key id, date, region, service. */
function credentialOf(headers: Record<string, unknown>): { accessKeyId: string; region: string; service: string; signedHeaders: string[] } {
  const auth = String(headers.authorization ?? '');
  const match = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=[0-9a-f]{64}$/.exec(auth);
  if (!match) throw new Error(`not a SigV4 Authorization header: '${auth}'`);
  return { accessKeyId: match[1]!, region: match[2]!, service: match[3]!, signedHeaders: match[4]!.split(';') };
}

export function sessionStoreContract(adapter: StoreAdapter): void {
  describe(`SessionStore contract: ${adapter.name}`, () => {
    let subject: ContractStore;
    beforeAll(async () => {
      subject = await adapter.create(CONTRACT_ITEMS);
    });
    afterAll(async () => {
      await subject.store.close?.();
      await subject.cleanup?.();
    });

    it('a hit returns the item as stored (plain values, every attribute)', async () => {
      for (const item of CONTRACT_ITEMS) expect(await subject.store.get(String(item.SessionId))).toEqual(item);
    });

    it('a miss returns undefined, for any id', async () => {
      expect(await subject.store.get('ghost')).toBeUndefined();
      expect(await subject.store.get('CONSOLE')).toBeUndefined();
      expect(await subject.store.get('x'.repeat(256))).toBeUndefined();
    });

    it('repeated and concurrent reads agree', async () => {
      const answers = await Promise.all(Array.from({ length: 8 }, () => subject.store.get('console')));
      for (const answer of answers) expect(answer).toEqual(CONTRACT_ITEMS[0]);
    });

    it('a write is seen by the very next read (no stale answer after an edit)', async () => {
      await subject.put({ SessionId: 'edited', DcvServerEndpoint: '10.0.9.1' });
      expect(await subject.store.get('edited')).toEqual({ SessionId: 'edited', DcvServerEndpoint: '10.0.9.1' });
      await subject.put({ SessionId: 'edited', DcvServerEndpoint: '10.0.9.2', Enabled: false });
      expect(await subject.store.get('edited')).toEqual({ SessionId: 'edited', DcvServerEndpoint: '10.0.9.2', Enabled: false });
    });

    if (adapter.network) networkContract(adapter.network);
  });
}

function networkContract(network: NetworkAdapter): void {
  describe('over the network (loopback servers in front of dynalite)', () => {
    const saved: Record<string, string | undefined> = {};
    let proxy: LoopbackDynamo;
    const stores: SessionStore[] = [];

    function storeFromEnv(env: Partial<Record<(typeof ENV_KEYS)[number], string>>): SessionStore {
      for (const [key, value] of Object.entries(env)) process.env[key] = value;
      const store = network.fromEnv();
      stores.push(store);
      return store;
    }

    beforeAll(async () => {
      for (const key of ENV_KEYS) saved[key] = process.env[key];
      proxy = await startLoopbackDynamo(network.upstream());
    });
    beforeEach(() => {
      delete process.env.AWS_SESSION_TOKEN;
      delete process.env.AWS_ENDPOINT_URL;
      process.env.AWS_ENDPOINT_URL_DYNAMODB = proxy.endpoint;
      proxy.seen.length = 0;
      proxy.script([]);
    });
    afterEach(async () => {
      for (const store of stores.splice(0)) await store.close?.();
      for (const key of ENV_KEYS) {
        if (saved[key] === undefined) delete process.env[key];
        else process.env[key] = saved[key];
      }
    });
    afterAll(() => proxy.close());

    it('reads with one strongly consistent GetItem on the configured table', async () => {
      const store = storeFromEnv({});
      expect(await store.get('console')).toEqual(CONTRACT_ITEMS[0]);
      expect(proxy.seen).toHaveLength(1);
      const [request] = proxy.seen;
      expect(request!.headers['x-amz-target']).toBe('DynamoDB_20120810.GetItem');
      expect(request!.headers['content-type']).toMatch(/^application\/x-amz-json-1\.0/);
      expect(request!.body).toEqual({ TableName: network.table, Key: { SessionId: { S: 'console' } }, ConsistentRead: true });
    });

    it('signs with the credentials of the environment, session token included', async () => {
      const store = storeFromEnv({ AWS_ACCESS_KEY_ID: 'ASIACONTRACTKEY', AWS_SECRET_ACCESS_KEY: 'contract-secret', AWS_SESSION_TOKEN: 'contract-session-token/+=' });
      expect(await store.get('minimal')).toEqual(CONTRACT_ITEMS[1]);
      const headers = proxy.seen[0]!.headers;
      expect(headers['x-amz-security-token']).toBe('contract-session-token/+=');
      const credential = credentialOf(headers);
      expect(credential.accessKeyId).toBe('ASIACONTRACTKEY');
      expect(credential.service).toBe('dynamodb');
      expect(credential.signedHeaders).toEqual(expect.arrayContaining(['host', 'x-amz-date', 'x-amz-target']));
    });

    it('sends no session token when the environment has none', async () => {
      const store = storeFromEnv({});
      await store.get('minimal');
      expect(proxy.seen[0]!.headers).not.toHaveProperty('x-amz-security-token');
    });

    it('takes its region from AWS_REGION', async () => {
      const store = storeFromEnv({ AWS_REGION: 'eu-west-3' });
      expect(await store.get('minimal')).toEqual(CONTRACT_ITEMS[1]);
      expect(credentialOf(proxy.seen[0]!.headers).region).toBe('eu-west-3');
    });

    it('honours AWS_ENDPOINT_URL when AWS_ENDPOINT_URL_DYNAMODB is not set', async () => {
      delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
      const store = storeFromEnv({ AWS_ENDPOINT_URL: proxy.endpoint });
      expect(await store.get('minimal')).toEqual(CONTRACT_ITEMS[1]);
      expect(proxy.seen).toHaveLength(1);
    });

    it('prefers AWS_ENDPOINT_URL_DYNAMODB over AWS_ENDPOINT_URL', async () => {
      const hole = await startBlackHole();
      try {
        const store = storeFromEnv({ AWS_ENDPOINT_URL: hole.endpoint, AWS_ENDPOINT_URL_DYNAMODB: proxy.endpoint });
        expect(await store.get('minimal')).toEqual(CONTRACT_ITEMS[1]);
        expect(hole.connections()).toBe(0);
      } finally {
        await hole.close();
      }
    });

    it.each([
      ['ThrottlingException', THROTTLING],
      ['ProvisionedThroughputExceededException', PROVISIONED],
      ['a 500', INTERNAL],
    ])('retries %s and answers when the store recovers', async (_name, step) => {
      const store = storeFromEnv({});
      proxy.script([step]);
      expect(await store.get('console')).toEqual(CONTRACT_ITEMS[0]);
      expect(proxy.seen).toHaveLength(2);
    });

    it.each([
      ['ThrottlingException', THROTTLING],
      ['ProvisionedThroughputExceededException', PROVISIONED],
    ])('fails with %s after a bounded number of retries when throttling lasts', async (name, step) => {
      const store = storeFromEnv({});
      proxy.script(Array.from({ length: 20 }, () => step));
      const started = performance.now();
      const error = (await store.get('console').catch((e: unknown) => e)) as Error & { $metadata?: { httpStatusCode?: number } };
      const ms = performance.now() - started;
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe(name);
      expect(error.$metadata?.httpStatusCode).toBe(400);
      // Retried (more than one request), but not forever: the attempt count is what bounds the time. The time
      // bound only catches a hang; it is wide so a loaded 2-core runner cannot fail it (nominal: well under 1 s).
      expect(proxy.seen.length).toBeGreaterThanOrEqual(2);
      expect(proxy.seen.length).toBeLessThanOrEqual(4);
      expect(ms).toBeLessThan(HANG_MS);
    });

    it('fails in about two seconds when the store accepts connections and never answers', async () => {
      const hole = await startBlackHole();
      try {
        const store = storeFromEnv({ AWS_ENDPOINT_URL_DYNAMODB: hole.endpoint });
        const started = performance.now();
        const error = (await store.get('console').catch((e: unknown) => e)) as Error;
        const ms = performance.now() - started;
        expect(error).toBeInstanceOf(Error);
        expect(error.name).toMatch(/Timeout/i);
        // Bounded attempts, each bounded by the client's timeout (nominally about 2 s in all, inside the function's
        // 5 s): assert the attempts, not the clock. The lower bound shows a timeout fired rather than an instant
        // failure; the upper one only catches a hang (a loaded 2-core runner can take twice the nominal time).
        expect(hole.connections()).toBeGreaterThanOrEqual(1);
        expect(hole.connections()).toBeLessThanOrEqual(3);
        expect(ms).toBeGreaterThan(500);
        expect(ms).toBeLessThan(HANG_MS);
      } finally {
        await hole.close();
      }
    });
  });
}
