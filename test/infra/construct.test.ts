import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Aspects, CfnOutput, Stack } from 'aws-cdk-lib';
import { Annotations, Capture, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { afterAll, describe, expect, it } from 'vitest';
import { AccessSettingsError, MISSING_ALLOW_LIST_MESSAGE } from '../../lib/access-settings';
import { DcvSessionResolver, type DcvSessionResolverProps } from '../../lib/dcv-session-resolver';
import { GatewayStack } from './fixtures/construct-example';
import { codeBlocks, section } from '../helpers/markdown';
import { nagFindings } from '../helpers/nag-findings';

/** Template-only tests: skip esbuild bundling of the function code (seconds per synth). */
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };
const ROLE = 'arn:aws:iam::123456789012:role/DcvGatewayHost';
const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

type Json = Record<string, any>;

/** Someone's existing app stack that adds the resolver in a few lines. */
function appStack(props: DcvSessionResolverProps, options: { nag?: boolean } = {}) {
  const outdir = mkdtempSync(join(tmpdir(), 'dcv-construct-'));
  outdirs.push(outdir);
  const app = new App({ outdir, context: NO_BUNDLING });
  const stack = new Stack(app, 'ExistingApp', { env: { account: '123456789012', region: 'eu-west-1' } });
  const resolver = new DcvSessionResolver(stack, 'DcvResolver', props);
  if (options.nag) {
    // logIgnores: acknowledged findings are reported as info, which shows the checks really ran.
    Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true, logIgnores: true }));
    Aspects.of(app).add(new ServerlessChecks({ verbose: true, logIgnores: true }));
  }
  return { stack, resolver, template: Template.fromStack(stack) };
}

/** The resolver function's properties, found through the construct (the stack may also hold discovery's). */
function resolverFunction(stack: Stack, resolver: DcvSessionResolver, template: Template): Json {
  const id = stack.getLogicalId(resolver.resolver.node.defaultChild as never);
  return (template.toJSON().Resources[id] as Json).Properties;
}

const OPEN = { allowAnySource: true } as const;

