import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CreateTableCommand, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { App, Duration } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DcvResolverStack } from '../../lib/dcv-resolver-stack';
import { hashToken, mintToken } from '../../lambda/core/tokens/token';
import { renderGatewayConfig } from '../../lambda/core/gateway-config';
import { parse as parseToml } from 'smol-toml';
import { contextBool, contextInt, readStackContext } from '../../lib/stack-context';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { functionUrlEvent, lambdaContext, loadFunctionUrlEvent } from '../helpers/function-url-event';

type Json = Record<string, any>;

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The gateway hosts' egress ranges; the fixtures' sourceIps are inside them. */
const ALLOWED_SOURCES = ['198.51.100.0/24', '2001:db8:100::/48'];

let outdir: string;
let assemblyDir: string;
let stack: DcvResolverStack;
let template: Template;
let resources: Record<string, Json>;

beforeAll(() => {
  // Synthesize once (esbuild bundling takes seconds). Inside the repo, so the bundle's external
  // @aws-sdk/* imports resolve from node_modules the way the Lambda runtime provides them.
  mkdirSync(join(ROOT, 'cdk.out'), { recursive: true });
  outdir = mkdtempSync(join(ROOT, 'cdk.out', 'vitest-resolver-stack-'));
  const app = new App({ outdir });
  stack = new DcvResolverStack(app, 'DcvSessionResolver', { allowedSourceCidrs: ALLOWED_SOURCES });
  const assembly = app.synth();
  assemblyDir = assembly.directory;
  template = Template.fromJSON(assembly.getStackByName(stack.stackName).template);
  resources = (template.toJSON() as { Resources: Record<string, Json> }).Resources;
}, 180_000);

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

const logicalId = (construct: { node: { defaultChild?: unknown } }) => stack.getLogicalId(construct.node.defaultChild as CfnFunction);
const tableId = () => logicalId(stack.table);
const tokensTableId = () => logicalId(stack.tokensTable!);
const resolverId = () => logicalId(stack.resolver);
const resolverProps = () => resources[resolverId()]!.Properties as Json;
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);

describe('the session table', () => {
  it('is keyed on SessionId (string), exactly', () => {
    const props = resources[tableId()]!.Properties as Json;
    expect(resources[tableId()]!.Type).toBe('AWS::DynamoDB::Table');
    expect(props.KeySchema).toEqual([{ AttributeName: 'SessionId', KeyType: 'HASH' }]);
    expect(props.AttributeDefinitions).toContainEqual({ AttributeName: 'SessionId', AttributeType: 'S' });
  });

  it('is on-demand, with point-in-time recovery and TTL on ExpiresAt', () => {
    expect(resources[tableId()]!.Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: 'ExpiresAt', Enabled: true },
    });
    expect(resources[tableId()]!.Properties).not.toHaveProperty('ProvisionedThroughput');
  });

  it('is retained when the stack is deleted or the table replaced', () => {
    expect(resources[tableId()]).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  it('has a CloudFormation-generated name unless one is given', () => {
    expect(resources[tableId()]!.Properties).not.toHaveProperty('TableName');
  });
});

