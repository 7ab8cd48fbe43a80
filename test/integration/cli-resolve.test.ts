import { timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliError } from '../../lambda/cli/cli-error';
import { probeResolver } from '../../lambda/adapters/gateway-probe';
import { createFunctionUrlSigner } from '../../lambda/adapters/sigv4-proxy';
import { parseResolveArgs } from '../../lambda/cli/resolve-command';
import { runCli, startServe, type ServingCli } from '../helpers/run-cli';
import { makeTestCerts, type TestCerts } from '../helpers/test-certs';

const GOOD = { SessionId: 'console', TransportProtocol: 'HTTP', DcvServerEndpoint: '10.0.1.15', Port: 8443, WebUrlPath: '/' };

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/** A loopback HTTP server whose answer the test chooses per request; records what it was sent. */
async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function recordingServer(answer: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void, seen: Seen[]): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: body.toString('utf8') });
      answer(req, res, body);
    });
  });
}

async function close(server: Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('resolve against a real `serve` (child process against child process)', () => {
  let serve: ServingCli;
  let url: string;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dcv-resolve-'));
    const sessions = join(dir, 'sessions.json');
    writeFileSync(
      sessions,
      JSON.stringify([
        { SessionId: 'console', DcvServerEndpoint: '10.150.248.180', QuicPort: 8443 },
        { SessionId: 'agent1', DcvServerEndpoint: '10.150.248.136', TargetSessionId: 'console', WebUrlPath: '/dcv' },
        { SessionId: 'office', DcvServerEndpoint: '10.150.248.9', AllowedClientCidrs: ['203.0.113.0/24'] },
      ]),
    );
    serve = await startServe(['--sessions', sessions]);
    url = serve.url;
  });
  afterAll(() => {
    serve?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows the answer, the verdict and the latency; exit 0', async () => {
    const run = await runCli(['resolve', '--url', url, '--session', 'console']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`POST ${url}/resolveSession?sessionId=console&transport=HTTP\n  accept: application/json\n`);
    expect(run.stdout).toMatch(/\n200 in \d+(\.\d)? ms\n  content-type: application\/json\n/);
    expect(run.stdout).toContain('{"SessionId":"console","TransportProtocol":"HTTP","DcvServerEndpoint":"10.150.248.180","Port":8443,"WebUrlPath":"/"}');
    expect(run.stdout).toContain("contract: honoured\n  the gateway connects this client to 10.150.248.180:8443 (HTTP), server session 'console', web-url-path '/'");
  });

  it('--json: an alias over QUIC-less HTTP, the server session id and path in the answer', async () => {
    const run = await runCli(['resolve', '--url', url, '--session', 'agent1', '--json']);
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({
      ok: true,
      answered: true,
      status: 200,
      request: { method: 'POST', url: `${url}/resolveSession?sessionId=agent1&transport=HTTP`, headers: { accept: 'application/json' } },
      json: { SessionId: 'console', TransportProtocol: 'HTTP', DcvServerEndpoint: '10.150.248.136', Port: 8443, WebUrlPath: '/dcv' },
      violations: [],
    });
    expect(typeof out.latencyMs).toBe('number');
  });

  it('a 404 honours the contract (exit 0) and says the gateway refuses', async () => {
    const run = await runCli(['resolve', '--url', url, '--session', 'agent1', '--transport', 'QUIC']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/\n404 in /);
    expect(run.stdout).toContain('contract: honoured\n  404: the resolver has no destination for this session');
  });

  it('--client-ip is sent as clientIpAddress (the allow-list decides)', async () => {
    const inside = await runCli(['resolve', '--url', url, '--session', 'office', '--client-ip', '203.0.113.7', '--json']);
    const outside = await runCli(['resolve', '--url', url, '--session', 'office', '--client-ip', '198.51.100.7', '--json']);
    expect(JSON.parse(inside.stdout)).toMatchObject({ status: 200, request: { url: `${url}/resolveSession?sessionId=office&transport=HTTP&clientIpAddress=203.0.113.7` } });
    expect(JSON.parse(outside.stdout)).toMatchObject({ status: 404 });
  });
});