describe('DcvSessionResolver in an existing stack', () => {
  it('network mode: the allow-list and the prefix reach the function and the gateway url', () => {
    const { stack, resolver, template } = appStack({ allowedSourceCidrs: ['203.0.113.10/32', '2001:db8::/32'], pathPrefix: 's3cret' });
    template.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE' });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ ALLOWED_SOURCE_CIDRS: '203.0.113.10/32,2001:db8::/32', PATH_PREFIX: 's3cret' }) },
      ReservedConcurrentExecutions: 10,
    });
    // https://<host of the Function URL>/s3cret, as a value the app can put wherever it likes.
    const urlId = new Capture();
    expect(stack.resolve(resolver.gatewayResolverUrl)).toEqual({
      'Fn::Join': ['', ['https://', { 'Fn::Select': [2, { 'Fn::Split': ['/', { 'Fn::GetAtt': [expect.any(String), 'FunctionUrl'] }] }] }, '/s3cret']],
    });
    template.hasResource('AWS::Lambda::Url', { Properties: { TargetFunctionArn: { 'Fn::GetAtt': [urlId, 'Arn'] } } });
    expect(urlId.asString()).toBe(stack.getLogicalId(resolver.resolver.node.defaultChild as never));
    expect(stack.resolve(resolver.functionUrl!.url)).toEqual({ 'Fn::GetAtt': [stack.getLogicalId(resolver.functionUrl!.node.defaultChild as never), 'FunctionUrl'] });
    expect(JSON.stringify(stack.resolve(resolver.dcvServerVerifierUrl))).toContain('/verifyToken/<DcvServerEndpoint>');
  });

  it('allowAnySource: no allow-list in the function, and no synth error', () => {
    const { stack, resolver, template } = appStack(OPEN);
    const env = resolverFunction(stack, resolver, template).Environment.Variables as Json;
    expect(env).not.toHaveProperty('ALLOWED_SOURCE_CIDRS');
    expect(env).not.toHaveProperty('PATH_PREFIX');
    Annotations.fromStack(stack).hasNoError('*', Match.anyValue());
  });

  it('neither allowedSourceCidrs nor allowAnySource: a synth error on the stack, naming what to set', () => {
    const { stack } = appStack({});
    Annotations.fromStack(stack).hasError('/ExistingApp', MISSING_ALLOW_LIST_MESSAGE);
  });

  it('tableName names the sessions table and, with a suffix, the tokens table; the function is told both', () => {
    const { template } = appStack({ ...OPEN, tableName: 'TeamSessions' });
    template.hasResourceProperties('AWS::DynamoDB::Table', { TableName: 'TeamSessions', KeySchema: [{ AttributeName: 'SessionId', KeyType: 'HASH' }] });
    template.hasResourceProperties('AWS::DynamoDB::Table', { TableName: 'TeamSessions-tokens', KeySchema: [{ AttributeName: 'TokenHash', KeyType: 'HASH' }] });
    const sessions = new Capture();
    const tokens = new Capture();
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ TABLE_NAME: { Ref: sessions }, TOKENS_TABLE_NAME: { Ref: tokens } }) },
    });
    // Logical ids sit under the construct's id, so two resolvers (or the app's own tables) never collide.
    expect(sessions.asString()).toMatch(/^DcvResolverSessions[0-9A-F]{8}$/);
    expect(tokens.asString()).toMatch(/^DcvResolverTokens[0-9A-F]{8}$/);
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain', Properties: Match.objectLike({ TableName: 'TeamSessions' }) });
  });

  it('verifier: false leaves out the tokens table, its permission and the verifier url', () => {
    const { stack, resolver, template } = appStack({ ...OPEN, verifier: false });
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    expect(resolver.tokensTable).toBeUndefined();
    expect(resolver.dcvServerVerifierUrl).toBeUndefined();
    expect(resolverFunction(stack, resolver, template).Environment.Variables).not.toHaveProperty('TOKENS_TABLE_NAME');
    // The resolver's own policies (discovery's role, on by default, may UpdateItem the sessions table).
    const role = stack.getLogicalId(resolver.resolver.role!.node.defaultChild as never);
    const policies = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) => JSON.stringify(p.Properties.Roles).includes(role));
    expect(policies).not.toEqual([]);
    expect(JSON.stringify(policies)).not.toContain('dynamodb:UpdateItem');
  });

  it('discovery: false leaves out the discovery function, its rules and queues', () => {
    const { resolver, template } = appStack({ ...OPEN, discovery: false });
    expect(resolver.discovery).toBeUndefined();
    // The power pass needs discovery's items: it goes too.
    expect(resolver.power).toBeUndefined();
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.resourceCountIs('AWS::Events::Rule', 0);
    template.resourceCountIs('AWS::SQS::Queue', 0);
    // With discovery on (the default) the same props add it, on this construct's table.
    const on = appStack(OPEN);
    expect(on.resolver.discovery).toBeDefined();
    // Discovery's three rules and the power pass's schedule.
    on.template.resourceCountIs('AWS::Events::Rule', 4);
    on.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ TAG_PREFIX: 'dcv:', TABLE_NAME: { Ref: Match.stringLikeRegexp('^DcvResolverSessions') } }) },
    });
  });

  it('accessMode iam: an AWS_IAM URL only the invoker role may call, and the gateway talks to the local proxy', () => {
    const { stack, resolver, template } = appStack({ accessMode: 'iam', invokerRoleArn: ROLE, reservedConcurrency: 4 });
    const resolverId = stack.getLogicalId(resolver.resolver.node.defaultChild as never);
    template.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'AWS_IAM' });
    template.hasResourceProperties('AWS::Lambda::Permission', { Action: 'lambda:InvokeFunctionUrl', Principal: ROLE, FunctionUrlAuthType: 'AWS_IAM' });
    const principals = Object.values(template.findResources('AWS::Lambda::Permission'))
      .filter((p) => (p as Json).Properties.FunctionName['Fn::GetAtt'][0] === resolverId)
      .map((p) => (p as Json).Properties.Principal);
    expect(principals).toEqual([ROLE, ROLE]);
    template.hasResourceProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: 4 });
    expect(resolver.gatewayResolverUrl).toBe('http://127.0.0.1:9000');
    expect(resolver.access.accessMode).toBe('iam');
  });

  it('creates no CfnOutput: the values are properties for the app to use', () => {
    const { stack, template } = appStack({ accessMode: 'iam', invokerRoleArn: ROLE });
    expect(template.findOutputs('*')).toEqual({});
    expect(stack.node.findAll().filter((c) => c instanceof CfnOutput)).toEqual([]);
  });

  it.each<[DcvSessionResolverProps, RegExp]>([
    [{ accessMode: 'iam' }, /accessMode 'iam' needs invokerRoleArn/],
    [{ allowedSourceCidrs: ['203.0.113.0/24'], allowAnySource: true }, /either allowedSourceCidrs or allowAnySource=true/],
    [{ ...OPEN, pathPrefix: 'a/b' }, /pathPrefix must be/],
  ])('refuses %j with an AccessSettingsError naming the prop', (props, message) => {
    expect(() => appStack(props)).toThrow(AccessSettingsError);
    expect(() => appStack(props)).toThrow(message);
  });
});

