import { PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { functionUrlEvent, lambdaContext } from '../helpers/function-url-event';
import { signInWithoutBrowser, startOidcProvider, type TestOidcProvider } from '../helpers/oidc-provider';
import { portalUserAgent } from '../helpers/portal-user-agent';
import { startSecretsManager, type LocalSecretsManager } from '../helpers/secrets-manager';
import { createTokensTable } from '../helpers/token-tables';
import { parseAuthXml, verifyForm } from '../helpers/verify-http';

/**
 * The portal through its own Lambda entry (lambda/handlers/portal.ts), configured only by the
 * PORTAL_* environment the stack sets: the cookie key read from Secrets Manager (a loopback stand-in), the
 * provider a real oidc-provider, the tables dynalite, the requests Function URL events. A scripted user agent
 * signs alice in, lists, connects, and the DCV server's verifier (the resolver's entry, lambda/handlers/resolver.ts,
 * over the same tables) accepts the token. The provider copies the
 * claims into the ID token (as Cognito does), so the sign-in costs no UserInfo request; the conforming
 * provider (claims only at UserInfo) is the browser test's and portal-userinfo.test.ts's.
 */
const TABLE = 'PortalEntrySessions';
const TOKENS = 'PortalEntryTokens';
const HOST = 'abcdefgh.lambda-url.us-east-1.on.aws';
const SECRET_ID = 'DcvSessionResolver-dcv-portal-keys';
const GATEWAY = 'https://gw.example.com:8443';

let dynamo: LocalDynamo;
let idp: TestOidcProvider;
let secrets: LocalSecretsManager;

type Handler = (event: APIGatewayProxyEventV2, context: ReturnType<typeof lambdaContext>) => Promise<APIGatewayProxyStructuredResultV2>;
let handler: Handler;
let resolverHandler: Handler;
// A scripted browser at HOST (keeps the portal's cookies) in front of the entry's handler.
const agent = portalUserAgent((event) => handler(event, lambdaContext()), HOST);
const { call, cookies } = agent;

beforeAll(async () => {
  dynamo = await startDynalite();
  await dynamo.createSessionTable(TABLE);
  await createTokensTable(dynamo, TOKENS);
  const items: Record<string, AttributeValue>[] = [
    { SessionId: { S: 'alice-desk' }, DcvServerEndpoint: { S: '10.0.0.11' }, TargetSessionId: { S: 'console' }, AllowedUsers: { L: [{ S: 'alice@example.com' }] } },
    { SessionId: { S: 'bob-desk' }, DcvServerEndpoint: { S: '10.0.0.12' }, AllowedUsers: { SS: ['bob@example.com'] } },
  ];
  for (const item of items) {
    await dynamo.client().send(new PutItemCommand({ TableName: TABLE, Item: item }));
  }
  idp = await startOidcProvider({ claims: 'id-token', redirectUris: [`https://${HOST}/portal/callback`] });
  secrets = await startSecretsManager();
  secrets.secrets.set(SECRET_ID, JSON.stringify({ cookieKey: 'c'.repeat(48), clientId: idp.clientId }));
  vi.resetModules();
  Object.assign(process.env, {
    TABLE_NAME: TABLE,
    TOKENS_TABLE_NAME: TOKENS,
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
    PORTAL_ISSUER: idp.issuer,
    PORTAL_SECRET_ID: SECRET_ID,
    PORTAL_GATEWAY_URL: GATEWAY,
  });
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  handler = (await import('../../lambda/handlers/portal')).handler as unknown as Handler;
  resolverHandler = (await import('../../lambda/handlers/resolver')).handler as unknown as Handler;
}, 60_000);

afterAll(async () => {
  vi.restoreAllMocks();
  for (const key of ['TABLE_NAME', 'TOKENS_TABLE_NAME', 'AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ENDPOINT_URL_SECRETS_MANAGER', 'PORTAL_ISSUER', 'PORTAL_SECRET_ID', 'PORTAL_GATEWAY_URL']) {
    delete process.env[key];
  }
  await idp?.close();
  await secrets?.close();
  await dynamo?.stop();
});

describe('the portal through the Lambda entry', () => {
  it('answers 503 while the secret cannot be read, and works once it can (the failed read is not kept)', async () => {
    secrets.failNext(1);
    const down = await call('GET', '/portal');
    expect(down.statusCode).toBe(503);
    expect(down.body).toContain('Portal unavailable');
    const up = await call('GET', '/portal');
    expect(up.statusCode).toBe(200);
    expect(up.body).toContain('href="/portal/login"');
    expect(secrets.calls()).toBe(2);
  });

  it('signs alice in at the provider, lists only her desktop, and Connect gives a token the verifier accepts', async () => {
    const login = await call('GET', '/portal/login');
    expect(login.statusCode).toBe(302);
    const authorize = new URL(login.headers!.Location as string);
    expect(authorize.origin).toBe(idp.issuer);
    expect(authorize.searchParams.get('redirect_uri')).toBe(`https://${HOST}/portal/callback`);

    const back = await signInWithoutBrowser(authorize.toString(), 'alice', HOST);
    const callback = await call('GET', back.pathname, { query: back.search.slice(1) });
    expect(callback.statusCode).toBe(303);
    expect(cookies.dcv_portal).toBeDefined();
    expect(cookies.dcv_portal_login).toBeUndefined();
    // E-mail, user name and groups were all in the ID token: UserInfo was not asked.
    expect(idp.userInfoRequests()).toBe(0);

    const list = await call('GET', '/portal');
    expect([...list.body!.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1])).toEqual(['alice-desk']);
    const csrf = /name="csrf" value="([^"]+)"/.exec(list.body!)![1];

    const connect = await call('POST', '/portal/connect', { form: { csrf, session: 'alice-desk', client: 'web' } });
    expect(connect.statusCode).toBe(303);
    const link = new URL(connect.headers!.Location as string);
    expect(`${link.origin}${link.hash}`).toBe(`${GATEWAY}#alice-desk`);

    const verify = functionUrlEvent({
      method: 'POST',
      path: '/verifyToken/10.0.0.11',
      sourceIp: '198.51.100.30',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    // The portal's function serves none of the gateway's routes; the resolver's serves none of the portal's.
    expect((await handler({ ...verify, body: 'sessionId=console&authenticationToken=x' }, lambdaContext())).statusCode).toBe(404);
    expect((await resolverHandler(functionUrlEvent({ method: 'GET', path: '/portal' }), lambdaContext())).statusCode).toBe(404);
    const verdict = await resolverHandler(
      { ...verify, body: verifyForm({ sessionId: 'console', authenticationToken: link.searchParams.get('authToken')!, clientAddress: '203.0.113.5' }) },
      lambdaContext(),
    );
    expect(parseAuthXml(verdict.body!)).toEqual({ result: 'yes', username: 'alice@example.com' });
    // Built once: the secret was read twice in all (the failed read and one good one).
    expect(secrets.calls()).toBe(2);
  });

  it("refuses a Connect to bob's desktop and mints nothing for it", async () => {
    const list = await call('GET', '/portal');
    const csrf = /name="csrf" value="([^"]+)"/.exec(list.body!)![1];
    const answer = await call('POST', '/portal/connect', { form: { csrf, session: 'bob-desk' } });
    expect(answer.statusCode).toBe(404);
    expect(answer.headers!.Location).toBeUndefined();
  });
});