describe('resolve against a deliberately wrong resolver: each violation detected, exit 1', () => {
  let server: Server;
  let base: string;
  const seen: Seen[] = [];
  /** What the wrong resolver answers, chosen by the session id the test asks for. */
  const answers: Record<string, { status: number; headers: Record<string, string>; body: string }> = {
    status500: { status: 500, headers: { 'content-type': 'application/json' }, body: '{"error":"boom"}' },
    redirect: { status: 307, headers: { location: 'https://elsewhere.example/resolveSession' }, body: '' },
    html: { status: 200, headers: { 'content-type': 'text/html' }, body: JSON.stringify(GOOD) },
    notjson: { status: 200, headers: { 'content-type': 'application/json' }, body: '<html>oops</html>' },
    flask: { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ SessionId: 'console', TransportProtocol: 'HTTP', Host: '10.0.1.15', HttpPort: 8443, WebUrlPath: '/' }) },
    extra: { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...GOOD, Username: 'alice' }) },
    stringport: { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...GOOD, Port: '8443' }) },
    bigport: { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...GOOD, Port: 70000 }) },
    transport: { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...GOOD, TransportProtocol: 'QUIC' }) },
    path: { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...GOOD, WebUrlPath: 'dcv' }) },
    emptyendpoint: { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...GOOD, DcvServerEndpoint: '' }) },
  };

  beforeAll(async () => {
    server = recordingServer((req, res) => {
      const id = new URL(req.url!, 'http://x').searchParams.get('sessionId') ?? '';
      if (id === 'hang') return; // never answers: the timeout must fire
      if (id === 'huge') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"SessionId":"${'x'.repeat(100_000)}"}`);
        return;
      }
      const answer = answers[id] ?? { status: 404, headers: {}, body: '' };
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
    }, seen);
    base = `http://${await listen(server)}`;
  });
  afterAll(() => close(server));

  it.concurrent.each([
    ['a 500', 'status500', /✗ answered 500, not 200, 400 or 404: the resolver failed/],
    ['a redirect', 'redirect', /✗ answered 307 redirect to https:\/\/elsewhere\.example\/resolveSession: the gateway does not follow redirects/],
    ['a 200 as text/html', 'html', /✗ Content-Type is 'text\/html', not application\/json/],
    ['a 200 that is not JSON', 'notjson', /✗ the body is not JSON: "<html>oops<\/html>"/],
    ['the field report’s first Flask answer (Host/HttpPort)', 'flask', /✗ no DcvServerEndpoint field[\s\S]*✗ no Port field[\s\S]*✗ extra field 'Host'[\s\S]*✗ extra field 'HttpPort'/],
    ['an extra field', 'extra', /✗ extra field 'Username'/],
    ['Port as a string', 'stringport', /✗ Port must be a JSON integer 1–65535, got the string "8443"/],
    ['Port out of range', 'bigport', /✗ Port must be a JSON integer 1–65535, got the number 70000/],
    ['a transport that does not echo the request', 'transport', /✗ TransportProtocol must echo the request's 'HTTP', got the string "QUIC"/],
    ['a WebUrlPath without a leading slash', 'path', /✗ WebUrlPath must start with '\/', got "dcv"/],
    ['an empty DcvServerEndpoint', 'emptyendpoint', /✗ DcvServerEndpoint must be a non-empty string/],
  ])('%s', async (_name, session, message) => {
    const run = await runCli(['resolve', '--url', base, '--session', session]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/contract: \d+ violations?\n/);
    expect(run.stdout).toMatch(message);
    expect(run.stderr).toMatch(/^dcv-resolver resolve: the answer breaks the gateway's contract \(.+\)\n$/);
  });

  it('sent exactly the gateway’s request: POST, the path and query, accept: application/json, no body', async () => {
    seen.length = 0;
    await runCli(['resolve', '--url', `${base}/prefix`, '--session', 'any one', '--transport', 'quic', '--client-ip', '::ffff:203.0.113.9']);
    expect(seen).toHaveLength(1);
    const [request] = seen;
    expect(request!.method).toBe('POST');
    expect(request!.url).toBe('/prefix/resolveSession?sessionId=any%20one&transport=QUIC&clientIpAddress=%3A%3Affff%3A203.0.113.9');
    expect(request!.body).toBe('');
    // node:http adds host, connection and an empty body's content-length (as HTTP clients do for a
    // bodyless POST); nothing else rides along (no user-agent, no content-type).
    expect(Object.keys(request!.headers).sort()).toEqual(['accept', 'connection', 'content-length', 'host']);
    expect(request!.headers['content-length']).toBe('0');
    expect(request!.headers.accept).toBe('application/json');
  });

  it('--json lists the violations by rule', async () => {
    const run = await runCli(['resolve', '--url', base, '--session', 'stringport', '--json']);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, status: 200, violations: [{ rule: 'port' }] });
  });

  it('no answer within --timeout: exit 1', async () => {
    const run = await runCli(['resolve', '--url', base, '--session', 'hang', '--timeout', '300']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/no answer after \d+(\.\d)? ms: no answer within 300 ms/);
    expect(run.stderr).toContain(`dcv-resolver resolve: no answer from ${base}: no answer within 300 ms`);
  });

  it('an answer over 64 KiB is cut off, not buffered: exit 1', async () => {
    const run = await runCli(['resolve', '--url', base, '--session', 'huge']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/no answer after [\d.]+ ms: the answer is larger than 65536 bytes/);
  });

  it('nothing listening: exit 1 with the connection error', async () => {
    const closed = createServer();
    const address = await listen(closed);
    await close(closed);
    const run = await runCli(['resolve', '--url', `http://${address}`, '--session', 'console']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/no answer after .*ECONNREFUSED/);
  });
});