describe.each<[string, DcvSessionResolverProps]>([
  ['network', { allowedSourceCidrs: ['203.0.113.10/32'], pathPrefix: 'p' }],
  ['iam', { accessMode: 'iam', invokerRoleArn: ROLE }],
])('cdk-nag on a stack using the construct, %s mode', (_mode, props) => {
  it('leaves no unacknowledged AwsSolutions or Serverless finding', () => {
    const { stack } = appStack(props, { nag: true });
    const annotations = Annotations.fromStack(stack);
    const findings = nagFindings(stack);
    expect(findings).toEqual([]);
    // The checks ran: the resolver's acknowledged finding was seen (and reported as ignored).
    const resolverPath = `/${stack.node.path}/DcvResolver/Resolver/Resource`;
    expect(annotations.findInfo(resolverPath, Match.stringLikeRegexp('Serverless-LambdaDLQ')).length).toBeGreaterThan(0);
  });
});

describe('docs/deploying.md "Using it as a construct"', () => {
  const fixture = readFileSync(new URL('./fixtures/construct-example.ts', import.meta.url), 'utf8');

  it('shows exactly the example tsc checks (test/infra/fixtures/construct-example.ts)', () => {
    const block = codeBlocks(section('docs/deploying.md', 'Using it as a construct')).find((b) => b.lang === 'ts');
    expect(block, 'a ts block in the section').toBeDefined();
    expect(`${block!.body}\n`).toBe(fixture);
  });

  it('synthesizes (importing the package by name) with the table name, prefix and the two outputs it asks for', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'dcv-construct-readme-'));
    outdirs.push(outdir);
    const stack = new GatewayStack(new App({ outdir, context: NO_BUNDLING }), 'Gateway');
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::DynamoDB::Table', { TableName: 'DcvSessions' });
    template.hasResourceProperties('AWS::DynamoDB::Table', { TableName: 'DcvSessions-tokens' });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ ALLOWED_SOURCE_CIDRS: '203.0.113.10/32', PATH_PREFIX: '3f9c0b1e0d8a4e6f' }) },
    });
    expect(Object.keys(template.findOutputs('*')).sort()).toEqual(['GatewayResolverUrl', 'VerifierUrl']);
    template.hasOutput('VerifierUrl', { Value: { 'Fn::Join': ['', Match.arrayWith(['/3f9c0b1e0d8a4e6f/verifyToken/<DcvServerEndpoint>'])] } });
    Annotations.fromStack(stack).hasNoError('*', Match.anyValue());
  });
});
