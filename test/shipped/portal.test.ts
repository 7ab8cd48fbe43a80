import { PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
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
 * The bundles with the portal on, run as they ship (see default-stack.test.ts): the portal is its own function
 * (its PORTAL_* environment from the template, the cookie key read from a loopback Secrets Manager under the
 * secret name its role is granted), the resolver keeps the gateway's allow-list and secret prefix.
 *
 * `portal=oidc`, discovery on, with an allow-list and a prefix: a real oidc-provider on loopback (https, claims in
 * UserInfo only) as the issuer; alice, from an address outside the allow-list, signs in at the portal's function
 * (no prefix), her list renders her desktop only, Connect's token passes the resolver function's verifier (asked
 * from inside the list); the same address gets 403 from the resolver's /resolveSession and /verifyToken.
 * `portal=cognito`: both functions start; the portal answers its signed-out page (its issuer is Cognito's, off
 * this machine, so sign-in is not requested here) and the resolver resolves.
 * In both, every AWS call each function made is allowed by its own role, and by no more than it needs.
 */
const PORTAL_HOST = 'portalabcd.lambda-url.us-east-1.on.aws';
const GATEWAY = 'https://gw.example.com:8443';
const PREFIX = 'k3y-5e7a';
/** The gateway's and DCV servers' egress (the functionUrlEvent fixture's sourceIp is inside). */
const GATEWAY_CIDRS = ['198.51.100.0/24'];
/** A user's browser: outside the gateway's list. */
const BROWSER = '203.0.113.50';
type Answer = APIGatewayProxyStructuredResultV2 & { statusCode: number; body: string };

const actionsOf = (world: World, id: string) => new Set(world.calls().filter((c) => c.accessKeyId === world.accessKeyOf(id)).map((c) => c.action));
const callsOf = (world: World, id: string) => world.calls().filter((c) => c.accessKeyId === world.accessKeyOf(id));

describe('the shipped portal and resolver (oidc, allow-list and prefix)', () => {
  let idp: TestOidcProvider;
  let synth: Synthesized;
  let world: World;
  let resolver: RunningFunction;
  let portal: RunningFunction;
  let resolverId: string;
  let portalId: string;
  let agent: PortalUserAgent;
  let certs: TestCerts;

  beforeAll(async () => {
    // An https issuer (the stack refuses any other), its certificate from a test CA the function trusts;
    // claims from UserInfo only (a conforming provider), so the shipped bundle's UserInfo read is exercised.
    certs = makeTestCerts();
    idp = await startOidcProvider({
      redirectUris: [`https://${PORTAL_HOST}/portal/callback`],
      claims: 'userinfo',
      tls: { key: readFileSync(certs.files.serverKey), cert: readFileSync(certs.files.serverCert), ca: certs.ca },
    });
    // upn named as a user claim (an Entra-like tenant where only administrators set it): PORTAL_USER_CLAIMS.
    synth = synthesize('ShippedPortal', {
      allowedSourceCidrs: GATEWAY_CIDRS,
      pathPrefix: PREFIX,
      portal: 'oidc',
      gatewayUrl: GATEWAY,
      oidcIssuer: idp.issuer,
      oidcClientId: idp.clientId,
      oidcUserClaims: ['upn'],
    });
    resolverId = synth.functionId('Resolver');
    portalId = synth.functionId('PortalFunction');
    world = await startWorld(synth, { trustedCaFile: certs.files.ca });
    const env = templateEnvironment(synth, portalId);
    world.secrets.set(env.PORTAL_SECRET_ID!, JSON.stringify({ cookieKey: 'k'.repeat(48) }));
    const items: Record<string, AttributeValue>[] = [
      { SessionId: { S: 'alice-desk' }, DcvServerEndpoint: { S: '10.0.0.31' }, TargetSessionId: { S: 'console' }, AllowedUsers: { L: [{ S: 'alice@example.com' }] } },
      { SessionId: { S: 'bob-desk' }, DcvServerEndpoint: { S: '10.0.0.32' }, AllowedUsers: { SS: ['bob@example.com'] } },
      { SessionId: { S: 'dana-desk' }, DcvServerEndpoint: { S: '10.0.0.33' }, AllowedUsers: { SS: ['dana@corp.example'] } },
      { SessionId: { S: 'gpu-1' }, DcvServerEndpoint: { S: '10.0.1.1' }, Pool: { S: 'gpu' }, AllowedUsers: { L: [{ S: 'alice@example.com' }] } },
    ];
    for (const Item of items) await world.dynamo.client().send(new PutItemCommand({ TableName: synth.tableName('Sessions'), Item }));
    [resolver, portal] = await Promise.all([world.start(resolverId), world.start(portalId)]);
    agent = portalUserAgent((event) => invokeOk(portal, event), PORTAL_HOST, { ca: certs.ca, sourceIp: BROWSER });
  }, 120_000);

  afterAll(async () => {
    await world?.stop();
    await idp?.close();
    synth?.remove();
    certs?.remove();
  });

  it('the template has the resolver, the portal, discovery and the power pass; only the portal carries the PORTAL_* environment', () => {
    expect([...synth.functions].sort()).toEqual([synth.functionId('DiscoveryFunction'), synth.functionId('PowerFunction'), portalId, resolverId].sort());
    const env = templateEnvironment(synth, portalId);
    expect(env).toMatchObject({ PORTAL_ISSUER: idp.issuer, PORTAL_CLIENT_ID: idp.clientId, PORTAL_GATEWAY_URL: GATEWAY });
    expect(env).not.toHaveProperty('PATH_PREFIX');
    expect(env).not.toHaveProperty('ALLOWED_SOURCE_CIDRS');
    expect(Object.values(env).join(' ')).not.toContain('{{unresolved');
    expect(Object.keys(templateEnvironment(synth, resolverId)).filter((k) => k.startsWith('PORTAL_'))).toEqual([]);
  });

  it('signs alice in from outside the allow-list, lists exactly her desktops, and Connect gives a token the resolver verifies', async () => {
    const signedOut = (await agent.call('GET', '/portal')) as Answer;
    expect(signedOut.statusCode).toBe(200);
    expect(signedOut.body).toContain('href="/portal/login"');

    const callback = await agent.signIn('alice');
    expect(callback.statusCode).toBe(303);
    expect(agent.cookies.dcv_portal).toBeDefined();
    const list = (await agent.call('GET', '/portal')) as Answer;
    expect(list.statusCode).toBe(200);
    // Alice is on alice-desk's list by e-mail, which this provider gives only through UserInfo.
    expect([...list.body.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1])).toEqual(['alice-desk', 'Pool gpu']);
    expect(list.body).not.toContain(PREFIX);
    expect(idp.userInfoRequests()).toBe(1);

    const csrf = /name="csrf" value="([^"]+)"/.exec(list.body)![1]!;
    const connect = await agent.call('POST', '/portal/connect', { form: { csrf, session: 'alice-desk', client: 'web' } });
    expect(connect.statusCode).toBe(303);
    const link = new URL(String(connect.headers!.Location));
    expect(`${link.origin}${link.hash}`).toBe(`${GATEWAY}#alice-desk`);
    const verify = (sourceIp?: string) =>
      invokeOk<Answer>(resolver, {
        ...functionUrlEvent({ method: 'POST', path: `/${PREFIX}/verifyToken/10.0.0.31`, sourceIp, headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
        body: verifyForm({ sessionId: 'console', authenticationToken: link.searchParams.get('authToken')!, clientAddress: '203.0.113.5' }),
      });
    // Outside the list, the verifier is not reached (and the token's use is not taken).
    expect((await verify(BROWSER)).statusCode).toBe(403);
    const verdict = await verify();
    expect(parseAuthXml(verdict.body)).toEqual({ result: 'yes', username: 'alice@example.com' });

    // A pool placement writes a lease item, within the portal role's lease:* condition.
    const pool = await agent.call('POST', '/portal/connect', { form: { csrf, pool: 'gpu', client: 'web' } });
    expect(pool.statusCode).toBe(303);

    // The gateway reaches the lease's host while its member is up, and not once the member's host is stopped.
    const resolveLease = () =>
      invokeOk<Answer>(resolver, functionUrlEvent({ method: 'POST', path: `/${PREFIX}/resolveSession`, rawQueryString: 'sessionId=lease%3Agpu-1&transport=HTTP' }));
    const up = await resolveLease();
    expect(up.statusCode).toBe(200);
    expect(JSON.parse(up.body)).toMatchObject({ SessionId: 'gpu-1', DcvServerEndpoint: '10.0.1.1' });
    const member = { SessionId: { S: 'gpu-1' }, DcvServerEndpoint: { S: '10.0.1.1' }, Pool: { S: 'gpu' }, AllowedUsers: { L: [{ S: 'alice@example.com' }] }, Source: { S: 'ec2' }, InstanceId: { S: 'i-0abc' } };
    const putMember = (state: string) =>
      world.dynamo.client().send(new PutItemCommand({ TableName: synth.tableName('Sessions'), Item: { ...member, InstanceState: { S: state } } }));
    await putMember('stopped');
    const down = await resolveLease();
    expect(down.statusCode).toBe(404);
    expect(down.body).toContain("session 'lease:gpu-1': its pool host is no longer available (session 'gpu-1': the host is stopped (InstanceState stopped))");
    await putMember('running');
    expect((await resolveLease()).statusCode).toBe(200);
  });

  it('matches only trusted claims: the named upn lets Dana in; self-chosen user names and an unconfirmed e-mail get nothing', async () => {
    expect(templateEnvironment(synth, portalId).PORTAL_USER_CLAIMS).toBe('upn');
    const listed = async (login: string) => {
      const person = portalUserAgent((event) => invokeOk(portal, event), PORTAL_HOST, { ca: certs.ca, sourceIp: BROWSER });
      expect((await person.signIn(login)).statusCode).toBe(303);
      const list = (await person.call('GET', '/portal')) as Answer;
      return [...list.body.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1]);
    };
    expect(await listed('dana')).toEqual(['dana-desk']);
    expect(await listed('mallory-username')).toEqual([]);
    expect(await listed('mallory-unconfirmed')).toEqual([]);
  });

  it("the browser's address gets 403 from the resolver's /resolveSession and /verifyToken, prefix or not", async () => {
    const ask = (path: string, sourceIp?: string) =>
      invokeOk<Answer>(resolver, functionUrlEvent({ method: 'POST', path, rawQueryString: 'sessionId=alice-desk&transport=HTTP', sourceIp }));
    expect((await ask(`/${PREFIX}/resolveSession`, BROWSER)).statusCode).toBe(403);
    expect((await ask('/resolveSession', BROWSER)).statusCode).toBe(403);
    expect((await ask(`/${PREFIX}/verifyToken/10.0.0.31`, BROWSER)).statusCode).toBe(403);
    expect((await ask(`/${PREFIX}/resolveSession`)).statusCode).toBe(200);
    // And the resolver serves no portal; the portal serves none of the gateway's routes.
    expect((await invokeOk<Answer>(resolver, functionUrlEvent({ method: 'GET', path: '/portal' }))).statusCode).toBe(404);
    expect((await invokeOk<Answer>(portal, functionUrlEvent({ method: 'POST', path: `/${PREFIX}/resolveSession`, rawQueryString: 'sessionId=alice-desk&transport=HTTP' }))).statusCode).toBe(404);
    expect((await invokeOk<Answer>(portal, functionUrlEvent({ method: 'POST', path: '/resolveSession', rawQueryString: 'sessionId=alice-desk&transport=HTTP' }))).statusCode).toBe(404);
  });

  it('Start and open: the shipped portal claims and starts a stopped start-on-connect desktop of alice, and its progress page waits', async () => {
    const id = instanceIdOf(71);
    world.fleet.put(fleetInstance(71, { state: 'stopped', privateIp: '10.0.0.71', tags: { 'dcv:session-id': 'alice-gpu', 'dcv:start-on-connect': 'true' } }));
    await world.dynamo.client().send(
      new PutItemCommand({
        TableName: synth.tableName('Sessions'),
        Item: {
          SessionId: { S: 'alice-gpu' },
          DcvServerEndpoint: { S: '10.0.0.71' },
          TargetSessionId: { S: 'console' },
          AllowedUsers: { L: [{ S: 'alice@example.com' }] },
          Source: { S: 'ec2' },
          InstanceId: { S: id },
          InstanceState: { S: 'stopped' },
          StartOnConnect: { BOOL: true },
        },
      }),
    );
    const list = (await agent.call('GET', '/portal')) as Answer;
    expect(list.body).toMatch(/alice-gpu[\s\S]*Start and open/);
    const csrf = /name="csrf" value="([^"]+)"/.exec(list.body)![1]!;
    const start = await agent.call('POST', '/portal/start', { form: { csrf, session: 'alice-gpu' } });
    expect(start.statusCode).toBe(303);
    expect(String(start.headers!.Location)).toBe('/portal/starting/alice-gpu');
    expect(world.power.state(id)).toBe('pending');
    const claims = world.power.calls.filter((c) => c.action === 'StartInstances' && c.instanceIds.includes(id));
    expect(claims).toHaveLength(1);
    // The progress page: no link while the instance is not running (and the item not yet refreshed).
    const progress = (await agent.call('GET', '/portal/starting/alice-gpu')) as Answer;
    expect(progress.statusCode).toBe(200);
    expect(progress.body).toContain('http-equiv="refresh"');
    expect(progress.body).not.toContain(GATEWAY);
  });

  it('every AWS call each function made is allowed by its own role, and each made only its own kind', async () => {
    expect(actionsOf(world, portalId)).toEqual(
      new Set([
        'secretsmanager:GetSecretValue',
        'dynamodb:Scan',
        'dynamodb:PutItem',
        'dynamodb:GetItem',
        // Start and open: EC2's state, the anchor through the InstanceId index, the PowerStartAt claim, the start.
        'ec2:DescribeInstances',
        'dynamodb:Query',
        'dynamodb:UpdateItem',
        'ec2:StartInstances',
      ]),
    );
    expect(callsOf(world, portalId).some((c) => c.action === 'dynamodb:PutItem' && c.keys?.some((k) => k.SessionId?.S?.startsWith('lease:')))).toBe(true);
    expect(actionsOf(world, resolverId)).toEqual(new Set(['dynamodb:GetItem', 'dynamodb:UpdateItem']));
    expect(await denied(synth, portalId, callsOf(world, portalId), world.instanceTags)).toEqual([]);
    // Start and open's start is allowed by the start-on-connect tag only: the same call on an instance without it is refused.
    const start = callsOf(world, portalId).find((c) => c.action === 'ec2:StartInstances')!;
    world.fleet.put(fleetInstance(72, { state: 'stopped', tags: { 'dcv:session-id': 'untagged-gpu' } }));
    const onUntagged = { ...start, resources: start.resources.map((r) => r.replace(instanceIdOf(71), instanceIdOf(72))) };
    expect(await denied(synth, portalId, [onUntagged], world.instanceTags)).toEqual([`ec2:StartInstances on ${onUntagged.resources[0]}`]);
    expect(await denied(synth, resolverId, callsOf(world, resolverId))).toEqual([]);
    // The resolver's role could not have made the portal's calls (its one shared grant: GetItem on the sessions).
    const refused = await denied(synth, resolverId, callsOf(world, portalId).filter((c) => c.action !== 'dynamodb:GetItem'));
    expect(new Set(refused.map((r) => r.split(' ')[0]))).toEqual(
      new Set(['secretsmanager:GetSecretValue', 'dynamodb:Scan', 'dynamodb:PutItem', 'ec2:DescribeInstances', 'dynamodb:Query', 'dynamodb:UpdateItem', 'ec2:StartInstances']),
    );
  });

  it('a provider whose UserInfo hangs: the portal 503 page within the invocation, logged as "UserInfo" (issue 21 item 7)', async () => {
    const bob = portalUserAgent((event) => invokeOk(portal, event), PORTAL_HOST, { ca: certs.ca, sourceIp: BROWSER });
    const logStart = portal.output().length;
    idp.stall('userinfo');
    try {
      const callback = (await bob.signIn('bob')) as Answer;
      expect(callback.statusCode).toBe(503);
      expect(callback.body).toContain('did not answer in time');
      expect(bob.cookies.dcv_portal).toBeUndefined();
      const late = portal.output().slice(logStart).split('\n').filter((l) => l.includes('portal out of time'));
      expect(late.map((l) => JSON.parse(l) as Record<string, unknown>)).toMatchObject([{ level: 'ERROR', call: 'UserInfo' }]);
    } finally {
      idp.stall(undefined);
    }
  });
});

