import { createServer, type AddressInfo } from 'node:net';
import { PutItemCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createResolveDynamoClient,
  DynamoDbSessionStore,
  fromAttributeValue,
  fromItem,
} from '../../lambda/adapters/dynamodb-session-store';
import { HttpError, ServiceUnavailableError } from '../../lambda/core/errors';
import { parseResolveQuery, SessionResolver } from '../../lambda/core/resolve';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { RecordingLog } from '../helpers/recording-log';

const TABLE = 'DcvSessions';
const EXPIRES_AT = 1_800_000_000;
const NOW_MS = (EXPIRES_AT - 60) * 1000;

/** Items as an operator would type them in the DynamoDB console: whatever types came to hand. */
const ITEMS: Record<string, AttributeValue>[] = [
  { SessionId: { S: 'numbers' }, DcvServerEndpoint: { S: '10.0.1.15' }, HttpPort: { N: '8443' }, QuicPort: { N: '4443' }, WebUrlPath: { S: '/' } },
  { SessionId: { S: 'typed-as-strings' }, DcvServerEndpoint: { S: '10.0.1.16' }, HttpPort: { S: '9443' }, QuicPort: { S: '9444' }, ExpiresAt: { S: String(EXPIRES_AT) } },
  { SessionId: { S: 'minimal' }, DcvServerEndpoint: { S: 'dcv-min.example.internal' } },
  { SessionId: { S: 'cidrs-ss' }, DcvServerEndpoint: { S: '10.0.1.17' }, AllowedClientCidrs: { SS: ['203.0.113.0/24', '2001:db8:1::/48'] } },
  { SessionId: { S: 'cidrs-l' }, DcvServerEndpoint: { S: '10.0.1.18' }, AllowedClientCidrs: { L: [{ S: '198.51.100.0/24' }, { S: '2001:db8:2::/48' }] } },
  { SessionId: { S: 'cidrs-empty-l' }, DcvServerEndpoint: { S: '10.0.1.19' }, AllowedClientCidrs: { L: [] } },
  {
    SessionId: { S: 'nulls' },
    DcvServerEndpoint: { S: '10.0.1.20' },
    HttpPort: { NULL: true },
    QuicPort: { NULL: true },
    WebUrlPath: { NULL: true },
    TargetSessionId: { NULL: true },
    Enabled: { NULL: true },
    AllowedClientCidrs: { NULL: true },
    ExpiresAt: { NULL: true },
  },
  { SessionId: { S: 'disabled' }, DcvServerEndpoint: { S: '10.0.1.21' }, Enabled: { BOOL: false } },
  { SessionId: { S: 'expiring' }, DcvServerEndpoint: { S: '10.0.1.22' }, ExpiresAt: { N: String(EXPIRES_AT) } },
  {
    SessionId: { S: 'i-0123456789abcdef0' },
    DcvServerEndpoint: { S: 'ip-10-0-1-23.ec2.internal' },
    TargetSessionId: { S: 'console' },
    WebUrlPath: { S: '/dcv' },
    Source: { S: 'ec2' },
    InstanceId: { S: 'i-0123456789abcdef0' },
    InstanceState: { S: 'running' },
    UpdatedAt: { S: '2025-02-03T10:15:30Z' },
    Enabled: { BOOL: true },
  },
  // Malformed, each in a way the console makes easy.
  { SessionId: { S: 'enabled-as-string' }, DcvServerEndpoint: { S: '10.0.1.30' }, Enabled: { S: 'false' } },
  { SessionId: { S: 'port-too-big' }, DcvServerEndpoint: { S: '10.0.1.31' }, HttpPort: { N: '100000000000000000000' } },
  { SessionId: { S: 'port-text' }, DcvServerEndpoint: { S: '10.0.1.32' }, HttpPort: { S: '8443/tcp' } },
  { SessionId: { S: 'no-endpoint' }, HttpPort: { N: '8443' } },
  { SessionId: { S: 'null-endpoint' }, DcvServerEndpoint: { NULL: true } },
  { SessionId: { S: 'cidrs-as-map' }, DcvServerEndpoint: { S: '10.0.1.33' }, AllowedClientCidrs: { M: { office: { S: '203.0.113.0/24' } } } },
  { SessionId: { S: 'cidrs-with-number' }, DcvServerEndpoint: { S: '10.0.1.34' }, AllowedClientCidrs: { L: [{ N: '10' }] } },
  { SessionId: { S: 'quic-as-set' }, DcvServerEndpoint: { S: '10.0.1.35' }, QuicPort: { NS: ['4443', '4444'] } },
  { SessionId: { S: 'path-relative' }, DcvServerEndpoint: { S: '10.0.1.36' }, WebUrlPath: { S: 'dcv' } },
];

