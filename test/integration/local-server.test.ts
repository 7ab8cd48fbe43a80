import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MAX_BODY_BYTES, requestFromIncoming, startLocalServer, type RunningServer } from '../../lambda/adapters/local-server';
import type { HttpRequest, Router } from '../../lambda/core/http-router';
import type { RawItem } from '../../lambda/core/session-record';
import { MemorySessionStore, type SessionStore } from '../../lambda/core/session-store';
import { createResolverRouter } from '../../lambda/handlers/resolver-handler';
import { CidrSet } from '../../lambda/core/ip';
import { parseServeArgs, SERVE_USAGE } from '../../lambda/cli/serve-command';
import { RecordingLog } from '../helpers/recording-log';

const ITEMS: RawItem[] = [
  { SessionId: 'console', DcvServerEndpoint: '10.150.248.180', HttpPort: 8443, QuicPort: 8443, WebUrlPath: '/' },
  { SessionId: 'desktop', DcvServerEndpoint: '10.150.248.136', HttpPort: '8443' },
];
const CONSOLE_HTTP = '{"SessionId":"console","TransportProtocol":"HTTP","DcvServerEndpoint":"10.150.248.180","Port":8443,"WebUrlPath":"/"}';
const UNKNOWN_PATH = '{"error":"NotFoundError","message":"unknown path; the resolver answers POST …/resolveSession and POST …/verifyToken"}';

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

interface Call {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string | number>;
  readonly body?: string | Buffer;
  /** Write the body in chunks without a Content-Length (chunked transfer encoding). */
  readonly chunks?: Buffer[];
}

/** One HTTP/1.1 request over a fresh loopback connection. */
function call(baseUrl: string, options: Call): Promise<Reply> {
  const url = new URL(options.path, baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port,
        path: url.pathname + url.search,
        method: options.method ?? 'POST',
        headers: { accept: 'application/json', ...options.headers },
        agent: false,
      },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    if (options.chunks) {
      for (const chunk of options.chunks) req.write(chunk);
      req.end();
    } else {
      req.end(options.body);
    }
  });
}

/** Writes raw bytes to the server and returns everything it sends back until it closes. */
function raw(port: number, text: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port }, () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')));
  });
}

function silentLogger(): Logger {
  return new Logger({ serviceName: 'test', logLevel: 'SILENT' });
}

/** The real router, with every request it receives recorded. */
function recordingRouter(store: SessionStore, events: HttpRequest[]): Router {
  const inner = createResolverRouter({ store, logger: silentLogger() });
  return (request) => {
    events.push(request);
    return inner(request);
  };
}

const events: HttpRequest[] = [];
const storeCalls: string[] = [];
let server: RunningServer;
let port: number;

beforeAll(async () => {
  const memory = new MemorySessionStore(ITEMS);
  const store: SessionStore = {
    get: (id) => {
      storeCalls.push(id);
      return memory.get(id);
    },
  };
  server = await startLocalServer({ route: recordingRouter(store, events), log: new RecordingLog(), host: '127.0.0.1', port: 0 });
  port = (server.server.address() as AddressInfo).port;
});

afterAll(() => server?.close());

beforeEach(() => {
  events.length = 0;
  storeCalls.length = 0;
});