describe('the tokens table', () => {
  it('is keyed on TokenHash (string): only hashes of tokens are stored', () => {
    const props = resources[tokensTableId()]!.Properties as Json;
    expect(resources[tokensTableId()]!.Type).toBe('AWS::DynamoDB::Table');
    expect(props.KeySchema).toEqual([{ AttributeName: 'TokenHash', KeyType: 'HASH' }]);
    expect(props.AttributeDefinitions).toEqual([{ AttributeName: 'TokenHash', AttributeType: 'S' }]);
  });

  it('is on-demand, with point-in-time recovery, TTL on ExpiresAt, and retained', () => {
    expect(resources[tokensTableId()]).toMatchObject({
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        TimeToLiveSpecification: { AttributeName: 'ExpiresAt', Enabled: true },
      },
    });
    expect(resources[tokensTableId()]!.Properties).not.toHaveProperty('TableName');
  });

  it('is named after the session table when that has a name, or as given; and can be left out', () => {
    // Bundling skipped: template-only assertions. One app per stack: an app synthesizes once.
    const app = () => new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const named = Template.fromStack(new DcvResolverStack(app(), 'Named', { allowAnySource: true, tableName: 'DcvSessions' }));
    named.hasResourceProperties('AWS::DynamoDB::Table', { TableName: 'DcvSessions-tokens', KeySchema: [{ AttributeName: 'TokenHash', KeyType: 'HASH' }] });
    const given = Template.fromStack(new DcvResolverStack(app(), 'Given', { allowAnySource: true, tokensTableName: 'Links' }));
    given.hasResourceProperties('AWS::DynamoDB::Table', { TableName: 'Links' });
    const off = new DcvResolverStack(app(), 'Off', { allowAnySource: true, verifier: false });
    const offTemplate = Template.fromStack(off);
    offTemplate.resourceCountIs('AWS::DynamoDB::Table', 1);
    expect(off.tokensTable).toBeUndefined();
    const offFn = offTemplate.toJSON().Resources[off.getLogicalId(off.resolver.node.defaultChild as CfnFunction)].Properties as Json;
    expect(offFn.Environment.Variables).not.toHaveProperty('TOKENS_TABLE_NAME');
    expect(offTemplate.toJSON().Outputs).not.toHaveProperty('DcvServerVerifierConfig');
  });
});

describe('the resolver function', () => {
  it('runs Node.js 24 on arm64 with the bundled index.handler', () => {
    expect(resolverProps()).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      MemorySize: 256,
      Timeout: 5,
    });
  });

  it('is told its table and the allowed sources through the environment', () => {
    expect(resolverProps().Environment.Variables).toMatchObject({
      TABLE_NAME: { Ref: tableId() },
      TOKENS_TABLE_NAME: { Ref: tokensTableId() },
      ALLOWED_SOURCE_CIDRS: ALLOWED_SOURCES.join(','),
    });
  });

  it('ships without source maps (its logs never carry stacks; parsing a map costs cold start), the AWS SDK bundled', () => {
    expect(resolverProps().Environment.Variables).not.toHaveProperty('NODE_OPTIONS');
    const assetHash = String(resolverProps().Code.S3Key).replace(/\.zip$/, '');
    const files = readdirSync(join(assemblyDir, `asset.${assetHash}`));
    expect(files).toEqual(['index.mjs']);
    // Bundled SDK: the artifact resolves its DynamoDB client itself, not from the runtime's node_modules.
    expect(readFileSync(join(assemblyDir, `asset.${assetHash}`, 'index.mjs'), 'utf8')).not.toMatch(/from\s*["']@aws-sdk\//);
  });

  it('logs to its own log group with an explicit retention', () => {
    const logGroupId = resolverProps().LoggingConfig.LogGroup.Ref as string;
    expect(resources[logGroupId]).toMatchObject({ Type: 'AWS::Logs::LogGroup', Properties: { RetentionInDays: 30 } });
  });

  it('may read sessions (GetItem), record LastVerifiedAt on one (UpdateItem of that attribute), read and take a use of a token (GetItem, UpdateItem), nothing more', () => {
    const roleId = resolverProps().Role['Fn::GetAtt'][0] as string;
    expect(resources[roleId]!.Properties.ManagedPolicyArns ?? []).toEqual([]);
    const statements = ofType('AWS::IAM::Policy')
      .filter(([, p]) => (p.Properties.Roles as Json[]).some((r) => r.Ref === roleId))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Json[]);
    const asList = (v: unknown) => [v].flat();

    const dynamo = statements.filter((s) => asList(s.Action).some((a) => String(a).startsWith('dynamodb:')));
    expect(dynamo).toHaveLength(3);
    // Table ARNs only: not the session table's indexes (discovery's), which the resolver never reads.
    expect(dynamo).toContainEqual({ Effect: 'Allow', Action: 'dynamodb:GetItem', Resource: { 'Fn::GetAtt': [tableId(), 'Arn'] } });
    expect(dynamo).toContainEqual({
      Effect: 'Allow',
      Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      Resource: { 'Fn::GetAtt': [tokensTableId(), 'Arn'] },
    });
    // The verifier records LastVerifiedAt for the power pass: one attribute (and the key) of a session item.
    expect(dynamo).toContainEqual({
      Effect: 'Allow',
      Action: 'dynamodb:UpdateItem',
      Resource: { 'Fn::GetAtt': [tableId(), 'Arn'] },
      Condition: { 'ForAllValues:StringEquals': { 'dynamodb:Attributes': ['SessionId', 'LastVerifiedAt'] }, StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' } },
    });

    // Everything else the role may do is writing its own logs; nothing on '*'.
    const logGroupId = resolverProps().LoggingConfig.LogGroup.Ref as string;
    for (const statement of statements.filter((s) => !dynamo.includes(s))) {
      expect(statement.Effect).toBe('Allow');
      for (const action of asList(statement.Action)) expect(action).toMatch(/^logs:(CreateLogStream|PutLogEvents)$/);
      expect(asList(statement.Resource)).toEqual([{ 'Fn::GetAtt': [logGroupId, 'Arn'] }]);
    }
    for (const statement of statements) expect(asList(statement.Resource)).not.toContain('*');
  });
});

