import { existsSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fmt, machine, ROOT, runBenchChild, type Spread } from './lib';

/**
 * `npm run bench [-- --only handler,server,verify,portal,coldstart,cli,discovery,power] [--quick] [--discovery-100k] [--out FILE]`
 *
 * Each measurement runs in its own child process; loopback only; every load is bounded in count and
 * time. A full run writes bench/results.json. Numbers are reported, never gated on: the exit code is
 * non-zero only when a benchmark could not run or an answer was wrong.
 */
const CASES = ['handler', 'server', 'verify', 'portal', 'coldstart', 'cli', 'discovery', 'power'] as const;
type CaseName = (typeof CASES)[number];

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    // Adds discovery's 100,000-instance runs (minutes of CPU; one at a time on a shared machine).
    'discovery-100k': { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(`usage: npm run bench -- [--only ${CASES.join(',')}] [--quick] [--discovery-100k] [--out FILE]\n`);
  process.exit(0);
}
const selected = (values.only ? values.only.split(',').map((s) => s.trim()) : [...CASES]) as CaseName[];
for (const name of selected) {
  if (!CASES.includes(name)) throw new Error(`unknown benchmark '${name}'; known: ${CASES.join(', ')}`);
}
const quick = values.quick;
// A subset or quick run is a look, not the record: it only writes a file when asked to.
const outFile = values.out ?? (values.only || quick ? undefined : join(ROOT, 'bench', 'results.json'));

// [module, args, timeout ms]: the args set rounds and durations, so the whole run stays bounded.
const PLAN: Record<CaseName, [string, string[], number]> = {
  handler: ['handler.ts', quick ? ['2', '200'] : ['5', '400'], 180_000],
  server: ['server.ts', quick ? ['1', '3'] : ['3', '5'], 180_000],
  // [rounds, verifications per round]: each a yes that takes a real use of a token.
  verify: ['verify.ts', quick ? ['1', '500'] : ['3', '2000'], 180_000],
  // [rounds, requests per round, catalog sizes]: list pages read the whole catalog, so size is the variable.
  portal: ['portal.ts', quick ? ['1', '20', '100,1000'] : ['3', '30', '100,1000,10000'], 300_000],
  coldstart: ['coldstart.ts', quick ? ['5'] : ['21'], 300_000],
  // [rounds]: this tree's CLI (bin/dcv-resolver.mjs, dist/), fresh processes: --help, token create --help, serve.
  cli: ['cli-startup.ts', quick ? ['5'] : ['21'], 180_000],
  // [fleet sizes:repeats, burst events]; events are measured on each size's last table.
  discovery: [
    'discovery.ts',
    [`${quick ? '1000:1,10000:1' : '1000:3,10000:3,50000:1'}${values['discovery-100k'] ? ',100000:1' : ''}`, '300'],
    values['discovery-100k'] ? 2_400_000 : 600_000,
  ],
  // [desktops:repeats]: one real pass each, stand-ins and dynalite in their own processes.
  power: ['power.ts', [quick ? '1000:1,10000:1' : '1000:3,10000:3'], 600_000],
};

const started = new Date();
const results: Record<string, unknown> = {};
const failures: string[] = [];
const machineInfo = machine();
process.stderr.write(
  `bench: ${selected.join(', ')} on Node ${machineInfo.node}, ${machineInfo.cpus} × ${machineInfo.cpuModel}, load ${machineInfo.loadavg}\n`,
);
for (const name of selected) {
  const [module, args, timeout] = PLAN[name];
  if (!existsSync(join(ROOT, 'bench', module))) {
    results[name] = { skipped: `bench/${module} does not exist` };
    continue;
  }
  process.stderr.write(`bench: ${name} …\n`);
  const t0 = performance.now();
  try {
    results[name] = { ...(await runBenchChild<Record<string, unknown>>(module, args, timeout)), seconds: Math.round((performance.now() - t0) / 1000) };
  } catch (error) {
    failures.push(name);
    results[name] = { error: (error as Error).message };
  }
}

