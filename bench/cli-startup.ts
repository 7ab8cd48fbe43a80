import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { buildPackage, fmt, progress, report, ROOT, spread, type Spread } from './lib';

/**
 * `node --import tsx bench/cli-startup.ts [rounds] [cli | label=cli]...`: how long the CLI takes to start, as a
 * user runs it (a package's bin entry, a fresh `node` process each time, the Node running this script):
 * `--help`, `token create --help`, and `serve` until it is listening (then killed). Also bare `node -e 0`, the
 * floor. Several CLIs (e.g. `before=/tmp/before/bin/dcv-resolver.mjs after=bin/dcv-resolver.mjs`) are measured
 * in one run, every case of every CLI in one rotation per round, so a busy moment hits them alike. Default: this
 * tree's bin/dcv-resolver.mjs, which runs dist/ (built first if missing; a warning if lambda/ is newer).
 *
 * Each case runs once untimed first (it must succeed; a CLI that compiles on the fly warms its cache, as any
 * second run would). The cwd is an empty temporary folder, as for a user running an installed CLI from their
 * own project: nothing is read from it (serve's sessions file is given as an absolute path).
 */
const rounds = Number(process.argv[2] ?? 15);
const OWN_CLI = join(ROOT, 'bin', 'dcv-resolver.mjs');
const clis = (process.argv.length > 3 ? process.argv.slice(3) : [`this tree=${OWN_CLI}`]).map((arg) => {
  const eq = arg.indexOf('=');
  const path = resolve(eq > 0 ? arg.slice(eq + 1) : arg);
  return { label: eq > 0 ? arg.slice(0, eq) : path.startsWith(`${ROOT}/`) ? relative(ROOT, path) : path, path };
});
if (!(rounds >= 1 && rounds <= 101)) throw new Error(`rounds: 1 to 101, not ${process.argv[2]}`);
if (clis.some((c) => c.path === OWN_CLI)) buildPackage();
const SESSIONS = join(ROOT, 'sessions.example.json');
// serve's stderr line once it listens and handles signals (written synchronously; its JSON log line on stdout
// is coalesced, and absent at POWERTOOLS_LOG_LEVEL above INFO).
const SERVING = /^dcv-resolver: serving on /m;

interface Case {
  readonly cli: string;
  readonly name: string;
  readonly args: string[];
  /** Finished when this appears on stdout or stderr (the process is then killed); else at exit. */
  readonly until?: RegExp;
}

const CASES: Case[] = [
  { cli: '-', name: 'node -e 0', args: ['-e', '0'] },
  ...clis.flatMap(({ label, path }): Case[] => [
    { cli: label, name: '--help', args: [path, '--help'] },
    { cli: label, name: 'token create --help', args: [path, 'token', 'create', '--help'] },
    { cli: label, name: 'serve (until listening)', args: [path, 'serve', '--sessions', SESSIONS, '--port', '0'], until: SERVING },
  ]),
];
const key = (c: Case) => `${c.cli} | ${c.name}`;

const cwd = mkdtempSync(join(tmpdir(), 'dcv-cli-startup-'));
// No NODE_OPTIONS from the caller's shell (a `--import tsx` there would load tsx into every case).
const env = { ...process.env, NODE_OPTIONS: undefined };

function once(c: Case): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, c.args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve(performance.now() - started);
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${key(c)}: no answer in 20 s`));
    }, 20_000);
    const watch = (chunk: Buffer) => {
      out += chunk.toString();
      if (c.until?.test(out)) finish();
    };
    child.stdout.on('data', watch);
    child.stderr.on('data', watch);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (done) return;
      if (c.until) reject(new Error(`${key(c)}: exited (${code}) before ${c.until}: ${out.slice(0, 300)}`));
      else if (code !== 0) reject(new Error(`${key(c)}: exit ${code}: ${out.slice(0, 300)}`));
      else finish();
    });
  });
}

try {
  for (const c of CASES) await once(c);
  const times = new Map<string, number[]>(CASES.map((c) => [key(c), []]));
  for (let i = 0; i < rounds; i++) {
    // Rotate the order so no case always runs right after the same other one.
    for (let k = 0; k < CASES.length; k++) {
      const c = CASES[(i + k) % CASES.length]!;
      times.get(key(c))!.push(await once(c));
    }
    if ((i + 1) % 5 === 0) progress(`cli start-up: ${i + 1}/${rounds}`);
  }
  const results: { cli: string; name: string; ms: Spread }[] = CASES.map((c) => ({ cli: c.cli, name: c.name, ms: spread(times.get(key(c))!, 1) }));
  for (const r of results) progress(`${r.cli} | ${r.name}: ${fmt(r.ms)} ms`);
  await report({
    rounds,
    node: process.version,
    clis: clis.map(({ label, path }) => ({ label, path: path.startsWith(`${ROOT}/`) ? `./${relative(ROOT, path)}` : path })),
    results,
  });
} finally {
  rmSync(cwd, { recursive: true, force: true });
}
