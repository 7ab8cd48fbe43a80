import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = 'bin/dcv-resolver.mjs';
/** Bound on any single wait for a child process. */
const WAIT_MS = 30_000;

const CONSOLE_HTTP = '{"SessionId":"console","TransportProtocol":"HTTP","DcvServerEndpoint":"10.150.248.180","Port":8443,"WebUrlPath":"/"}';
const CONSOLE_QUIC = '{"SessionId":"console","TransportProtocol":"QUIC","DcvServerEndpoint":"10.150.248.180","Port":8443,"WebUrlPath":"/"}';

interface Cli {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal name). */
  readonly exited: Promise<number | string>;
  /** Resolves with the URL from the "serving on" line; rejects if the process exits first. */
  serving(): Promise<string>;
}

const running: Cli[] = [];

/** The environment a user would have: the test's fake AWS settings, logs at INFO, no vitest internals. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, POWERTOOLS_LOG_LEVEL: 'INFO', ...extra };
  delete env.NODE_OPTIONS;
  if (!('AWS_ENDPOINT_URL_DYNAMODB' in extra)) delete env.AWS_ENDPOINT_URL_DYNAMODB;
  for (const key of Object.keys(env)) if (key.startsWith('VITEST')) delete env[key];
  return env;
}

function start(command: string, args: string[], env = childEnv(), detached = false): Cli {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const cli: Cli = {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    serving: () =>
      new Promise((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error(`no "serving on" line within ${WAIT_MS} ms; stderr: ${err}`)), WAIT_MS);
        const check = () => {
          const match = /serving on (http:\/\/\S+) /.exec(err);
          if (match) {
            clearTimeout(deadline);
            resolve(match[1]!);
          }
        };
        child.stderr!.on('data', check);
        check();
        exited.then((code) => {
          clearTimeout(deadline);
          reject(new Error(`exited with ${code} before serving; stderr: ${err}`));
        });
      }),
  };
  running.push(cli);
  return cli;
}

/**
 * The CLI's own lines on stderr. On Node 20 the AWS SDK adds a NodeVersionSupportWarning; that is
 * the SDK's, not ours, so it is left out of exact comparisons.
 */
function messages(cli: Cli): string {
  return cli
    .stderr()
    .split('\n')
    .filter((line) => line.startsWith('dcv-resolver'))
    .map((line) => `${line}\n`)
    .join('');
}

function serve(args: string[], env?: NodeJS.ProcessEnv): Cli {
  return start(process.execPath, [CLI, 'serve', ...args], env);
}

async function exitCode(cli: Cli): Promise<number | string> {
  const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), WAIT_MS).unref());
  return Promise.race([cli.exited, timeout]);
}

/** The gateway's request, byte for byte what the contract documents. */
function gatewayRequest(baseUrl: string, query: string, method = 'POST'): Promise<{ status: number; type?: string; body: string }> {
  const url = new URL(`/resolveSession?${query}`, baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers: { accept: 'application/json' }, agent: false },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body }));
      },
    );
    req.on('error', reject);
    req.setTimeout(WAIT_MS, () => req.destroy(new Error('request timed out')));
    req.end();
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

