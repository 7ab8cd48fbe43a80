/**
 * `sessions` CLI at scale, against dynalite on loopback: list (table and --json), export, and import of
 * the exported file into an empty table, for N items. Wall time and peak RSS per command (GNU time).
 * Standalone: node --import tsx bench/sessions-cli.ts [N=20000] [rounds=3]
 */
// Fake credentials and a region for the in-process dynalite client (loopback only).
import '../test/helpers/offline-aws-env';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchWriteItemCommand } from '@aws-sdk/client-dynamodb';
import { toAttributes } from '../lambda/adapters/session-admin-table';
import { startDynalite } from '../test/helpers/dynalite';
import { cliBaseEnv } from '../test/helpers/run-cli';
import { fmt, machine, ROOT, spread } from './lib';

const count = Number(process.argv[2] ?? 20_000);
const rounds = Number(process.argv[3] ?? 3);
const dir = mkdtempSync(join(tmpdir(), 'bench-sessions-'));
const dynamo = await startDynalite();

const env = {
  ...cliBaseEnv(),
  AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
};

/** One CLI run under GNU time (its report goes to a file): wall seconds and peak RSS; the output is checked first. */
// Asynchronous: dynalite runs in this process and must keep answering while the CLI runs.
async function measure(args: string[], check: (stdout: string) => void): Promise<{ seconds: number; rssMiB: number }> {
  const started = process.hrtime.bigint();
  const { stdout: out } = await promisify(execFile)(
    '/usr/bin/time',
    ['-f', 'RSS_KB=%M', '-o', join(dir, 'time.txt'), process.execPath, join(ROOT, 'bin/dcv-resolver.mjs'), 'sessions', ...args],
    { env, cwd: dir, maxBuffer: 512 * 1024 * 1024, encoding: 'utf8' },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  check(out);
  const rss = /RSS_KB=(\d+)/.exec(readFileSync(join(dir, 'time.txt'), 'utf8'));
  return { seconds, rssMiB: rss ? Number(rss[1]) / 1024 : NaN };
}

try {
  await dynamo.createSessionTable('Big');
  const ids = Array.from({ length: count }, (_, i) => `s${String(i).padStart(6, '0')}`);
  for (let i = 0; i < count; i += 25) {
    const requests = ids.slice(i, i + 25).map((id, j) => ({
      PutRequest: { Item: toAttributes({ SessionId: id, DcvServerEndpoint: `10.${(i + j) >> 16}.${((i + j) >> 8) & 255}.${(i + j) & 255}`, HttpPort: 8443, WebUrlPath: '/', Source: 'manual' }) },
    }));
    await dynamo.client().send(new BatchWriteItemCommand({ RequestItems: { Big: requests } }));
  }

  const results: Record<string, { seconds: number; rssMiB: number }[]> = { list: [], 'list --json': [], export: [], import: [] };
  for (let round = 0; round < rounds; round++) {
    results.list!.push(await measure(['list', '--table', 'Big'], (o) => {
      if (!o.includes(`${count} sessions in`)) throw new Error('list: wrong count');
    }));
    results['list --json']!.push(await measure(['list', '--table', 'Big', '--json'], (o) => {
      if ((JSON.parse(o) as unknown[]).length !== count) throw new Error('list --json: wrong count');
    }));
    results.export!.push(await measure(['export', join(dir, 'out.json'), '--force', '--table', 'Big'], () => {}));
    const target = `Import${round}`;
    await dynamo.createSessionTable(target);
    results.import!.push(await measure(['import', join(dir, 'out.json'), '--table', target], (o) => {
      if (!o.includes(`${count} added, 0 replaced, 0 unchanged`)) throw new Error(`import: ${o}`);
    }));
  }
  console.log(JSON.stringify(machine()));
  console.log(`sessions CLI, ${count} items on dynalite (loopback), ${rounds} rounds: median (min–max)`);
  for (const [name, runs] of Object.entries(results)) {
    console.log(
      `  ${name.padEnd(12)} ${fmt(spread(runs.map((r) => r.seconds)), 2)} s, peak RSS ${fmt(spread(runs.map((r) => r.rssMiB)), 0)} MiB`,
    );
  }
} finally {
  await dynamo.stop();
  rmSync(dir, { recursive: true, force: true });
}
