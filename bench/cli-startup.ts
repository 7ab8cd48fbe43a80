import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fmt, progress, report, ROOT, spread, type Spread } from './lib';

/**
 * `node --import tsx bench/cli-startup.ts [rounds] [cli]`: how long the CLI takes to start, as a user runs it
 * (the package's bin entry, a fresh process each time): `--help`, `token create --help`, and `serve` until it
 * is listening (then stopped). Also bare `node -e 0`, the floor. Rounds interleave the cases.
 */
const rounds = Number(process.argv[2] ?? 15);
const cli = process.argv[3] ?? join(ROOT, 'bin', 'dcv-resolver.mjs');

interface Case {
  readonly name: string;
  readonly args: string[];
  /** Finished when this appears on stdout or stderr (the process is then killed); else at exit. */
  readonly until?: RegExp;
}

const CASES: Case[] = [
  { name: 'node -e 0', args: ['-e', '0'] },
  { name: '--help', args: [cli, '--help'] },
  { name: 'token create --help', args: [cli, 'token', 'create', '--help'] },
  {
    name: 'serve (until listening)',
    args: [cli, 'serve', '--sessions', join(ROOT, 'sessions.example.json'), '--port', '0'],
    until: /listening/,
  },
];

function once(c: Case): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, c.args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
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
      reject(new Error(`${c.name}: no answer in 20 s`));
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
      if (c.until) reject(new Error(`${c.name}: exited (${code}) before ${c.until}: ${out.slice(0, 300)}`));
      else if (code !== 0) reject(new Error(`${c.name}: exit ${code}: ${out.slice(0, 300)}`));
      else finish();
    });
  });
}

const times = new Map<string, number[]>(CASES.map((c) => [c.name, []]));
for (let i = 0; i < rounds; i++) {
  for (let k = 0; k < CASES.length; k++) {
    const c = CASES[(i + k) % CASES.length]!;
    times.get(c.name)!.push(await once(c));
  }
  if ((i + 1) % 5 === 0) progress(`cli start-up: ${i + 1}/${rounds}`);
}
const results: { name: string; ms: Spread }[] = CASES.map((c) => ({ name: c.name, ms: spread(times.get(c.name)!, 1) }));
for (const r of results) progress(`${r.name}: ${fmt(r.ms)} ms`);
await report({ rounds, cli: cli.replace(ROOT, '.'), node: process.version, results });
