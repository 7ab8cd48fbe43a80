import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { buildPackage, devNull, ROOT } from './lib';

/**
 * `node --import tsx bench/refused-stall.ts [connections=1000] [bodyBytes=65000] [waitMs=20000]`
 *
 * Issue 21 item 5's scenario against the real `dcv-resolver serve` (built dist/, its own process): callers
 * that --allow-source refuses open `connections` connections, each declaring a 64 KiB body, sending
 * `bodyBytes` of it and then stalling. Reports the server's RSS growth, how many got an answer (and which),
 * and how many the server closed, within `waitMs`. Loopback only; bounded in connections and time.
 */
const connections = Number(process.argv[2] ?? 1000);
const bodyBytes = Number(process.argv[3] ?? 65_000);
const waitMs = Number(process.argv[4] ?? 20_000);

function rssMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number((Number(match![1]) / 1024).toFixed(1));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

buildPackage();
const server = spawn(
  process.execPath,
  [join(ROOT, 'bin', 'dcv-resolver.mjs'), 'serve', '--sessions', join(ROOT, 'sessions.example.json'), '--port', '0', '--allow-source', '10.0.0.0/8'],
  { stdio: ['ignore', devNull(), 'pipe'] },
);
const url = await new Promise<URL>((resolve, reject) => {
  let text = '';
  server.stderr!.on('data', (c: Buffer) => {
    text += c.toString();
    const match = /serving on (http:\/\/\S+) /.exec(text);
    if (match) resolve(new URL(match[1]!));
  });
  server.once('exit', (code) => reject(new Error(`serve exited (${code}): ${text}`)));
  setTimeout(() => reject(new Error(`serve did not start: ${text}`)), 30_000).unref();
});
await sleep(500);
const pid = server.pid!;
const rssBefore = rssMiB(pid, 'VmRSS');

const statuses = new Map<string, number>();
let answered = 0;
let closedByServer = 0;
let lastAnswerMs = 0;
const sockets: Socket[] = [];
const started = performance.now();
const head = `POST /resolveSession?sessionId=console&transport=HTTP HTTP/1.1\r\nHost: ${url.host}\r\nContent-Length: 65536\r\n\r\n`;
const body = Buffer.alloc(bodyBytes, 'x');
for (let i = 0; i < connections; i += 1) {
  const socket = connect({ host: url.hostname, port: Number(url.port) });
  sockets.push(socket);
  let seen = false;
  socket.on('connect', () => socket.write(Buffer.concat([Buffer.from(head), body])));
  socket.on('data', (chunk: Buffer) => {
    if (seen) return;
    seen = true;
    answered += 1;
    lastAnswerMs = performance.now() - started;
    const status = /^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1] ?? 'other';
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
  });
  socket.on('end', () => (closedByServer += 1));
  socket.on('error', () => {});
  // A bounded pace: the listen backlog is not what is measured.
  if (i % 100 === 99) await sleep(50);
}
const sentMs = performance.now() - started;
let peakWhileWaiting = 0;
const deadline = performance.now() + waitMs;
while (performance.now() < deadline && closedByServer < connections) {
  await sleep(250);
  peakWhileWaiting = Math.max(peakWhileWaiting, rssMiB(pid, 'VmRSS'));
}
const result = {
  node: process.version,
  connections,
  bodyBytes,
  waitMs,
  rssBeforeMiB: rssBefore,
  rssPeakMiB: rssMiB(pid, 'VmHWM'),
  rssMaxWhileWaitingMiB: peakWhileWaiting,
  rssGrowthMiB: Number((rssMiB(pid, 'VmHWM') - rssBefore).toFixed(1)),
  answered,
  statuses: Object.fromEntries(statuses),
  lastAnswerMs: Math.round(lastAnswerMs),
  closedByServer,
  allSentMs: Math.round(sentMs),
  elapsedMs: Math.round(performance.now() - started),
};
for (const socket of sockets) socket.destroy();
server.kill('SIGTERM');
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