/** Recomputes a SigV4 signature with the signer library, as Lambda would, for one known key. */
async function signatureValid(req: IncomingMessage, key: { id: string; secret: string; token?: string }, region: string): Promise<string> {
  const auth = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/\d{8}\/([^/]+)\/lambda\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(req.headers.authorization ?? '');
  if (!auth) return 'MissingAuthenticationToken';
  if (auth[1] !== key.id) return 'UnrecognizedClientException';
  if (auth[2] !== region) return 'InvalidSignatureException: wrong region';
  if (key.token !== undefined && req.headers['x-amz-security-token'] !== key.token) return 'InvalidToken';
  const headers: Record<string, string> = {};
  for (const name of auth[3]!.split(';')) headers[name] = String(req.headers[name] ?? '');
  const url = new URL(req.url!, 'http://127.0.0.1');
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(headers['x-amz-date'] ?? '');
  if (!date) return 'IncompleteSignature';
  const signer = new SignatureV4({ credentials: { accessKeyId: key.id, secretAccessKey: key.secret, sessionToken: key.token }, region, service: 'lambda', sha256: Sha256 });
  const expected = await signer.sign(
    { method: req.method!, protocol: 'http:', hostname: '127.0.0.1', path: url.pathname, query, headers, body: '' },
    { signingDate: new Date(Date.UTC(+date[1]!, +date[2]! - 1, +date[3]!, +date[4]!, +date[5]!, +date[6]!)) },
  );
  const want = Buffer.from(/Signature=([0-9a-f]{64})/.exec(String(expected.headers.authorization))![1]!);
  return timingSafeEqual(want, Buffer.from(auth[4]!)) ? 'ok' : 'InvalidSignatureException';
}

