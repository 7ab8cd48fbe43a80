import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdkDynamoApi } from '../../lambda/adapters/dynamodb-api';
import { DynamoDbSessionStore } from '../../lambda/adapters/dynamodb-session-store';
import { DynamoDbTokenStore } from '../../lambda/adapters/dynamodb-token-store';
import { silentLog } from '../../lambda/core/log';
import { SessionResolver } from '../../lambda/core/resolve';
import { issueToken } from '../../lambda/core/tokens/issue-token';
import { functionUrlEvent } from '../helpers/function-url-event';
import { restApiEvent } from '../helpers/rest-api-event';
import { parseAuthXml, verifyForm } from '../helpers/verify-http';
import { denied } from './harness/iam-check';
import { type RunningFunction } from './harness/lambda-runtime-api';
import { synthesize, type Resource, type Synthesized } from './harness/synthesized';
import { startWorld, type World } from './harness/world';

/**
 * `accessMode: 'private'` as it ships (issue 22): the resolver bundle from the cloud assembly, invoked with
 * REST API proxy events built from the template's own API (its stage, its `{proxy+}` resource, the endpoint
 * its policy admits, the function its integration names), answers the gateway and the DCV servers exactly as
 * it answers the same requests as Function URL events; and every AWS call it makes is within its role.
 */
const VPCE = 'vpce-0123456789abcdef0';
const PREFIX = 'k3y-9f8e7d';
const SERVER = '10.0.0.21';

let synth: Synthesized;
let world: World;
let resolver: RunningFunction;
let resolverId: string;
let stage: string;
let apiId: string;

const resources = (type: string): [string, Resource][] => Object.entries(synth.template.Resources).filter(([, r]) => r.Type === type);

beforeAll(async () => {
  synth = synthesize('ShippedPrivate', { accessMode: 'private', vpcEndpointIds: [VPCE], pathPrefix: PREFIX, discovery: false });
  resolverId = synth.functionId('Resolver');
  const apis = resources('AWS::ApiGateway::RestApi');
  expect(apis).toHaveLength(1);
  apiId = apis[0]![0];
  stage = resources('AWS::ApiGateway::Stage')[0]![1].Properties.StageName as string;
  world = await startWorld(synth);
  await world.dynamo.client().send(
    new PutItemCommand({ TableName: synth.tableName('Sessions'), Item: { SessionId: { S: 'console' }, DcvServerEndpoint: { S: SERVER }, HttpPort: { N: '8443' } } }),
  );
  resolver = await world.start(resolverId);
}, 120_000);

afterAll(async () => {
  await world?.stop();
  synth?.remove();
});

type Answer = { statusCode: number; body: string; headers?: Record<string, unknown> };

async function send(event: unknown): Promise<Answer> {
  const answer = await resolver.invoke(event);
  expect(answer.error, `${answer.error?.errorType}: ${answer.error?.errorMessage}\n${answer.logs}`).toBeUndefined();
  return answer.result as Answer;
}

interface Request {
  readonly method: string;
  readonly path: string;
  readonly query?: string;
  readonly sourceIp: string;
  readonly body?: string;
  readonly contentType?: string;
}

/** The same request as API Gateway's REST proxy event for this template's API and stage, and as a Function URL event. */
const adapters = {
  rest: (r: Request) =>
    restApiEvent({
      method: r.method,
      path: r.path,
      rawQueryString: r.query ?? '',
      sourceIp: r.sourceIp,
      stage,
      apiId: `${apiId.toLowerCase().slice(0, 10)}`,
      vpceId: VPCE,
      headers: { Host: `api-${VPCE}.execute-api.us-east-1.amazonaws.com`, ...(r.contentType ? { 'Content-Type': r.contentType } : {}) },
      ...(r.body !== undefined ? { body: r.body } : {}),
    }),
  functionUrl: (r: Request) =>
    functionUrlEvent({
      method: r.method,
      path: r.path,
      rawQueryString: r.query ?? '',
      sourceIp: r.sourceIp,
      ...(r.contentType ? { headers: { 'content-type': r.contentType } } : {}),
      ...(r.body !== undefined ? { body: r.body } : {}),
    }),
};

