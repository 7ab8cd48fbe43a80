import { createServer, type Server, type Socket } from 'node:net';
import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createResolveDynamoClient, DynamoDbSessionStore } from '../../lambda/adapters/dynamodb-session-store';
import { createResolverHandler, type ResolverHandler } from '../../lambda/handlers/resolver-handler';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';

/**
 * The store failing: the resolver answers 503 (JSON, Retry-After) within a bounded time, logs the cause
 * (never the query string), and recovers by itself when the store is back, with no restart.
 */
const TABLE = 'DcvSessions';
const TOKEN = 'tok-never-logged-123';
const QUERY = `sessionId=console&transport=HTTP&clientIpAddress=203.0.113.77&authToken=${TOKEN}`;
const ANSWER = { SessionId: 'console', TransportProtocol: 'HTTP', DcvServerEndpoint: '10.0.1.15', Port: 8443, WebUrlPath: '/' };
/**
 * Catches a hang, not a slow answer: the bounded retries (asserted as attempts where a server never answers)
 * keep the nominal time near 2 s, and a loaded 2-core runner can take twice that, so the clock bound is wide.
 */
const BOUND_MS = 10_000;

function event(query = QUERY): APIGatewayProxyEventV2 {
  return {
    rawPath: '/resolveSession',
    rawQueryString: query,
    requestContext: { http: { method: 'POST', sourceIp: '198.51.100.7' }, requestId: 'fault-test' },
  } as unknown as APIGatewayProxyEventV2;
}

/** Powertools writes INFO to stdout and WARN/ERROR to stderr; collect parsed lines. */
function captureLogs(): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      return true;
    });
  }
  return lines;
}

async function timed(handler: ResolverHandler): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown>; ms: number }> {
  const started = performance.now();
  const result = await handler(event());
  return {
    status: result.statusCode!,
    body: JSON.parse(result.body!) as Record<string, unknown>,
    headers: result.headers as Record<string, unknown>,
    ms: performance.now() - started,
  };
}

function expect503(answer: Awaited<ReturnType<typeof timed>>): void {
  expect(answer.status).toBe(503);
  expect(answer.headers['Retry-After']).toBe('1');
  expect(answer.body).toEqual({ error: 'ServiceUnavailableError', message: 'session store unavailable; try again' });
  expect(answer.ms).toBeLessThan(BOUND_MS);
}

function expectCauseLogged(lines: Record<string, unknown>[], cause: Record<string, unknown>): void {
  const failures = lines.filter((l) => l.message === 'session store failed');
  expect(failures.length).toBeGreaterThanOrEqual(1);
  expect(failures[0]).toMatchObject({ level: 'ERROR', sessionId: 'console', cause });
  const all = JSON.stringify(lines);
  expect(all).not.toContain(TOKEN);
  expect(all).not.toContain('transport=HTTP');
  expect(all).not.toContain('203.0.113.77');
}

describe('dynalite stopped mid-run, then started again on the same port', () => {
  let dynamo: LocalDynamo;
  let handler: ResolverHandler;
  let client: DynamoDBClient;

  async function seed(d: LocalDynamo): Promise<void> {
    await d.createSessionTable(TABLE);
    await d.client().send(new PutItemCommand({ TableName: TABLE, Item: { SessionId: { S: 'console' }, DcvServerEndpoint: { S: '10.0.1.15' } } }));
  }

  beforeAll(async () => {
    dynamo = await startDynalite();
    await seed(dynamo);
    // The production client (explicit timeouts and retry limit), pointed at dynalite the standard way.
    // (The SDK reads it lazily, on the first request: it stays set until this block ends.)
    process.env.AWS_ENDPOINT_URL_DYNAMODB = dynamo.endpoint;
    client = createResolveDynamoClient();
    handler = createResolverHandler({ store: new DynamoDbSessionStore(client, TABLE), logger: new Logger({ serviceName: 'faults', logLevel: 'INFO' }) });
  });

  afterAll(async () => {
    delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
    vi.restoreAllMocks();
    client.destroy();
    await dynamo.stop();
  });

  it('answers, fails fast with 503 and a logged cause while the store is down, and recovers by itself', async () => {
    const lines = captureLogs();
    const before = await timed(handler);
    expect(before.status).toBe(200);
    expect(before.body).toEqual(ANSWER);

    const port = dynamo.port;
    await dynamo.stop();
    const down = [await timed(handler), await timed(handler)];
    for (const answer of down) expect503(answer);
    expectCauseLogged(lines, { name: expect.any(String), message: expect.any(String) });

    dynamo = await startDynalite({ port });
    await seed(dynamo);
    const after = await timed(handler);
    vi.restoreAllMocks();
    expect(after.status).toBe(200);
    expect(after.body).toEqual(ANSWER);
  });
});

