import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { GATEWAY_PATH, HIT_BODY } from './events';
import { cpuSeconds, NODE_ARGS, OFFLINE_AWS_ENV, peakRssMiB, progress, report, ROOT, spread, type Spread } from './lib';

/**
 * 2. Local server throughput. The real `dcv-resolver serve` (FileSessionStore on sessions.example.json,
 * logging at INFO) and a bare node:http baseline each run in their own process; this process is the
 * load generator. Every response body is compared with the exact expected answer (autocannon
 * expectBody), so a fast wrong answer counts as a mismatch, not as throughput.
 * Args: [rounds] [seconds per round] [connections].
 */
const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 5);
const connections = Number(process.argv[4] ?? 16);

interface Server {
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess;
  readonly logFile?: string;
}

/** Starts a server process and waits for its "serving on URL" line on stderr. */
function startServer(name: string, args: string[], logFile?: string): Promise<Server> {
  const stdout = logFile ? openSync(logFile, 'w') : 'ignore';
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...OFFLINE_AWS_ENV, POWERTOOLS_LOG_LEVEL: 'INFO' },
    stdio: ['ignore', stdout, 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start within 30 s: ${text}`));
    }, 30_000);
    child.stderr!.on('data', (chunk) => {
      text += chunk;
      const match = /serving on (http:\/\/[^\s]+)/.exec(text);
      if (match) {
        clearTimeout(timer);
        resolve({ name, url: match[1]!, child, logFile });
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}): ${text}`)));
  });
}

function stopServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.child.kill('SIGKILL'), 5000);
    server.child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    server.child.kill('SIGTERM');
  });
}

/** One request, checked byte for byte, before any load. */
async function checkAnswer(server: Server): Promise<void> {
  const response = await fetch(`${server.url}${GATEWAY_PATH}`, { method: 'POST', headers: { accept: 'application/json' } });
  const body = await response.text();
  if (response.status !== 200 || body !== HIT_BODY) {
    throw new Error(`${server.name}: got ${response.status} ${body}; expected 200 ${HIT_BODY}`);
  }
}

async function load(server: Server, duration: number) {
  const cpuBefore = cpuSeconds(server.child.pid!) ?? Number.NaN;
  const result = await autocannon({
    url: `${server.url}${GATEWAY_PATH}`,
    method: 'POST',
    headers: { accept: 'application/json' },
    connections,
    duration,
    timeout: 5,
    expectBody: HIT_BODY,
  });
  const cpu = (cpuSeconds(server.child.pid!) ?? Number.NaN) - cpuBefore;
  return {
    rps: result.requests.total / result.duration,
    // The server's own CPU per answer: steadier than req/s when other work shares the cores.
    cpuUsPerRequest: (cpu * 1e6) / result.requests.total,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    mismatches: result.mismatches,
  };
}

async function countLines(file: string): Promise<number> {
  let lines = 0;
  for await (const chunk of createReadStream(file)) {
    for (const byte of chunk as Buffer) if (byte === 10) lines++;
  }
  return lines;
}

export interface ServerResult {
  readonly name: string;
  readonly rps: Spread;
  readonly p50Ms: Spread;
  readonly p99Ms: Spread;
  readonly cpuUsPerRequest: Spread;
  readonly requests: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly mismatches: number;
  readonly peakRssMiB?: number;
  readonly logLines?: number;
}

// The log goes to a real file (as a service's redirected stdout would), and is counted afterwards to
// prove that logging was on: one line per request.
const logDir = mkdtempSync(join(tmpdir(), 'dcv-bench-'));
const servers: Server[] = [];
try {
  servers.push(
    await startServer(
      'serve',
      ['bin/dcv-resolver.mjs', 'serve', '--sessions', 'sessions.example.json', '--host', '127.0.0.1', '--port', '0'],
      join(logDir, 'serve.log'),
    ),
  );
  servers.push(await startServer('baseline', [...NODE_ARGS, 'bench/baseline-server.ts']));
  for (const server of servers) await checkAnswer(server);

  const runs = new Map<string, Awaited<ReturnType<typeof load>>[]>(servers.map((s) => [s.name, []]));
  // Warm both (JIT, connection pools) before anything is recorded.
  for (const server of servers) await load(server, 2);
  for (let round = 0; round < rounds; round++) {
    // Alternate the order so neither server always runs on a machine warmed by the other.
    const order = round % 2 ? [...servers].reverse() : servers;
    for (const server of order) {
      const run = await load(server, seconds);
      runs.get(server.name)!.push(run);
      progress(`server ${server.name}: round ${round + 1}/${rounds}: ${Math.round(run.rps)} req/s`);
    }
  }
  const results: ServerResult[] = [];
  for (const server of servers) {
    const list = runs.get(server.name)!;
    const sum = (key: 'requests' | 'non2xx' | 'errors' | 'mismatches') => list.reduce((t, r) => t + r[key], 0);
    results.push({
      name: server.name,
      rps: spread(list.map((r) => r.rps), 0),
      p50Ms: spread(list.map((r) => r.p50Ms), 2),
      p99Ms: spread(list.map((r) => r.p99Ms), 2),
      cpuUsPerRequest: spread(list.map((r) => r.cpuUsPerRequest), 1),
      requests: sum('requests'),
      non2xx: sum('non2xx'),
      errors: sum('errors'),
      mismatches: sum('mismatches'),
      peakRssMiB: peakRssMiB(server.child.pid!),
    });
  }
  for (const server of servers) await stopServer(server);
  const serve = results.find((r) => r.name === 'serve')!;
  const logLines = await countLines(join(logDir, 'serve.log'));
  results[results.indexOf(serve)] = { ...serve, logLines };
  await report({ rounds, secondsPerRound: seconds, connections, results });
} finally {
  for (const server of servers) if (server.child.exitCode === null) server.child.kill('SIGKILL');
  rmSync(logDir, { recursive: true, force: true });
}