describe('the Function URL', () => {
  it('is AuthType NONE on the resolver', () => {
    const urls = ofType('AWS::Lambda::Url').map(([, r]) => r.Properties as Json);
    expect(urls).toEqual([{ AuthType: 'NONE', TargetFunctionArn: { 'Fn::GetAtt': [resolverId(), 'Arn'] } }]);
  });

  it('has BOTH resource-policy statements a NONE URL needs (without the second every call is 403)', () => {
    const permissions = ofType('AWS::Lambda::Permission').map(([, r]) => r.Properties as Json);
    const fn = { 'Fn::GetAtt': [resolverId(), 'Arn'] };
    expect(permissions).toContainEqual({ Action: 'lambda:InvokeFunctionUrl', FunctionName: fn, FunctionUrlAuthType: 'NONE', Principal: '*' });
    expect(permissions).toContainEqual({ Action: 'lambda:InvokeFunction', FunctionName: fn, InvokedViaFunctionUrl: true, Principal: '*' });
  });
});

/** Evaluates the few intrinsic functions the outputs use, with a made-up deployed URL. */
function evaluate(value: unknown, attributes: Record<string, string>): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => evaluate(v, attributes));
  const v = value as Json;
  if ('Fn::Join' in v) return (evaluate(v['Fn::Join'][1], attributes) as string[]).join(v['Fn::Join'][0]);
  if ('Fn::Split' in v) return String(evaluate(v['Fn::Split'][1], attributes)).split(v['Fn::Split'][0]);
  if ('Fn::Select' in v) return (evaluate(v['Fn::Select'][1], attributes) as unknown[])[v['Fn::Select'][0]];
  if ('Fn::GetAtt' in v) return attributes[v['Fn::GetAtt'].join('.')] ?? `<${v['Fn::GetAtt'].join('.')}>`;
  if ('Ref' in v) return attributes[v.Ref] ?? `<${v.Ref}>`;
  throw new Error(`unexpected intrinsic ${JSON.stringify(v)}`);
}

