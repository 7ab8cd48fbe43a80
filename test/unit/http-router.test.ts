import { describe, expect, it } from 'vitest';
import { createRouter, jsonResponse, sourceCheck, type HttpRequest } from '../../lambda/core/http-router';
import { CidrSet } from '../../lambda/core/ip';
import { SessionResolver } from '../../lambda/core/resolve';
import type { RawItem } from '../../lambda/core/session-record';
import { MemorySessionStore, type SessionStore } from '../../lambda/core/session-store';
import { RecordingLog } from '../helpers/recording-log';

const ITEMS: RawItem[] = [
  { SessionId: 'console', DcvServerEndpoint: '10.0.1.15', HttpPort: 8443, QuicPort: 4443 },
  { SessionId: 'alice', DcvServerEndpoint: 'dcv-alice.example.internal', HttpPort: '443', TargetSessionId: 'console', WebUrlPath: '/dcv' },
  { SessionId: 'desktop', DcvServerEndpoint: '10.0.1.16' },
];

const JSON_HEADERS = { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' };
const CONSOLE_HTTP = '{"SessionId":"console","TransportProtocol":"HTTP","DcvServerEndpoint":"10.0.1.15","Port":8443,"WebUrlPath":"/"}';

function setup(store: SessionStore = new MemorySessionStore(ITEMS), extra: { allowedSources?: CidrSet; pathPrefix?: string } = {}) {
  const log = new RecordingLog();
  const calls: string[] = [];
  const counting: SessionStore = {
    get: (id) => {
      calls.push(id);
      return store.get(id);
    },
  };
  const resolver = new SessionResolver({ store: counting, log, now: () => 1_700_000_000_000 });
  const route = createRouter({ resolver, log, ...extra });
  return { route, log, calls };
}

function request(method: string, target: string, sourceIp = '198.51.100.7'): HttpRequest {
  const q = target.indexOf('?');
  return {
    method,
    path: q === -1 ? target : target.slice(0, q),
    rawQueryString: q === -1 ? '' : target.slice(q + 1),
    sourceIp,
  };
}

describe('routing and the exact answer', () => {
  it.each([
    ['the gateway’s request', 'POST', '/resolveSession?sessionId=console&transport=HTTP&clientIpAddress=203.0.113.25', 200, CONSOLE_HTTP],
    ['QUIC', 'POST', '/resolveSession?sessionId=console&transport=QUIC', 200, '{"SessionId":"console","TransportProtocol":"QUIC","DcvServerEndpoint":"10.0.1.15","Port":4443,"WebUrlPath":"/"}'],
    ['remapped, string port', 'POST', '/resolveSession?sessionId=alice&transport=HTTP', 200, '{"SessionId":"console","TransportProtocol":"HTTP","DcvServerEndpoint":"dcv-alice.example.internal","Port":443,"WebUrlPath":"/dcv"}'],
    ['a path prefix (/prod/resolveSession)', 'POST', '/prod/resolveSession?sessionId=console&transport=HTTP', 200, CONSOLE_HTTP],
    ['a deep path prefix', 'POST', '/a/b/c/resolveSession?sessionId=console&transport=HTTP', 200, CONSOLE_HTTP],
    ['unknown query parameters', 'POST', '/resolveSession?sessionId=console&transport=HTTP&x=1&debug=true', 200, CONSOLE_HTTP],
    ['unknown session', 'POST', '/resolveSession?sessionId=ghost&transport=HTTP', 404, `{"error":"NotFoundError","message":"no session 'ghost'"}`],
    ['QUIC without QuicPort', 'POST', '/resolveSession?sessionId=desktop&transport=QUIC', 404, `{"error":"NotFoundError","message":"session 'desktop' does not offer QUIC"}`],
    ['missing sessionId', 'POST', '/resolveSession?transport=HTTP', 400, '{"error":"BadRequestError","message":"sessionId is required"}'],
    ['no query at all', 'POST', '/resolveSession', 400, '{"error":"BadRequestError","message":"sessionId is required"}'],
    ['lowercase transport', 'POST', '/resolveSession?sessionId=console&transport=quic', 400, '{"error":"BadRequestError","message":"transport must be HTTP or QUIC"}'],
    ['repeated parameter', 'POST', '/resolveSession?sessionId=console&transport=HTTP&transport=HTTP', 400, '{"error":"BadRequestError","message":"transport must be given once, not 2 times"}'],
    ['GET on resolveSession', 'GET', '/resolveSession?sessionId=console&transport=HTTP', 405, '{"error":"MethodNotAllowedError","message":"method not allowed; use POST"}'],
    ['PUT on resolveSession', 'PUT', '/resolveSession?sessionId=console&transport=HTTP', 405, '{"error":"MethodNotAllowedError","message":"method not allowed; use POST"}'],
    ['DELETE on a prefixed resolveSession', 'DELETE', '/prod/resolveSession', 405, '{"error":"MethodNotAllowedError","message":"method not allowed; use POST"}'],
    ['OPTIONS on resolveSession', 'OPTIONS', '/resolveSession', 405, '{"error":"MethodNotAllowedError","message":"method not allowed; use POST"}'],
    ['GET /health', 'GET', '/health', 200, '{"status":"ok"}'],
    ['HEAD /health', 'HEAD', '/health', 200, '{"status":"ok"}'],
    ['POST /health', 'POST', '/health', 405, '{"error":"MethodNotAllowedError","message":"method not allowed; use GET or HEAD"}'],
    ['the root', 'POST', '/', 404, '{"error":"NotFoundError","message":"unknown path; the resolver answers POST …/resolveSession and POST …/verifyToken"}'],
    ['a trailing slash', 'POST', '/resolveSession/?sessionId=console&transport=HTTP', 404, '{"error":"NotFoundError","message":"unknown path; the resolver answers POST …/resolveSession and POST …/verifyToken"}'],
    ['wrong case', 'POST', '/resolvesession?sessionId=console&transport=HTTP', 404, '{"error":"NotFoundError","message":"unknown path; the resolver answers POST …/resolveSession and POST …/verifyToken"}'],
    ['a suffix that is not a segment', 'POST', '/xresolveSession?sessionId=console&transport=HTTP', 404, '{"error":"NotFoundError","message":"unknown path; the resolver answers POST …/resolveSession and POST …/verifyToken"}'],
    ['a longer name', 'POST', '/resolveSessions?sessionId=console&transport=HTTP', 404, '{"error":"NotFoundError","message":"unknown path; the resolver answers POST …/resolveSession and POST …/verifyToken"}'],
    ['health under a prefix', 'GET', '/prod/health', 404, '{"error":"NotFoundError","message":"unknown path; the resolver answers POST …/resolveSession and POST …/verifyToken"}'],
    ['an unknown path with GET', 'GET', '/favicon.ico', 404, '{"error":"NotFoundError","message":"unknown path; the resolver answers POST …/resolveSession and POST …/verifyToken"}'],
  ])('%s: %s %s -> %s', async (_name, method, target, status, body) => {
    const { route } = setup();
    const response = await route(request(method, target));
    expect(response.statusCode).toBe(status);
    expect(response.body).toBe(body);
    const allow = status === 405 ? { Allow: target.includes('health') ? 'GET, HEAD' : 'POST' } : {};
    expect(response.headers).toEqual({ ...JSON_HEADERS, ...allow });
  });

  it.each([
    ['GET /health', 'GET', '/health'],
    ['HEAD /health', 'HEAD', '/health'],
    ['405 on resolveSession', 'GET', '/resolveSession?sessionId=console&transport=HTTP'],
    ['unknown path', 'POST', '/other?sessionId=console&transport=HTTP'],
    ['400 on resolveSession', 'POST', '/resolveSession?sessionId=console&transport=udp'],
    ['over-long sessionId', 'POST', `/resolveSession?sessionId=${'x'.repeat(257)}&transport=HTTP`],
  ])('%s never touches the store', async (_name, method, target) => {
    const { route, calls } = setup();
    await route(request(method, target));
    expect(calls).toEqual([]);
  });

  it('answers /health even when the store is down', async () => {
    const { route } = setup({ get: () => Promise.reject(new Error('down')) });
    expect((await route(request('GET', '/health'))).statusCode).toBe(200);
  });
});

describe('failures never leak internals', () => {
  it('store failure -> 503 with Retry-After and a generic message', async () => {
    const { route, log } = setup({ get: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:8000 table/Secret')) });
    const response = await route(request('POST', '/resolveSession?sessionId=console&transport=HTTP'));
    expect(response).toEqual({
      statusCode: 503,
      headers: { ...JSON_HEADERS, 'Retry-After': '1' },
      body: '{"error":"ServiceUnavailableError","message":"session store unavailable; try again"}',
    });
    expect(log.find('session store failed', 'error')).toHaveLength(1);
  });

  it("the store-failure line and the request line both carry the request's id", async () => {
    const { route, log } = setup({ get: () => Promise.reject(new Error('down')) });
    await route({ ...request('POST', '/resolveSession?sessionId=console&transport=HTTP'), requestId: 'req-42' });
    expect(log.find('session store failed', 'error').map((e) => e.fields.requestId)).toEqual(['req-42']);
    expect(log.find('request', 'info').map((e) => e.fields.requestId)).toEqual(['req-42']);
  });

  it('an unexpected exception -> 500 with a generic body, details only in the log', async () => {
    const log = new RecordingLog();
    const resolver = {
      resolve: () => Promise.reject(new Error('secret internals at /var/task/index.mjs:1:2')),
    } as unknown as SessionResolver;
    const route = createRouter({ resolver, log });
    const response = await route(request('POST', '/resolveSession?sessionId=console&transport=HTTP'));
    expect(response).toEqual({
      statusCode: 500,
      headers: JSON_HEADERS,
      body: '{"error":"InternalError","message":"internal error"}',
    });
    expect(log.find('unexpected error', 'error').map((e) => e.fields)).toEqual([
      { error: { name: 'Error', message: 'secret internals at /var/task/index.mjs:1:2' } },
    ]);
  });
});

describe('one log line per request', () => {
  it.each([
    ['a hit', 'POST', '/resolveSession?sessionId=console&transport=HTTP', { route: 'resolveSession', sessionId: 'console', transport: 'HTTP', endpoint: '10.0.1.15', status: 200 }],
    ['a 404', 'POST', '/resolveSession?sessionId=ghost&transport=QUIC', { route: 'resolveSession', sessionId: 'ghost', transport: 'QUIC', status: 404, reason: "no session 'ghost'" }],
    ['a 400', 'POST', '/resolveSession?transport=HTTP', { route: 'resolveSession', transport: 'HTTP', status: 400, reason: 'sessionId is required' }],
    ['a 405', 'GET', '/resolveSession', { route: 'resolveSession', status: 405, reason: 'method not allowed; use POST' }],
    ['health', 'GET', '/health', { route: 'health', status: 200 }],
    ['an unknown path', 'GET', '/nope', { route: 'unknown', status: 404 }],
  ])('%s', async (_name, method, target, expected) => {
    const { route, log } = setup();
    await route(request(method, target));
    const lines = log.find('request', 'info');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.fields).toMatchObject({ sourceIp: '198.51.100.7', ...expected });
    expect(typeof lines[0]!.fields.ms).toBe('number');
    expect(lines[0]!.fields.ms as number).toBeGreaterThanOrEqual(0);
  });

  it('clips an untrusted sessionId in the log line', async () => {
    const { route, log } = setup();
    await route(request('POST', `/resolveSession?sessionId=${'z'.repeat(200)}&transport=HTTP`));
    expect(log.find('request')[0]!.fields.sessionId).toBe(`${'z'.repeat(64)}…`);
  });
});

// Access control is covered in depth by test/unit/access-*.test.ts; here only that the options plug in.
describe('access-control options (light)', () => {
  it('allowedSources: a caller outside the list gets 403, inside gets the answer', async () => {
    const { route, calls } = setup(undefined, { allowedSources: CidrSet.parse(['198.51.100.0/24']) });
    const outside = await route(request('POST', '/resolveSession?sessionId=console&transport=HTTP', '203.0.113.1'));
    expect(outside.statusCode).toBe(403);
    expect(calls).toEqual([]);
    const inside = await route(request('POST', '/resolveSession?sessionId=console&transport=HTTP', '198.51.100.7'));
    expect(inside.body).toBe(CONSOLE_HTTP);
  });

  it('pathPrefix: only /<prefix>/resolveSession answers', async () => {
    const { route } = setup(undefined, { pathPrefix: 's3cr3t' });
    expect((await route(request('POST', '/s3cr3t/resolveSession?sessionId=console&transport=HTTP'))).body).toBe(CONSOLE_HTTP);
    expect((await route(request('POST', '/resolveSession?sessionId=console&transport=HTTP'))).statusCode).toBe(404);
    expect((await route(request('POST', '/wrong/resolveSession?sessionId=console&transport=HTTP'))).statusCode).toBe(404);
  });

  // Strict under a prefix: the secret is the first segment and the route is exactly what follows it (the gateway
  // appends /resolveSession to its url, a DCV server's verifier url is …/verifyToken/<server>). Without a prefix,
  // any path ending in /resolveSession still answers (the gateway's url may carry a path of its own).
  it.each([
    ['an extra segment before resolveSession', '/s3cr3t/x/resolveSession'],
    ['several extra segments', '/s3cr3t/a/b/resolveSession'],
    ['the prefix twice', '/s3cr3t/s3cr3t/resolveSession'],
    ['an empty segment', '/s3cr3t//resolveSession'],
    ['an extra segment before verifyToken', '/s3cr3t/x/verifyToken/10.0.1.15'],
    ['an extra segment before a bare verifyToken', '/s3cr3t/x/verifyToken'],
    ['an extra segment before health', '/s3cr3t/x/health'],
  ])('pathPrefix: %s is an unknown path (404), the store untouched', async (_name, path) => {
    const { route, calls } = setup(undefined, { pathPrefix: 's3cr3t' });
    const answer = await route(request('POST', `${path}?sessionId=console&transport=HTTP`));
    expect(answer.statusCode).toBe(404);
    expect(answer.body).toBe('{"error":"NotFoundError","message":"unknown path; the resolver answers POST …/resolveSession and POST …/verifyToken"}');
    expect(calls).toEqual([]);
  });

  it('pathPrefix: /<prefix>/verifyToken[/<server>] is the verifier route (here without a token store: its own 404)', async () => {
    const { route } = setup(undefined, { pathPrefix: 's3cr3t' });
    for (const path of ['/s3cr3t/verifyToken/10.0.1.15', '/s3cr3t/verifyToken']) {
      const answer = await route(request('POST', path));
      expect(answer.statusCode).toBe(404);
      expect(answer.body).not.toContain('unknown path');
    }
  });

  it('without a prefix, any path ending in /resolveSession answers', async () => {
    const { route } = setup();
    expect((await route(request('POST', '/x/resolveSession?sessionId=console&transport=HTTP'))).body).toBe(CONSOLE_HTTP);
  });
});

describe("the portal's routes apart from the gateway's", () => {
  const portalPage = async () => ({ statusCode: 200, headers: {}, body: 'portal page' });
  const GATEWAY_LIST = CidrSet.parse(['198.51.100.0/24']);
  const PORTAL_LIST = CidrSet.parse(['192.0.2.0/24']);

  it('sourceCheck: /portal and /portal/… answer to the portal list, everything else (prefix or not) to the gateway list', () => {
    const check = sourceCheck({ allowedSources: GATEWAY_LIST, portalAllowedSources: PORTAL_LIST, portal: true });
    expect(check('/portal', '192.0.2.1')).toBe(true);
    expect(check('/portal/callback', '192.0.2.1')).toBe(true);
    expect(check('/portal', '198.51.100.7')).toBe(false);
    expect(check('/resolveSession', '192.0.2.1')).toBe(false);
    expect(check('/s3cr3t/portal', '192.0.2.1')).toBe(false);
    expect(check('/portalx', '192.0.2.1')).toBe(false);
    expect(check('/s3cr3t/verifyToken/10.0.0.1', '198.51.100.7')).toBe(true);
    expect(check('/portal', undefined)).toBe(false);
    // No portal list: anyone on the portal's paths; no portal: those paths are the gateway's like any other.
    expect(sourceCheck({ allowedSources: GATEWAY_LIST, portal: true })('/portal', '203.0.113.1')).toBe(true);
    expect(sourceCheck({ allowedSources: GATEWAY_LIST, portalAllowedSources: PORTAL_LIST, portal: false })('/portal', '192.0.2.1')).toBe(false);
  });

  it('a caller outside the gateway list gets 403 on every non-portal path whatever prefix it guesses, and the portal page', async () => {
    const log = new RecordingLog();
    const resolver = new SessionResolver({ store: new MemorySessionStore(ITEMS), log });
    const route = createRouter({ resolver, log, allowedSources: GATEWAY_LIST, pathPrefix: 's3cr3t', portal: portalPage });
    const outsider = '203.0.113.1';
    for (const target of ['/s3cr3t/resolveSession?sessionId=console&transport=HTTP', '/guess/resolveSession?sessionId=console&transport=HTTP', '/s3cr3t/verifyToken/10.0.1.15', '/s3cr3t/health', '/nothing']) {
      expect((await route(request('POST', target, outsider))).statusCode, target).toBe(403);
    }
    expect((await route(request('GET', '/portal', outsider))).body).toBe('portal page');
    // Under the prefix, /portal is not the portal.
    expect((await route(request('GET', '/s3cr3t/portal', '198.51.100.7'))).statusCode).toBe(404);
  });

  it('without a resolver (the portal function) /resolveSession and /verifyToken are 404 and the portal answers', async () => {
    const log = new RecordingLog();
    const route = createRouter({ log, portal: portalPage });
    expect((await route(request('POST', '/resolveSession?sessionId=console&transport=HTTP'))).statusCode).toBe(404);
    expect((await route(request('POST', '/verifyToken/10.0.1.15'))).statusCode).toBe(404);
    expect((await route(request('GET', '/portal/'))).body).toBe('portal page');
  });
});

describe('jsonResponse', () => {
  it('serialises the body and merges extra headers over the JSON defaults', () => {
    expect(jsonResponse(201, { a: 1 }, { 'X-Extra': 'y' })).toEqual({
      statusCode: 201,
      headers: { ...JSON_HEADERS, 'X-Extra': 'y' },
      body: '{"a":1}',
    });
  });
});