// ---- targets (reported, not enforced) --------------------------------------------------------------
interface Target {
  readonly target: string;
  readonly value: string;
  readonly met: boolean | undefined;
}
const targets: Target[] = [];
type Any = any; // eslint-disable-line @typescript-eslint/no-explicit-any
const r = results as Record<CaseName, Any>;
if (r.server?.results) {
  const serve = r.server.results.find((x: Any) => x.name === 'serve');
  const base = r.server.results.find((x: Any) => x.name === 'baseline');
  const ratio = serve.rps.median / base.rps.median;
  targets.push({ target: 'serve ≥ 20,000 req/s (logging on)', value: `${Math.round(serve.rps.median)} req/s`, met: serve.rps.median >= 20_000 });
  targets.push({ target: 'serve ≥ 0.5 × node:http baseline', value: `${ratio.toFixed(2)} × (${Math.round(base.rps.median)} req/s)`, met: ratio >= 0.5 });
  const bad = serve.non2xx + serve.errors + serve.mismatches + base.non2xx + base.errors + base.mismatches;
  targets.push({ target: 'zero errors / non-2xx / wrong bodies', value: String(bad), met: bad === 0 });
}
if (r.handler?.results) {
  const hit = r.handler.results.find((x: Any) => x.store === 'memory' && x.case === 'hit');
  targets.push({ target: 'handler (memory store) < 50 µs p50', value: `${hit.p50Us.median} µs`, met: hit.p50Us.median < 50 });
}
if (r.portal?.results) {
  const page = r.portal.results.find((x: Any) => x.case.startsWith('list page, DynamoDB') && x.items === 1000);
  if (page) targets.push({ target: 'portal list page, 1,000 sessions in DynamoDB < 100 ms p50', value: `${page.p50Ms.median} ms`, met: page.p50Ms.median < 100 });
}
if (r.coldstart?.timings) {
  for (const t of r.coldstart.timings.filter((x: Any) => x.name.startsWith('resolver bundle'))) {
    targets.push({ target: `${t.runtime}: ${t.name.replace(' bundle as deployed: ', ' cold ')} ≤ 1.25 × floor`, value: `${t.ratioToFloor} × wall (${t.ms.median} / ${(t.ms.median / t.ratioToFloor).toFixed(1)} ms), ${t.cpuRatioToFloor} × CPU; ${t.ratioToLeanFloor} × the lean floor`, met: t.ratioToFloor <= 1.25 });
  }
}
if (r.discovery?.runs) {
  const run = (instances: number, kind: string) => r.discovery.runs.find((x: Any) => x.instances === instances && x.run === kind);
  const full = run(10_000, 'from empty');
  const again = r.discovery.runs.filter((x: Any) => x.run === 'unchanged');
  if (full) targets.push({ target: 'reconcile 10,000 from empty < 30 s', value: `${full.seconds.median} s`, met: full.seconds.median < 30 });
  if (again.length) {
    const writes = again.reduce((t: number, x: Any) => t + x.writes, 0);
    targets.push({ target: 'unchanged reconcile: zero writes', value: String(writes), met: writes === 0 });
  }
  const big = run(100_000, 'from empty');
  const bigAgain = run(100_000, 'unchanged');
  if (big) targets.push({ target: 'reconcile 100,000 from empty < 120 s', value: `${big.seconds.median} s`, met: big.seconds.median < 120 });
  if (bigAgain) targets.push({ target: 'reconcile 100,000 unchanged < 15 s, 0 writes', value: `${bigAgain.seconds.median} s, ${bigAgain.writes} writes`, met: bigAgain.seconds.median < 15 && bigAgain.writes === 0 });
  if (big && bigAgain) {
    const heap = Math.max(big.peakHeapMiB, bigAgain.peakHeapMiB);
    targets.push({ target: 'reconcile 100,000: peak heap < 300 MiB', value: `${heap} MiB`, met: heap < 300 });
  }
  const single = (r.discovery.events ?? []).filter((x: Any) => x.case.includes('(InstanceId index)'));
  for (const e of single) {
    const requests = Object.values(e.requests as Record<string, number>).reduce((t, n) => t + n, 0);
    targets.push({ target: `event run on ${e.instances} items: no Scan, a handful of requests`, value: `${JSON.stringify(e.requests)}`, met: !e.requests.Scan && requests <= 6 });
  }
}

