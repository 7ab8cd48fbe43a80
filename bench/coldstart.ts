import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { sdkDynamoApi } from '../lambda/adapters/dynamodb-api';
import { DynamoDbTokenStore, TokenAttr } from '../lambda/adapters/dynamodb-token-store';
import { authYesXml } from '../lambda/core/tokens/auth-xml';
import { issueToken } from '../lambda/core/tokens/issue-token';
import { ASSET_HANDLER, assetVariant, FUNCTION_BUNDLES, functionAssetDir, type FunctionName } from '../lib/function-assets';
import { restApiEvent } from '../test/helpers/rest-api-event';
import { GATEWAY_QUERY, HIT_BODY, SESSION } from './events';
import { BENCH_NODE_MAJORS, buildPackage, nodeBinary, OFFLINE_AWS_ENV, progress, report, ROOT, spread, startDynaliteChild, timeProcess, type Spread } from './lib';

/**
 * 3. Cold start of the functions as they ship: the pre-built assets `npm run build` writes to assets/ and the
 * construct deploys (lib/function-assets.ts; the AWS SDK bundled, the stack's default; --enable-source-maps
 * where the function ships a map, as lib/dcv-function.ts sets it). Built first (npm run build, incremental); copied
 * into a temporary folder at the start, so a concurrent `npm run build` (vitest runs one) cannot swap them
 * mid-run. Then, on Node 24 (the Lambda runtime) and Node 22 (the CLI's minimum, the previous Lambda runtime),
 * fresh processes are timed from spawn to exit (binaries: NODE24 / NODE22 if set, else .node24/ and .node22/,
 * see bench/lib.ts):
 *   - bare `node -e 0`;
 *   - the floor (bench/coldstart-floor.mjs): node:http + node:crypto, one hand-signed GetItem to
 *     dynalite, the item read: the least any resolver must do before its first answer; and the lean
 *     floor, the same script loading both modules with process.getBuiltinModule (on Node 22 and 24 an
 *     ES import of node:http also loads undici: ~45 ms the floor pays and a resolver need not);
 *   - the resolver asset: import + first answer (a real, checked GetItem against dynalite on loopback);
 *   - the same asset: import + first token verification (POST …/verifyToken/<server>: the session's
 *     GetItem and the token's conditional UpdateItem, both on dynalite), the DCV server's cold path;
 *   - the portal and discovery assets: import only (their work needs an issuer / EC2).
 * All contenders of both runtimes run in one rotation per round, so a busy moment hits them alike.
 * Args: [iterations].
 */
const iterations = Number(process.argv[2] ?? 21);
const OFFLINE_CLIENT = { region: OFFLINE_AWS_ENV.AWS_REGION, credentials: { accessKeyId: OFFLINE_AWS_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: OFFLINE_AWS_ENV.AWS_SECRET_ACCESS_KEY } };
/** The stack's default (DcvFunctionProps.bundleAwsSdk). */
const BUNDLE_AWS_SDK = true;
// 'index.handler': the module (index.mjs in the asset) and its export, as Lambda resolves it.
const [HANDLER_MODULE, HANDLER_EXPORT] = ASSET_HANDLER.split('.') as [string, string];
const FUNCTIONS = Object.keys(FUNCTION_BUNDLES) as FunctionName[];

/**
 * Each function's shipped asset folder, copied as it is into `work` (byte for byte: the sha256 is reported).
 * The path is the one functionAssetDir() gives the construct, from lib/function-assets.ts.
 */
function shippedAssets(work: string): { name: FunctionName; file: string; asset: string; bytes: number; sha256: string; sourceMaps: boolean }[] {
  return FUNCTIONS.map((name) => {
    const dir = functionAssetDir(name, BUNDLE_AWS_SDK);
    const copy = join(work, assetVariant(name, BUNDLE_AWS_SDK));
    cpSync(dir, copy, { recursive: true });
    const file = join(copy, `${HANDLER_MODULE}.mjs`);
    const sourceMaps = FUNCTION_BUNDLES[name].sourceMap;
    if (sourceMaps && !existsSync(`${file}.map`)) throw new Error(`${relative(ROOT, dir)} should ship ${HANDLER_MODULE}.mjs.map`);
    const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
    return { name, file, asset: relative(ROOT, dir), bytes: statSync(file).size, sha256, sourceMaps };
  });
}

