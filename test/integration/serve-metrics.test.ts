import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_PATH, REPO_ROOT } from '../helpers/run-cli';
import { dimensionNames, emfLines } from '../helpers/emf';

/** Bound on any wait for the child. */
const WAIT_MS = 30_000;
const children: { kill(signal?: NodeJS.Signals): boolean }[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/**
 * `dcv-resolver serve` as a real child process on a free loopback port: the gateway's requests over HTTP,
 * then SIGTERM; resolves with everything it wrote to stdout and its exit code.
 */
async function serveAndStop(extraArgs: string[], requests: string[]): Promise<{ stdout: string; code: number | string }> {
  const child = spawn(process.execPath, [CLI_PATH, 'serve', '--sessions', 'sessions.example.json', '--port', '0', ...extraArgs], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), WAIT_MS);
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
      const match = /serving on (http:\/\/\S+) /.exec(stderr);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  for (const target of requests) {
    const response = await fetch(`${url}${target}`, { method: 'POST', signal: AbortSignal.timeout(WAIT_MS) });
    await response.arrayBuffer();
  }
  child.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), WAIT_MS))]);
  return { stdout, code };
}

describe('serve --metrics', () => {
  it('writes EMF lines (the Lambda function’s metrics) next to its JSON log lines, flushed on shutdown', async () => {
    // GIVEN serve with --metrics, WHEN the gateway asks for a known session three times, an unknown one
    // once and sends one bad request, and serve is stopped
    const { stdout, code } = await serveAndStop(
      ['--metrics'],
      [
        '/resolveSession?sessionId=console&transport=HTTP',
        '/resolveSession?sessionId=console&transport=QUIC',
        '/resolveSession?sessionId=desktop&transport=HTTP',
        '/resolveSession?sessionId=nobody-here&transport=HTTP',
        '/resolveSession?transport=HTTP',
      ],
    );
    // THEN it exits 0, its log lines are still there, and the EMF lines count each outcome
    expect(code).toBe(0);
    const logLines = stdout.split('\n').filter((l) => l.startsWith('{') && !l.includes('"_aws"')).map((l) => JSON.parse(l));
    expect(logLines.filter((l) => l.message === 'request')).toHaveLength(5);
    expect(logLines.find((l) => l.message === 'dcv-resolver listening')).toMatchObject({ metrics: 'on' });

    const lines = emfLines(stdout);
    const outcomes = Object.fromEntries(lines.filter((l) => 'Resolutions' in l).map((l) => [l.Outcome, l.Resolutions]));
    expect(outcomes).toEqual({ hit: 3, 'not-found': 1, 'bad-request': 1 });
    for (const line of lines) {
      expect(line.service).toBe('resolver');
      expect(line._aws.CloudWatchMetrics[0]!.Namespace).toBe('DcvSessionResolver');
    }
    const base = lines.find((l) => 'ResolveLatency' in l)!;
    expect(base.ResolveLatency).toHaveLength(5);
    expect(base.StoreLatency).toHaveLength(4);
    expect([...dimensionNames(lines)].sort()).toEqual(['Outcome', 'service']);
    expect(JSON.stringify(lines)).not.toContain('nobody-here');
  });

  it('without --metrics: log lines only, no EMF', async () => {
    const { stdout, code } = await serveAndStop([], ['/resolveSession?sessionId=console&transport=HTTP']);
    expect(code).toBe(0);
    expect(stdout).toContain('"message":"request"');
    expect(stdout).not.toContain('"_aws"');
  });

  it('rejects a value given to the flag', async () => {
    const child = spawn(process.execPath, [CLI_PATH, 'serve', '--sessions', 'sessions.example.json', '--metrics=yes'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const code = await new Promise((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(stderr).toContain('--metrics');
  });
});
