import { PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { functionUrlEvent } from '../helpers/function-url-event';
import { startOidcProvider, type TestOidcProvider } from '../helpers/oidc-provider';
import { portalUserAgent, type PortalUserAgent } from '../helpers/portal-user-agent';
import { makeTestCerts, type TestCerts } from '../helpers/test-certs';
import { parseAuthXml, verifyForm } from '../helpers/verify-http';
import { denied } from './harness/iam-check';
import { invokeOk, type RunningFunction } from './harness/lambda-runtime-api';
import { synthesize, templateEnvironment, type Synthesized } from './harness/synthesized';
import { startWorld, type World } from './harness/world';

/**
 * The resolver bundle with the portal (`portal=oidc`, discovery on), run as it ships (see
 * default-stack.test.ts): its PORTAL_* environment from the template, the cookie key read from a loopback
 * Secrets Manager under the secret name the template grants, a real oidc-provider on loopback (https, claims
 * in UserInfo only) as the issuer.
 * Alice signs in, the list page renders her desktop only, Connect's token passes the same function's verifier.
 * And `portal=cognito`: the template's functions start and resolve (its issuer is Cognito's, off this machine,
 * so its pages are not requested here).
 */
const HOST = 'abcdefgh.lambda-url.us-east-1.on.aws';
const GATEWAY = 'https://gw.example.com:8443';
type Answer = APIGatewayProxyStructuredResultV2 & { statusCode: number; body: string };

describe('the shipped resolver with the portal (oidc)', () => {
  let idp: TestOidcProvider;
  let synth: Synthesized;
  let world: World;
  let resolver: RunningFunction;
  let resolverId: string;
  let agent: PortalUserAgent;
  let certs: TestCerts;

  beforeAll(async () => {
    // An https issuer (the stack refuses any other), its certificate from a test CA the function trusts;
    // claims from UserInfo only (a conforming provider), so the shipped bundle's UserInfo read is exercised.
    certs = makeTestCerts();
    idp = await startOidcProvider({
      redirectUris: [`https://${HOST}/portal/callback`],
      claims: 'userinfo',
      tls: { key: readFileSync(certs.files.serverKey), cert: readFileSync(certs.files.serverCert), ca: certs.ca },
    });
    // upn named as a user claim (an Entra-like tenant where only administrators set it): PORTAL_USER_CLAIMS.
    synth = synthesize('ShippedPortal', { allowAnySource: true, portal: 'oidc', gatewayUrl: GATEWAY, oidcIssuer: idp.issuer, oidcClientId: idp.clientId, oidcUserClaims: ['upn'] });
    resolverId = synth.functionId('Resolver');
    world = await startWorld(synth, { trustedCaFile: certs.files.ca });
    const env = templateEnvironment(synth, resolverId);
    world.secrets.set(env.PORTAL_SECRET_ID!, JSON.stringify({ cookieKey: 'k'.repeat(48) }));
    const items: Record<string, AttributeValue>[] = [
      { SessionId: { S: 'alice-desk' }, DcvServerEndpoint: { S: '10.0.0.31' }, TargetSessionId: { S: 'console' }, AllowedUsers: { L: [{ S: 'alice@example.com' }] } },
      { SessionId: { S: 'bob-desk' }, DcvServerEndpoint: { S: '10.0.0.32' }, AllowedUsers: { SS: ['bob@example.com'] } },
      { SessionId: { S: 'dana-desk' }, DcvServerEndpoint: { S: '10.0.0.33' }, AllowedUsers: { SS: ['dana@corp.example'] } },
    ];
    for (const Item of items) await world.dynamo.client().send(new PutItemCommand({ TableName: synth.tableName('Sessions'), Item }));
    resolver = await world.start(resolverId);
    agent = portalUserAgent((event) => invokeOk(resolver, event), HOST, { ca: certs.ca });
  }, 120_000);

  afterAll(async () => {
    await world?.stop();
    await idp?.close();
    synth?.remove();
    certs?.remove();
  });

  it('the template has the resolver and discovery; the resolver carries the PORTAL_* environment', () => {
    expect([...synth.functions].sort()).toEqual([synth.functionId('DiscoveryFunction'), resolverId].sort());
    const env = templateEnvironment(synth, resolverId);
    expect(env).toMatchObject({ PORTAL_ISSUER: idp.issuer, PORTAL_CLIENT_ID: idp.clientId, PORTAL_GATEWAY_URL: GATEWAY });
    expect(Object.values(env).join(' ')).not.toContain('{{unresolved');
  });

  it('signs alice in, lists exactly her desktop, and Connect gives a token its verifier accepts', async () => {
    const signedOut = (await agent.call('GET', '/portal')) as Answer;
    expect(signedOut.statusCode).toBe(200);
    expect(signedOut.body).toContain('/portal/login');

    const callback = await agent.signIn('alice');
    expect(callback.statusCode).toBe(303);
    expect(agent.cookies.dcv_portal).toBeDefined();
    const list = (await agent.call('GET', '/portal')) as Answer;
    expect(list.statusCode).toBe(200);
    // Alice is on alice-desk's list by e-mail, which this provider gives only through UserInfo.
    expect([...list.body.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1])).toEqual(['alice-desk']);
    expect(idp.userInfoRequests()).toBe(1);

    const csrf = /name="csrf" value="([^"]+)"/.exec(list.body)![1]!;
    const connect = await agent.call('POST', '/portal/connect', { form: { csrf, session: 'alice-desk', client: 'web' } });
    expect(connect.statusCode).toBe(303);
    const link = new URL(String(connect.headers!.Location));
    expect(`${link.origin}${link.hash}`).toBe(`${GATEWAY}#alice-desk`);
    const verdict = await invokeOk<Answer>(resolver, {
      ...functionUrlEvent({ method: 'POST', path: '/verifyToken/10.0.0.31', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      body: verifyForm({ sessionId: 'console', authenticationToken: link.searchParams.get('authToken')!, clientAddress: '203.0.113.5' }),
    });
    expect(parseAuthXml(verdict.body)).toEqual({ result: 'yes', username: 'alice@example.com' });
  });

  it('matches only trusted claims: the named upn lets Dana in; self-chosen user names and an unconfirmed e-mail get nothing', async () => {
    expect(templateEnvironment(synth, resolverId).PORTAL_USER_CLAIMS).toBe('upn');
    const listed = async (login: string) => {
      const person = portalUserAgent((event) => invokeOk(resolver, event), HOST, { ca: certs.ca });
      expect((await person.signIn(login)).statusCode).toBe(303);
      const list = (await person.call('GET', '/portal')) as Answer;
      return [...list.body.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1]);
    };
    expect(await listed('dana')).toEqual(['dana-desk']);
    expect(await listed('mallory-username')).toEqual([]);
    expect(await listed('mallory-unconfirmed')).toEqual([]);
  });

  it('every AWS call it made (the secret, the catalog Scan, the token) is allowed by its role', () => {
    const mine = world.calls().filter((c) => c.accessKeyId === world.accessKeyOf(resolverId));
    expect(new Set(mine.map((c) => c.action))).toEqual(new Set(['secretsmanager:GetSecretValue', 'dynamodb:Scan', 'dynamodb:PutItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem']));
    expect(denied(synth, resolverId, mine)).toEqual([]);
  });

  it('a provider whose UserInfo hangs: the portal 503 page within the invocation, logged as "UserInfo" (issue 21 item 7)', async () => {
    const bob = portalUserAgent((event) => invokeOk(resolver, event), HOST, { ca: certs.ca });
    const logStart = resolver.output().length;
    idp.stall('userinfo');
    try {
      const callback = (await bob.signIn('bob')) as Answer;
      expect(callback.statusCode).toBe(503);
      expect(callback.body).toContain('did not answer in time');
      expect(bob.cookies.dcv_portal).toBeUndefined();
      const late = resolver.output().slice(logStart).split('\n').filter((l) => l.includes('portal out of time'));
      expect(late.map((l) => JSON.parse(l) as Record<string, unknown>)).toMatchObject([{ level: 'ERROR', call: 'UserInfo' }]);
    } finally {
      idp.stall(undefined);
    }
  });
});