// Plain JS, so no loader stands between `node` and the bundle. "answer" invokes the handler once with
// the gateway's request and checks the exact body; "import" only loads the module.
const DRIVER = `
const [bundle, exportName, mode] = process.argv.slice(2);
const handler = (await import(bundle))[exportName];
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

type Kind = 'bare' | 'floor' | 'leanFloor' | 'answer' | 'verify' | 'import';

interface Contender {
  readonly runtime: string;
  readonly name: string;
  readonly kind: Kind;
  readonly node: string;
  readonly args: string[];
  readonly env: NodeJS.ProcessEnv;
  readonly times: number[];
  readonly cpu: number[];
}

export interface ColdStartTiming {
  readonly runtime: string;
  readonly name: string;
  readonly ms: Spread;
  readonly cpuMs: Spread;
  readonly ratioToBare: number;
  /** Median wall time over the floor's median wall time, same runtime, same run. */
  readonly ratioToFloor: number;
  readonly cpuRatioToFloor: number;
  /** Against the lean floor (no undici behind an ES import of node:http). */
  readonly ratioToLeanFloor: number;
}

export interface ColdStartResult {
  readonly iterations: number;
  readonly runtimes: { name: string; version: string }[];
  /** entry: the function; asset: its folder in the package (assets/<variant>); sha256 of index.mjs. */
  readonly bundles: { entry: string; asset: string; bytes: number; sha256: string; sourceMaps: boolean }[];
  readonly timings: ColdStartTiming[];
}

const runtimes = BENCH_NODE_MAJORS.map((major) => ({ name: `Node ${major}`, node: nodeBinary(major) })).map((r) => ({
  ...r,
  version: execFileSync(r.node, ['--version'], { encoding: 'utf8' }).trim(),
}));
buildPackage();
const work = mkdtempSync(join(tmpdir(), 'dcv-cold-'));
// What an asset leaves external (nothing, with the SDK bundled) is the Lambda runtime's on AWS; the copies
// find the project's here. No timed path loads it.
symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'), 'dir');
const driver = join(work, 'driver.mjs');
writeFileSync(driver, DRIVER);
const floor = join(ROOT, 'bench', 'coldstart-floor.mjs');
if (!existsSync(floor)) throw new Error(`missing ${floor}`);
const TABLE = 'ColdSessions';
const dynalite = await startDynaliteChild(TABLE, [SESSION]);
const TOKENS_TABLE = 'ColdTokens';
const BENCH_USER = 'bench-user';
const sdk = new DynamoDBClient({ ...OFFLINE_CLIENT, endpoint: dynalite.endpoint });
await sdk.send(
  new CreateTableCommand({
    TableName: TOKENS_TABLE,
    AttributeDefinitions: [{ AttributeName: TokenAttr.TokenHash, AttributeType: 'S' }],
    KeySchema: [{ AttributeName: TokenAttr.TokenHash, KeyType: 'HASH' }],
    BillingMode: 'PAY_PER_REQUEST',
  }),
);
/** A token for the bench session with uses to spare for every timed run and the first correctness run. */
async function benchToken(): Promise<string> {
  if (iterations + 1 > 100) throw new Error('at most 99 iterations: a token allows 100 uses');
  const tokens = new DynamoDbTokenStore(sdkDynamoApi(sdk), TOKENS_TABLE);
  return (await issueToken({ tokens }, { sessionId: SESSION.SessionId, user: BENCH_USER, maxUses: 100, ttlSeconds: 3600 })).token;
}
try {
  const awsEnv = {
    PATH: process.env.PATH,
    ...OFFLINE_AWS_ENV,
    TABLE_NAME: TABLE,
    TOKENS_TABLE_NAME: TOKENS_TABLE, // the stack's default: the verifier is on
    AWS_ENDPOINT_URL_DYNAMODB: dynalite.endpoint,
    AWS_ENDPOINT_URL_EC2: 'http://127.0.0.1:9', // loopback discard port: never a real address
  };
  const built = shippedAssets(work);
  const bundles: ColdStartResult['bundles'] = built.map(({ name, asset, bytes, sha256, sourceMaps }) => ({ entry: name, asset, bytes, sha256, sourceMaps }));
  const contenders: Contender[] = [];
  for (const rt of runtimes) {
    const add = (name: string, kind: Kind, args: string[], env: NodeJS.ProcessEnv) =>
      contenders.push({ runtime: rt.name, name, kind, node: rt.node, args, env, times: [], cpu: [] });
    // The bare start only reports its CPU time: as close to `node -e 0` as a measurement can be.
    add('bare node -e', 'bare', ['-e', BARE], { PATH: process.env.PATH });
    add('floor: node:http + node:crypto, hand-signed GetItem', 'floor', [floor], { ...awsEnv, BENCH_SESSION: SESSION.SessionId });
    add('lean floor: same, modules by process.getBuiltinModule', 'leanFloor', [floor], { ...awsEnv, BENCH_SESSION: SESSION.SessionId, FLOOR_LOAD: 'builtin' });
    for (const b of built) {
      // Only the resolver has a request to answer without EC2; other entries are timed to import.
      const kind: Kind = b.name === 'resolver' ? 'answer' : 'import';
      add(`${b.name} bundle as deployed: ${kind === 'answer' ? 'import + first answer' : 'import'}`, kind, [driver, b.file, HANDLER_EXPORT, kind], {
        ...awsEnv,
        ...(b.sourceMaps ? { NODE_OPTIONS: '--enable-source-maps' } : {}),
        // The portal's settings (read at import; the issuer and the secret are only contacted on its first request).
        ...(b.name === 'portal'
          ? { PORTAL_ISSUER: 'https://login.example.com', PORTAL_SECRET_ID: 'bench-portal-keys', PORTAL_GATEWAY_URL: 'https://gw.example.com:8443' }
          : {}),
        BENCH_EVENT: JSON.stringify({
          version: '2.0', routeKey: '$default', rawPath: '/resolveSession', rawQueryString: GATEWAY_QUERY,
          headers: { accept: 'application/json' },
          requestContext: { http: { method: 'POST', path: '/resolveSession', sourceIp: '198.51.100.7' }, requestId: 'r1' },
          isBase64Encoded: false,
        }),
        BENCH_EXPECT: HIT_BODY,
      });
      if (b.name === 'resolver') {
        // The gateway's request through accessMode 'private': a REST API proxy event (payload 1.0).
        add('resolver bundle as deployed: import + first answer (REST API event)', 'answer', [driver, b.file, HANDLER_EXPORT, 'answer'], {
          ...awsEnv,
          BENCH_EVENT: JSON.stringify(restApiEvent({ rawQueryString: GATEWAY_QUERY, sourceIp: '10.20.0.5' })),
          BENCH_EXPECT: HIT_BODY,
        });
        // The DCV server's question, as a Function URL delivers it: one token per runtime (each run uses it once).
        const token = await benchToken();
        const path = `/verifyToken/${SESSION.DcvServerEndpoint}`;
        add('resolver bundle as deployed: import + first verifyToken', 'verify', [driver, b.file, HANDLER_EXPORT, 'answer'], {
          ...awsEnv,
          BENCH_EVENT: JSON.stringify({
            version: '2.0', routeKey: '$default', rawPath: path, rawQueryString: '',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            requestContext: { http: { method: 'POST', path, sourceIp: '198.51.100.7' }, requestId: 'v1' },
            body: new URLSearchParams({ sessionId: SESSION.SessionId, authenticationToken: token, clientAddress: '203.0.113.10' }).toString(),
            isBase64Encoded: false,
          }),
          BENCH_EXPECT: authYesXml(BENCH_USER),
        });
      }
    }
  }
  // Correctness first: every contender must succeed once before anything is timed.
  for (const c of contenders) await timeProcess(c.node, c.args, c.env, work);
  for (let i = 0; i < iterations; i++) {
    // Rotate the order so no contender always runs right after another one's page-cache warmth.
    for (let k = 0; k < contenders.length; k++) {
      const c = contenders[(i + k) % contenders.length]!;
      const run = await timeProcess(c.node, c.args, c.env, work);
      c.times.push(run.ms);
      c.cpu.push(run.cpuMs ?? Number.NaN);
    }
    if ((i + 1) % 5 === 0) progress(`cold start: ${i + 1}/${iterations}`);
  }
  const ratio = (a: number, b: number) => Number((a / b).toFixed(2));
  const timings: ColdStartTiming[] = contenders.map((c) => {
    const of = (kind: Kind) => contenders.find((x) => x.runtime === c.runtime && x.kind === kind)!;
    const ms = spread(c.times, 1);
    const cpuMs = spread(c.cpu, 1);
    const floorMs = spread(of('floor').times, 1).median;
    return {
      runtime: c.runtime,
      name: c.name,
      ms,
      cpuMs,
      ratioToBare: ratio(ms.median, spread(of('bare').times, 1).median),
      ratioToFloor: ratio(ms.median, floorMs),
      cpuRatioToFloor: ratio(cpuMs.median, spread(of('floor').cpu, 1).median),
      ratioToLeanFloor: ratio(ms.median, spread(of('leanFloor').times, 1).median),
    };
  });
  await report({ iterations, runtimes: runtimes.map(({ name, version }) => ({ name, version })), bundles, timings } satisfies ColdStartResult);
} finally {
  sdk.destroy();
  dynalite.stop();
  rmSync(work, { recursive: true, force: true });
}
