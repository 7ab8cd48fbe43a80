import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { functionUrlEvent, lambdaContext, loadFunctionUrlEvent } from '../helpers/function-url-event';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { startBlackHole } from '../contract/loopback-dynamo';

/**
 * The resolver's Lambda entry as deployed (lambda/handlers/resolver.ts): configured only by the
 * environment Lambda gives it, reading dynalite through the lean client, logging Powertools-shaped lines
 * with the invocation's fields, and answering 503 in about 2 s when the table hangs.
 */
const TABLE = 'EntrySessions';
let dynamo: LocalDynamo;

function captureStdout(): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
    return true;
  });
  return lines;
}

/** A fresh copy of the entry module, initialised with the environment set now. */
async function loadEntry(env: Record<string, string>) {
  vi.resetModules();
  Object.assign(process.env, env);
  return (await import('../../lambda/handlers/resolver')).handler;
}

beforeAll(async () => {
  dynamo = await startDynalite();
  await dynamo.createSessionTable(TABLE);
  await dynamo.client().send(new PutItemCommand({ TableName: TABLE, Item: { SessionId: { S: 'console' }, DcvServerEndpoint: { S: '10.0.1.15' }, QuicPort: { N: '4443' } } }));
});

afterAll(async () => {
  vi.restoreAllMocks();
  for (const key of ['TABLE_NAME', 'AWS_ENDPOINT_URL_DYNAMODB', 'POWERTOOLS_LOG_LEVEL']) delete process.env[key];
  await dynamo.stop();
});

describe('the resolver Lambda entry', () => {
  it('answers the gateway from the table and logs one line with the invocation fields', async () => {
    const handler = await loadEntry({ TABLE_NAME: TABLE, AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint, POWERTOOLS_LOG_LEVEL: 'INFO' });
    const lines = captureStdout();
    const first = await handler(loadFunctionUrlEvent('resolve-session-http'), lambdaContext('11111111-1111-4111-8111-111111111111'));
    const second = await handler(functionUrlEvent({ rawQueryString: 'sessionId=ghost&transport=HTTP' }), lambdaContext('22222222-2222-4222-8222-222222222222'));
    vi.restoreAllMocks();
    expect(first.statusCode).toBe(200);
    expect(JSON.parse(first.body!)).toEqual({ SessionId: 'console', TransportProtocol: 'HTTP', DcvServerEndpoint: '10.0.1.15', Port: 8443, WebUrlPath: '/' });
    expect(second.statusCode).toBe(404);
    const requests = lines.filter((l) => l.message === 'request');
    expect(requests).toHaveLength(2);
    expect(requests[0]).toMatchObject({
      level: 'INFO',
      service: 'dcv-session-resolver',
      cold_start: true,
      function_name: 'DcvSessionResolver-Resolver',
      function_request_id: '11111111-1111-4111-8111-111111111111',
      function_memory_size: 256,
      sessionId: 'console',
      status: 200,
    });
    expect(requests[1]).toMatchObject({ cold_start: false, function_request_id: '22222222-2222-4222-8222-222222222222', sessionId: 'ghost', status: 404 });
    expect(requests[1]).not.toHaveProperty('endpoint');
  });

  it('answers 503 with Retry-After within about 2 s when the table hangs', async () => {
    const hole = await startBlackHole();
    try {
      const handler = await loadEntry({ TABLE_NAME: TABLE, AWS_ENDPOINT_URL_DYNAMODB: hole.endpoint, POWERTOOLS_LOG_LEVEL: 'SILENT' });
      const started = performance.now();
      const result = await handler(loadFunctionUrlEvent('resolve-session-http'), lambdaContext());
      const ms = performance.now() - started;
      expect(result.statusCode).toBe(503);
      expect(result.headers).toMatchObject({ 'Retry-After': '1' });
      // Bounded attempts (each with the client's timeout) keep it near 2 s; the clock bound only catches a hang
      // and is wide enough for a loaded 2-core runner.
      expect(hole.connections()).toBeGreaterThanOrEqual(1);
      expect(hole.connections()).toBeLessThanOrEqual(3);
      expect(ms).toBeLessThan(10_000);
    } finally {
      await hole.close();
    }
  });
});