if (r.power?.runs) {
  const big = r.power.runs.find((x: Any) => x.desktops === 10_000);
  if (big) {
    targets.push({ target: 'power pass over 10,000 desktops < 20 s wall', value: `${big.seconds.median} s`, met: big.seconds.median < 20 });
    targets.push({ target: 'power pass over 10,000 desktops < 256 MiB heap', value: `${big.peakHeapMiB} MiB`, met: big.peakHeapMiB < 256 });
    // SSM by batches of 50 (plus the refused batches' lookups and resends), never one command per host.
    targets.push({ target: 'power pass: SSM requests < desktops / 10', value: `${big.requests.ssm} for 10,000`, met: big.requests.ssm < 1000 });
  }
}

// ---- report -----------------------------------------------------------------------------------------
const lines: string[] = [];
const row = (...cells: string[]) => lines.push(`| ${cells.join(' | ')} |`);
if (r.handler?.results) {
  lines.push('', 'Handler cost, µs per call: median of per-round p50 / p99 (min–max over rounds)', '');
  row('store', 'case', 'p50 µs', 'p99 µs');
  row('---', '---', '---:', '---:');
  for (const x of r.handler.results) row(x.store, x.case, fmt(x.p50Us as Spread), fmt(x.p99Us as Spread));
}
if (r.server?.results) {
  lines.push('', `Local server, ${r.server.connections} connections, ${r.server.rounds} × ${r.server.secondsPerRound} s`, '');
  row('server', 'req/s', 'p50 ms', 'p99 ms', 'server CPU µs/req', 'non-2xx', 'errors', 'wrong body', 'peak RSS MiB');
  row('---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:');
  for (const x of r.server.results) {
    row(x.name, fmt(x.rps, 0), fmt(x.p50Ms, 2), fmt(x.p99Ms, 2), fmt(x.cpuUsPerRequest, 0), String(x.non2xx), String(x.errors), String(x.mismatches), String(x.peakRssMiB));
  }
}
if (r.portal?.results) {
  lines.push('', 'Portal, ms per request in-process (signed in; one session in a hundred is the user\'s): median of per-round p50 / p99', '');
  row('case', 'sessions in the catalog', 'p50 ms', 'p99 ms');
  row('---', '---:', '---:', '---:');
  for (const x of r.portal.results) row(x.case, String(x.items), fmt(x.p50Ms as Spread, 2), fmt(x.p99Ms as Spread, 2));
}
if (r.coldstart?.timings) {
  lines.push('', `Cold start, ${r.coldstart.iterations} fresh processes each, one rotation (${r.coldstart.runtimes.map((x: Any) => x.version).join(', ')})`, '');
  row('asset', 'bytes', 'source maps');
  row('---', '---:', '---');
  for (const b of r.coldstart.bundles) row(b.asset ?? b.entry, String(b.bytes), b.sourceMaps ? 'yes' : 'no');
  lines.push('');
  row('runtime', 'process', 'wall ms', '× bare', '× floor', '× lean floor', 'CPU ms', 'CPU × floor');
  row('---', '---', '---:', '---:', '---:', '---:', '---:', '---:');
  for (const t of r.coldstart.timings) row(t.runtime, t.name, fmt(t.ms), String(t.ratioToBare), String(t.ratioToFloor), String(t.ratioToLeanFloor), fmt(t.cpuMs), String(t.cpuRatioToFloor));
}
if (r.cli?.results) {
  lines.push('', `CLI start-up, fresh processes (${r.cli.node}), ${r.cli.rounds} rounds: wall ms, median (min–max)`, '');
  row('CLI', 'case', 'wall ms');
  row('---', '---', '---:');
  for (const x of r.cli.results) row(x.cli, x.name, fmt(x.ms as Spread));
}
if (r.discovery?.runs) {
  lines.push('', 'Discovery full reconcile (EC2 mocked at the SDK, 1,000 per page; dynalite table in its own process)', '');
  row('instances', 'run', 'seconds', 'writes', 'deletes', 'EC2 calls', 'peak heap MiB', 'peak RSS MiB', 'CPU s: discovery / dynalite');
  row('---:', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:');
  for (const x of r.discovery.runs) {
    row(
      String(x.instances),
      `${x.run} (×${x.seconds.n})`,
      fmt(x.seconds, 2),
      String(x.writes),
      String(x.deletes),
      String(x.ec2Calls),
      String(x.peakHeapMiB),
      String(x.peakRssMiB),
      `${x.discoveryCpuSeconds.median.toFixed(1)} / ${x.dynaliteCpuSeconds.median.toFixed(1)}`,
    );
  }
}
if (r.discovery?.events?.length) {
  lines.push('', 'Discovery events on the reconciled table (DynamoDB requests by operation; EC2 DescribeInstances calls)', '');
  row('items', 'case', 'invocations', 'events', 'seconds', 'DynamoDB requests', 'EC2 calls');
  row('---:', '---', '---:', '---:', '---:', '---', '---:');
  for (const e of r.discovery.events) {
    row(String(e.instances), e.case, String(e.invocations), String(e.events), e.seconds.toFixed(2), Object.entries(e.requests).map(([k, v]) => `${k} ${v}`).join(', '), String(e.ec2Calls));
  }
}
if (r.power?.runs) {
  lines.push('', 'Power pass, one real pass (loopback EC2 and SSM in a child process, dynalite in another; 1 in 10 idle and stopped, 1 in 20 unmanaged)', '');
  row('desktops', 'seconds', 'CPU s', 'peak heap MiB', 'peak RSS MiB', 'EC2 requests', 'SSM requests', 'DynamoDB requests', 'stopped', 'unknown');
  row('---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:');
  for (const x of r.power.runs) {
    row(
      String(x.desktops),
      `${fmt(x.seconds, 2)} (×${x.seconds.n})`,
      fmt(x.cpuSeconds, 2),
      String(x.peakHeapMiB),
      String(x.peakRssMiB),
      String(x.requests.ec2),
      String(x.requests.ssm),
      String(x.requests.dynamodb),
      String(x.stops),
      String(x.signalsUnknown),
    );
  }
}
if (targets.length) {
  lines.push('', 'Targets (reported, not enforced)', '');
  row('target', 'measured', 'met');
  row('---', '---', '---');
  for (const t of targets) row(t.target, t.value, t.met === undefined ? '?' : t.met ? 'yes' : 'NO');
}
for (const [name, value] of Object.entries(results)) {
  const v = value as { error?: string; skipped?: string };
  if (v.error) lines.push('', `${name}: FAILED: ${v.error}`);
  if (v.skipped) lines.push('', `${name}: skipped: ${v.skipped}`);
}
const machineEnd = { ...machineInfo, loadavgEnd: loadavg().map((v) => Number(v.toFixed(2))) };
lines.unshift(
  `dcv-session-resolver bench, ${started.toISOString()}: Node ${machineInfo.node}, ${machineInfo.cpus} × ${machineInfo.cpuModel}, ` +
    `load average ${machineInfo.loadavg} → ${machineEnd.loadavgEnd}`,
);
process.stdout.write(`${lines.join('\n')}\n`);

if (outFile) {
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  writeFileSync(outFile, `${JSON.stringify({ command, started: started.toISOString(), machine: machineEnd, targets, results }, null, 2)}\n`);
  process.stderr.write(`bench: wrote ${outFile}\n`);
}
process.exitCode = failures.length ? 1 : 0;
