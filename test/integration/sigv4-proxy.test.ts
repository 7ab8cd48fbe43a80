import { timingSafeEqual } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity } from '@smithy/types';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  canonicalQuery,
  parseTargetUrl,
  regionFromFunctionUrl,
  startSigV4Proxy,
  type RunningProxy,
} from '../../lambda/adapters/sigv4-proxy';
import { parseListen, parseProxyArgs, PROXY_USAGE, startProxy } from '../../lambda/cli/proxy-command';
import { CliError } from '../../lambda/cli/cli-error';
import { silentLog } from '../../lambda/core/log';
import { RecordingLog } from '../helpers/recording-log';

/** What the target (standing in for Lambda) knows: its region and the keys it accepts. */
const TARGET_REGION = 'eu-west-1';
const GOOD: AwsCredentialIdentity = { accessKeyId: 'AKIDGOOD', secretAccessKey: 'good-secret' };
const EXPIRED: AwsCredentialIdentity = {
  accessKeyId: 'ASIAEXPIRED',
  secretAccessKey: 'expired-secret',
  sessionToken: 'expired-session-token',
  expiration: new Date(Date.now() - 60_000),
};
const KEYS: Record<string, { secret: string; token?: string; expiresAt?: number }> = {
  [GOOD.accessKeyId]: { secret: GOOD.secretAccessKey },
  [EXPIRED.accessKeyId]: { secret: EXPIRED.secretAccessKey, token: EXPIRED.sessionToken, expiresAt: EXPIRED.expiration!.getTime() },
};

type Verdict = { ok: true } | { ok: false; code: string };

function amzDate(text: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) throw new Error('bad x-amz-date');
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

/** The query as AWS reads it for SigV4: split on & and =, percent-decode, repeated keys kept. */
function awsQuery(raw: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const part of raw === '' ? [] : raw.split('&')) {
    const eq = part.indexOf('=');
    const key = decodeURIComponent(eq === -1 ? part : part.slice(0, eq));
    const value = eq === -1 ? '' : decodeURIComponent(part.slice(eq + 1));
    const seen = out[key];
    out[key] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return out;
}

/** Recomputes the request's signature with the same signer library and compares, as Lambda would. */
async function verify(req: IncomingMessage, body: Buffer): Promise<Verdict> {
  const auth = /^AWS4-HMAC-SHA256 Credential=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
    req.headers.authorization ?? '',
  );
  if (!auth) return { ok: false, code: 'MissingAuthenticationToken' };
  const [accessKeyId] = auth[1]!.split('/');
  const key = KEYS[accessKeyId!];
  if (!key) return { ok: false, code: 'UnrecognizedClientException' };
  const token = req.headers['x-amz-security-token'];
  if (key.token !== undefined && token !== key.token) return { ok: false, code: 'InvalidToken' };
  if (key.expiresAt !== undefined && key.expiresAt <= Date.now()) return { ok: false, code: 'ExpiredToken' };
  const headers: Record<string, string> = {};
  for (const name of auth[2]!.split(';')) headers[name] = String(req.headers[name] ?? '');
  const url = req.url!;
  const q = url.indexOf('?');
  const signer = new SignatureV4({
    credentials: { accessKeyId: accessKeyId!, secretAccessKey: key.secret, sessionToken: key.token },
    region: TARGET_REGION,
    service: 'lambda',
    sha256: Sha256,
  });
  const expected = await signer.sign(
    {
      method: req.method!,
      protocol: 'http:',
      hostname: '127.0.0.1',
      path: q === -1 ? url : url.slice(0, q),
      query: awsQuery(q === -1 ? '' : url.slice(q + 1)),
      headers,
      body,
    },
    { signingDate: amzDate(headers['x-amz-date'] ?? '') },
  );
  const want = Buffer.from(/Signature=([0-9a-f]{64})/.exec(String(expected.headers.authorization))![1]!);
  const got = Buffer.from(auth[3]!);
  return timingSafeEqual(want, got) ? { ok: true } : { ok: false, code: 'InvalidSignatureException' };
}

interface Seen {
  method: string;
  url: string;
  body: string;
  verdict: Verdict;
}

let target: Server;
let targetUrl: string;
const seen: Seen[] = [];
let hang = false;

