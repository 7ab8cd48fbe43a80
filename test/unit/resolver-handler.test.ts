import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CidrSet } from '../../lambda/core/ip';
import type { RawItem } from '../../lambda/core/session-record';
import { MemorySessionStore, type SessionStore } from '../../lambda/core/session-store';
import { MemoryTokenStore } from '../../lambda/core/tokens/token-store';
import { createResolverHandler, requestFromEvent } from '../../lambda/handlers/resolver-handler';
import { functionUrlEvent, lambdaContext, loadFunctionUrlEvent } from '../helpers/function-url-event';

const ITEMS: RawItem[] = [
  { SessionId: 'console', DcvServerEndpoint: '10.0.1.15', HttpPort: 8443, QuicPort: 4443 },
  { SessionId: 'desktop', DcvServerEndpoint: '10.0.1.16', HttpPort: '8443' },
];
const JSON_HEADERS = { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' };
const CONSOLE_HTTP = '{"SessionId":"console","TransportProtocol":"HTTP","DcvServerEndpoint":"10.0.1.15","Port":8443,"WebUrlPath":"/"}';

function silentLogger(): Logger {
  return new Logger({ serviceName: 'test', logLevel: 'SILENT' });
}

function setup(store: SessionStore = new MemorySessionStore(ITEMS), logger = silentLogger()) {
  const calls: string[] = [];
  const counting: SessionStore = {
    get: (id) => {
      calls.push(id);
      return store.get(id);
    },
  };
  return { handler: createResolverHandler({ store: counting, logger }), calls };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('the middy handler with recorded Function URL events', () => {
  it.each([
    ['the gateway’s HTTP lookup', 'resolve-session-http', 200, CONSOLE_HTTP, {}],
    ['QUIC, IPv6 client, /prod path prefix', 'resolve-session-quic-prefixed-ipv6', 200, '{"SessionId":"console","TransportProtocol":"QUIC","DcvServerEndpoint":"10.0.1.15","Port":4443,"WebUrlPath":"/"}', {}],
    ['a base64 body and an unknown parameter are ignored', 'resolve-session-with-body', 200, '{"SessionId":"desktop","TransportProtocol":"HTTP","DcvServerEndpoint":"10.0.1.16","Port":8443,"WebUrlPath":"/"}', {}],
    ['a repeated parameter (comma-joined in queryStringParameters)', 'resolve-session-repeated-parameter', 400, '{"error":"BadRequestError","message":"sessionId must be given once, not 2 times"}', {}],
    ['GET on resolveSession', 'resolve-session-get', 405, '{"error":"MethodNotAllowedError","message":"method not allowed; use POST"}', { Allow: 'POST' }],
    ['GET /health', 'health-get', 200, '{"status":"ok"}', {}],
  ])('%s', async (_name, fixture, statusCode, body, extraHeaders) => {
    const { handler } = setup();
    const result = await handler(loadFunctionUrlEvent(fixture), lambdaContext());
    // Exactly the Function URL result shape: nothing else (no cookies, no isBase64Encoded surprises).
    expect(result).toEqual({ statusCode, headers: { ...JSON_HEADERS, ...extraHeaders }, body });
  });

  it('reads the query from rawQueryString, not the comma-joined queryStringParameters', async () => {
    const { handler, calls } = setup();
    const event = loadFunctionUrlEvent('resolve-session-http');
    event.queryStringParameters = { sessionId: 'desktop', transport: 'QUIC' };
    expect((await handler(event, lambdaContext())).body).toBe(CONSOLE_HTTP);
    expect(calls).toEqual(['console']);
  });

  it('/health never touches the store', async () => {
    const { handler, calls } = setup({ get: () => Promise.reject(new Error('down')) });
    expect((await handler(loadFunctionUrlEvent('health-get'), lambdaContext())).statusCode).toBe(200);
    expect(calls).toEqual([]);
  });
});

describe('contract rows through the handler', () => {
  it.each([
    ['unknown session', 'POST', '/resolveSession', 'sessionId=ghost&transport=HTTP', 404, `{"error":"NotFoundError","message":"no session 'ghost'"}`],
    ['QUIC without QuicPort', 'POST', '/resolveSession', 'sessionId=desktop&transport=QUIC', 404, `{"error":"NotFoundError","message":"session 'desktop' does not offer QUIC"}`],
    ['missing sessionId', 'POST', '/resolveSession', 'transport=HTTP', 400, '{"error":"BadRequestError","message":"sessionId is required"}'],
    ['missing transport', 'POST', '/resolveSession', 'sessionId=console', 400, '{"error":"BadRequestError","message":"transport is required (HTTP or QUIC)"}'],
    ['bad clientIpAddress', 'POST', '/resolveSession', 'sessionId=console&transport=HTTP&clientIpAddress=nope', 400, '{"error":"BadRequestError","message":"clientIpAddress must be an IPv4 or IPv6 address"}'],
    ['a lowercase method from a hand-made event', 'post', '/resolveSession', 'sessionId=console&transport=HTTP', 200, CONSOLE_HTTP],
    ['a deep prefix', 'POST', '/stage/v1/resolveSession', 'sessionId=console&transport=HTTP', 200, CONSOLE_HTTP],
    ['an unknown path', 'POST', '/', 'sessionId=console&transport=HTTP', 404, '{"error":"NotFoundError","message":"unknown path; the resolver answers POST …/resolveSession and POST …/verifyToken"}'],
  ])('%s', async (_name, method, path, rawQueryString, statusCode, body) => {
    const { handler } = setup();
    const result = await handler(functionUrlEvent({ method, path, rawQueryString }), lambdaContext());
    expect(result.statusCode).toBe(statusCode);
    expect(result.body).toBe(body);
    expect(result.headers).toEqual(JSON_HEADERS);
  });

  it('a failing store is a 503 with Retry-After and no internals', async () => {
    const { handler } = setup({ get: () => Promise.reject(Object.assign(new Error('User: arn:aws:sts::123456789012:assumed-role/x is not authorized'), { name: 'AccessDeniedException' })) });
    const result = await handler(loadFunctionUrlEvent('resolve-session-http'), lambdaContext());
    expect(result).toEqual({
      statusCode: 503,
      headers: { ...JSON_HEADERS, 'Retry-After': '1' },
      body: '{"error":"ServiceUnavailableError","message":"session store unavailable; try again"}',
    });
  });
});

describe('malformed events are a 4xx, never a crash', () => {
  it.each([
    ['an empty object', {}, 404],
    ['no requestContext (method unknown, treated as GET)', { rawPath: '/resolveSession', rawQueryString: 'sessionId=console&transport=HTTP' }, 405],
    ['non-string fields', { rawPath: 42, rawQueryString: ['x'], requestContext: { http: { method: 7, sourceIp: {} } } }, 404],
    ['null fields', { rawPath: null, rawQueryString: null, requestContext: { http: null } }, 404],
    ['a POST with no query string', { rawPath: '/resolveSession', requestContext: { http: { method: 'POST' } } }, 400],
  ])('%s -> %s', async (_name, event, statusCode) => {
    const { handler, calls } = setup();
    const result = await handler(event as unknown as APIGatewayProxyEventV2, lambdaContext());
    expect(result.statusCode).toBe(statusCode);
    expect(JSON.parse(result.body!)).toHaveProperty('message');
    expect(calls).toEqual([]);
  });
});

describe('requestFromEvent', () => {
  it.each([
    ['the gateway fixture', loadFunctionUrlEvent('resolve-session-http'), { method: 'POST', path: '/resolveSession', rawQueryString: 'sessionId=console&transport=HTTP&clientIpAddress=203.0.113.25', sourceIp: '198.51.100.7', requestId: '4b1f5c0e-6d2a-4f57-9d0e-1c2b3a4d5e6f' }],
    ['the IPv6 fixture', loadFunctionUrlEvent('resolve-session-quic-prefixed-ipv6'), { method: 'POST', path: '/prod/resolveSession', rawQueryString: 'sessionId=console&transport=QUIC&clientIpAddress=2001%3Adb8%3A%3A25', sourceIp: '2001:db8:100::7', requestId: '4b1f5c0e-6d2a-4f57-9d0e-1c2b3a4d5e70' }],
    ['undefined', undefined, { method: 'GET', path: '/', rawQueryString: '', sourceIp: undefined, requestId: undefined }],
    ['a lowercase method', { requestContext: { http: { method: 'delete' } } }, { method: 'DELETE', path: '/', rawQueryString: '', sourceIp: undefined, requestId: undefined }],
    ['an over-long request id (events can be hand-made)', { requestContext: { requestId: 'x'.repeat(129) } }, { method: 'GET', path: '/', rawQueryString: '', sourceIp: undefined, requestId: undefined }],
  ])('%s', (_name, event, expected) => {
    const request = requestFromEvent(event as Partial<APIGatewayProxyEventV2> | undefined);
    expect(request).toMatchObject(expected);
    expect(request.scheme).toBe('https');
  });

  it("hands the portal the event's headers, with payload 2.0's separate cookies joined into one Cookie header", () => {
    const event = functionUrlEvent({ headers: { host: 'abc.lambda-url.eu-west-1.on.aws', origin: 'https://abc.lambda-url.eu-west-1.on.aws' } });
    const request = requestFromEvent({ ...event, cookies: ['dcv_portal=a.b', 'other=1'] });
    expect(request.headers).toMatchObject({ host: 'abc.lambda-url.eu-west-1.on.aws', cookie: 'dcv_portal=a.b; other=1' });
  });

  it('returns Set-Cookie values as the Function URL response\'s cookies (a header map holds only one)', async () => {
    const handler = createResolverHandler({
      store: new MemorySessionStore(ITEMS),
      logger: silentLogger(),
      tokens: new MemoryTokenStore(),
      portal: () => async () => ({ statusCode: 303, headers: { Location: '/portal' }, body: '', cookies: ['a=1; Path=/portal', 'b=; Max-Age=0'] }),
    });
    const answer = await handler(functionUrlEvent({ method: 'GET', path: '/portal/callback' }), lambdaContext());
    expect(answer).toMatchObject({ statusCode: 303, cookies: ['a=1; Path=/portal', 'b=; Max-Age=0'] });
  });

  it('takes the source address from requestContext.http.sourceIp, never X-Forwarded-For', () => {
    const event = functionUrlEvent({ sourceIp: '203.0.113.9', headers: { 'x-forwarded-for': '198.51.100.7' } });
    expect(requestFromEvent(event).sourceIp).toBe('203.0.113.9');
  });

  it('so an allow-list cannot be passed with a forged X-Forwarded-For (light; see access-*.test.ts)', async () => {
    const handler = createResolverHandler({
      store: new MemorySessionStore(ITEMS),
      logger: silentLogger(),
      allowedSources: CidrSet.parse(['198.51.100.0/24']),
    });
    const forged = functionUrlEvent({ sourceIp: '203.0.113.9', headers: { 'x-forwarded-for': '198.51.100.7' } });
    expect((await handler(forged, lambdaContext())).statusCode).toBe(403);
    const genuine = functionUrlEvent({ sourceIp: '198.51.100.7' });
    expect((await handler(genuine, lambdaContext())).body).toBe(CONSOLE_HTTP);
  });
});

describe('logging through Powertools', () => {
  /** Powertools writes INFO to stdout and WARN/ERROR to stderr; capture both, in order. */
  function captureOutput(): string[] {
    const lines: string[] = [];
    for (const stream of [process.stdout, process.stderr]) {
      vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
        lines.push(String(chunk));
        return true;
      });
    }
    return lines;
  }

  it('writes one JSON line per request, tagged with the Lambda request id by the middy middleware', async () => {
    const output = captureOutput();
    const logger = new Logger({ serviceName: 'dcv-session-resolver', logLevel: 'INFO' });
    const { handler } = setup(undefined, logger);
    await handler(loadFunctionUrlEvent('resolve-session-http'), lambdaContext('11111111-1111-4111-8111-111111111111'));
    await handler(functionUrlEvent({ rawQueryString: 'sessionId=ghost&transport=QUIC' }), lambdaContext('22222222-2222-4222-8222-222222222222'));
    vi.restoreAllMocks();

    const lines = output.join('').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const requests = lines.filter((l) => l.message === 'request');
    expect(requests).toHaveLength(2);
    expect(requests[0]).toMatchObject({
      level: 'INFO',
      service: 'dcv-session-resolver',
      function_request_id: '11111111-1111-4111-8111-111111111111',
      route: 'resolveSession',
      sessionId: 'console',
      transport: 'HTTP',
      endpoint: '10.0.1.15',
      sourceIp: '198.51.100.7',
      status: 200,
    });
    expect(requests[1]).toMatchObject({
      function_request_id: '22222222-2222-4222-8222-222222222222',
      sessionId: 'ghost',
      transport: 'QUIC',
      status: 404,
      reason: "no session 'ghost'",
    });
    // resetKeys: nothing from the first request's answer bleeds into the second line.
    expect(requests[1]).not.toHaveProperty('endpoint');
  });

  it('logs a malformed item once, as a warning with its key and reason', async () => {
    const output = captureOutput();
    const logger = new Logger({ serviceName: 'dcv-session-resolver', logLevel: 'WARN' });
    const { handler } = setup(new MemorySessionStore([{ SessionId: 'broken', DcvServerEndpoint: '10.0.0.1', HttpPort: '0' }]), logger);
    for (let i = 0; i < 3; i++) {
      const result = await handler(functionUrlEvent({ rawQueryString: 'sessionId=broken&transport=HTTP' }), lambdaContext());
      expect(result.statusCode).toBe(404);
    }
    vi.restoreAllMocks();
    const lines = output.join('').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'WARN', message: 'malformed session item skipped', sessionId: 'broken', reason: 'HttpPort must be 1–65535' });
  });
});