describe('resolve --sign against a loopback server that verifies SigV4 (standing in for an AWS_IAM Function URL)', () => {
  const KEY = { id: 'ASIAPROBETEST', secret: 'probe-secret', token: 'probe-session-token' };
  const verdicts: string[] = [];
  let server: Server;
  let base: string;
  const keyEnv = { AWS_ACCESS_KEY_ID: KEY.id, AWS_SECRET_ACCESS_KEY: KEY.secret, AWS_SESSION_TOKEN: KEY.token };

  beforeAll(async () => {
    server = recordingServer(async (req, res) => {
      const verdict = await signatureValid(req, KEY, 'eu-west-1');
      verdicts.push(verdict);
      if (verdict !== 'ok') {
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: verdict }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(GOOD));
    }, []);
    base = `http://${await listen(server)}/3f9c0b1e`;
  });
  afterAll(() => close(server));

  it('a signed request passes; the session token is never printed', async () => {
    verdicts.length = 0;
    const run = await runCli(['resolve', '--url', base, '--session', 'console', '--sign', '--region', 'eu-west-1', '--json'], keyEnv);
    expect(verdicts).toEqual(['ok']);
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout) as { request: { headers: Record<string, string> }; status: number };
    expect(out.status).toBe(200);
    expect(out.request.headers['x-amz-security-token']).toBe('(redacted)');
    expect(out.request.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=ASIAPROBETEST\//);
    expect(run.stdout + run.stderr).not.toContain(KEY.token);
  });

  it('the signing region comes from AWS_REGION when the URL is not a Function URL host', async () => {
    verdicts.length = 0;
    const run = await runCli(['resolve', '--url', base, '--session', 'console', '--sign'], { ...keyEnv, AWS_REGION: 'eu-west-1' });
    expect(verdicts).toEqual(['ok']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('(signed with SigV4, service lambda)');
  });

  it.each([
    ['unsigned', [], keyEnv, 'MissingAuthenticationToken'],
    ['signed for the wrong region', ['--sign', '--region', 'us-east-1'], keyEnv, 'InvalidSignatureException: wrong region'],
    ['signed with the wrong secret', ['--sign', '--region', 'eu-west-1'], { ...keyEnv, AWS_SECRET_ACCESS_KEY: 'nope' }, 'InvalidSignatureException'],
  ])('%s: the 403 is a violation with the access-layer hint, exit 1', async (_name, extra, env, verdict) => {
    verdicts.length = 0;
    const run = await runCli(['resolve', '--url', base, '--session', 'console', ...extra], env);
    expect(verdicts).toEqual([verdict]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/✗ answered 403, not 200, 400 or 404: an access layer refused the request/);
  });

  it('credentials that fail at signing time: no answer, nothing sent (in-process)', async () => {
    verdicts.length = 0;
    const signer = createFunctionUrlSigner(() => Promise.reject(new Error('the session token expired')), 'eu-west-1');
    const result = await probeResolver({ resolverUrl: base, query: { sessionId: 'console', transport: 'HTTP' }, signer });
    expect(result).toMatchObject({ answered: false, error: 'cannot sign the request: the session token expired' });
    expect(verdicts).toEqual([]);
  });

  it('--sign without any credentials: exit 1 before anything is sent', async () => {
    verdicts.length = 0;
    const run = await runCli(['resolve', '--url', base, '--session', 'console', '--sign', '--region', 'eu-west-1'], {
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      HOME: '/nonexistent',
      AWS_CONFIG_FILE: '/nonexistent/config',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^dcv-resolver resolve: --sign: no AWS credentials found/m);
    expect(verdicts).toEqual([]);
  });
});

describe('resolve over https with --ca-file', () => {
  let certs: TestCerts;
  let server: Server;
  let base: string;
  beforeAll(async () => {
    certs = makeTestCerts();
    server = createHttpsServer({ cert: readFileSync(certs.files.serverCert), key: readFileSync(certs.files.serverKey) }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(GOOD));
    });
    base = `https://${await listen(server)}`;
  });
  afterAll(async () => {
    await close(server);
    certs?.remove();
  });

  it('trusts the given CA: exit 0', async () => {
    const run = await runCli(['resolve', '--url', base, '--session', 'console', '--ca-file', certs.files.ca]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('contract: honoured');
  });

  it('without it the certificate is refused (as the gateway with tls-strict would): exit 1', async () => {
    const run = await runCli(['resolve', '--url', base, '--session', 'console']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/no answer after .*(self-signed|unable to verify|UNABLE_TO_VERIFY|SELF_SIGNED)/i);
  });

  it('--insecure accepts it (tls-strict = false)', async () => {
    const run = await runCli(['resolve', '--url', base, '--session', 'console', '--insecure']);
    expect(run.code).toBe(0);
  });
});

describe('resolve usage errors exit 2', () => {
  it('as a child process: the message and the usage', async () => {
    const run = await runCli(['resolve', '--session', 'console']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^dcv-resolver resolve: --url URL is required\n\nUsage: dcv-resolver resolve --url URL --session ID/);
  });

  it.each([
    ['no --session', ['--url', 'http://127.0.0.1:9000'], /^--session ID is required/],
    ['a bad transport', ['--url', 'http://h', '--session', 'a', '--transport', 'UDP'], /^--transport must be HTTP or QUIC, not 'UDP'$/],
    ['a bad client ip', ['--url', 'http://h', '--session', 'a', '--client-ip', 'gateway'], /^--client-ip must be an IPv4 or IPv6 address, not 'gateway'$/],
    ['not a URL', ['--url', 'localhost:9000', '--session', 'a'], /^--url must be http:\/\/ or https:\/\/, not 'localhost:'$/],
    ['a URL with a query', ['--url', 'http://h/?x=1', '--session', 'a'], /^--url must not carry a query string/],
    ['an unpaired client cert', ['--url', 'https://h', '--session', 'a', '--cert-file', 'c.pem'], /^--cert-file and --cert-key-file go together$/],
    ['a region without --sign', ['--url', 'https://h', '--session', 'a', '--region', 'eu-west-1'], /^--region only matters with --sign$/],
    ['a bad region', ['--url', 'https://h', '--session', 'a', '--sign', '--region', 'Ireland'], /^--region must look like us-east-1/],
    ['a bad timeout', ['--url', 'https://h', '--session', 'a', '--timeout', '0'], /^--timeout must be 1–120000 milliseconds, not '0'$/],
    ['an unknown option', ['--url', 'https://h', '--session', 'a', '--verbose'], /Unknown option '--verbose'/],
  ])('%s', (_name, args, message) => {
    let error: unknown;
    try {
      parseResolveArgs(args);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(2);
    expect((error as Error).message).toMatch(message);
  });
});