afterAll(() => {
  // Never leave a server behind, whatever failed.
  for (const cli of running.splice(0)) {
    if (cli.child.exitCode === null && cli.child.signalCode === null) {
      try {
        if (cli.child.spawnargs[0] !== process.execPath) process.kill(-cli.child.pid!, 'SIGKILL');
        else cli.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

describe('serve --sessions with the shipped sessions.example.json', () => {
  it('answers the gateway’s exact request, logs one line per request, and exits 0 on SIGTERM', async () => {
    const cli = serve(['--sessions', 'sessions.example.json', '--port', '0']);
    const url = await cli.serving();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(cli.stderr()).toContain(`(gateway: [resolver] url = '${url}')`);

    expect(await gatewayRequest(url, 'sessionId=console&transport=HTTP&clientIpAddress=203.0.113.25')).toEqual({ status: 200, type: 'application/json', body: CONSOLE_HTTP });
    expect(await gatewayRequest(url, 'sessionId=console&transport=QUIC&clientIpAddress=203.0.113.25')).toEqual({ status: 200, type: 'application/json', body: CONSOLE_QUIC });
    expect(await gatewayRequest(url, 'sessionId=desktop&transport=QUIC')).toEqual({
      status: 404,
      type: 'application/json',
      body: `{"error":"NotFoundError","message":"session 'desktop' does not offer QUIC"}`,
    });
    expect((await gatewayRequest(url, 'sessionId=console&transport=HTTP', 'GET')).status).toBe(405);

    cli.child.kill('SIGTERM');
    expect(await exitCode(cli)).toBe(0);
    expect(cli.stderr()).toContain('dcv-resolver: SIGTERM, shutting down');

    const lines = cli.stdout().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.message === 'dcv-resolver listening')).toMatchObject({ url, source: 'file sessions.example.json' });
    const requests = lines.filter((l) => l.message === 'request');
    expect(requests).toHaveLength(4);
    expect(requests[0]).toMatchObject({ sessionId: 'console', transport: 'HTTP', status: 200, sourceIp: '127.0.0.1' });
    expect(requests[2]).toMatchObject({ sessionId: 'desktop', transport: 'QUIC', status: 404, reason: "session 'desktop' does not offer QUIC" });
    for (const line of requests) expect(typeof line.ms).toBe('number');
  });

  it('exits 0 on SIGINT too', async () => {
    const cli = serve(['--sessions', 'sessions.example.json', '--port', '0']);
    const url = await cli.serving();
    const port = Number(new URL(url).port);
    cli.child.kill('SIGINT');
    expect(await exitCode(cli)).toBe(0);
    expect(cli.stderr()).toContain('dcv-resolver: SIGINT, shutting down');
    expect(await canConnect(port)).toBe(false);
  });
});

describe('npm start', () => {
  it('is exactly the documented command line', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };
    expect(pkg.scripts.start).toBe('node bin/dcv-resolver.mjs serve --sessions sessions.example.json');
    expect(pkg.bin).toEqual({ 'dcv-resolver': 'bin/dcv-resolver.mjs' });
  });

  it('serves sessions.example.json (run through npm, on a free port instead of 9000)', async () => {
    // Its own process group: npm does not forward SIGTERM to the script, so the group gets the signal.
    const cli = start('npm', ['start', '--silent', '--', '--port', '0'], childEnv(), true);
    const url = await cli.serving();
    expect(cli.stderr()).toMatch(/serving on http:\/\/127\.0\.0\.1:\d+ /);
    expect(await gatewayRequest(url, 'sessionId=console&transport=HTTP')).toEqual({ status: 200, type: 'application/json', body: CONSOLE_HTTP });
    process.kill(-cli.child.pid!, 'SIGTERM');
    await exitCode(cli);
    // The server itself shut down cleanly (npm's own exit status on a signal is npm's business).
    await expect.poll(() => cli.stderr(), { timeout: WAIT_MS }).toContain('dcv-resolver: SIGTERM, shutting down');
    await expect.poll(() => canConnect(Number(new URL(url).port)), { timeout: WAIT_MS }).toBe(false);
  });

  it('defaults to 127.0.0.1:9000 (what the README and the gateway example use)', async () => {
    const { parseServeArgs } = await import('../../lambda/cli/serve-command');
    expect(parseServeArgs(['--sessions', 'sessions.example.json'])).toMatchObject({ sessions: 'sessions.example.json', host: '127.0.0.1', port: 9000 });
  });
});

describe.concurrent('serve --table against dynalite', () => {
  let dynamo: LocalDynamo;
  beforeAll(async () => {
    dynamo = await startDynalite();
    await dynamo.createSessionTable('DcvSessions');
    await dynamo.client().send(
      new PutItemCommand({
        TableName: 'DcvSessions',
        Item: { SessionId: { S: 'console' }, DcvServerEndpoint: { S: '10.150.248.180' }, HttpPort: { S: '8443' }, QuicPort: { N: '8443' } },
      }),
    );
  });
  afterAll(() => dynamo?.stop());

  it('answers from the table via AWS_ENDPOINT_URL_DYNAMODB and exits 0 on SIGTERM', async () => {
    const cli = serve(['--table', 'DcvSessions', '--port', '0'], childEnv({ AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint }));
    const url = await cli.serving();
    expect(await gatewayRequest(url, 'sessionId=console&transport=HTTP&clientIpAddress=203.0.113.25')).toEqual({ status: 200, type: 'application/json', body: CONSOLE_HTTP });
    expect(await gatewayRequest(url, 'sessionId=console&transport=QUIC')).toEqual({ status: 200, type: 'application/json', body: CONSOLE_QUIC });
    expect((await gatewayRequest(url, 'sessionId=ghost&transport=HTTP')).status).toBe(404);

    // An operator's edit shows up on the next request.
    await dynamo.client().send(
      new PutItemCommand({ TableName: 'DcvSessions', Item: { SessionId: { S: 'late' }, DcvServerEndpoint: { S: '10.150.248.9' } } }),
    );
    expect((await gatewayRequest(url, 'sessionId=late&transport=HTTP')).body).toBe(
      '{"SessionId":"late","TransportProtocol":"HTTP","DcvServerEndpoint":"10.150.248.9","Port":8443,"WebUrlPath":"/"}',
    );

    cli.child.kill('SIGTERM');
    expect(await exitCode(cli)).toBe(0);
    expect(JSON.parse(cli.stdout().split('\n')[0]!)).toMatchObject({ message: 'dcv-resolver listening', source: 'table DcvSessions' });
  });

  it('refuses to start on a missing table: clear message, exit 1', async () => {
    const cli = serve(['--table', 'NoSuchTable', '--port', '0'], childEnv({ AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint }));
    expect(await exitCode(cli)).toBe(1);
    expect(messages(cli)).toBe("dcv-resolver serve: table 'NoSuchTable' does not exist in region us-east-1\n");
  });

  it('refuses a table keyed on something else', async () => {
    const { CreateTableCommand } = await import('@aws-sdk/client-dynamodb');
    await dynamo.client().send(
      new CreateTableCommand({
        TableName: 'WrongKey',
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    const cli = serve(['--table', 'WrongKey', '--port', '0'], childEnv({ AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint }));
    expect(await exitCode(cli)).toBe(1);
    expect(messages(cli)).toBe("dcv-resolver serve: table 'WrongKey' has partition key 'id', expected 'SessionId'\n");
  });
});

// Independent child processes: run them side by side to keep the suite fast.
describe.concurrent('refuses to start with a clear message and exit code 1', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dcv-cli-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // The other ways a file can be bad are covered in-process by test/unit/file-session-store.test.ts.
  it('a bad sessions file', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, '[{"SessionId": "console",');
    const cli = serve(['--sessions', file, '--port', '0']);
    expect(await exitCode(cli)).toBe(1);
    expect(messages(cli)).toMatch(new RegExp(`^dcv-resolver serve: ${file}: not valid JSON \\(.+\\)\\n$`));
    expect(cli.stderr()).not.toMatch(/\bat \S+:\d+:\d+/); // no stack trace
  });

  it('a missing sessions file', async () => {
    const file = join(dir, 'missing.json');
    const cli = serve(['--sessions', file, '--port', '0']);
    expect(await exitCode(cli)).toBe(1);
    expect(messages(cli)).toBe(`dcv-resolver serve: ${file}: cannot read sessions file (ENOENT)\n`);
  });

  it('a taken port', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const cli = serve(['--sessions', 'sessions.example.json', '--port', String(port)]);
      expect(await exitCode(cli)).toBe(1);
      expect(messages(cli)).toBe(`dcv-resolver serve: port ${port} on 127.0.0.1 is already in use\n`);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('a usage error exits 2 with the usage', async () => {
    const cli = serve(['--sessions', 'sessions.example.json', '--verbose']);
    expect(await exitCode(cli)).toBe(2);
    expect(cli.stderr()).toMatch(/^dcv-resolver serve: Unknown option '--verbose'/m);
    expect(cli.stderr()).toContain('Usage: dcv-resolver serve (--sessions FILE | --table NAME) [options]');
  });
});

describe('serve --allow-source refuses a caller before reading its body', () => {
  it('a refused caller that stalls mid-body gets the 403 at once, the connection closes, and the request is logged', async () => {
    const cli = serve(['--sessions', 'sessions.example.json', '--port', '0', '--allow-source', '10.0.0.0/8']);
    const url = new URL(await cli.serving());
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: Number(url.port) }, () =>
        socket.write(`POST /resolveSession?sessionId=console&transport=HTTP HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n${'x'.repeat(65_000)}`),
      );
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString('utf8')));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
      // Before the fix the server waited for the other 536 bytes forever.
      socket.setTimeout(WAIT_MS, () => socket.destroy(new Error('no answer')));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(answer).toContain('"error":"ForbiddenError"');
    cli.child.kill('SIGTERM');
    expect(await exitCode(cli)).toBe(0);
    const lines = cli.stdout().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.message === 'request')).toMatchObject({ status: 403, sourceIp: '127.0.0.1', route: 'unknown' });
  });
});