let dynamo: LocalDynamo;
let client: DynamoDBClient;

beforeAll(async () => {
  dynamo = await startDynalite();
  await dynamo.createSessionTable(TABLE);
  client = dynamo.client();
  for (const Item of ITEMS) await client.send(new PutItemCommand({ TableName: TABLE, Item }));
});

afterAll(() => dynamo?.stop());

afterEach(() => {
  vi.restoreAllMocks();
});

function resolverOver(store: DynamoDbSessionStore, log = new RecordingLog()) {
  const resolver = new SessionResolver({ store, log, now: () => NOW_MS });
  return async (rawQueryString: string) => {
    try {
      return { status: 200, body: await resolver.resolve(parseResolveQuery(new URLSearchParams(rawQueryString))) };
    } catch (error) {
      if (error instanceof HttpError) return { status: error.statusCode, body: error.message };
      throw error;
    }
  };
}

describe('DynamoDbSessionStore against dynalite', () => {
  it('returns items as plain values, exactly as stored', async () => {
    const store = new DynamoDbSessionStore(client, TABLE);
    expect(await store.get('typed-as-strings')).toEqual({
      SessionId: 'typed-as-strings',
      DcvServerEndpoint: '10.0.1.16',
      HttpPort: '9443',
      QuicPort: '9444',
      ExpiresAt: String(EXPIRES_AT),
    });
    expect(await store.get('numbers')).toEqual({ SessionId: 'numbers', DcvServerEndpoint: '10.0.1.15', HttpPort: 8443, QuicPort: 4443, WebUrlPath: '/' });
    expect(await store.get('nulls')).toMatchObject({ HttpPort: null, QuicPort: null, AllowedClientCidrs: null });
    expect(await store.get('cidrs-ss')).toMatchObject({ AllowedClientCidrs: expect.arrayContaining(['203.0.113.0/24', '2001:db8:1::/48']) });
    expect(await store.get('cidrs-l')).toMatchObject({ AllowedClientCidrs: ['198.51.100.0/24', '2001:db8:2::/48'] });
  });

  it('returns undefined for an unknown id', async () => {
    const store = new DynamoDbSessionStore(client, TABLE);
    expect(await store.get('ghost')).toBeUndefined();
  });

  it('sends exactly one strongly consistent GetItem on the SessionId key per lookup', async () => {
    const send = vi.spyOn(client, 'send');
    const store = new DynamoDbSessionStore(client, TABLE);
    await store.get('numbers');
    expect(send).toHaveBeenCalledTimes(1);
    const command = send.mock.calls[0]![0] as { constructor: { name: string }; input: unknown };
    expect(command.constructor.name).toBe('GetItemCommand');
    expect(command.input).toEqual({ TableName: TABLE, Key: { SessionId: { S: 'numbers' } }, ConsistentRead: true });
  });

  it('sees a console edit on the very next lookup', async () => {
    const store = new DynamoDbSessionStore(client, TABLE);
    const ask = resolverOver(store);
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { SessionId: { S: 'edited' }, DcvServerEndpoint: { S: '10.0.2.1' } } }));
    expect((await ask('sessionId=edited&transport=HTTP')).body).toMatchObject({ DcvServerEndpoint: '10.0.2.1' });
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { SessionId: { S: 'edited' }, DcvServerEndpoint: { S: '10.0.2.2' }, Enabled: { BOOL: false } } }));
    expect(await ask('sessionId=edited&transport=HTTP')).toEqual({ status: 404, body: "session 'edited' is disabled" });
  });
});