describe('outputs', () => {
  const DEPLOYED_URL = 'https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws/';

  function output(name: string): unknown {
    const outputs = (template.toJSON() as { Outputs: Record<string, Json> }).Outputs;
    expect(outputs).toHaveProperty(name);
    const urlId = ofType('AWS::Lambda::Url')[0]![0];
    return evaluate(outputs[name]!.Value, {
      [`${urlId}.FunctionUrl`]: DEPLOYED_URL,
      [tableId()]: 'DcvSessionResolver-Sessions8896A56D-1ABC',
      [tokensTableId()]: 'DcvSessionResolver-Tokens1234-1ABC',
    });
  }

  it.each([
    ['SessionTableName', 'DcvSessionResolver-Sessions8896A56D-1ABC'],
    ['ResolverFunctionUrl', DEPLOYED_URL],
    // No trailing slash: the gateway appends /resolveSession itself.
    ['GatewayResolverUrl', 'https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws'],
    ['GatewayResolverConfig', "[resolver]\nurl = 'https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws'\n"],
    ['TokenTableName', 'DcvSessionResolver-Tokens1234-1ABC'],
    // Each DCV server puts its own endpoint in place of the placeholder (README "Connect a browser").
    [
      'DcvServerVerifierConfig',
      '[security]\nauth-token-verifier="https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws/verifyToken/<DcvServerEndpoint>"\n',
    ],
  ])('%s', (name, expected) => {
    expect(output(name)).toBe(expected);
  });

  it('GatewayConfig: the complete gateway file for the deployed URL, as `gateway-config --url` prints it', () => {
    const text = output('GatewayConfig') as string;
    const gatewayUrl = 'https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws';
    expect(text).toBe(renderGatewayConfig({ resolverUrl: gatewayUrl }));
    const parsed = parseToml(text) as { resolver: { url: string } };
    expect(parsed.resolver.url).toBe(gatewayUrl);
  });
});

describe('stack props', () => {
  it('set the table name and the function settings', () => {
    // Bundling skipped: these assertions are about the template only.
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const custom = new DcvResolverStack(app, 'Custom', {
      allowAnySource: true,
      tableName: 'DcvSessions',
      resolverMemorySize: 512,
      resolverTimeout: Duration.seconds(3),
      logRetention: RetentionDays.ONE_WEEK,
    });
    const t = Template.fromStack(custom);
    t.hasResourceProperties('AWS::DynamoDB::Table', { TableName: 'DcvSessions' });
    const fnId = custom.getLogicalId(custom.resolver.node.defaultChild as CfnFunction);
    const fn = t.toJSON().Resources[fnId].Properties as Json;
    expect(fn).toMatchObject({ MemorySize: 512, Timeout: 3 });
    expect(t.toJSON().Resources[fn.LoggingConfig.LogGroup.Ref].Properties.RetentionInDays).toBe(7);
  });
});

describe('stack context (cdk.json / -c) validation', () => {
  // allowAnySource keeps the access rules (tested in access-modes.test.ts) out of the way here.
  const lookupOf = (values: Record<string, unknown>) => (key: string) => ({ allowAnySource: 'true', ...values })[key];

  it.each([
    ['nothing set: defaults', {}, { stackName: 'DcvSessionResolver', tableName: undefined, resolverMemorySize: undefined, resolverTimeoutSeconds: undefined, bundleAwsSdk: undefined }],
    ['strings from -c', { stackName: 'Resolver-Prod', tableName: ' DcvSessions ', resolverMemorySize: '512', resolverTimeoutSeconds: '3', bundleAwsSdk: 'true' }, { stackName: 'Resolver-Prod', tableName: 'DcvSessions', resolverMemorySize: 512, resolverTimeoutSeconds: 3, bundleAwsSdk: true }],
    ['numbers and booleans from cdk.json', { resolverMemorySize: 1024, resolverTimeoutSeconds: 900, bundleAwsSdk: false }, { resolverMemorySize: 1024, resolverTimeoutSeconds: 900, bundleAwsSdk: false }],
    ['bounds are inclusive', { resolverMemorySize: '128', resolverTimeoutSeconds: '1' }, { resolverMemorySize: 128, resolverTimeoutSeconds: 1 }],
    ['upper memory bound', { resolverMemorySize: 10240 }, { resolverMemorySize: 10240 }],
    ['empty strings are unset', { tableName: '', resolverMemorySize: '', bundleAwsSdk: '' }, { tableName: undefined, resolverMemorySize: undefined, bundleAwsSdk: undefined }],
    ['null is unset', { tableName: null, resolverTimeoutSeconds: null }, { tableName: undefined, resolverTimeoutSeconds: undefined }],
  ])('%s', (_name, values, expected) => {
    expect(readStackContext(lookupOf(values))).toMatchObject(expected);
  });

  it.each([
    ['memory below 128', { resolverMemorySize: '100' }, "context 'resolverMemorySize' must be an integer from 128 to 10240, not '100'"],
    ['memory above 10240', { resolverMemorySize: 10241 }, "context 'resolverMemorySize' must be an integer from 128 to 10240, not '10241'"],
    ['memory with a unit', { resolverMemorySize: '512MB' }, "context 'resolverMemorySize' must be an integer from 128 to 10240, not '512MB'"],
    ['fractional timeout', { resolverTimeoutSeconds: '2.5' }, "context 'resolverTimeoutSeconds' must be an integer from 1 to 900, not '2.5'"],
    ['zero timeout', { resolverTimeoutSeconds: 0 }, "context 'resolverTimeoutSeconds' must be an integer from 1 to 900, not '0'"],
    ['timeout over Lambda’s maximum', { resolverTimeoutSeconds: '901' }, "context 'resolverTimeoutSeconds' must be an integer from 1 to 900, not '901'"],
    ['a boolean spelled yes', { bundleAwsSdk: 'yes' }, "context 'bundleAwsSdk' must be true or false, not 'yes'"],
    ['a boolean spelled TRUE', { bundleAwsSdk: 'TRUE' }, "context 'bundleAwsSdk' must be true or false, not 'TRUE'"],
  ])('%s -> an error naming the key', (_name, values, message) => {
    expect(() => readStackContext(lookupOf(values))).toThrow(message);
  });

  it('contextInt and contextBool on their own', () => {
    const lookup = (key: string) => ({ n: ' 42 ', b: 'false', junk: 'x' })[key];
    expect(contextInt(lookup, 'n', 1, 100)).toBe(42);
    expect(contextInt(lookup, 'missing', 1, 100)).toBeUndefined();
    expect(() => contextInt(lookup, 'junk', 1, 100)).toThrow("context 'junk' must be an integer from 1 to 100, not 'x'");
    expect(contextBool(lookup, 'b')).toBe(false);
    expect(contextBool(lookup, 'missing')).toBeUndefined();
  });
});

