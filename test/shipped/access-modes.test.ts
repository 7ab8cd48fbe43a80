import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { functionUrlEvent } from '../helpers/function-url-event';
import { denied } from './harness/iam-check';
import { invokeOk, type RunningFunction } from './harness/lambda-runtime-api';
import { synthesize, type Synthesized } from './harness/synthesized';
import { startWorld, type World } from './harness/world';

/**
 * The resolver bundle of the other access configurations, run as it ships (see default-stack.test.ts):
 * `iam` (Function URL with AWS_IAM auth), and `network` with an allow-list, a secret path prefix, no verifier,
 * no discovery and the AWS SDK left to the Lambda runtime (bundleAwsSdk=false). In each, the template holds
 * exactly the functions named here.
 */
type Answer = APIGatewayProxyStructuredResultV2 & { statusCode: number; body: string };

interface Config {
  readonly name: string;
  readonly props: Parameters<typeof synthesize>[1];
  readonly prefix: string;
  readonly verifier: boolean;
}

const CONFIGS: readonly Config[] = [
  { name: 'ShippedIam', props: { accessMode: 'iam', invokerRoleArn: 'arn:aws:iam::123456789012:role/gateway-host', discovery: false }, prefix: '', verifier: true },
  {
    name: 'ShippedLocked',
    props: { allowedSourceCidrs: ['198.51.100.0/24'], pathPrefix: 'k3y-9f8e7d', verifier: false, discovery: false, bundleAwsSdk: false },
    prefix: '/k3y-9f8e7d',
    verifier: false,
  },
];

const ITEM = { SessionId: { S: 'console' }, DcvServerEndpoint: { S: '10.0.0.21' }, HttpPort: { N: '8443' } };

describe.each(CONFIGS)('the shipped resolver: $name', (config) => {
  let synth: Synthesized;
  let world: World;
  let resolver: RunningFunction;
  let resolverId: string;

  beforeAll(async () => {
    synth = synthesize(config.name, config.props);
    resolverId = synth.functionId('Resolver');
    world = await startWorld(synth);
    const sessions = synth.tableName('Sessions');
    await world.dynamo.client().send(new PutItemCommand({ TableName: sessions, Item: ITEM }));
    resolver = await world.start(resolverId);
  }, 120_000);

  afterAll(async () => {
    await world?.stop();
    synth?.remove();
  });

  const ask = (options: Parameters<typeof functionUrlEvent>[0]) => invokeOk<Answer>(resolver, functionUrlEvent(options));

  it('the template has the resolver alone, at index.handler', () => {
    expect(synth.functions).toEqual([resolverId]);
    expect(synth.template.Resources[resolverId]!.Properties.Handler).toBe('index.handler');
  });

  it('answers the gateway from the table', async () => {
    const hit = await ask({ path: `${config.prefix}/resolveSession`, rawQueryString: 'sessionId=console&transport=HTTP' });
    expect(hit.statusCode).toBe(200);
    expect(JSON.parse(hit.body)).toEqual({ SessionId: 'console', TransportProtocol: 'HTTP', DcvServerEndpoint: '10.0.0.21', Port: 8443, WebUrlPath: '/' });
  });

  if (config.prefix) {
    it('refuses callers outside the allow-list (403) and the path without the secret prefix (404)', async () => {
      const outside = await ask({ path: `${config.prefix}/resolveSession`, rawQueryString: 'sessionId=console&transport=HTTP', sourceIp: '203.0.113.9' });
      expect(outside.statusCode).toBe(403);
      const unprefixed = await ask({ path: '/resolveSession', rawQueryString: 'sessionId=console&transport=HTTP' });
      expect(unprefixed.statusCode).toBe(404);
    });
  }

  it(config.verifier ? 'serves the verifier route' : 'has no verifier route', async () => {
    const answer = await ask({ method: 'POST', path: `${config.prefix}/verifyToken/10.0.0.21`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'sessionId=console&authenticationToken=nope' });
    if (config.verifier) {
      expect(answer.statusCode).toBe(200);
      expect(answer.body).toContain('result="no"');
    } else {
      expect(answer.statusCode).toBe(404);
    }
  });

  it("every AWS call it made is allowed by its role in the template", async () => {
    const mine = world.calls().filter((c) => c.accessKeyId === world.accessKeyOf(resolverId));
    expect(mine.map((c) => c.action)).toContain('dynamodb:GetItem');
    expect(await denied(synth, resolverId, mine)).toEqual([]);
  });
});