describe('a store that accepts connections but never answers', () => {
  let blackHole: Server;
  const sockets = new Set<Socket>();
  let client: DynamoDBClient;

  beforeAll(async () => {
    blackHole = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => blackHole.listen(0, '127.0.0.1', () => r()));
    const { port } = blackHole.address() as { port: number };
    process.env.AWS_ENDPOINT_URL_DYNAMODB = `http://127.0.0.1:${port}`;
    client = createResolveDynamoClient();
  });

  afterAll(async () => {
    delete process.env.AWS_ENDPOINT_URL_DYNAMODB;
    client.destroy();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => blackHole.close(() => r()));
  });

  it('times out into a 503 within the bound (explicit SDK timeouts and retry limit)', async () => {
    const lines = captureLogs();
    const handler = createResolverHandler({ store: new DynamoDbSessionStore(client, TABLE), logger: new Logger({ serviceName: 'faults', logLevel: 'INFO' }) });
    const answer = await timed(handler);
    vi.restoreAllMocks();
    expect503(answer);
    expectCauseLogged(lines, { name: expect.stringMatching(/Timeout/i) });
    // Retried, but a bounded number of times (each attempt a new connection after its timeout).
    expect(sockets.size).toBeGreaterThanOrEqual(1);
    expect(sockets.size).toBeLessThanOrEqual(3);
  });
});

describe('SDK-level injected errors (aws-sdk-client-mock)', () => {
  // Created here, not at collection time: mockClient stubs every DynamoDBClient, dynalite's included.
  let mock: ReturnType<typeof mockClient>;
  let client: DynamoDBClient;
  let handler: ResolverHandler;

  beforeAll(() => {
    mock = mockClient(DynamoDBClient);
    client = new DynamoDBClient({ region: 'us-east-1' });
    handler = createResolverHandler({ store: new DynamoDbSessionStore(client, TABLE), logger: new Logger({ serviceName: 'faults', logLevel: 'INFO' }) });
  });

  afterEach(() => {
    vi.restoreAllMocks();
    mock.reset();
  });

  afterAll(() => {
    mock.restore();
    client.destroy();
  });

  it.each([
    ['throttling', Object.assign(new Error('Rate of requests exceeds the allowed throughput.'), { name: 'ThrottlingException' }), { name: 'ThrottlingException' }],
    ['provisioned throughput', Object.assign(new Error('The level of configured provisioned throughput for the table was exceeded.'), { name: 'ProvisionedThroughputExceededException' }), { name: 'ProvisionedThroughputExceededException' }],
    ['a request timeout', Object.assign(new Error('Connection timed out after 1000 ms'), { name: 'TimeoutError', code: 'ETIMEDOUT' }), { name: 'TimeoutError', code: 'ETIMEDOUT' }],
    ['a networking error', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8000'), { code: 'ECONNREFUSED' }), { name: 'Error', code: 'ECONNREFUSED' }],
    ['a non-Error rejection', 'socket hang up', { message: 'socket hang up' }],
  ])('%s → 503 and the cause in the log', async (_name, error, cause) => {
    mock.on(GetItemCommand).rejects(error as Error);
    const lines = captureLogs();
    const answer = await timed(handler);
    vi.restoreAllMocks();
    expect503(answer);
    expectCauseLogged(lines, cause);
    expect(mock.commandCalls(GetItemCommand)).toHaveLength(1);
  });

  it('recovers on the next request once the SDK answers again', async () => {
    mock.on(GetItemCommand).rejectsOnce(Object.assign(new Error('throttled'), { name: 'ThrottlingException' })).resolves({
      Item: { SessionId: { S: 'console' }, DcvServerEndpoint: { S: '10.0.1.15' } },
    });
    captureLogs();
    const first = await timed(handler);
    const second = await timed(handler);
    vi.restoreAllMocks();
    expect(first.status).toBe(503);
    expect(second.status).toBe(200);
    expect(second.body).toEqual(ANSWER);
  });
});