beforeAll(async () => {
  target = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      if (hang) return; // never answers: the proxy's timeout must fire
      const body = Buffer.concat(chunks);
      const verdict = await verify(req, body);
      seen.push({ method: req.method!, url: req.url!, body: body.toString('utf8'), verdict });
      const status = verdict.ok ? 200 : 403;
      const payload = JSON.stringify(verdict.ok ? { echo: req.url } : { message: verdict.code });
      res.writeHead(status, { 'Content-Type': 'application/json', 'X-Amzn-RequestId': 'req-1', 'X-Custom': 'kept' });
      res.end(payload);
    });
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
  targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  target.closeAllConnections();
  await new Promise<void>((r) => target.close(() => r()));
});

const proxies: RunningProxy[] = [];
afterEach(async () => {
  hang = false;
  seen.length = 0;
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

async function proxy(options: Partial<Parameters<typeof startSigV4Proxy>[0]> = {}): Promise<RunningProxy> {
  const running = await startSigV4Proxy({
    target: new URL(targetUrl),
    region: TARGET_REGION,
    credentials: GOOD,
    log: silentLog,
    host: '127.0.0.1',
    port: 0,
    ...options,
  });
  proxies.push(running);
  return running;
}

function call(
  base: string,
  method: string,
  pathAndQuery: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${pathAndQuery}`, { method, headers: { accept: 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error('test client timeout')));
    req.end(body);
  });
}

const entries = (query: string) => [...new URLSearchParams(query)];

describe('signing and forwarding', () => {
  it('forwards method, path, query and body; the target verifies the signature; the answer comes back unchanged', async () => {
    const p = await proxy();
    const query = 'sessionId=a+b%2Fc%C3%A9&transport=HTTP&x=1&x=2&empty=&clientIpAddress=2001%3Adb8%3A%3A1';
    const answer = await call(p.url, 'POST', `/s3cr3t/resolveSession?${query}`, 'hello');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.verdict).toEqual({ ok: true });
    expect(seen[0]!.method).toBe('POST');
    const [path, forwardedQuery] = seen[0]!.url.split('?') as [string, string];
    expect(path).toBe('/s3cr3t/resolveSession');
    expect(entries(forwardedQuery)).toEqual(entries(query));
    expect(seen[0]!.body).toBe('hello');
    expect(answer.status).toBe(200);
    expect(answer.headers['x-custom']).toBe('kept');
    expect(answer.headers['x-amzn-requestid']).toBe('req-1');
    expect(JSON.parse(answer.body)).toEqual({ echo: seen[0]!.url });
  });

  it('signs requests with session credentials from a provider (refreshed per request)', async () => {
    KEYS.ASIAFRESH = { secret: 's', token: 'fresh-token', expiresAt: Date.now() + 3_600_000 };
    let calls = 0;
    const p = await proxy({
      credentials: async () => {
        calls += 1;
        return { accessKeyId: 'ASIAFRESH', secretAccessKey: 's', sessionToken: 'fresh-token' };
      },
    });
    expect((await call(p.url, 'GET', '/health')).status).toBe(200);
    expect((await call(p.url, 'POST', '/resolveSession?sessionId=x&transport=QUIC')).status).toBe(200);
    expect(seen.map((s) => s.verdict)).toEqual([{ ok: true }, { ok: true }]);
    expect(calls).toBe(2);
  });

  it('a signature for the wrong region does not verify', async () => {
    const p = await proxy({ region: 'us-west-2' });
    const answer = await call(p.url, 'POST', '/resolveSession?sessionId=a&transport=HTTP');
    expect(seen[0]!.verdict).toEqual({ ok: false, code: 'InvalidSignatureException' });
    expect(answer.status).toBe(403);
    expect(JSON.parse(answer.body)).toEqual({ message: 'InvalidSignatureException' });
  });

  it('expired credentials are refused', async () => {
    const p = await proxy({ credentials: EXPIRED });
    const answer = await call(p.url, 'POST', '/resolveSession?sessionId=a&transport=HTTP');
    expect(seen[0]!.verdict).toEqual({ ok: false, code: 'ExpiredToken' });
    expect(answer.status).toBe(403);
  });

  it('a wrong secret does not verify (the verifier is not trivially satisfied)', async () => {
    const p = await proxy({ credentials: { accessKeyId: GOOD.accessKeyId, secretAccessKey: 'not-the-secret' } });
    await call(p.url, 'POST', '/resolveSession?sessionId=a&transport=HTTP');
    expect(seen[0]!.verdict).toEqual({ ok: false, code: 'InvalidSignatureException' });
  });

  it('keeps signatures valid and parameters identical for arbitrary query strings (property)', async () => {
    const p = await proxy();
    const pair = fc.tuple(fc.string({ maxLength: 12, unit: 'grapheme' }), fc.string({ maxLength: 40, unit: 'grapheme' }));
    await fc.assert(
      fc.asyncProperty(fc.array(pair, { maxLength: 6 }), async (pairs) => {
        seen.length = 0;
        const query = new URLSearchParams(pairs).toString();
        const answer = await call(p.url, 'POST', `/resolveSession${query ? `?${query}` : ''}`);
        expect(answer.status).toBe(200);
        expect(seen[0]!.verdict).toEqual({ ok: true });
        expect(entries(seen[0]!.url.split('?')[1] ?? '')).toEqual(pairs);
      }),
      { numRuns: 150 },
    );
  });
});

/** Writes raw bytes to the proxy and returns everything it sends back until it closes. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')));
  });
}

/**
 * DNS rebinding: a web page at http://evil.example:PORT whose name now resolves to 127.0.0.1 reaches the proxy
 * with its own Host (and, for its fetches, Origin / Sec-Fetch-Site). Only requests addressed to the proxy itself
 * are signed; the others are refused before anything is read, signed or forwarded, with a log line.
 */
describe('only requests addressed to the proxy itself are signed', () => {
  const RESOLVE = '/resolveSession?sessionId=a&transport=HTTP';
  const portOf = (p: RunningProxy) => (p.server.address() as AddressInfo).port;

  it.each([
    ['a rebound name', (port: number) => `evil.example:${port}`],
    ['a rebound name without a port', () => 'evil.example'],
    ['a loopback address on another port', (port: number) => `127.0.0.1:${port + 1}`],
    ['localhost on another port', (port: number) => `localhost:${port === 65535 ? 1 : port + 1}`],
    ['a name ending in a loopback name', (port: number) => `evil.localhost.example:${port}`],
    ['127.0.0.1 without the port', () => '127.0.0.1'],
    ['a trailing-dot name', (port: number) => `localhost.:${port}`],
  ])('refuses %s with 421, forwarding nothing and logging it', async (_name, host) => {
    const log = new RecordingLog();
    const p = await proxy({ log });
    const value = host(portOf(p));
    const answer = await call(p.url, 'POST', RESOLVE, 'body', { host: value });
    expect(answer.status).toBe(421);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'MisdirectedRequest' });
    expect(seen).toHaveLength(0);
    const refused = log.find('refused', 'warn');
    expect(refused).toHaveLength(1);
    expect(refused[0]!.fields).toMatchObject({ status: 421, host: value });
  });

  it('refuses a request with no Host at all (HTTP/1.0)', async () => {
    const p = await proxy();
    const answer = await raw(portOf(p), 'POST /resolveSession?sessionId=a&transport=HTTP HTTP/1.0\r\nContent-Length: 0\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 421 /);
    expect(seen).toHaveLength(0);
  });

  it.each([
    ['127.0.0.1', (port: number) => `127.0.0.1:${port}`],
    ['localhost', (port: number) => `localhost:${port}`],
    ['LOCALHOST (names are case-insensitive)', (port: number) => `LOCALHOST:${port}`],
    ['[::1]', (port: number) => `[::1]:${port}`],
  ])('signs a request addressed to %s:PORT', async (_name, host) => {
    const p = await proxy();
    const answer = await call(p.url, 'POST', RESOLVE, undefined, { host: host(portOf(p)) });
    expect(answer.status).toBe(200);
    expect(seen.map((s) => s.verdict)).toEqual([{ ok: true }]);
  });

  it('signs for names given with allowedHosts (--allow-host), with the listening port or their own', async () => {
    const p = await proxy({ allowedHosts: ['gateway-proxy.internal', 'alias.internal:8080'] });
    const port = portOf(p);
    expect((await call(p.url, 'POST', RESOLVE, undefined, { host: `gateway-proxy.internal:${port}` })).status).toBe(200);
    expect((await call(p.url, 'POST', RESOLVE, undefined, { host: 'alias.internal:8080' })).status).toBe(200);
    expect((await call(p.url, 'POST', RESOLVE, undefined, { host: `alias.internal:${port}` })).status).toBe(421);
    expect((await call(p.url, 'POST', RESOLVE, undefined, { host: `other.internal:${port}` })).status).toBe(421);
    expect(seen).toHaveLength(2);
  });

  it('signs for the address it listens on (127.0.0.2 here), and dcv-resolver proxy passes --allow-host through', async () => {
    const running = await startProxy(
      { target: new URL(targetUrl), host: '127.0.0.2', port: 0, region: TARGET_REGION, allowedHosts: ['alias.internal'], logLevel: 'ERROR' },
      GOOD,
    );
    proxies.push(running);
    const port = portOf(running);
    expect((await call(running.url, 'POST', RESOLVE, undefined, { host: `127.0.0.2:${port}` })).status).toBe(200);
    expect((await call(running.url, 'POST', RESOLVE, undefined, { host: `alias.internal:${port}` })).status).toBe(200);
    expect((await call(running.url, 'POST', RESOLVE, undefined, { host: `127.0.0.3:${port}` })).status).toBe(421);
    expect(seen).toHaveLength(2);
  });

  it.each([
    ['a cross-site Origin', (port: number) => ({ origin: `http://evil.example:${port}` })],
    ['Origin: null', () => ({ origin: 'null' })],
    ['the origin of another loopback name', (port: number) => ({ origin: `http://localhost:${port}` })],
    ['an https Origin of the same authority', (port: number) => ({ origin: `https://127.0.0.1:${port}` })],
    ['Sec-Fetch-Site: cross-site', () => ({ 'sec-fetch-site': 'cross-site' })],
    ['Sec-Fetch-Site: same-site', () => ({ 'sec-fetch-site': 'same-site' })],
    ['an unknown Sec-Fetch-Site', () => ({ 'sec-fetch-site': 'whatever' })],
    ['a same-origin Origin with Sec-Fetch-Site: cross-site', (port: number) => ({ origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'cross-site' })],
  ])('refuses a request from a browser page elsewhere (%s) with 403, forwarding nothing', async (_name, headers) => {
    const log = new RecordingLog();
    const p = await proxy({ log });
    const answer = await call(p.url, 'POST', RESOLVE, 'body', headers(portOf(p)));
    expect(answer.status).toBe(403);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'ForbiddenError' });
    expect(seen).toHaveLength(0);
    expect(log.find('refused', 'warn')).toHaveLength(1);
  });

  it.each([
    ['its own Origin', (port: number) => ({ origin: `http://127.0.0.1:${port}` })],
    ['Sec-Fetch-Site: same-origin', () => ({ 'sec-fetch-site': 'same-origin' })],
    ['Sec-Fetch-Site: none (typed in the address bar)', () => ({ 'sec-fetch-site': 'none' })],
  ])('signs a request carrying %s', async (_name, headers) => {
    const p = await proxy();
    const answer = await call(p.url, 'POST', RESOLVE, undefined, headers(portOf(p)));
    expect(answer.status).toBe(200);
    expect(seen).toHaveLength(1);
  });

  it('answers a refused request without waiting for its body', async () => {
    const p = await proxy();
    const answer = await raw(
      portOf(p),
      `POST ${RESOLVE} HTTP/1.1\r\nHost: evil.example:${portOf(p)}\r\nContent-Length: 60000\r\n\r\npartial`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 421 /);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(seen).toHaveLength(0);
  });
});

