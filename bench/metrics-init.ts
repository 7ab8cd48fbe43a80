import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { bundleOptions } from '../lib/function-assets';
import { BENCH_NODE_MAJORS, fmt, machine, nodeBinary, ROOT, spread } from './lib';

/**
 * What a metrics library costs a cold start: fresh processes import a bundle (built with the resolver asset's
 * esbuild options, lib/function-assets.ts bundleOptions: ESM, minified, node24) that records one count and
 * writes it as EMF, timed from the import to the written line. Contenders: nothing (an empty bundle),
 * Powertools Metrics, and our EmfMetrics (lambda/adapters/emf-metrics.ts). Node 24 and Node 22 (bench/lib.ts
 * nodeBinary), one rotation per round. Output is written to /dev/null by the child. Args: [rounds].
 * Run: nice node --import tsx bench/metrics-init.ts 41
 */
const rounds = Number(process.argv[2] ?? 41);
const SOURCES = {
  empty: `process.stdout.write('');`,
  powertools: `import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
const metrics = new Metrics({ namespace: 'DcvSessionResolver', serviceName: 'resolver' });
metrics.addMetric('Resolutions', MetricUnit.Count, 1);
metrics.publishStoredMetrics();`,
  emf: `import { EmfMetrics } from ${JSON.stringify(join(ROOT, 'lambda', 'adapters', 'emf-metrics.ts'))};
const metrics = new EmfMetrics({ service: 'resolver' });
metrics.count('Resolutions', { Outcome: 'hit' });
metrics.flush();`,
};

// These bundles are no shipped asset (no function ships Powertools Metrics), so they are built here, with the
// options `npm run build` gives the resolver's asset (AWS SDK bundled, the stack's default).
const RESOLVER_OPTIONS = bundleOptions('resolver', true);
const dir = mkdtempSync(join(tmpdir(), 'dcv-metrics-init-'));
try {
  const bundles: Record<string, string> = {};
  for (const [name, source] of Object.entries(SOURCES)) {
    const entry = join(dir, `${name}.ts`);
    writeFileSync(entry, source);
    bundles[name] = join(dir, name, 'index.mjs');
    await build({
      ...RESOLVER_OPTIONS,
      mainFields: [...RESOLVER_OPTIONS.mainFields],
      external: [...RESOLVER_OPTIONS.external],
      entryPoints: [entry],
      outfile: bundles[name],
      // The entries are written to a temp directory: resolve packages from the project.
      nodePaths: [join(ROOT, 'node_modules')],
    });
  }
  const runtimes = Object.fromEntries(BENCH_NODE_MAJORS.map((major) => [`Node ${major}`, nodeBinary(major)]));
  const samples: Record<string, { wall: number[]; cpu: number[] }> = {};
  for (let round = 0; round < rounds; round++) {
    for (const [runtime, binary] of Object.entries(runtimes)) {
      for (const [name, bundle] of Object.entries(bundles)) {
        const script = `const c=process.cpuUsage();const t=performance.now();await import(${JSON.stringify(bundle)});const w=performance.now()-t;const u=process.cpuUsage(c);process.stderr.write(w+' '+(u.user+u.system)/1000)`;
        const child = spawnSync(binary, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { PATH: process.env.PATH }, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
        if (child.status !== 0) throw new Error(`${runtime} ${name}: ${child.error?.message ?? `exit ${child.status}`} ${child.stderr}`);
        const [wall, cpu] = child.stderr.trim().split(' ').map(Number);
        const s = (samples[`${runtime} | ${name}`] ??= { wall: [], cpu: [] });
        s.wall.push(wall!);
        s.cpu.push(cpu!);
      }
    }
  }
  console.log(JSON.stringify({ machine: machine(), rounds }, null, 1));
  console.log('runtime | contender | import + first EMF line: wall ms, median (min–max) | CPU ms, median (min–max)');
  for (const [key, s] of Object.entries(samples)) console.log(`${key} | ${fmt(spread(s.wall))} | ${fmt(spread(s.cpu))}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
