import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { build } from 'esbuild';
import { GATEWAY_QUERY, HIT_BODY, SESSION } from './events';
import { OFFLINE_AWS_ENV, progress, report, ROOT, spread, startDynaliteChild, timeProcess, type Spread } from './lib';

/**
 * 3. Cold-start proxy. Each Lambda entry is bundled as lib/dcv-function.ts bundles it for deploy, with the
 * AWS SDK external (the runtime's copy; here node_modules plays that part) and bundled. Then a fresh
 * `node` imports the bundle and answers its first request (a real GetItem against dynalite on
 * loopback), timed from spawn to exit, against a bare `node -e 0` in the same rotation.
 * Args: [iterations].
 */
const iterations = Number(process.argv[2] ?? 15);

// Kept in step with lib/dcv-function.ts (checked below, so a change there cannot silently diverge).
const BANNER = "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);";
const CONSTRUCT_OPTIONS = [BANNER, 'minify: true', 'keepNames: true', 'sourceMap: props.sourceMaps', 'format: OutputFormat.ESM', "target: 'node22'", "mainFields: ['module', 'main']"];
const SDK_EXTERNALS = ['@aws-sdk/*']; // CDK's default for Node 18+ runtimes without the smithy feature flag

function checkConstructOptions(): void {
  const source = readFileSync(join(ROOT, 'lib', 'dcv-function.ts'), 'utf8');
  const missing = CONSTRUCT_OPTIONS.filter((option) => !source.includes(option));
  if (missing.length) throw new Error(`lib/dcv-function.ts bundling changed; update bench/coldstart.ts: ${missing.join(' | ')}`);
}

/** Lambda entries: files under lambda/handlers that export `handler`. */
function lambdaEntries(): string[] {
  const dir = join(ROOT, 'lambda', 'handlers');
  return readdirSync(dir)
    .filter((file) => file.endsWith('.ts'))
    .filter((file) => /export\s+(const|async function|function)\s+handler\b/.test(readFileSync(join(dir, file), 'utf8')))
    .map((file) => join(dir, file));
}

type SdkMode = 'external' | 'bundled';

async function bundle(entry: string, sdk: SdkMode, outRoot: string): Promise<{ file: string; bytes: number; mapBytes: number }> {
  const outfile = join(outRoot, sdk, basename(entry, '.ts'), 'index.mjs');
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    outfile,
    minify: true,
    keepNames: true,
    sourcemap: true,
    mainFields: ['module', 'main'],
    banner: { js: BANNER },
    external: sdk === 'external' ? SDK_EXTERNALS : [],
    logLevel: 'error',
  });
  return { file: outfile, bytes: statSync(outfile).size, mapBytes: statSync(`${outfile}.map`).size };
}

// Plain JS, so no loader stands between `node` and the bundle. "answer" invokes the handler once with
// the gateway's request and checks the exact body; "import" only loads the module.
const DRIVER = `
const [bundle, mode] = process.argv.slice(2);
const { handler } = await import(bundle);
if (typeof handler !== 'function') { console.error('no handler export'); process.exit(3); }
if (mode === 'answer') {
  const event = JSON.parse(process.env.BENCH_EVENT);
  const context = { awsRequestId: 'cold-1', functionName: 'bench', functionVersion: '$LATEST', memoryLimitInMB: '256',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:bench', logGroupName: 'bench', logStreamName: 'bench',
    callbackWaitsForEmptyEventLoop: true, getRemainingTimeInMillis: () => 5000 };
  const result = await handler(event, context);
  if (result.statusCode !== 200 || result.body !== process.env.BENCH_EXPECT) {
    console.error('wrong answer: ' + result.statusCode + ' ' + result.body);
    process.exit(3);
  }
}
const u = process.cpuUsage();
process.stderr.write('cpu=' + (u.user + u.system) + '\\n');
process.exit(0);
`;
const BARE = "const u = process.cpuUsage(); process.stderr.write('cpu=' + (u.user + u.system) + '\\n');";

interface Contender {
  readonly name: string;
  readonly args: string[];
  readonly env: NodeJS.ProcessEnv;
  readonly times: number[];
  readonly cpu: number[];
}

export interface ColdStartResult {
  readonly bundles: { entry: string; sdk: SdkMode; bytes: number; mapBytes: number }[];
  readonly timings: { name: string; ms: Spread; ratioToBare: number; cpuMs: Spread; cpuRatioToBare: number }[];
  readonly faster: SdkMode;
}