describe('the deployed artifact (the esbuild bundle this stack ships)', () => {
  const TABLE = 'DcvSessionResolver-Sessions';
  const TOKENS = 'DcvSessionResolver-Tokens';
  const TOKEN = mintToken();
  let dynamo: LocalDynamo;
  let handler: (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;
  const saved: Record<string, string | undefined> = {};

  beforeAll(async () => {
    dynamo = await startDynalite();
    await dynamo.createSessionTable(TABLE);
    const client = dynamo.client();
    await client.send(new PutItemCommand({
      TableName: TABLE,
      Item: { SessionId: { S: 'console' }, DcvServerEndpoint: { S: '10.0.1.15' }, HttpPort: { S: '8443' }, QuicPort: { N: '4443' }, WebUrlPath: { S: '/' } },
    }));
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { SessionId: { S: 'broken' }, DcvServerEndpoint: { S: '10.0.1.16' }, HttpPort: { N: '0' } } }));
    await client.send(new CreateTableCommand({
      TableName: TOKENS,
      AttributeDefinitions: [{ AttributeName: 'TokenHash', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'TokenHash', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }));
    await client.send(new PutItemCommand({
      TableName: TOKENS,
      Item: {
        TokenHash: { S: hashToken(TOKEN) },
        SessionId: { S: 'console' },
        UserName: { S: 'alice & <bob>' },
        ExpiresAt: { N: String(Math.floor(Date.now() / 1000) + 600) },
        MaxUses: { N: '1' },
        UsesLeft: { N: '1' },
        CreatedAt: { S: new Date().toISOString() },
      },
    }));

    // The function's environment exactly as the template sets it, with the table's deployed name.
    const env: Record<string, string> = {
      ...resolverProps().Environment.Variables,
      TABLE_NAME: TABLE,
      TOKENS_TABLE_NAME: TOKENS,
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    };
    delete env.NODE_OPTIONS; // process-level flags; --enable-source-maps changes nothing here
    for (const [key, value] of Object.entries(env)) {
      saved[key] = process.env[key];
      process.env[key] = value;
    }
    const assetHash = String(resolverProps().Code.S3Key).replace(/\.zip$/, '');
    const bundle = join(assemblyDir, `asset.${assetHash}`, 'index.mjs');
    ({ handler } = await import(/* @vite-ignore */ pathToFileURL(bundle).href));
  });

  afterAll(async () => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    await dynamo?.stop();
  });

  const JSON_HEADERS = { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' };

  it.each([
    ['the gateway’s HTTP lookup', () => loadFunctionUrlEvent('resolve-session-http'), 200, '{"SessionId":"console","TransportProtocol":"HTTP","DcvServerEndpoint":"10.0.1.15","Port":8443,"WebUrlPath":"/"}', {}],
    ['QUIC from an IPv6 gateway under /prod', () => loadFunctionUrlEvent('resolve-session-quic-prefixed-ipv6'), 200, '{"SessionId":"console","TransportProtocol":"QUIC","DcvServerEndpoint":"10.0.1.15","Port":4443,"WebUrlPath":"/"}', {}],
    ['unknown session', () => functionUrlEvent({ rawQueryString: 'sessionId=ghost&transport=HTTP' }), 404, `{"error":"NotFoundError","message":"no session 'ghost'"}`, {}],
    ['malformed item', () => functionUrlEvent({ rawQueryString: 'sessionId=broken&transport=HTTP' }), 404, `{"error":"NotFoundError","message":"no session 'broken'"}`, {}],
    ['bad transport', () => functionUrlEvent({ rawQueryString: 'sessionId=console&transport=udp' }), 400, '{"error":"BadRequestError","message":"transport must be HTTP or QUIC"}', {}],
    ['repeated parameter', () => loadFunctionUrlEvent('resolve-session-repeated-parameter'), 400, '{"error":"BadRequestError","message":"sessionId must be given once, not 2 times"}', {}],
    ['GET on resolveSession', () => loadFunctionUrlEvent('resolve-session-get'), 405, '{"error":"MethodNotAllowedError","message":"method not allowed; use POST"}', { Allow: 'POST' }],
    ['a caller outside the allow-list (X-Forwarded-For is not trusted)', () => functionUrlEvent({ sourceIp: '203.0.113.9', headers: { 'x-forwarded-for': '198.51.100.7' } }), 403, '{"error":"ForbiddenError","message":"caller address is not allowed"}', {}],
    ['health', () => loadFunctionUrlEvent('health-get'), 200, '{"status":"ok"}', {}],
  ])('%s', async (_name, event, statusCode, body, extraHeaders) => {
    const result = await handler(event(), lambdaContext());
    expect(result).toEqual({ statusCode, headers: { ...JSON_HEADERS, ...extraHeaders }, body });
  });

  it('verifies a connect token for the DCV server once (a base64 form body, as Function URLs deliver it), then refuses it', async () => {
    const form = (server: string) =>
      functionUrlEvent({
        path: `/verifyToken/${server}`,
        rawQueryString: '',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(`sessionId=console&authenticationToken=${TOKEN}&clientAddress=203.0.113.25`).toString('base64'),
        isBase64Encoded: true,
      });
    const XML = { 'Content-Type': 'text/xml; charset=utf-8', 'Cache-Control': 'no-store' };
    // Another server asking about this token (cross-server replay) is refused without spending it.
    expect(await handler(form('10.0.2.20'), lambdaContext())).toEqual({
      statusCode: 200,
      headers: XML,
      body: `<auth result="no"><message>token is for session &apos;console&apos; on server 10.0.1.15, not on 10.0.2.20</message></auth>`,
    });
    expect(await handler(form('10.0.1.15'), lambdaContext())).toEqual({
      statusCode: 200,
      headers: XML,
      body: '<auth result="yes"><username>alice &amp; &lt;bob&gt;</username></auth>',
    });
    const again = await handler(form('10.0.1.15'), lambdaContext());
    expect(again.body).toBe('<auth result="no"><message>authentication token has been used 1 time(s), its maximum; issue a new link</message></auth>');
    const item = await dynamo.client().send(new GetItemCommand({ TableName: TOKENS, Key: { TokenHash: { S: hashToken(TOKEN) } }, ConsistentRead: true }));
    expect(item.Item?.UsesLeft).toEqual({ N: '0' });
  });
});