describe('failures are clear JSON errors', () => {
  it('answers 502 when the target is unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const p = await proxy({ target: new URL(`http://127.0.0.1:${port}/`) });
    const answer = await call(p.url, 'POST', '/resolveSession?sessionId=a&transport=HTTP');
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'BadGateway', message: expect.stringContaining('cannot reach') });
  });

  it('answers 504 when the target does not answer in time', async () => {
    hang = true;
    const p = await proxy({ requestTimeoutMs: 300 });
    const answer = await call(p.url, 'POST', '/resolveSession?sessionId=a&transport=HTTP');
    expect(answer.status).toBe(504);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'GatewayTimeout', message: expect.stringContaining('300 ms') });
  });

  it('answers 502 when there are no credentials to sign with', async () => {
    const p = await proxy({
      credentials: async () => {
        throw new Error('Could not load credentials from any providers');
      },
    });
    const answer = await call(p.url, 'POST', '/resolveSession?sessionId=a&transport=HTTP');
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.body).message).toContain('Could not load credentials');
    expect(seen).toHaveLength(0);
  });

  it('refuses an oversized body with 413 without forwarding it', async () => {
    const p = await proxy();
    const answer = await call(p.url, 'POST', '/resolveSession', 'x'.repeat(70 * 1024));
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).error).toBe('PayloadTooLargeError');
    expect(seen).toHaveLength(0);
  });
});