checkConstructOptions();
const work = mkdtempSync(join(tmpdir(), 'dcv-cold-'));
// The SDK-external bundle finds @aws-sdk/* the way it would in the runtime: beside it, in node_modules.
symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'), 'dir');
const driver = join(work, 'driver.mjs');
writeFileSync(driver, DRIVER);
const TABLE = 'ColdSessions';
const dynalite = await startDynaliteChild(TABLE, [SESSION]);
try {
  const bundles: ColdStartResult['bundles'] = [];
  // The bare start only reports its CPU time: as close to `node -e 0` as a measurement can be.
  const contenders: Contender[] = [{ name: 'bare node -e', args: ['-e', BARE], env: { PATH: process.env.PATH }, times: [], cpu: [] }];
  for (const entry of lambdaEntries()) {
    const name = basename(entry, '.ts');
    for (const sdk of ['external', 'bundled'] as const) {
      mkdirSync(join(work, sdk), { recursive: true });
      const built = await bundle(entry, sdk, work);
      bundles.push({ entry: name, sdk, bytes: built.bytes, mapBytes: built.mapBytes });
      // Only the resolver has a request to answer without EC2; other entries are timed to import.
      const mode = name === 'resolver' ? 'answer' : 'import';
      // As deployed: the resolver without source maps, discovery with them (lib/dcv-function.ts
      // `sourceMaps`); the resolver also with them, to show what --enable-source-maps costs at start-up.
      for (const sourceMaps of mode === 'answer' ? [false, true] : [true]) contenders.push({
        name: `${name} (SDK ${sdk}${sourceMaps ? ', source maps' : ''}) ${mode === 'answer' ? 'import + first answer' : 'import'}`,
        args: [driver, built.file, mode],
        env: {
          PATH: process.env.PATH,
          ...OFFLINE_AWS_ENV,
          ...(sourceMaps ? { NODE_OPTIONS: '--enable-source-maps' } : {}),
          TABLE_NAME: TABLE,
          AWS_ENDPOINT_URL_DYNAMODB: dynalite.endpoint,
          AWS_ENDPOINT_URL_EC2: 'http://127.0.0.1:9', // loopback discard port: never a real address
          BENCH_EVENT: JSON.stringify({
            version: '2.0', routeKey: '$default', rawPath: '/resolveSession', rawQueryString: GATEWAY_QUERY,
            headers: { accept: 'application/json' },
            requestContext: { http: { method: 'POST', path: '/resolveSession', sourceIp: '198.51.100.7' }, requestId: 'r1' },
            isBase64Encoded: false,
          }),
          BENCH_EXPECT: HIT_BODY,
        },
        times: [],
        cpu: [],
      });
    }
  }
  // Correctness first: every contender must succeed once before anything is timed.
  for (const c of contenders) await timeProcess(process.execPath, c.args, c.env, work);
  for (let i = 0; i < iterations; i++) {
    // Rotate the order so no contender always runs right after another one's page-cache warmth.
    for (let k = 0; k < contenders.length; k++) {
      const c = contenders[(i + k) % contenders.length]!;
      const run = await timeProcess(process.execPath, c.args, c.env, work);
      c.times.push(run.ms);
      c.cpu.push(run.cpuMs ?? Number.NaN);
    }
    if ((i + 1) % 5 === 0) progress(`cold start: ${i + 1}/${iterations}`);
  }
  const bare = spread(contenders[0]!.times, 1);
  const bareCpu = spread(contenders[0]!.cpu, 1);
  const timings = contenders.map((c) => {
    const ms = spread(c.times, 1);
    const cpuMs = spread(c.cpu, 1);
    return {
      name: c.name,
      ms,
      ratioToBare: Number((ms.median / bare.median).toFixed(2)),
      cpuMs,
      cpuRatioToBare: Number((cpuMs.median / bareCpu.median).toFixed(2)),
    };
  });
  const resolverTime = (sdk: SdkMode) => timings.find((t) => t.name.startsWith(`resolver (SDK ${sdk}) `))!.ms.median;
  const faster: SdkMode = resolverTime('bundled') < resolverTime('external') ? 'bundled' : 'external';
  await report({ iterations, bundles, timings, faster } satisfies ColdStartResult & { iterations: number });
} finally {
  dynalite.stop();
  rmSync(work, { recursive: true, force: true });
}
