import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliError } from '../../lambda/cli/cli-error';
import { parseDoctorArgs } from '../../lambda/cli/doctor-command';
import { runCli, startServe, type ServingCli } from '../helpers/run-cli';
import { makeTestCerts, type TestCerts } from '../helpers/test-certs';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';

const FIX = 'test/fixtures/doctor';
const doctor = (args: string[]) => runCli(['doctor', ...args]);

describe.concurrent('doctor as a child process: output and exit codes', () => {
  it('a clean gateway and DCV server: no findings, the connect links, exit 0', async () => {
    const run = await doctor(['--gateway-config', `${FIX}/gateway/clean.toml`, '--dcv-config', `${FIX}/dcv/clean.conf`]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`gateway config:     ${FIX}/gateway/clean.toml\n  DCV server configs: ${FIX}/dcv/clean.conf\n`);
    expect(run.stdout).toContain('No findings.\n');
    expect(run.stdout).toContain('browser:        https://<gateway-host>:8443/?authToken=<token>#<sessionId>');
    expect(run.stdout).toContain('native client:  dcv://<gateway-host>:8443/?authToken=<token>#<sessionId>');
    expect(run.stdout).toContain('Why a link without a token fails with 404 on /auth');
    expect(run.stderr).toBe('');
  });

  it('the field report’s configuration: names what it got wrong, explains the /auth 404, exit 1', async () => {
    const run = await doctor(['--gateway-config', `${FIX}/gateway/field-report.toml`, '--dcv-config', `${FIX}/dcv/field-report.conf`]);
    expect(run.code).toBe(1);
    const findings = run.stdout.split('\n').filter((line) => /^(ERROR|WARNING|NOTE) /.test(line));
    expect(findings).toEqual([
      `ERROR    ${FIX}/dcv/field-report.conf [security] auth-token-verifier: no auth-token-verifier: this server cannot check the token in a connect link, and the gateway does not support connecting without one`,
      `WARNING  ${FIX}/gateway/field-report.toml [resolver] tls-strict: tls-strict = false has no effect on a plain http:// url, and once the url is https:// it accepts any certificate`,
      `WARNING  ${FIX}/gateway/field-report.toml [dcv] tls-strict: tls-strict = false: the gateway accepts any certificate from the DCV servers, so anyone on the path can impersonate them`,
      `NOTE     ${FIX}/gateway/field-report.toml [web-resources] url: a separate web server on this host (http://localhost:8080) serves the web client; the gateway can serve the files itself`,
      `NOTE     ${FIX}/gateway/field-report.toml [log] level: level = 'trace' is meant for troubleshooting: large logs, with session ids and addresses`,
    ]);
    expect(run.stdout).toContain('fix: add [security] auth-token-verifier="http://127.0.0.1:9000/verifyToken/<DcvServerEndpoint of this server>" and restart dcvserver');
    expect(run.stdout).toContain('1 error, 2 warnings, 2 notes');
    expect(run.stdout).toContain('A link such as https://<gateway-host>:8443/?sessionId=console loads the web client');
    expect(run.stderr).toBe('dcv-resolver doctor: 1 error: users cannot connect (or not safely) until it is fixed\n');
  });

  it.each([
    ['resolver-url-missing', 'resolver.url-missing'],
    ['resolver-url-suffix', 'resolver.url-resolvesession-suffix'],
    ['web-resources-missing', 'web-resources.missing'],
    ['toml-syntax', 'gateway.toml-syntax'],
  ])('an error rule (%s) exits 1', async (name, rule) => {
    const run = await doctor(['--gateway-config', `${FIX}/gateway/${name}.toml`, '--json']);
    expect(run.code).toBe(1);
    const out = JSON.parse(run.stdout) as { ok: boolean; findings: { rule: string }[] };
    expect(out.ok).toBe(false);
    expect(out.findings.map((f) => f.rule)).toEqual([rule]);
  });

  it('--sessions: a session DCV would refuse is an error with its fix, per server; the fixed file passes', async () => {
    const configs = ['console-linux', 'console-windows', 'console-any-permissions'].flatMap((n) => ['--dcv-config', `${FIX}/dcv/${n}.conf`]);
    const run = await doctor(['--gateway-config', `${FIX}/gateway/clean.toml`, ...configs, '--sessions', `${FIX}/sessions.json`]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`  sessions:           sessions file '${FIX}/sessions.json' (8 items)\n`);
    const errors = run.stdout.split('\n').filter((line) => line.startsWith('ERROR '));
    expect(errors.map((line) => line.split(':')[0])).toEqual([
      `ERROR    ${FIX}/dcv/console-linux.conf session 'linux-person' → 10.0.1.15`,
      `ERROR    ${FIX}/dcv/console-linux.conf session 'linux-typo' → 10.0.1.15`,
      `ERROR    ${FIX}/dcv/console-windows.conf session 'windows-person' → 10.0.2.20`,
    ]);
    expect(run.stdout).toContain('fix: set DcvUser to the owner: dcv-resolver sessions put linux-person --endpoint 10.0.1.15 … --dcv-user ubuntu');
    expect(run.stderr).toBe('dcv-resolver doctor: 3 errors: users cannot connect (or not safely) until they are fixed\n');

    const dir = mkdtempSync(join(tmpdir(), 'doctor-sessions-'));
    try {
      const fixed = (JSON.parse(readFileSync(`${FIX}/sessions.json`, 'utf8')) as Record<string, unknown>[])
        .filter((s) => s.TargetSessionId === 'console')
        .map((s) => ({ ...s, DcvUser: s.DcvServerEndpoint === '10.0.2.20' ? 'Administrator' : 'ubuntu' }));
      writeFileSync(join(dir, 'sessions.json'), JSON.stringify(fixed));
      const again = await doctor(['--gateway-config', `${FIX}/gateway/clean.toml`, ...configs, '--sessions', join(dir, 'sessions.json')]);
      expect(again.code, again.stdout).toBe(0);
      expect(again.stdout).toContain('No findings.\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--sessions naming a file that is not there: exit 1 with the reason', async () => {
    const run = await doctor(['--gateway-config', `${FIX}/gateway/clean.toml`, '--sessions', `${FIX}/no-such-sessions.json`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^dcv-resolver doctor: --sessions: .*no-such-sessions\.json/);
  });

  it('warnings and notes only: exit 0', async () => {
    const run = await doctor(['--gateway-config', `${FIX}/gateway/dcv-tls-strict-false.toml`, '--dcv-config', `${FIX}/dcv/verifier-no-server.conf`]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('0 errors, 2 warnings, 0 notes');
  });

  it('--json: findings with severity and fix, counts, the links', async () => {
    const run = await doctor(['--gateway-config', `${FIX}/gateway/clean.toml`, '--dcv-config', `${FIX}/dcv/verifier-other-host.conf`, '--json']);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toEqual({
      ok: false,
      counts: { error: 1, warning: 0, info: 0 },
      findings: [
        {
          rule: 'dcv.verifier-elsewhere',
          severity: 'error',
          file: `${FIX}/dcv/verifier-other-host.conf`,
          key: '[security] auth-token-verifier (line 3)',
          message: "the verifier https://other-resolver.example.internal is not the resolver (https://resolver.example.internal:8445/3f9c0b1e0d8a4e6f, from the gateway's [resolver] url): tokens issued for it are refused here",
          fix: 'write [security] auth-token-verifier="https://resolver.example.internal:8445/3f9c0b1e0d8a4e6f/verifyToken/<DcvServerEndpoint of this server>"',
        },
      ],
      connectLinks: { browser: 'https://<gateway-host>:8443/?authToken=<token>#<sessionId>', native: 'dcv://<gateway-host>:8443/?authToken=<token>#<sessionId>' },
    });
  });

  it('usage errors exit 2', async () => {
    const none = await doctor([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^dcv-resolver doctor: --gateway-config FILE is required\n\nUsage: dcv-resolver doctor/);
    const missing = await doctor(['--gateway-config', `${FIX}/gateway/nope.toml`]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`dcv-resolver doctor: --gateway-config: cannot read '${FIX}/gateway/nope.toml': ENOENT\n`);
  });
});

describe('doctor --resolver-url probes with the gateway’s exact request', () => {
  let serve: ServingCli;
  let wrong: Server;
  let wrongUrl: string;
  let dir: string;
  /** The clean gateway, pointed at a loopback resolver (serve on the gateway host). */
  let gatewayConfig: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dcv-doctor-'));
    serve = await startServe(['--sessions', 'sessions.example.json']);
    wrong = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ SessionId: 'console', TransportProtocol: 'HTTP', DcvServerEndpoint: '10.0.1.15', Port: '8443', WebUrlPath: '/' }));
    });
    await new Promise<void>((resolve) => wrong.listen(0, '127.0.0.1', resolve));
    wrongUrl = `http://127.0.0.1:${(wrong.address() as AddressInfo).port}`;
    gatewayConfig = join(dir, 'gateway.toml');
    writeFileSync(
      gatewayConfig,
      "[gateway]\nweb-listen-endpoints = ['0.0.0.0:8443']\ncert-file = '/c.pem'\ncert-key-file = '/c.key'\n\n[resolver]\nurl = 'http://127.0.0.1:9000'\n\n[web-resources]\nlocal-resources-path = '/usr/share/dcv/www'\n",
    );
  });
  afterAll(async () => {
    serve?.stop();
    wrong?.closeAllConnections();
    await new Promise<void>((resolve) => (wrong ? wrong.close(() => resolve()) : resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('a resolver that honours the contract: the answer as a note, exit 0', async () => {
    const run = await doctor(['--gateway-config', gatewayConfig, '--resolver-url', serve.url]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`resolver probed:    ${serve.url} (session 'console')`);
    expect(run.stdout).toMatch(new RegExp(`NOTE     resolver POST ${serve.url.replace(/\./g, '\\.')}/resolveSession\\?sessionId=console: 200 in [\\d.]+ ms: 'console' → 10\\.150\\.248\\.180:8443, server session 'console'`));
  });

  it('an unknown --session: 404 is a note, exit 0', async () => {
    const run = await doctor(['--gateway-config', gatewayConfig, '--resolver-url', serve.url, '--session', 'ghost', '--json']);
    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as { findings: { rule: string }[] }).findings.map((f) => f.rule)).toEqual(['probe.not-found']);
  });

  it('a resolver that breaks the contract: an error per violation, exit 1', async () => {
    const run = await doctor(['--gateway-config', gatewayConfig, '--resolver-url', wrongUrl, '--json']);
    expect(run.code).toBe(1);
    const findings = (JSON.parse(run.stdout) as { findings: { rule: string; severity: string; message: string }[] }).findings;
    expect(findings).toEqual([expect.objectContaining({ rule: 'probe.port', severity: 'error', message: 'Port must be a JSON integer 1–65535, got the string "8443"' })]);
  });

  it('nothing answering: an error, exit 1', async () => {
    const run = await doctor(['--gateway-config', gatewayConfig, '--resolver-url', 'http://127.0.0.1:1', '--timeout', '2000']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/ERROR    resolver POST http:\/\/127\.0\.0\.1:1\/resolveSession\?sessionId=console: no answer after [\d.]+ ms: connect ECONNREFUSED/);
  });
});

describe('doctor probes an https resolver with the gateway’s own [resolver] ca-file', () => {
  let certs: TestCerts;
  let server: Server;
  let url: string;
  const config = (extra: string) =>
    `[gateway]\nweb-listen-endpoints = ['0.0.0.0:8443']\ncert-file = '/c.pem'\ncert-key-file = '/c.key'\n\n[resolver]\nurl = '${url}'\n${extra}\n[web-resources]\nlocal-resources-path = '/usr/share/dcv/www'\n`;

  beforeAll(async () => {
    certs = makeTestCerts();
    server = createHttpsServer({ cert: readFileSync(certs.files.serverCert), key: readFileSync(certs.files.serverKey) }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ SessionId: 'console', TransportProtocol: 'HTTP', DcvServerEndpoint: '10.0.1.15', Port: 8443, WebUrlPath: '/' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    certs?.remove();
  });

  it.each([
    ['with its ca-file the answer is checked: exit 0', true, 0, ['probe.ok']],
    ['without it the certificate is refused, as the gateway would: exit 1', false, 1, ['probe.no-answer']],
  ])('%s', async (_name, withCa, code, expected) => {
    const file = join(certs.dir, `gateway-${code}.toml`);
    writeFileSync(file, config(withCa ? `ca-file = '${certs.files.ca}'\n` : ''));
    const run = await doctor(['--gateway-config', file, '--resolver-url', url, '--json']);
    expect(run.code).toBe(code);
    expect((JSON.parse(run.stdout) as { findings: { rule: string }[] }).findings.map((f) => f.rule)).toEqual(expected);
  });
});

describe('doctor --table reads the session table (dynalite)', () => {
  let dynamo: LocalDynamo;

  beforeAll(async () => {
    dynamo = await startDynalite();
    await dynamo.createSessionTable('DcvSessions');
  });

  afterAll(async () => {
    await dynamo?.stop();
  });

  it('the same finding as from the sessions file, with the table named', async () => {
    const env = { AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint };
    const load = await runCli(['sessions', 'import', `${FIX}/sessions.json`, '--table', 'DcvSessions'], env);
    expect(load.code, load.stderr).toBe(0);
    const run = await runCli(['doctor', '--gateway-config', `${FIX}/gateway/clean.toml`, '--dcv-config', `${FIX}/dcv/console-windows.conf`, '--table', 'DcvSessions', '--json'], env);
    expect(run.code, run.stderr).toBe(1);
    const out = JSON.parse(run.stdout) as { findings: { rule: string; key: string }[] };
    expect(out.findings.map((f) => `${f.rule} ${f.key}`)).toEqual(["dcv.authorization-refused session 'windows-person' → 10.0.2.20"]);
  });

  it('a table that is not there: exit 1 with the reason, not a crash', async () => {
    const run = await runCli(['doctor', '--gateway-config', `${FIX}/gateway/clean.toml`, '--table', 'NoSuchTable'], { AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^dcv-resolver doctor: --table: .*NoSuchTable/);
  });
});

describe('doctor arguments (in-process)', () => {
  it.each([
    ['a bad --resolver-url', ['--gateway-config', 'g', '--resolver-url', 'ftp://x'], /^--resolver-url must be http:\/\/ or https:\/\//],
    ['an empty --session', ['--gateway-config', 'g', '--session', ''], /^--session must not be empty$/],
    ['a bad --timeout', ['--gateway-config', 'g', '--timeout', 'soon'], /^--timeout must be 1–120000 milliseconds/],
    ['a positional argument', ['--gateway-config', 'g', 'extra'], /Unexpected argument 'extra'/],
    ['--sessions and --table together', ['--gateway-config', 'g', '--sessions', 's.json', '--table', 'T'], /^give --sessions FILE or --table NAME, not both$/],
  ])('%s -> exit 2', (_name, args, message) => {
    let error: unknown;
    try {
      parseDoctorArgs(args);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(2);
    expect((error as Error).message).toMatch(message);
  });

  it('--sessions FILE or --table NAME', () => {
    expect(parseDoctorArgs(['--gateway-config', 'g', '--sessions', 's.json']).sessions).toEqual({ kind: 'file', file: 's.json' });
    expect(parseDoctorArgs(['--gateway-config', 'g', '--table', 'DcvSessions']).sessions).toEqual({ kind: 'table', table: 'DcvSessions' });
    expect(parseDoctorArgs(['--gateway-config', 'g']).sessions).toBeUndefined();
  });

  it('repeatable --dcv-config', () => {
    expect(parseDoctorArgs(['--gateway-config', 'g', '--dcv-config', 'a', '--dcv-config', 'b']).dcvConfigs).toEqual(['a', 'b']);
  });
});