describe('the resolver over console-typed items', () => {
  const answer = (SessionId: string, TransportProtocol: string, DcvServerEndpoint: string, Port: number, WebUrlPath = '/') => ({
    status: 200,
    body: { SessionId, TransportProtocol, DcvServerEndpoint, Port, WebUrlPath },
  });

  it.each([
    ['ports as N', 'sessionId=numbers&transport=QUIC', answer('numbers', 'QUIC', '10.0.1.15', 4443)],
    ['ports typed as S', 'sessionId=typed-as-strings&transport=HTTP', answer('typed-as-strings', 'HTTP', '10.0.1.16', 9443)],
    ['QuicPort typed as S', 'sessionId=typed-as-strings&transport=QUIC', answer('typed-as-strings', 'QUIC', '10.0.1.16', 9444)],
    ['defaults for a minimal item', 'sessionId=minimal&transport=HTTP', answer('minimal', 'HTTP', 'dcv-min.example.internal', 8443)],
    ['AllowedClientCidrs as SS, IPv4 client inside', 'sessionId=cidrs-ss&transport=HTTP&clientIpAddress=203.0.113.40', answer('cidrs-ss', 'HTTP', '10.0.1.17', 8443)],
    ['AllowedClientCidrs as SS, IPv6 client inside', 'sessionId=cidrs-ss&transport=HTTP&clientIpAddress=2001%3Adb8%3A1%3A%3A40', answer('cidrs-ss', 'HTTP', '10.0.1.17', 8443)],
    ['AllowedClientCidrs as L, IPv4 client inside', 'sessionId=cidrs-l&transport=HTTP&clientIpAddress=198.51.100.40', answer('cidrs-l', 'HTTP', '10.0.1.18', 8443)],
    ['AllowedClientCidrs as L, IPv6 client inside', 'sessionId=cidrs-l&transport=HTTP&clientIpAddress=2001%3Adb8%3A2%3A%3A40', answer('cidrs-l', 'HTTP', '10.0.1.18', 8443)],
    ['NULL attributes take their defaults', 'sessionId=nulls&transport=HTTP', answer('nulls', 'HTTP', '10.0.1.20', 8443)],
    ['an EC2-discovered item remapped to console', 'sessionId=i-0123456789abcdef0&transport=HTTP', answer('console', 'HTTP', 'ip-10-0-1-23.ec2.internal', 8443, '/dcv')],
    ['expiring item one minute before ExpiresAt', 'sessionId=expiring&transport=HTTP', answer('expiring', 'HTTP', '10.0.1.22', 8443)],
    ['unknown', 'sessionId=ghost&transport=HTTP', { status: 404, body: "no session 'ghost'" }],
    ['NULL QuicPort means no QUIC', 'sessionId=nulls&transport=QUIC', { status: 404, body: "session 'nulls' does not offer QUIC" }],
    ['NULL AllowedClientCidrs means any client', 'sessionId=nulls&transport=HTTP&clientIpAddress=192.0.2.1', answer('nulls', 'HTTP', '10.0.1.20', 8443)],
    ['disabled (BOOL false)', 'sessionId=disabled&transport=HTTP', { status: 404, body: "session 'disabled' is disabled" }],
    ['AllowedClientCidrs as SS, client outside', 'sessionId=cidrs-ss&transport=HTTP&clientIpAddress=198.51.100.40', { status: 404, body: "session 'cidrs-ss' is not available to this client address" }],
    ['AllowedClientCidrs as L, client outside', 'sessionId=cidrs-l&transport=HTTP&clientIpAddress=203.0.113.40', { status: 404, body: "session 'cidrs-l' is not available to this client address" }],
    ['AllowedClientCidrs as L, no client address', 'sessionId=cidrs-l&transport=HTTP', { status: 404, body: "session 'cidrs-l' requires a clientIpAddress" }],
    ['an empty L admits nobody', 'sessionId=cidrs-empty-l&transport=HTTP&clientIpAddress=203.0.113.40', { status: 404, body: "session 'cidrs-empty-l' is not available to this client address" }],
  ])('%s', async (_name, query, expected) => {
    const ask = resolverOver(new DynamoDbSessionStore(client, TABLE));
    expect(await ask(query)).toEqual(expected);
  });

  it.each([
    ['at ExpiresAt', EXPIRES_AT * 1000, 404],
    ['one second before ExpiresAt', (EXPIRES_AT - 1) * 1000, 200],
  ])('expiry %s -> %s (ExpiresAt as N and as S)', async (_name, nowMs, status) => {
    const resolver = new SessionResolver({ store: new DynamoDbSessionStore(client, TABLE), log: new RecordingLog(), now: () => nowMs });
    for (const sessionId of ['expiring', 'typed-as-strings']) {
      const outcome = await resolver.resolve({ sessionId, transport: 'HTTP' }).then(
        () => 200,
        (e: HttpError) => e.statusCode,
      );
      expect(outcome).toBe(status);
    }
  });

  it.each([
    ['enabled-as-string', 'Enabled must be a boolean (BOOL)'],
    ['port-too-big', 'HttpPort must be an integer'],
    ['port-text', 'HttpPort must be an integer 1–65535'],
    ['no-endpoint', 'DcvServerEndpoint is required'],
    ['null-endpoint', 'DcvServerEndpoint is required'],
    ['cidrs-as-map', expect.stringMatching(/^AllowedClientCidrs .*array/)],
    ['cidrs-with-number', expect.stringMatching(/^AllowedClientCidrs /)],
    ['quic-as-set', expect.stringMatching(/^QuicPort /)],
    ['path-relative', "WebUrlPath must start with '/'"],
  ])('malformed item %s is absent and logged once: %s', async (sessionId, reason) => {
    const log = new RecordingLog();
    const ask = resolverOver(new DynamoDbSessionStore(client, TABLE), log);
    for (let i = 0; i < 3; i++) expect(await ask(`sessionId=${sessionId}&transport=HTTP`)).toEqual({ status: 404, body: `no session '${sessionId}'` });
    expect(log.find('malformed session item skipped', 'warn').map((e) => e.fields)).toEqual([{ sessionId, reason }]);
  });
});