describe('options', () => {
  it('takes the region from a Function URL host', () => {
    expect(regionFromFunctionUrl(new URL('https://abcdef123.lambda-url.ap-southeast-2.on.aws/'))).toBe('ap-southeast-2');
    expect(regionFromFunctionUrl(new URL('https://example.com/'))).toBeUndefined();
  });

  it('allows http:// only for loopback targets', () => {
    expect(parseTargetUrl('http://127.0.0.1:9/').host).toBe('127.0.0.1:9');
    expect(parseTargetUrl('http://[::1]:9/').hostname).toBe('[::1]');
    expect(() => parseTargetUrl('http://abc.lambda-url.us-east-1.on.aws/')).toThrow(/https:\/\//);
    expect(() => parseTargetUrl('https://abc.lambda-url.us-east-1.on.aws/?x=1')).toThrow(/query/);
    expect(() => parseTargetUrl('not a url')).toThrow(/not a URL/);
  });

  it('parses --listen and rejects bad values with usage errors', () => {
    expect(parseListen('127.0.0.1:9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(parseListen('[::1]:9001')).toEqual({ host: '::1', port: 9001 });
    expect(parseListen('9002')).toEqual({ host: '127.0.0.1', port: 9002 });
    expect(() => parseListen('host:99999')).toThrow(CliError);
    expect(() => parseProxyArgs([])).toThrow(/--target URL is required/);
    expect(() => parseProxyArgs(['--target', 'https://a.lambda-url.us-east-1.on.aws/', '--region', 'mars'])).toThrow(/--region/);
    expect(parseProxyArgs(['--target', 'https://a.lambda-url.us-east-1.on.aws/'])).toMatchObject({ host: '127.0.0.1', port: 9000 });
  });

  it('takes --allow-host NAME[:PORT] (repeatable) and rejects what is not a host name', () => {
    const base = ['--target', 'https://a.lambda-url.us-east-1.on.aws/'];
    expect(parseProxyArgs(base).allowedHosts).toEqual([]);
    expect(parseProxyArgs([...base, '--allow-host', 'Proxy.Internal', '--allow-host', 'alias:8080', '--allow-host', '[fd00::5]:9000']).allowedHosts).toEqual([
      'proxy.internal',
      'alias:8080',
      '[fd00::5]:9000',
    ]);
    for (const bad of ['http://x', 'a b', 'x:99999', 'x/y', '', 'fd00::5']) {
      expect(() => parseProxyArgs([...base, '--allow-host', bad]), bad).toThrow(/--allow-host/);
    }
    expect(PROXY_USAGE).toContain('--allow-host NAME');
  });

  it('refuses to start without credentials, saying so', async () => {
    const failing = async () => {
      throw new Error('no providers');
    };
    await expect(startProxy({ target: new URL(targetUrl), host: '127.0.0.1', port: 0, region: 'eu-west-1' }, failing)).rejects.toThrow(
      /no AWS credentials found/,
    );
  });

  it('re-encodes a query so the forwarded text is exactly what is signed', () => {
    expect(canonicalQuery('b=2&a=x+y&a=%7E&c')).toEqual({ text: 'b=2&a=x%20y&a=~&c=', signed: { b: '2', a: ['x y', '~'], c: '' } });
  });
});
