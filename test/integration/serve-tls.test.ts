import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../lambda/adapters/local-server';
import { CliError } from '../../lambda/cli/cli-error';
import { parseServeArgs, startServe } from '../../lambda/cli/serve-command';
import { makeTestCerts, type TestCerts } from '../helpers/test-certs';

const ANSWER = { SessionId: 'console', TransportProtocol: 'HTTP', DcvServerEndpoint: '10.0.1.15', Port: 8443, WebUrlPath: '/' };

let certs: TestCerts;
let sessionsFile: string;
let workDir: string;
const running: RunningServer[] = [];

beforeAll(() => {
  certs = makeTestCerts();
  workDir = mkdtempSync(join(tmpdir(), 'dcv-serve-tls-'));
  sessionsFile = join(workDir, 'sessions.json');
  writeFileSync(sessionsFile, JSON.stringify([{ SessionId: 'console', DcvServerEndpoint: '10.0.1.15' }]));
});

afterAll(() => {
  certs.remove();
  rmSync(workDir, { recursive: true, force: true });
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
});

async function serve(extra: string[]): Promise<RunningServer> {
  const server = await startServe(parseServeArgs(['--sessions', sessionsFile, '--port', '0', ...extra]));
  running.push(server);
  return server;
}

function post(url: string, tls: RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/resolveSession?sessionId=console&transport=HTTP`, { method: 'POST', agent: false, ...tls }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('test client timeout')));
    req.end();
  });
}

const mtls = () => ['--tls-cert', certs.files.serverCert, '--tls-key', certs.files.serverKey, '--client-ca', certs.files.ca];

describe('serve with mutual TLS', () => {
  it('answers a client whose certificate the CA signed', async () => {
    const server = await serve(mtls());
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const answer = await post(server.url, { ca: certs.ca, ...certs.client });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual(ANSWER);
  });

  it('refuses a client without a certificate during the handshake', async () => {
    const server = await serve(mtls());
    await expect(post(server.url, { ca: certs.ca })).rejects.toThrow();
  });

  it('refuses a client whose certificate another CA signed', async () => {
    const server = await serve(mtls());
    await expect(post(server.url, { ca: certs.ca, ...certs.strangerClient })).rejects.toThrow();
  });

  it('still applies the allow-list over TLS (403 with a JSON error)', async () => {
    const server = await serve([...mtls(), '--allow-source', '192.0.2.0/24']);
    const answer = await post(server.url, { ca: certs.ca, ...certs.client });
    expect(answer.status).toBe(403);
    expect(JSON.parse(answer.body)).toEqual({ error: 'ForbiddenError', message: 'caller address is not allowed' });
  });
});

describe('serve with TLS only', () => {
  it('answers over HTTPS without asking for a client certificate', async () => {
    const server = await serve(['--tls-cert', certs.files.serverCert, '--tls-key', certs.files.serverKey]);
    const answer = await post(server.url, { ca: certs.ca });
    expect(JSON.parse(answer.body)).toEqual(ANSWER);
  });
});

describe('TLS options', () => {
  it.each([
    [['--tls-cert', 'a.pem'], /--tls-cert and --tls-key go together/],
    [['--client-ca', 'ca.pem'], /--tls-cert and --tls-key go together/],
    [['--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem'], /--tls-cert: cannot read '\/nonexistent\/cert.pem': ENOENT/],
  ])('%j is a usage error naming the option', (args, message) => {
    let thrown: unknown;
    try {
      parseServeArgs(['--sessions', 'x.json', ...args]);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(CliError);
    expect((thrown as CliError).message).toMatch(message);
    expect((thrown as CliError).exitCode).toBe(2);
  });

  it('asks for and verifies client certificates only when --client-ca is given', () => {
    const withCa = parseServeArgs(['--sessions', 'x.json', ...mtls()]).tls!;
    expect(withCa).toMatchObject({ requestCert: true, rejectUnauthorized: true });
    const without = parseServeArgs(['--sessions', 'x.json', '--tls-cert', certs.files.serverCert, '--tls-key', certs.files.serverKey]).tls!;
    expect(without.requestCert).toBeUndefined();
  });
});