describe('the gateway’s request over real HTTP', () => {
  it('answers exactly the contract’s JSON with the right headers', async () => {
    expect(server.url).toBe(`http://127.0.0.1:${port}`);
    const reply = await call(server.url, { path: '/resolveSession?sessionId=console&transport=HTTP&clientIpAddress=203.0.113.25' });
    expect(reply.status).toBe(200);
    expect(reply.body).toBe(CONSOLE_HTTP);
    expect(reply.headers['content-type']).toBe('application/json');
    expect(reply.headers['cache-control']).toBe('no-store');
    expect(reply.headers['content-length']).toBe(String(Buffer.byteLength(CONSOLE_HTTP)));
    expect(reply.headers).not.toHaveProperty('x-powered-by');
    expect(reply.headers).not.toHaveProperty('location');
  });

  it.each([
    ['QUIC', 'POST', '/resolveSession?sessionId=console&transport=QUIC', 200, '{"SessionId":"console","TransportProtocol":"QUIC","DcvServerEndpoint":"10.150.248.180","Port":8443,"WebUrlPath":"/"}'],
    ['a path prefix', 'POST', '/prod/resolveSession?sessionId=console&transport=HTTP', 200, CONSOLE_HTTP],
    ['unknown query parameters', 'POST', '/resolveSession?sessionId=console&transport=HTTP&client=web&v=2', 200, CONSOLE_HTTP],
    ['an IPv6 clientIpAddress', 'POST', '/resolveSession?sessionId=console&transport=HTTP&clientIpAddress=2001:db8::25', 200, CONSOLE_HTTP],
    ['unknown session', 'POST', '/resolveSession?sessionId=ghost&transport=HTTP', 404, `{"error":"NotFoundError","message":"no session 'ghost'"}`],
    ['QUIC without QuicPort', 'POST', '/resolveSession?sessionId=desktop&transport=QUIC', 404, `{"error":"NotFoundError","message":"session 'desktop' does not offer QUIC"}`],
    ['missing sessionId', 'POST', '/resolveSession?transport=HTTP', 400, '{"error":"BadRequestError","message":"sessionId is required"}'],
    ['lowercase transport', 'POST', '/resolveSession?sessionId=console&transport=http', 400, '{"error":"BadRequestError","message":"transport must be HTTP or QUIC"}'],
    ['a repeated parameter', 'POST', '/resolveSession?sessionId=console&sessionId=desktop&transport=HTTP', 400, '{"error":"BadRequestError","message":"sessionId must be given once, not 2 times"}'],
    ['a control character', 'POST', '/resolveSession?sessionId=console%0d%0aX-Injected:%201&transport=HTTP', 400, '{"error":"BadRequestError","message":"sessionId must not contain control characters"}'],
    ['unknown path', 'POST', '/other', 404, UNKNOWN_PATH],
    ['root', 'GET', '/', 404, UNKNOWN_PATH],
    ['GET /health', 'GET', '/health', 200, '{"status":"ok"}'],
  ])('%s: %s %s -> %s', async (_name, method, path, status, body) => {
    const reply = await call(server.url, { method, path });
    expect({ status: reply.status, body: reply.body, type: reply.headers['content-type'] }).toEqual({ status, body, type: 'application/json' });
  });

  it.each(['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])('%s /resolveSession -> 405 with Allow: POST', async (method) => {
    const reply = await call(server.url, { method, path: '/resolveSession?sessionId=console&transport=HTTP' });
    expect(reply.status).toBe(405);
    expect(reply.headers.allow).toBe('POST');
    expect(reply.body).toBe('{"error":"MethodNotAllowedError","message":"method not allowed; use POST"}');
    expect(storeCalls).toEqual([]);
  });

  it('POST /health -> 405 with Allow: GET, HEAD', async () => {
    const reply = await call(server.url, { method: 'POST', path: '/health' });
    expect(reply.status).toBe(405);
    expect(reply.headers.allow).toBe('GET, HEAD');
  });

  it('HEAD /health -> 200 with headers and no body; health never touches the store', async () => {
    const reply = await call(server.url, { method: 'HEAD', path: '/health' });
    expect(reply.status).toBe(200);
    expect(reply.body).toBe('');
    expect(reply.headers['content-type']).toBe('application/json');
    expect(reply.headers['content-length']).toBe(String('{"status":"ok"}'.length));
    await call(server.url, { method: 'GET', path: '/health' });
    expect(storeCalls).toEqual([]);
  });

  it('accepts an absolute-form request target', async () => {
    const response = await raw(
      port,
      `POST http://127.0.0.1:${port}/resolveSession?sessionId=console&transport=HTTP HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
    );
    expect(response).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(response.endsWith(`\r\n\r\n${CONSOLE_HTTP}`)).toBe(true);
  });

  it('serves several requests on one keep-alive connection', async () => {
    const request = `POST /resolveSession?sessionId=console&transport=HTTP HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`;
    const last = `POST /resolveSession?sessionId=desktop&transport=HTTP HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
    const response = await raw(port, request + request + last);
    expect(response.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(3);
    expect(response).toContain('"SessionId":"desktop"');
  });
});

describe('request bodies are bounded', () => {
  it(`refuses a declared Content-Length over ${MAX_BODY_BYTES} bytes with 413, without reading it or asking the store`, async () => {
    const response = await raw(
      port,
      `POST /resolveSession?sessionId=console&transport=HTTP HTTP/1.1\r\nHost: x\r\nContent-Length: ${MAX_BODY_BYTES + 1}\r\n\r\n`,
    );
    expect(response).toMatch(/^HTTP\/1\.1 413 /);
    expect(response).toMatch(/\r\ncontent-type: application\/json\r\n/i);
    expect(response.endsWith(`\r\n\r\n{"error":"PayloadTooLargeError","message":"request body must be at most ${MAX_BODY_BYTES} bytes"}`)).toBe(true);
    expect(response).toMatch(/\r\nconnection: close\r\n/i);
    expect(events.map((e) => [e.body, e.bodyTooLarge])).toEqual([['', MAX_BODY_BYTES]]);
    expect(storeCalls).toEqual([]);
  });

  it('refuses a chunked body that grows past the limit with 413', async () => {
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    // 80 KiB fits in the loopback socket buffers, so the client finishes writing and reads the answer.
    const reply = await call(server.url, {
      path: '/resolveSession?sessionId=console&transport=HTTP',
      chunks: Array.from({ length: 5 }, () => chunk),
    });
    expect(reply.status).toBe(413);
    expect(reply.headers['content-type']).toBe('application/json');
    expect(JSON.parse(reply.body)).toEqual({ error: 'PayloadTooLargeError', message: `request body must be at most ${MAX_BODY_BYTES} bytes` });
    expect(events.map((e) => e.bodyTooLarge)).toEqual([MAX_BODY_BYTES]);
    expect(storeCalls).toEqual([]);
  });

  it('accepts (and ignores) a body of exactly the limit', async () => {
    const reply = await call(server.url, {
      path: '/resolveSession?sessionId=console&transport=HTTP',
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(MAX_BODY_BYTES, 0x61),
    });
    expect(reply.status).toBe(200);
    expect(reply.body).toBe(CONSOLE_HTTP);
    expect(events[0]!.body).toHaveLength(MAX_BODY_BYTES);
  });
});

describe('malformed HTTP never reaches the handler', () => {
  it.each([
    ['garbage instead of a request line', 'HELLO WORLD\r\n\r\n'],
    ['a header line without a colon', 'POST /resolveSession?sessionId=console&transport=HTTP HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n'],
    ['a bad Content-Length', 'POST /resolveSession?sessionId=console&transport=HTTP HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'],
    ['a bad chunk size', 'POST /resolveSession?sessionId=console&transport=HTTP HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['an unsupported HTTP version', 'POST /resolveSession HTTP/9.9\r\nHost: x\r\n\r\n'],
  ])('%s -> 400 with a JSON body, connection closed', async (_name, text) => {
    const response = await raw(port, text);
    expect(response).toBe(
      'HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 62\r\nConnection: close\r\n\r\n{"error":"BadRequestError","message":"malformed HTTP request"}',
    );
    expect(events).toEqual([]);
  });

  it('the server keeps serving after malformed requests', async () => {
    await raw(port, 'NONSENSE\r\n\r\n');
    expect((await call(server.url, { path: '/resolveSession?sessionId=console&transport=HTTP' })).status).toBe(200);
  });
});

describe('the request the router sees', () => {
  it('takes sourceIp from the socket, never from X-Forwarded-For', async () => {
    await call(server.url, {
      path: '/resolveSession?sessionId=console&transport=HTTP',
      headers: { 'x-forwarded-for': '198.51.100.7', forwarded: 'for=198.51.100.7', 'x-real-ip': '198.51.100.7' },
    });
    expect(events).toHaveLength(1);
    expect(events[0]!.sourceIp).toBe('127.0.0.1');
  });

  it('mirrors the request: method, raw path, raw query, body, content type, a fresh request id', async () => {
    await call(server.url, {
      path: '/prod/resolveSession?sessionId=console&transport=QUIC&x=1&x=2',
      headers: { 'user-agent': 'dcv-connection-gateway/2024.0', 'content-type': 'text/plain' },
      body: 'hello',
    });
    const request = events[0]!;
    expect(request).toMatchObject({
      method: 'POST',
      path: '/prod/resolveSession',
      rawQueryString: 'sessionId=console&transport=QUIC&x=1&x=2',
      sourceIp: '127.0.0.1',
      body: 'hello',
      contentType: 'text/plain',
    });
    expect(request.requestId).toMatch(/^[0-9a-f-]{36}$/);
    await call(server.url, { path: '/resolveSession?sessionId=console&transport=HTTP' });
    expect(events[1]!.requestId).not.toBe(request.requestId);
  });

  it('requestFromIncoming folds an IPv4-mapped peer address and tolerates a missing URL', () => {
    const fake = { url: undefined, method: undefined, headers: { host: 'h' }, socket: { remoteAddress: '::ffff:192.0.2.10' } };
    const request = requestFromIncoming(fake as never, '');
    expect(request).toMatchObject({ method: 'GET', path: '/', rawQueryString: '', sourceIp: '192.0.2.10', body: '' });
    expect(request.contentType).toBeUndefined();
  });

  it.each([
    ['an absolute-form URL', 'http://example.com:9000/p/resolveSession?a=1', '/p/resolveSession', 'a=1'],
    ['an asterisk', '*', '/', ''],
    ['a relative path with an empty query', '/resolveSession?', '/resolveSession', ''],
  ])('requestFromIncoming: %s', (_name, url, path, rawQueryString) => {
    const fake = { url, method: 'POST', headers: {}, socket: { remoteAddress: '::1' } };
    const request = requestFromIncoming(fake as never, '');
    expect([request.path, request.rawQueryString, request.sourceIp]).toEqual([path, rawQueryString, '::1']);
  });
});

describe('failures', () => {
  it('a handler that throws becomes a generic 500, logged without details in the response', async () => {
    const log = new RecordingLog();
    const broken = await startLocalServer({
      route: () => Promise.reject(new Error('secret: /var/task/index.mjs')),
      log,
      port: 0,
    });
    try {
      const reply = await call(broken.url, { path: '/resolveSession?sessionId=console&transport=HTTP' });
      expect(reply.status).toBe(500);
      expect(reply.body).toBe('{"error":"InternalError","message":"internal error"}');
      expect(log.find('handler failed', 'error').map((e) => e.fields)).toEqual([{ message: 'secret: /var/task/index.mjs' }]);
    } finally {
      await broken.close();
    }
  });

  it('a store outage is a 503 with Retry-After over HTTP', async () => {
    const down = await startLocalServer({
      route: createResolverRouter({ store: { get: () => Promise.reject(new Error('ECONNREFUSED')) }, logger: silentLogger() }),
      log: new RecordingLog(),
      port: 0,
    });
    try {
      const reply = await call(down.url, { path: '/resolveSession?sessionId=console&transport=HTTP' });
      expect(reply.status).toBe(503);
      expect(reply.headers['retry-after']).toBe('1');
      expect(reply.body).toBe('{"error":"ServiceUnavailableError","message":"session store unavailable; try again"}');
    } finally {
      await down.close();
    }
  });

  it('a taken port rejects with EADDRINUSE instead of crashing', async () => {
    const blocker = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as AddressInfo).port;
    try {
      await expect(
        startLocalServer({ route: recordingRouter(new MemorySessionStore(), []), log: new RecordingLog(), host: '127.0.0.1', port: taken }),
      ).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('close() stops accepting connections', async () => {
    const temp = await startLocalServer({ route: recordingRouter(new MemorySessionStore(ITEMS), []), log: new RecordingLog(), port: 0 });
    const tempPort = (temp.server.address() as AddressInfo).port;
    expect((await call(temp.url, { method: 'GET', path: '/health' })).status).toBe(200);
    await temp.close();
    await expect(call(`http://127.0.0.1:${tempPort}`, { method: 'GET', path: '/health' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

/** Whether this host has ::1 on an interface (CI and this machine do); then serving on it must work. */
const HAS_IPV6_LOOPBACK = Object.values(networkInterfaces()).some((list) => list?.some((i) => i.family === 'IPv6' && i.address === '::1'));

describe('IPv6 loopback', () => {
  // Decided by the host's interfaces, not by whether listening worked: where ::1 exists (CI, this machine),
  // serving on it must work; only a host without it may refuse, and then with a listen error.
  it(`serves on [::1] and reports the IPv6 peer as sourceIp (this host ${HAS_IPV6_LOOPBACK ? 'has' : 'has no'} ::1)`, async () => {
    const seen: HttpRequest[] = [];
    const started = startLocalServer({ route: recordingRouter(new MemorySessionStore(ITEMS), seen), log: new RecordingLog(), host: '::1', port: 0 });
    if (!HAS_IPV6_LOOPBACK) {
      const error = await started.then((v6) => v6.close().then(() => new Error('listened on ::1 although no interface has it')), (e: unknown) => e);
      expect(['EADDRNOTAVAIL', 'EAFNOSUPPORT']).toContain((error as NodeJS.ErrnoException).code);
      return;
    }
    const v6 = await started;
    try {
      const v6Port = (v6.server.address() as AddressInfo).port;
      expect(v6.url).toBe(`http://[::1]:${v6Port}`);
      const reply = await call(v6.url, { path: '/resolveSession?sessionId=console&transport=HTTP', headers: { 'x-forwarded-for': '203.0.113.1' } });
      expect(reply.status).toBe(200);
      expect(reply.body).toBe(CONSOLE_HTTP);
      expect(seen[0]!.sourceIp).toBe('::1');
    } finally {
      await v6.close();
    }
  });
});

/**
 * Callers that must not hold the server's memory or sockets: a refused peer is answered 403 from its address
 * alone (the body is never read), a slow or stalled request is cut off by the header and request timeouts,
 * and connections beyond the cap are dropped. Loopback only; every loop is bounded.
 */
describe('refused, stalled and trickling callers', () => {
  const head = (extra = '', length = 65_536) =>
    `POST /resolveSession?sessionId=console&transport=HTTP HTTP/1.1\r\nHost: x\r\nContent-Length: ${length}\r\n${extra}\r\n`;

  it('answers 200 refused callers that stall mid-body with 403 and closes, without reading a body byte', async () => {
    const seen: HttpRequest[] = [];
    const allowedSources = CidrSet.parse(['10.0.0.0/8']);
    const inner = createResolverRouter({ store: new MemorySessionStore(ITEMS), logger: silentLogger(), allowedSources });
    const route: Router = (request) => {
      seen.push(request);
      return inner(request);
    };
    const guarded = await startLocalServer({ route, log: new RecordingLog(), port: 0, allowedSources });
    try {
      const guardedPort = (guarded.server.address() as AddressInfo).port;
      // Each declares 64 KiB, sends 30,000 bytes of it and stalls: raw() fails if the server does not close.
      const answers = await Promise.all(Array.from({ length: 200 }, () => raw(guardedPort, head() + 'x'.repeat(30_000))));
      for (const answer of answers) {
        expect(answer).toMatch(/^HTTP\/1\.1 403 /);
        expect(answer).toMatch(/\r\nconnection: close\r\n/i);
        expect(answer).toContain('"error":"ForbiddenError"');
      }
      expect(seen).toHaveLength(200);
      expect(seen.every((r) => r.body === '' && r.sourceIp === '127.0.0.1')).toBe(true);
      // An allowed caller is still served (the check is by address, not a blanket refusal).
      const open = await startLocalServer({ route, log: new RecordingLog(), port: 0, allowedSources: CidrSet.parse(['127.0.0.0/8']) });
      try {
        // The router refuses 127.0.0.1 (its own list); the server let the request through to it, body read.
        const reply = await call(open.url, { path: '/resolveSession?sessionId=console&transport=HTTP', body: 'abc' });
        expect(reply.status).toBe(403);
        expect(seen.at(-1)!.body).toBe('abc');
      } finally {
        await open.close();
      }
    } finally {
      await guarded.close();
    }
  });

  it('refuses a caller that asks Expect: 100-continue without inviting its body', async () => {
    const allowedSources = CidrSet.parse(['10.0.0.0/8']);
    const route = createResolverRouter({ store: new MemorySessionStore(ITEMS), logger: silentLogger(), allowedSources });
    const guarded = await startLocalServer({ route, log: new RecordingLog(), port: 0, allowedSources });
    try {
      const answer = await raw((guarded.server.address() as AddressInfo).port, head('Expect: 100-continue\r\n'));
      expect(answer).toMatch(/^HTTP\/1\.1 403 /);
      expect(answer).not.toContain('100 Continue');
    } finally {
      await guarded.close();
    }
  });

  /** Sends `first`, then one byte of `drip` every 50 ms; resolves with what came back once the server closes. */
  function trickle(port: number, first: string, drip: string): Promise<{ answer: string; sent: number }> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => socket.write(first));
      const chunks: Buffer[] = [];
      let sent = 0;
      const timer = setInterval(() => {
        if (sent === drip.length) {
          clearInterval(timer);
          socket.destroy(new Error(`the server let a trickling client send all ${drip.length} bytes`));
          return;
        }
        socket.write(drip[sent]!);
        sent += 1;
      }, 50);
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('close', () => {
        clearInterval(timer);
        resolve({ answer: Buffer.concat(chunks).toString('utf8'), sent });
      });
      socket.on('error', (error) => {
        clearInterval(timer);
        if ((error as NodeJS.ErrnoException).code === 'ECONNRESET' || (error as NodeJS.ErrnoException).code === 'EPIPE') return;
        reject(error);
      });
    });
  }

  const SHORT = { headersMs: 500, requestMs: 1000, checkIntervalMs: 100 };

  it('cuts off a client that trickles its body at the request timeout, before the route sees it', async () => {
    const seen: HttpRequest[] = [];
    const slow = await startLocalServer({ route: recordingRouter(new MemorySessionStore(ITEMS), seen), log: new RecordingLog(), port: 0, timeouts: SHORT });
    try {
      // 200 bytes at one per 50 ms would take 10 s; the request timeout is 1 s.
      const { answer, sent } = await trickle((slow.server.address() as AddressInfo).port, head('', 200), 'x'.repeat(200));
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(sent).toBeLessThan(200);
      expect(seen).toHaveLength(0);
    } finally {
      await slow.close();
    }
  });

  it('cuts off a client that trickles its headers at the headers timeout', async () => {
    const seen: HttpRequest[] = [];
    const slow = await startLocalServer({ route: recordingRouter(new MemorySessionStore(ITEMS), seen), log: new RecordingLog(), port: 0, timeouts: SHORT });
    try {
      const { answer, sent } = await trickle((slow.server.address() as AddressInfo).port, 'GET /health HTTP/1.1\r\nHost: x\r\n', 'X-Slow: '.padEnd(200, 'y'));
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(sent).toBeLessThan(200);
      expect(seen).toHaveLength(0);
    } finally {
      await slow.close();
    }
  });

  it('closes a connection that never sends a request', async () => {
    const slow = await startLocalServer({ route: recordingRouter(new MemorySessionStore(ITEMS), []), log: new RecordingLog(), port: 0, timeouts: SHORT });
    try {
      // raw() fails after 10 s if the server keeps the silent connection open.
      await raw((slow.server.address() as AddressInfo).port, '');
    } finally {
      await slow.close();
    }
  });

  it('drops connections beyond maxConnections, and serves again once they are gone', async () => {
    const log = new RecordingLog();
    const capped = await startLocalServer({ route: recordingRouter(new MemorySessionStore(ITEMS), []), log, port: 0, maxConnections: 3 });
    const cappedPort = (capped.server.address() as AddressInfo).port;
    const idle: ReturnType<typeof connect>[] = [];
    try {
      for (let i = 0; i < 3; i += 1) {
        const socket = connect({ host: '127.0.0.1', port: cappedPort });
        socket.on('error', () => {});
        idle.push(socket);
      }
      await Promise.all(idle.map((s) => new Promise((r) => s.once('connect', r))));
      const connectionCount = () => new Promise<number>((r) => capped.server.getConnections((_e, n) => r(n)));
      for (let i = 0; i < 100 && (await connectionCount()) < 3; i += 1) await new Promise((r) => setTimeout(r, 20));
      expect(await connectionCount()).toBe(3);
      // The fourth is closed at once, without an answer.
      expect(await raw(cappedPort, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n').catch((e: NodeJS.ErrnoException) => e.code)).toMatch(/^(|ECONNRESET)$/);
      expect(log.find('connection limit reached', 'warn').length).toBeGreaterThanOrEqual(1);
      for (const socket of idle) socket.destroy();
      for (let i = 0; i < 100 && (await connectionCount()) > 0; i += 1) await new Promise((r) => setTimeout(r, 20));
      expect((await call(capped.url, { method: 'GET', path: '/health' })).status).toBe(200);
    } finally {
      for (const socket of idle) socket.destroy();
      await capped.close();
    }
  });

  it('serve takes --max-connections N (default 1024) and rejects what is not a positive count', () => {
    const base = ['--sessions', 'sessions.example.json'];
    expect(parseServeArgs(base).maxConnections).toBe(1024);
    expect(parseServeArgs([...base, '--max-connections', '50']).maxConnections).toBe(50);
    for (const bad of ['0', '-1', 'many', '1.5', '1000001']) {
      expect(() => parseServeArgs([...base, '--max-connections', bad]), bad).toThrow(/--max-connections/);
    }
    expect(SERVE_USAGE).toContain('--max-connections N');
  });
});
