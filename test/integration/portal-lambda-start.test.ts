import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDiscoveryTable } from '../helpers/discovery-table';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { FakeFleet, fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
import { Ec2PowerModel } from '../helpers/ec2-power';
import { startEc2QueryServer, type Ec2QueryServer } from '../helpers/ec2-query-server';
import { lambdaContext } from '../helpers/function-url-event';
import { signInWithoutBrowser, startOidcProvider, type TestOidcProvider } from '../helpers/oidc-provider';
import { portalUserAgent } from '../helpers/portal-user-agent';
import { startSecretsManager, type LocalSecretsManager } from '../helpers/secrets-manager';
import { startSsmServer, type SsmServer } from '../helpers/ssm-server';
import { createTokensTable } from '../helpers/token-tables';

/**
 * The portal's Lambda entry builds Start and open only when POWER_SIGNALS_DOCUMENT is set (the stack will
 * set it with the permissions to match): with it, the list offers Start and open and the click starts the
 * instance through EC2 (a loopback stand-in); without it, no button and /portal/start is a 404.
 */
const TABLE = 'PortalStartSessions';
const TOKENS = 'PortalStartTokens';
const HOST = 'abcdefgh.lambda-url.us-east-1.on.aws';
const SECRET_ID = 'DcvSessionResolver-dcv-portal-keys';
const INSTANCE = instanceIdOf(1);
const ENV = ['TABLE_NAME', 'TOKENS_TABLE_NAME', 'AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ENDPOINT_URL_SECRETS_MANAGER', 'AWS_ENDPOINT_URL_EC2', 'AWS_ENDPOINT_URL_SSM', 'PORTAL_ISSUER', 'PORTAL_SECRET_ID', 'PORTAL_GATEWAY_URL', 'POWER_SIGNALS_DOCUMENT'];

type Handler = (event: APIGatewayProxyEventV2, context: ReturnType<typeof lambdaContext>) => Promise<APIGatewayProxyStructuredResultV2>;
let dynamo: LocalDynamo;
let idp: TestOidcProvider;
let secrets: LocalSecretsManager;
let ec2: Ec2QueryServer;
let ssm: SsmServer;
const fleet = new FakeFleet();
const power = new Ec2PowerModel(fleet, { pendingMs: Infinity });

beforeAll(async () => {
  dynamo = await startDynalite();
  await createDiscoveryTable(dynamo.client(), TABLE);
  await createTokensTable(dynamo, TOKENS);
  await dynamo.client().send(
    new PutItemCommand({
      TableName: TABLE,
      Item: {
        SessionId: { S: 'alice-desk' },
        DcvServerEndpoint: { S: '10.0.0.1' },
        Source: { S: 'ec2' },
        InstanceId: { S: INSTANCE },
        InstanceState: { S: 'stopped' },
        StartOnConnect: { BOOL: true },
        AllowedUsers: { L: [{ S: 'alice@example.com' }] },
      },
    }),
  );
  fleet.put(fleetInstance(1, { state: 'stopped', tags: { 'dcv:session-id': 'alice-desk', 'dcv:start-on-connect': 'true', 'dcv:allowed-users': 'alice@example.com' } }));
  ec2 = await startEc2QueryServer(fleet, power);
  ssm = await startSsmServer();
  idp = await startOidcProvider({ claims: 'id-token', redirectUris: [`https://${HOST}/portal/callback`] });
  secrets = await startSecretsManager();
  secrets.secrets.set(SECRET_ID, JSON.stringify({ cookieKey: 'c'.repeat(48), clientId: idp.clientId }));
  Object.assign(process.env, {
    TABLE_NAME: TABLE,
    TOKENS_TABLE_NAME: TOKENS,
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    AWS_ENDPOINT_URL_SSM: ssm.endpoint,
    PORTAL_ISSUER: idp.issuer,
    PORTAL_SECRET_ID: SECRET_ID,
    PORTAL_GATEWAY_URL: 'https://gw.example.com:8443',
  });
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
}, 60_000);

afterAll(async () => {
  vi.restoreAllMocks();
  for (const key of ENV) delete process.env[key];
  await Promise.allSettled([idp?.close(), secrets?.close(), ssm?.close(), ec2?.close(), dynamo?.stop()]);
});

/** A fresh import of the entry under the current environment, and alice signed in to it. */
async function aliceAt(): Promise<{ call: ReturnType<typeof portalUserAgent>['call']; list: string; csrf: string }> {
  vi.resetModules();
  const handler = (await import('../../lambda/handlers/portal')).handler as unknown as Handler;
  const { call } = portalUserAgent((event) => handler(event, lambdaContext()), HOST);
  const login = await call('GET', '/portal/login');
  const back = await signInWithoutBrowser(login.headers!.Location as string, 'alice', HOST);
  expect((await call('GET', back.pathname, { query: back.search.slice(1) })).statusCode).toBe(303);
  const list = (await call('GET', '/portal')).body!;
  return { call, list, csrf: /name="csrf" value="([^"]+)"/.exec(list)![1]! };
}

describe('the portal Lambda entry and Start and open', () => {
  it('without POWER_SIGNALS_DOCUMENT: Stopped, no Start and open, /portal/start is a 404', async () => {
    delete process.env.POWER_SIGNALS_DOCUMENT;
    const { call, list, csrf } = await aliceAt();
    expect(list).toContain('<h2>alice-desk</h2>');
    expect(list).not.toContain('Start and open');
    expect((await call('POST', '/portal/start', { form: { csrf, session: 'alice-desk' } })).statusCode).toBe(404);
    expect(power.calls).toEqual([]);
  });

  it('with POWER_SIGNALS_DOCUMENT: the button, and the click claims and starts the instance, then the progress page', async () => {
    process.env.POWER_SIGNALS_DOCUMENT = 'Stack-HostSignals';
    const { call, list, csrf } = await aliceAt();
    expect(list).toContain('>Start and open</button>');
    const started = await call('POST', '/portal/start', { form: { csrf, session: 'alice-desk' } });
    expect(started.statusCode).toBe(303);
    expect(started.headers!.Location).toBe('/portal/starting/alice-desk');
    expect(power.calls).toEqual([{ action: 'StartInstances', instanceIds: [INSTANCE] }]);
    const { Item } = await dynamo.client().send(new GetItemCommand({ TableName: TABLE, Key: { SessionId: { S: 'alice-desk' } }, ConsistentRead: true }));
    expect(Item?.PowerStartAt?.S).toMatch(/^\d{4}-/);
    const progress = await call('GET', '/portal/starting/alice-desk');
    expect(progress.statusCode).toBe(200);
    expect(progress.body).toContain('Starting the instance (EC2: pending)');
  });
});