// The argument rules, in-process (each child process costs seconds of start-up).
describe('serve arguments', () => {
  it.each([
    ['neither --sessions nor --table', [], /^give exactly one of --sessions FILE or --table NAME\n\nUsage: dcv-resolver serve/],
    ['both --sessions and --table', ['--sessions', 'x.json', '--table', 'T'], /^give exactly one of --sessions FILE or --table NAME/],
    ['an empty --sessions', ['--sessions', ''], /^give exactly one of --sessions FILE or --table NAME/],
    ['a port out of range', ['--sessions', 'x.json', '--port', '70000'], /^--port must be 0–65535, not '70000'$/],
    ['a non-numeric port', ['--sessions', 'x.json', '--port', 'http'], /^--port must be 0–65535, not 'http'$/],
    ['a negative port', ['--sessions', 'x.json', '--port=-1'], /^--port must be 0–65535, not '-1'$/],
    ['a positional argument', ['--sessions', 'x.json', 'extra'], /Unexpected argument 'extra'/],
  ])('%s -> exit 2', async (_name, args, message) => {
    const { parseServeArgs } = await import('../../lambda/cli/serve-command');
    const { CliError } = await import('../../lambda/cli/cli-error');
    let error: unknown;
    try {
      parseServeArgs(args);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CliError);
    expect((error as InstanceType<typeof CliError>).exitCode).toBe(2);
    expect((error as Error).message).toMatch(message);
  });

  it('parses a full command line', async () => {
    const { parseServeArgs } = await import('../../lambda/cli/serve-command');
    expect(parseServeArgs(['--table', 'DcvSessions', '--host', '::1', '--port', '9100'])).toMatchObject({
      table: 'DcvSessions',
      host: '::1',
      port: 9100,
    });
  });

  it('serve --help prints the usage and exits 0', async () => {
    const { main } = await import('../../lambda/cli/main');
    let out = '';
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    try {
      expect(await main(['serve', '--help'])).toBe(0);
    } finally {
      write.mockRestore();
    }
    expect(out).toContain('Usage: dcv-resolver serve (--sessions FILE | --table NAME) [options]');
  });
});
