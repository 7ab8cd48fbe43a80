import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { HttpRequest, HttpResponse, Router } from '../../lambda/core/http-router';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { MemoryTokenStore } from '../../lambda/core/tokens/token-store';
import { functionUrlEvent, lambdaContext } from '../helpers/function-url-event';
import { signInWithoutBrowser, startOidcProvider, type ProviderEndpoint, type TestOidcProvider } from '../helpers/oidc-provider';
import { inProcessPortalRouter } from '../helpers/in-process-portal';
import { RecordingLog } from '../helpers/recording-log';
import { startSecretsManager, type LocalSecretsManager } from '../helpers/secrets-manager';

/**
 * Issue 21 item 7: a portal request has a deadline (Lambda: the invocation's remaining time less a margin;
 * `serve`: a fixed budget), every call it makes gets only what is left, and when a call runs out of time the
 * portal answers its own 503 page and logs which call it was, instead of Lambda's raw 502 after the timeout.
 * The providers here are real (oidc-provider, a loopback Secrets Manager) and hang at one endpoint.
 * Timings are not asserted beyond a generous bound: the budget is 1.5 s, each call's own cap is 5 s, so an
 * answer after UPPER_MS means the budget was not what stopped the wait.
 */
const HOST = 'portal.example.com';
const GATEWAY = 'https://gw.example.com:8443';
const BUDGET_MS = 1500;
const UPPER_MS = 4500;

let idToken: TestOidcProvider; // claims in the ID token: no UserInfo request
let atUserInfo: TestOidcProvider; // OIDC Core 5.4: e-mail and groups only at UserInfo

beforeAll(async () => {
  const redirectUris = [`https://${HOST}/portal/callback`];
  [idToken, atUserInfo] = await Promise.all([startOidcProvider({ claims: 'id-token', redirectUris }), startOidcProvider({ claims: 'userinfo', redirectUris })]);
});

afterAll(async () => {
  await Promise.all([idToken?.close(), atUserInfo?.close()]);
});

/** A fresh portal (nothing discovered yet) on the real adapter; requests carry a deadline BUDGET_MS ahead. */
function portalFor(idp: TestOidcProvider, options: { deadline?: boolean; budgetMs?: number } = {}) {
  const store = new MemorySessionStore([{ SessionId: 'alice-desk', DcvServerEndpoint: '10.0.0.1', AllowedUsers: ['alice@example.com'] }]);
  const log = new RecordingLog();
  const route: Router = inProcessPortalRouter(idp, {
    store,
    log,
    tokens: new MemoryTokenStore(),
    gatewayUrl: GATEWAY,
    portal: options.budgetMs ? { budgetMs: options.budgetMs } : {},
  });
  const send = (path: string, query = '', cookie?: string) =>
    route({
      method: 'GET',
      path,
      rawQueryString: query,
      sourceIp: '127.0.0.1',
      headers: { host: HOST, ...(cookie ? { cookie } : {}) },
      scheme: 'https',
      ...(options.deadline === false ? {} : { deadline: Date.now() + BUDGET_MS }),
    } satisfies HttpRequest);
  return { send, log };
}

function cookiePair(response: HttpResponse, name: string): string {
  const cookie = response.cookies?.find((c) => c.startsWith(`${name}=`));
  if (!cookie) throw new Error(`no ${name} cookie in ${JSON.stringify(response.cookies)}: ${response.statusCode} ${response.body.slice(0, 300)}`);
  return cookie.split(';')[0];
}

/** `fn`'s answer and how long it took. */
async function timed<T>(fn: () => Promise<T>): Promise<{ answer: T; ms: number }> {
  const started = Date.now();
  const answer = await fn();
  return { answer, ms: Date.now() - started };
}

/** The portal's own out-of-time page: 503, HTML, Retry-After, a message saying what happened. */
function expectOutOfTimePage(answer: { statusCode?: number; headers?: Record<string, unknown>; body?: string }) {
  expect(answer.statusCode).toBe(503);
  expect(answer.headers?.['Content-Type']).toBe('text/html; charset=utf-8');
  expect(answer.headers?.['Retry-After']).toBe('5');
  expect(answer.body).toContain('did not answer in time');
}

