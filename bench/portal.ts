import { BatchWriteItemCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { sdkDynamoApi } from '../lambda/adapters/dynamodb-api';
import { DynamoSessionCatalog } from '../lambda/adapters/dynamodb-session-catalog';
import { toAttributes } from '../lambda/adapters/dynamodb-lite-session-store';
import { JsonLineLog } from '../lambda/adapters/json-line-log';
import type { HttpRequest, Router } from '../lambda/core/http-router';
import { silentLog } from '../lambda/core/log';
import type { OidcClient } from '../lambda/core/portal/oidc';
import { createPortal } from '../lambda/core/portal/portal-app';
import type { LeaseStore, SessionCatalog } from '../lambda/core/portal/session-catalog';
import type { RawItem } from '../lambda/core/session-record';
import { MemorySessionStore } from '../lambda/core/session-store';
import { MemoryTokenStore } from '../lambda/core/tokens/token-store';
import { createResolverRouter } from '../lambda/handlers/resolver-handler';
import { OFFLINE_AWS_ENV, report, startDynaliteChild, timedRounds, type Spread } from './lib';

/**
 * The portal's cost per page, in-process through the shared router (what the Lambda handler and `serve`
 * call), with a signed-in user: the list page (it reads the whole catalog, so its cost grows with the
 * table) over the memory store and over DynamoDB (dynalite in its own process, a real paginated Scan), and
 * Connect (a token minted and stored). One session in a hundred is the user's. The identity provider is a
 * stand-in: sign-in happens once, outside the measurement. Args: [rounds] [requests per round] [sizes].
 */
const rounds = Number(process.argv[2] ?? 3);
const perRound = Number(process.argv[3] ?? 50);
const sizes = (process.argv[4] ?? '100,1000,10000').split(',').map(Number);
const TABLE = 'BenchPortal';
const KEY = 'b'.repeat(32);
const HOST = 'portal.bench';

export interface PortalCaseResult {
  readonly case: string;
  readonly items: number;
  readonly p50Ms: Spread;
  readonly p99Ms: Spread;
  readonly samples: number;
}

function items(count: number): RawItem[] {
  return Array.from({ length: count }, (_, i) => ({
    SessionId: `desk-${String(i).padStart(6, '0')}`,
    DcvServerEndpoint: `10.1.${Math.floor(i / 250)}.${i % 250}`,
    TargetSessionId: 'console',
    ...(i % 100 === 0 ? { AllowedGroups: ['bench-users'] } : { AllowedUsers: [`someone-${i}@example.com`] }),
  }));
}

const oidc: OidcClient = {
  authorizationUrl: async (r) => `https://idp.bench/authorize?state=${r.state}`,
  signIn: async () => ({ idTokenClaims: { sub: 'bench-user', email: 'bench@example.com', groups: ['bench-users'] } }),
};

function portalRouter(store: MemorySessionStore, catalog: SessionCatalog & LeaseStore): Router {
  return createResolverRouter({
    store,
    // One log line per request, as in production (stdout is /dev/null for bench children).
    logger: new JsonLineLog({ service: 'bench' }),
    tokens: new MemoryTokenStore(),
    portal: (shared) => createPortal({ ...shared, oidc, cookieKey: KEY, gatewayUrl: 'https://gw.bench:8443', catalog, leases: catalog }),
  });
}

const request = (method: string, path: string, cookie?: string, query = '', body?: string): HttpRequest => ({
  method,
  path,
  rawQueryString: query,
  sourceIp: '127.0.0.1',
  headers: { host: HOST, ...(cookie ? { cookie } : {}), ...(body ? { origin: `https://${HOST}` } : {}) },
  ...(body ? { body, contentType: 'application/x-www-form-urlencoded' } : {}),
});

/** Signs in once (stand-in provider) and returns the session cookie and the page's CSRF value. */
async function signIn(route: Router): Promise<{ cookie: string; csrf: string }> {
  const login = await route(request('GET', '/portal/login'));
  const state = new URL(login.headers.Location!).searchParams.get('state')!;
  const loginCookie = login.cookies![0]!.split(';')[0]!;
  const callback = await route(request('GET', '/portal/callback', loginCookie, `code=x&state=${state}`));
  const cookie = callback.cookies!.find((c) => c.startsWith('dcv_portal='))!.split(';')[0]!;
  const page = await route(request('GET', '/portal', cookie));
  return { cookie, csrf: /name="csrf" value="([^"]+)"/.exec(page.body)![1]! };
}

async function measure(name: string, count: number, route: Router, make: (csrf: string, cookie: string) => HttpRequest, expectStatus: number): Promise<PortalCaseResult> {
  const { cookie, csrf } = await signIn(route);
  const timed = await timedRounds(`portal ${name} (${count} items)`, rounds, perRound, async () => {
    const res = await route(make(csrf, cookie));
    if (res.statusCode !== expectStatus) throw new Error(`${name}: expected ${expectStatus}, got ${res.statusCode} ${res.body.slice(0, 200)}`);
    // Every list page must show exactly the user's sessions: one in a hundred.
    if (expectStatus === 200 && (res.body.match(/<h2>/g) ?? []).length !== Math.ceil(count / 100)) throw new Error(`${name}: wrong list`);
  }, { digits: 3 });
  return { case: name, items: count, p50Ms: timed.p50, p99Ms: timed.p99, samples: timed.samples };
}

async function fillTable(client: DynamoDBClient, all: RawItem[]): Promise<void> {
  for (let i = 0; i < all.length; i += 25) {
    const batch = all.slice(i, i + 25).map((item) => ({ PutRequest: { Item: toAttributes(item) } }));
    let pending: typeof batch | undefined = batch;
    while (pending && pending.length > 0) {
      const out = await client.send(new BatchWriteItemCommand({ RequestItems: { [TABLE]: pending } }));
      pending = out.UnprocessedItems?.[TABLE] as typeof batch | undefined;
    }
  }
}

const results: PortalCaseResult[] = [];
for (const count of sizes) {
  const memory = new MemorySessionStore(items(count));
  const route = portalRouter(memory, memory);
  results.push(await measure('list page, memory store', count, route, (_csrf, cookie) => request('GET', '/portal', cookie), 200));
}
{
  const memory = new MemorySessionStore(items(sizes[0]!));
  const route = portalRouter(memory, memory);
  const connect = (csrf: string, cookie: string) => request('POST', '/portal/connect', cookie, '', `csrf=${csrf}&session=desk-000000&client=web`);
  results.push(await measure('Connect (token minted), memory stores', sizes[0]!, route, connect, 303));
}
const dynamo = await startDynaliteChild(TABLE);
try {
  const client = new DynamoDBClient({ endpoint: dynamo.endpoint, region: OFFLINE_AWS_ENV.AWS_REGION, credentials: { accessKeyId: OFFLINE_AWS_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: OFFLINE_AWS_ENV.AWS_SECRET_ACCESS_KEY } });
  let filled = 0;
  for (const count of sizes) {
    await fillTable(client, items(count).slice(filled));
    filled = count;
    const catalog = new DynamoSessionCatalog(sdkDynamoApi(client), TABLE, { log: silentLog });
    const route = portalRouter(new MemorySessionStore(), catalog);
    results.push(await measure('list page, DynamoDB Scan (dynalite)', count, route, (_csrf, cookie) => request('GET', '/portal', cookie), 200));
  }
  client.destroy();
} finally {
  dynamo.stop();
}
await report({ rounds, perRound, results });