describe('the shipped resolver with the portal (cognito)', () => {
  let synth: Synthesized;
  let world: World;
  let resolver: RunningFunction;

  beforeAll(async () => {
    synth = synthesize('ShippedCognito', { allowAnySource: true, portal: 'cognito', gatewayUrl: GATEWAY, discovery: false });
    world = await startWorld(synth);
    await world.dynamo.client().send(
      new PutItemCommand({ TableName: synth.tableName('Sessions'), Item: { SessionId: { S: 'console' }, DcvServerEndpoint: { S: '10.0.0.41' } } }),
    );
    resolver = await world.start(synth.functionId('Resolver'));
  }, 120_000);

  afterAll(async () => {
    await world?.stop();
    synth?.remove();
  });

  it('has the resolver alone, which starts with the Cognito PORTAL_* environment and resolves', async () => {
    expect(synth.functions).toEqual([synth.functionId('Resolver')]);
    const hit = await invokeOk<Answer>(resolver, functionUrlEvent({ rawQueryString: 'sessionId=console&transport=HTTP' }));
    expect(hit.statusCode).toBe(200);
    expect(JSON.parse(hit.body)).toMatchObject({ DcvServerEndpoint: '10.0.0.41' });
    const mine = world.calls().filter((c) => c.accessKeyId === world.accessKeyOf(synth.functionId('Resolver')));
    expect(denied(synth, synth.functionId('Resolver'), mine)).toEqual([]);
  });
});