describe('failures', () => {
  it('a missing table rejects with ResourceNotFoundException, which the resolver turns into a 503', async () => {
    const store = new DynamoDbSessionStore(client, 'NoSuchTable');
    await expect(store.get('numbers')).rejects.toMatchObject({ name: 'ResourceNotFoundException' });

    const log = new RecordingLog();
    const resolver = new SessionResolver({ store, log, now: () => NOW_MS });
    const error = await resolver.resolve({ sessionId: 'numbers', transport: 'HTTP' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect((error as Error).message).toBe('session store unavailable; try again');
    expect(log.find('session store failed', 'error')[0]!.fields).toMatchObject({
      sessionId: 'numbers',
      cause: { name: 'ResourceNotFoundException' },
    });
  });
});

describe('createResolveDynamoClient (the resolve-path client)', () => {
  const saved = process.env.AWS_ENDPOINT_URL_DYNAMODB;
  afterEach(() => {
    if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
    else process.env.AWS_ENDPOINT_URL_DYNAMODB = saved;
  });

  it('uses the standard SDK configuration, including AWS_ENDPOINT_URL_DYNAMODB', async () => {
    process.env.AWS_ENDPOINT_URL_DYNAMODB = dynamo.endpoint;
    const store = new DynamoDbSessionStore(createResolveDynamoClient(), TABLE);
    try {
      expect(await store.get('minimal')).toEqual({ SessionId: 'minimal', DcvServerEndpoint: 'dcv-min.example.internal' });
    } finally {
      store.close();
    }
  });

  it('turns an unreachable endpoint into a 503 (after its few retries)', async () => {
    // A loopback port that was just free: connection refused, never a packet off the host.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    process.env.AWS_ENDPOINT_URL_DYNAMODB = `http://127.0.0.1:${port}`;
    const store = new DynamoDbSessionStore(createResolveDynamoClient(), TABLE);
    const log = new RecordingLog();
    try {
      const resolver = new SessionResolver({ store, log });
      await expect(resolver.resolve({ sessionId: 'minimal', transport: 'HTTP' })).rejects.toBeInstanceOf(ServiceUnavailableError);
      expect(log.find('session store failed')).toHaveLength(1);
    } finally {
      store.close();
    }
  });
});

describe('fromAttributeValue (lenient, never throws)', () => {
  it.each([
    ['S', { S: 'x' }, 'x'],
    ['N integer', { N: '8443' }, 8443],
    ['N fraction', { N: '1.5' }, 1.5],
    ['N beyond safe integers stays a number (the validator rejects it)', { N: '100000000000000000000' }, 1e20],
    ['BOOL', { BOOL: false }, false],
    ['NULL', { NULL: true }, null],
    ['SS', { SS: ['a', 'b'] }, ['a', 'b']],
    ['NS', { NS: ['1', '2'] }, [1, 2]],
    ['L of mixed', { L: [{ S: 'a' }, { N: '1' }, { NULL: true }] }, ['a', 1, null]],
    ['M', { M: { a: { S: 'x' }, b: { L: [{ BOOL: true }] } } }, { a: 'x', b: [true] }],
    ['B', { B: new Uint8Array([1, 2]) }, new Uint8Array([1, 2])],
    ['BS', { BS: [new Uint8Array([1])] }, [new Uint8Array([1])]],
    ['an unknown member', { $unknown: ['X', 1] } as unknown as AttributeValue, undefined],
  ])('%s', (_name, value, expected) => {
    expect(fromAttributeValue(value as AttributeValue)).toEqual(expected);
  });

  it('fromItem converts every attribute', () => {
    expect(fromItem({ SessionId: { S: 'a' }, HttpPort: { N: '1' }, Enabled: { BOOL: true } })).toEqual({ SessionId: 'a', HttpPort: 1, Enabled: true });
  });
});

describe('markVerified (LastVerifiedAt for the power pass)', () => {
  it('sets LastVerifiedAt on an existing item only when older than the cutoff, and touches nothing else', async () => {
    const store = new DynamoDbSessionStore(client, TABLE);
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { SessionId: { S: 'mark-me' }, DcvServerEndpoint: { S: '10.0.0.7' }, AutoStopMinutes: { N: '30' } } }));
    const read = async () => (await store.get('mark-me')) as Record<string, unknown>;
    await store.markVerified('mark-me', '2026-12-07T12:00:00.000Z', '2026-12-07T11:59:00.000Z');
    expect(await read()).toEqual({ SessionId: 'mark-me', DcvServerEndpoint: '10.0.0.7', AutoStopMinutes: 30, LastVerifiedAt: '2026-12-07T12:00:00.000Z' });
    // Another verifier 20 s later: the value is newer than its cutoff, so nothing is written (and no error).
    await store.markVerified('mark-me', '2026-12-07T12:00:20.000Z', '2026-12-07T11:59:20.000Z');
    expect((await read()).LastVerifiedAt).toBe('2026-12-07T12:00:00.000Z');
    await store.markVerified('mark-me', '2026-12-07T12:01:30.000Z', '2026-12-07T12:00:30.000Z');
    expect((await read()).LastVerifiedAt).toBe('2026-12-07T12:01:30.000Z');
    // Never creates an item.
    await store.markVerified('never-existed', '2026-12-07T12:00:00.000Z', '2026-12-07T11:59:00.000Z');
    expect(await store.get('never-existed')).toBeUndefined();
  });
});