describe('the shipped portal and resolver (cognito)', () => {
  let synth: Synthesized;
  let world: World;
  let resolver: RunningFunction;
  let portal: RunningFunction;
  let resolverId: string;
  let portalId: string;

  beforeAll(async () => {
    synth = synthesize('ShippedCognito', { allowedSourceCidrs: GATEWAY_CIDRS, portal: 'cognito', gatewayUrl: GATEWAY, discovery: false });
    resolverId = synth.functionId('Resolver');
    portalId = synth.functionId('PortalFunction');
    world = await startWorld(synth);
    await world.dynamo.client().send(
      new PutItemCommand({ TableName: synth.tableName('Sessions'), Item: { SessionId: { S: 'console' }, DcvServerEndpoint: { S: '10.0.0.41' } } }),
    );
    // Cognito mode: the app client id travels in the secret (the stack writes it there).
    world.secrets.set(templateEnvironment(synth, portalId).PORTAL_SECRET_ID!, JSON.stringify({ cookieKey: 'k'.repeat(48), clientId: 'cognito-app-client' }));
    [resolver, portal] = await Promise.all([world.start(resolverId), world.start(portalId)]);
  }, 120_000);

  afterAll(async () => {
    await world?.stop();
    synth?.remove();
  });

  it('has the resolver and the portal; the portal starts with the Cognito PORTAL_* environment and answers outside the list, the resolver resolves', async () => {
    expect([...synth.functions].sort()).toEqual([portalId, resolverId].sort());
    expect(templateEnvironment(synth, portalId)).toMatchObject({ PORTAL_GROUPS_CLAIM: 'cognito:groups', PORTAL_GATEWAY_URL: GATEWAY });
    const page = await invokeOk<Answer>(portal, functionUrlEvent({ method: 'GET', path: '/portal', sourceIp: BROWSER, headers: { host: PORTAL_HOST } }));
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('href="/portal/login"');
    const outside = await invokeOk<Answer>(resolver, functionUrlEvent({ rawQueryString: 'sessionId=console&transport=HTTP', sourceIp: BROWSER }));
    expect(outside.statusCode).toBe(403);
    const hit = await invokeOk<Answer>(resolver, functionUrlEvent({ rawQueryString: 'sessionId=console&transport=HTTP' }));
    expect(hit.statusCode).toBe(200);
    expect(JSON.parse(hit.body)).toMatchObject({ DcvServerEndpoint: '10.0.0.41' });
  });

  it('every AWS call each function made is allowed by its own role', async () => {
    expect(actionsOf(world, portalId)).toEqual(new Set(['secretsmanager:GetSecretValue']));
    expect(actionsOf(world, resolverId)).toEqual(new Set(['dynamodb:GetItem']));
    expect(await denied(synth, portalId, callsOf(world, portalId))).toEqual([]);
    expect(await denied(synth, resolverId, callsOf(world, resolverId))).toEqual([]);
  });
});