describe('a portal request whose provider hangs answers the 503 page within its deadline', () => {
  it('discovery document (login): 503, logged as "discovery document"', async () => {
    const { send, log } = portalFor(idToken);
    idToken.stall('discovery');
    try {
      const before = idToken.requestsTo('discovery');
      const { answer, ms } = await timed(() => send('/portal/login'));
      expectOutOfTimePage(answer);
      expect(answer.headers.Location).toBeUndefined();
      expect(idToken.requestsTo('discovery') - before).toBe(1);
      expect(log.find('portal out of time', 'error')).toMatchObject([{ fields: { call: 'discovery document' } }]);
      expect(ms).toBeLessThan(UPPER_MS);
    } finally {
      idToken.stall(undefined);
    }
  });

  it.each<[ProviderEndpoint, string, 'id-token' | 'userinfo']>([
    ['token', 'token endpoint', 'id-token'],
    ['jwks', 'keys (JWKS)', 'id-token'],
    ['userinfo', 'UserInfo', 'userinfo'],
  ])('%s (callback): 503, no session cookie, logged as "%s"', async (endpoint, call, claims) => {
    const idp = claims === 'id-token' ? idToken : atUserInfo;
    const { send, log } = portalFor(idp);
    const start = await send('/portal/login');
    expect(start.statusCode).toBe(302);
    const back = await signInWithoutBrowser(start.headers.Location!, 'alice', HOST);
    idp.stall(endpoint);
    try {
      const before = idp.requestsTo(endpoint);
      const { answer, ms } = await timed(() => send(back.pathname, back.search.slice(1), cookiePair(start, 'dcv_portal_login')));
      expectOutOfTimePage(answer);
      expect(answer.cookies?.some((c) => c.startsWith('dcv_portal=') && !c.startsWith('dcv_portal=;')) ?? false).toBe(false);
      expect(idp.requestsTo(endpoint) - before).toBe(1);
      expect(log.find('portal out of time', 'error')).toMatchObject([{ fields: { call } }]);
      expect(log.find('portal sign-in')).toEqual([]);
      expect(ms).toBeLessThan(UPPER_MS);
    } finally {
      idp.stall(undefined);
    }
  });

  it('the same sign-in completes when nothing hangs, and the ID token is checked against the keys (JWKS read)', async () => {
    const { send, log } = portalFor(idToken);
    const jwksBefore = idToken.requestsTo('jwks');
    const start = await send('/portal/login');
    const back = await signInWithoutBrowser(start.headers.Location!, 'alice', HOST);
    const callback = await send(back.pathname, back.search.slice(1), cookiePair(start, 'dcv_portal_login'));
    expect(callback.statusCode).toBe(303);
    expect(idToken.requestsTo('jwks') - jwksBefore).toBe(1);
    expect(log.find('portal out of time')).toEqual([]);
  });

  it('without a deadline on the request (serve), the portal applies its own budget', async () => {
    const { send, log } = portalFor(idToken, { deadline: false, budgetMs: BUDGET_MS });
    idToken.stall('discovery');
    try {
      const { answer, ms } = await timed(() => send('/portal/login'));
      expectOutOfTimePage(answer);
      expect(log.find('portal out of time', 'error')).toMatchObject([{ fields: { call: 'discovery document', budgetMs: BUDGET_MS } }]);
      expect(ms).toBeLessThan(UPPER_MS);
    } finally {
      idToken.stall(undefined);
    }
  });
});

describe('the Lambda entry: the deadline is the invocation remaining time less a margin', () => {
  const SECRET_ID = 'DcvSessionResolver-dcv-portal-keys';
  const ENV = ['TABLE_NAME', 'TOKENS_TABLE_NAME', 'AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ENDPOINT_URL_SECRETS_MANAGER', 'PORTAL_ISSUER', 'PORTAL_SECRET_ID', 'PORTAL_GATEWAY_URL', 'AWS_LAMBDA_LOG_LEVEL'];
  type Handler = (event: APIGatewayProxyEventV2, context: ReturnType<typeof lambdaContext>) => Promise<APIGatewayProxyStructuredResultV2>;
  let handler: Handler;
  let secrets: LocalSecretsManager;
  // 2 s left in the invocation: the portal must answer before then (the margin leaves 1.5 s for the calls).
  const invoke = (path: string) =>
    timed(() => handler(functionUrlEvent({ method: 'GET', path, sourceIp: '198.51.100.20', headers: { host: HOST } }), lambdaContext(undefined, { remainingMs: 2000 })));

  beforeAll(async () => {
    secrets = await startSecretsManager();
    secrets.secrets.set(SECRET_ID, JSON.stringify({ cookieKey: 'c'.repeat(48), clientId: idToken.clientId }));
    vi.resetModules();
    Object.assign(process.env, {
      TABLE_NAME: 'DeadlineSessions',
      TOKENS_TABLE_NAME: 'DeadlineTokens',
      // Never reached: these requests fail before any table read.
      AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:9',
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
      PORTAL_ISSUER: idToken.issuer,
      PORTAL_SECRET_ID: SECRET_ID,
      PORTAL_GATEWAY_URL: GATEWAY,
      // The test setup silences logs; this test reads the entry's error lines.
      AWS_LAMBDA_LOG_LEVEL: 'ERROR',
    });
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    // The portal's own function (lambda/handlers/portal.ts), as the stack deploys it.
    handler = (await import('../../lambda/handlers/portal')).handler as unknown as Handler;
  });

  afterAll(async () => {
    vi.restoreAllMocks();
    for (const key of ENV) delete process.env[key];
    await secrets?.close();
  });

  it('a hung Secrets Manager: the "Portal unavailable" 503 page before the invocation ends, logged as the secret read', async () => {
    const lines: string[] = [];
    vi.mocked(process.stdout.write).mockImplementation((chunk: string | Uint8Array) => (lines.push(String(chunk)), true));
    secrets.stall(true);
    try {
      const { answer, ms } = await invoke('/portal');
      expect(answer.statusCode).toBe(503);
      expect(answer.headers?.['Retry-After']).toBe('5');
      expect(answer.body).toContain('Portal unavailable');
      expect(answer.body).toContain('did not answer in time');
      expect(secrets.calls()).toBeGreaterThanOrEqual(1);
      expect(ms).toBeLessThan(UPPER_MS);
      const outOfTime = lines.flatMap((l) => l.split('\n')).filter((l) => l.includes('portal out of time'));
      expect(outOfTime).toHaveLength(1);
      expect(JSON.parse(outOfTime[0]!)).toMatchObject({ level: 'ERROR', call: 'Secrets Manager GetSecretValue' });
    } finally {
      secrets.stall(false);
    }
  });

  it('once the secret reads, a hung discovery document is the sign-in 503 page within the same kind of deadline', async () => {
    idToken.stall('discovery');
    try {
      const { answer, ms } = await invoke('/portal/login');
      expectOutOfTimePage(answer);
      expect(ms).toBeLessThan(UPPER_MS);
    } finally {
      idToken.stall(undefined);
    }
  });
});
