import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { BENCH_NODE_MAJORS, LAMBDA_BUILD_OPTIONS, machine, median, nodeBinary, ROOT } from './lib';

/**
 * What a metrics library costs a cold start: fresh processes import a bundle (built as the resolver is:
 * ESM, minified, node24) that records one count and writes it as EMF, timed from the import to the
 * written line. Contenders: nothing (an empty bundle), Powertools Metrics, and our EmfMetrics
 * (lambda/adapters/emf-metrics.ts). Node 24 and Node 22 (bench/lib.ts nodeBinary), one rotation per
 * round. Output is written to /dev/null by the child. Args: [rounds].
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

const dir = mkdtempSync(join(tmpdir(), 'dcv-metrics-init-'));
try {
  const bundles: Record<string, string> = {};
  for (const [name, source] of Object.entries(SOURCES)) {
    const entry = join(dir, `${name}.ts`);
    writeFileSync(entry, source);
    bundles[name] = join(dir, name, 'index.mjs');
    await build({
      ...LAMBDA_BUILD_OPTIONS,
      mainFields: [...LAMBDA_BUILD_OPTIONS.mainFields],
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
        const child = spawnSync(binary, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { PATH: process.env.PATH }, stdio: ['ignore', 'ignore', 'pipe'] });
        if (child.status !== 0) throw new Error(`${runtime} ${name}: ${child.stderr}`);
        const [wall, cpu] = child.stderr.trim().split(' ').map(Number);
        const s = (samples[`${runtime} | ${name}`] ??= { wall: [], cpu: [] });
        s.wall.push(wall!);
        s.cpu.push(cpu!);
      }
    }
  }
  console.log(JSON.stringify({ machine: machine(), rounds }, null, 1));
  console.log('runtime | contender | import + first EMF line: wall ms (median) | CPU ms (median)');
  for (const [key, s] of Object.entries(samples)) console.log(`${key} | ${median(s.wall).toFixed(1)} | ${median(s.cpu).toFixed(1)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