describe('the shipped resolver in private mode', () => {
  it('the template has the resolver alone, reached only through the private API that admits the endpoint', () => {
    expect(synth.functions).toEqual([resolverId]);
    expect(resources('AWS::Lambda::Url')).toEqual([]);
    const api = synth.template.Resources[apiId]!.Properties;
    expect(api.EndpointConfiguration).toEqual({ Types: ['PRIVATE'], VpcEndpointIds: [VPCE] });
    // Every method proxies to this very function, which is the one these tests run.
    const methods = resources('AWS::ApiGateway::Method').map(([, m]) => m.Properties);
    expect(methods.length).toBeGreaterThan(0);
    for (const m of methods) {
      expect(m.Integration.Type).toBe('AWS_PROXY');
      expect(JSON.stringify(m.Integration.Uri)).toContain(`"${resolverId}"`);
    }
    expect(resources('AWS::ApiGateway::Resource').map(([, r]) => r.Properties.PathPart)).toEqual(['{proxy+}']);
  });

  // One table over both adapters: same bundle, same request, same answer.
  const cases: { name: string; request: Request; status: number }[] = [
    { name: 'the gateway resolves a session', request: { method: 'POST', path: `/${PREFIX}/resolveSession`, query: 'sessionId=console&transport=HTTP', sourceIp: '10.20.0.5' }, status: 200 },
    { name: 'an unknown session', request: { method: 'POST', path: `/${PREFIX}/resolveSession`, query: 'sessionId=nobody&transport=HTTP', sourceIp: '10.20.0.5' }, status: 404 },
    { name: 'a repeated parameter', request: { method: 'POST', path: `/${PREFIX}/resolveSession`, query: 'sessionId=console&sessionId=other&transport=HTTP', sourceIp: '10.20.0.5' }, status: 400 },
    { name: 'a wrong method', request: { method: 'GET', path: `/${PREFIX}/resolveSession`, query: 'sessionId=console&transport=HTTP', sourceIp: '10.20.0.5' }, status: 405 },
    { name: 'the path without the prefix', request: { method: 'POST', path: '/resolveSession', query: 'sessionId=console&transport=HTTP', sourceIp: '10.20.0.5' }, status: 404 },
    {
      name: 'a DCV server verifies a bad token',
      request: { method: 'POST', path: `/${PREFIX}/verifyToken/${SERVER}`, sourceIp: '10.20.0.21', contentType: 'application/x-www-form-urlencoded', body: verifyForm({ sessionId: 'console', authenticationToken: 'nope' }) },
      status: 200,
    },
  ];

  it.each(cases)('answers "$name" the same as a REST API event and as a Function URL event', async ({ request, status }) => {
    const rest = await send(adapters.rest(request));
    const url = await send(adapters.functionUrl(request));
    expect(rest.statusCode, rest.body).toBe(status);
    expect({ status: rest.statusCode, body: rest.body, headers: rest.headers }).toEqual({ status: url.statusCode, body: url.body, headers: url.headers });
  });

  it('verifier: a token accepted through the REST API takes exactly one use, and a second use is refused', async () => {
    const client = world.dynamo.client();
    const tokensTable = synth.tableName('Tokens');
    const issued = await issueToken(
      {
        tokens: new DynamoDbTokenStore(sdkDynamoApi(client), tokensTable),
        sessions: new SessionResolver({ store: new DynamoDbSessionStore(client, synth.tableName('Sessions')), log: silentLog }),
      },
      { sessionId: 'console', user: 'alice', ttlSeconds: 300, maxUses: 1 },
    );
    const verify = (sourceIp: string) =>
      send(
        adapters.rest({
          method: 'POST',
          path: `/${PREFIX}/verifyToken/${SERVER}`,
          sourceIp,
          contentType: 'application/x-www-form-urlencoded',
          body: verifyForm({ sessionId: 'console', authenticationToken: issued.token, clientAddress: '10.20.0.99' }),
        }),
      );
    const first = await verify('10.20.0.21');
    expect(first.statusCode).toBe(200);
    expect(parseAuthXml(first.body)).toEqual({ result: 'yes', username: 'alice' });
    const second = await verify('10.20.0.21');
    expect(parseAuthXml(second.body)).toMatchObject({ result: 'no' });
  });

  it('every AWS call it made is allowed by its role in the template', async () => {
    const mine = world.calls().filter((c) => c.accessKeyId === world.accessKeyOf(resolverId));
    expect(mine.map((c) => c.action)).toEqual(expect.arrayContaining(['dynamodb:GetItem', 'dynamodb:UpdateItem']));
    expect(await denied(synth, resolverId, mine)).toEqual([]);
  });
});
