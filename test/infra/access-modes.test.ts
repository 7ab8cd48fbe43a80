import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessSettingsError, MISSING_ALLOW_LIST_MESSAGE } from '../../lib/access-settings';
import { DcvResolverStack, type DcvResolverStackProps } from '../../lib/dcv-resolver-stack';
import { readStackContext } from '../../lib/stack-context';

/** These tests read the template only: skip esbuild bundling of the function code (seconds per synth). */
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };
const ROLE = 'arn:aws:iam::123456789012:role/DcvGatewayHost';
const outdirs: string[] = [];

function synth(props: DcvResolverStackProps): { stack: DcvResolverStack; template: Template } {
  const outdir = mkdtempSync(join(tmpdir(), 'dcv-access-'));
  outdirs.push(outdir);
  const app = new App({ outdir, context: NO_BUNDLING });
  const stack = new DcvResolverStack(app, 'T', props);
  return { stack, template: Template.fromStack(stack) };
}

afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

type Json = Record<string, any>;

interface Statement {
  readonly actions: string[];
  readonly resources: unknown[];
}

/** Every IAM statement each Lambda function's role has, from the template (no managed policies). */
function permissionsByFunction(template: Template): Map<string, { actions: string[]; statements: Statement[] }> {
  const json = template.toJSON() as { Resources: Record<string, Json> };
  const out = new Map<string, { actions: string[]; statements: Statement[] }>();
  const functions = Object.entries(json.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function');
  for (const [fnId, fn] of functions) {
    const roleId = fn.Properties.Role['Fn::GetAtt'][0] as string;
    const role = json.Resources[roleId]!;
    expect(role.Properties.ManagedPolicyArns ?? [], `${roleId} has managed policies`).toEqual([]);
    const statements: Statement[] = [];
    for (const policy of Object.values(json.Resources)) {
      if (policy.Type !== 'AWS::IAM::Policy') continue;
      if (!policy.Properties.Roles.some((r: Json) => r.Ref === roleId)) continue;
      for (const st of policy.Properties.PolicyDocument.Statement) {
        expect(st.Effect).toBe('Allow');
        statements.push({ actions: [st.Action].flat(), resources: [st.Resource].flat() });
      }
    }
    out.set(fnId, { actions: statements.flatMap((st) => st.actions).sort(), statements });
  }
  return out;
}

function onlyResourceOfType(template: Template, type: string): Json {
  const found = Object.values(template.findResources(type));
  expect(found).toHaveLength(1);
  return found[0]!.Properties as Json;
}

/** The resolver function's properties (the stack also holds the discovery function). */
function resolverFunction(template: Template): Json {
  const found = Object.entries(template.findResources('AWS::Lambda::Function')).filter(([id]) => /^Resolver[0-9A-F]{8}$/.test(id));
  expect(found).toHaveLength(1);
  return found[0]![1].Properties as Json;
}

/** Resource-policy statements on the resolver function. */
function resolverPermissions(template: Template): Json[] {
  return Object.values(template.findResources('AWS::Lambda::Permission'))
    .map((p) => p.Properties as Json)
    .filter((p) => /^Resolver[0-9A-F]{8}$/.test(p.FunctionName['Fn::GetAtt'][0]));
}

/** Actions AWS does not scope to a resource: the only place '*' is acceptable. */
const NO_RESOURCE_LEVEL = new Set(['ec2:DescribeInstances', 'ssm:ListCommandInvocations', 'ssm:GetCommandInvocation', 'ssm:DescribeInstanceInformation']);

describe('network mode (allow-list and prefix)', () => {
  let template: Template;
  beforeAll(() => {
    ({ template } = synth({ allowedSourceCidrs: ['203.0.113.10/32', '2001:db8:1::/64'], pathPrefix: 'k3y-9' }));
  });

  it('has a NONE Function URL with both resource-policy statements it needs', () => {
    expect(onlyResourceOfType(template, 'AWS::Lambda::Url').AuthType).toBe('NONE');
    const permissions = resolverPermissions(template);
    expect(permissions).toHaveLength(2);
    expect(permissions).toContainEqual(
      expect.objectContaining({ Action: 'lambda:InvokeFunctionUrl', FunctionUrlAuthType: 'NONE', Principal: '*' }),
    );
    expect(permissions).toContainEqual(
      expect.objectContaining({ Action: 'lambda:InvokeFunction', InvokedViaFunctionUrl: true, Principal: '*' }),
    );
  });

  it('passes the allow-list and the prefix to the function and caps concurrency by default', () => {
    const fn = resolverFunction(template);
    expect(fn.Environment.Variables).toMatchObject({
      ALLOWED_SOURCE_CIDRS: '203.0.113.10/32,2001:db8:1::/64',
      PATH_PREFIX: 'k3y-9',
    });
    expect(fn.ReservedConcurrentExecutions).toBe(10);
  });

  it('gives the gateway a url that includes the prefix', () => {
    const outputs = template.toJSON().Outputs as Json;
    expect(JSON.stringify(outputs.GatewayResolverUrl.Value)).toContain('/k3y-9');
    expect(JSON.stringify(outputs.GatewayResolverConfig.Value)).toContain("/k3y-9'\\n");
    expect(outputs.ProxyCommand).toBeUndefined();
  });

  it('grants each function exactly the actions it uses, on specific resources', () => {
    const perms = permissionsByFunction(template);
    const byPrefix = (prefix: string) => perms.get([...perms.keys()].find((id) => id.startsWith(prefix))!)!;
    const resolver = byPrefix('Resolver');
    expect([...new Set(resolver.actions)]).toEqual(['dynamodb:GetItem', 'dynamodb:UpdateItem', 'logs:CreateLogStream', 'logs:PutLogEvents']);
    expect(resolver.statements).toContainEqual({ actions: ['dynamodb:GetItem'], resources: [{ 'Fn::GetAtt': [expect.stringMatching(/^Sessions/), 'Arn'] }] });
    // The verifier: read a grant, take a use (one conditional update), on the tokens table only.
    expect(resolver.statements).toContainEqual({
      actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      resources: [{ 'Fn::GetAtt': [expect.stringMatching(/^Tokens/), 'Arn'] }],
    });
    expect(resolver.statements).toContainEqual({ actions: ['dynamodb:UpdateItem'], resources: [{ 'Fn::GetAtt': [expect.stringMatching(/^Sessions/), 'Arn'] }] });
    expect(resolver.statements).toContainEqual({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [{ 'Fn::GetAtt': [expect.stringMatching(/^ResolverLogs/), 'Arn'] }],
    });
    const discovery = byPrefix('DiscoveryFunction');
    // Items by key (BatchGetItem) after a Query of its InstanceId index; the event queue it reads in
    // batches (Receive/Delete/ChangeVisibility); the dead-letter queue it sends failures to.
    expect([...new Set(discovery.actions)]).toEqual([
      'dynamodb:BatchGetItem',
      'dynamodb:DeleteItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:Scan',
      'dynamodb:UpdateItem',
      'ec2:DescribeInstances',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'sqs:ChangeMessageVisibility',
      'sqs:DeleteMessage',
      'sqs:GetQueueAttributes',
      'sqs:GetQueueUrl',
      'sqs:ReceiveMessage',
      'sqs:SendMessage',
    ]);
    expect(discovery.statements).toContainEqual({
      actions: ['dynamodb:Query'],
      resources: [{ 'Fn::Join': ['', [{ 'Fn::GetAtt': [expect.stringMatching(/^Sessions/), 'Arn'] }, expect.stringMatching(/^\/index\//)]] }],
    });
    // The power pass: its statements and their tag conditions are checked one by one in desktop-power.test.ts.
    expect([...new Set(byPrefix('PowerFunction').actions)]).toEqual([
      'dynamodb:Scan',
      'dynamodb:UpdateItem',
      'ec2:DescribeInstances',
      'ec2:StartInstances',
      'ec2:StopInstances',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'ssm:DescribeInstanceInformation',
      'ssm:GetCommandInvocation',
      'ssm:ListCommandInvocations',
      'ssm:SendCommand',
    ]);
    expect(perms.size).toBe(3);
    for (const [fnId, { statements }] of perms) {
      for (const { actions, resources } of statements) {
        for (const resource of resources) {
          // A literal '*' (or 'arn:…:*') is a wildcard; GetAtt/Ref point at one resource.
          const wildcard = typeof resource === 'string' && resource.includes('*');
          if (wildcard) expect(actions.every((a) => NO_RESOURCE_LEVEL.has(a)), `${fnId}: ${actions.join(',')} on ${resource}`).toBe(true);
        }
      }
    }
  });
});

describe('network mode, open on purpose', () => {
  it('deploys without an allow-list only when allowAnySource is true', () => {
    const { stack, template } = synth({ allowAnySource: true, reservedConcurrency: 3 });
    const fn = resolverFunction(template);
    expect(fn.Environment.Variables.ALLOWED_SOURCE_CIDRS).toBeUndefined();
    expect(fn.Environment.Variables.PATH_PREFIX).toBeUndefined();
    expect(fn.ReservedConcurrentExecutions).toBe(3);
    Annotations.fromStack(stack).hasNoError('*', Match.anyValue());
  });

  it('marks a stack with neither an allow-list nor allowAnySource as a synth error naming what to set', () => {
    const { stack } = synth({});
    Annotations.fromStack(stack).hasError('/T', MISSING_ALLOW_LIST_MESSAGE);
    expect(MISSING_ALLOW_LIST_MESSAGE).toMatch(/allowedSourceCidrs/);
    expect(MISSING_ALLOW_LIST_MESSAGE).toMatch(/allowAnySource=true/);
  });
});

describe('iam mode', () => {
  let template: Template;
  beforeAll(() => {
    ({ template } = synth({ accessMode: 'iam', invokerRoleArn: ROLE, reservedConcurrency: 25 }));
  });

  it('has an AWS_IAM Function URL that only the named role may invoke', () => {
    expect(onlyResourceOfType(template, 'AWS::Lambda::Url').AuthType).toBe('AWS_IAM');
    const permissions = resolverPermissions(template);
    expect(permissions).toHaveLength(2);
    for (const p of permissions) expect(p.Principal).toBe(ROLE);
    expect(permissions).toContainEqual(
      expect.objectContaining({ Action: 'lambda:InvokeFunctionUrl', FunctionUrlAuthType: 'AWS_IAM' }),
    );
    expect(permissions).toContainEqual(expect.objectContaining({ Action: 'lambda:InvokeFunction', InvokedViaFunctionUrl: true }));
    // The grant lives in the function's resource policy: the stack never edits the caller's role.
    for (const role of Object.values(template.findResources('AWS::IAM::Role'))) {
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
      ]);
    }
    for (const policy of Object.values(template.findResources('AWS::IAM::Policy'))) {
      expect(JSON.stringify(policy)).not.toContain('lambda:Invoke');
    }
  });

  it('sets the reserved concurrency given and tells the operator to run the proxy', () => {
    expect(resolverFunction(template).ReservedConcurrentExecutions).toBe(25);
    const outputs = template.toJSON().Outputs as Json;
    expect(JSON.stringify(outputs.ProxyCommand.Value)).toContain('npx dcv-resolver proxy --target ');
    expect(outputs.GatewayResolverUrl.Value).toBe('http://127.0.0.1:9000');
    expect(outputs.GatewayResolverConfig.Value).toBe("[resolver]\nurl = 'http://127.0.0.1:9000'\n");
  });
});

describe('context keys (bin/app.ts reads these)', () => {
  const read = (context: Record<string, unknown>) => readStackContext((key) => context[key]);

  it('refuses network mode without an allow-list, saying what to set', () => {
    expect(() => read({})).toThrow(MISSING_ALLOW_LIST_MESSAGE);
    expect(() => read({ accessMode: 'network', allowAnySource: 'false' })).toThrow(AccessSettingsError);
  });

  it('reads every access key from strings as given on the command line', () => {
    expect(
      read({ allowedSourceCidrs: ' 203.0.113.0/24 , 2001:db8::/32 ', pathPrefix: 'abc', reservedConcurrency: '7' }),
    ).toMatchObject({
      accessMode: 'network',
      allowedSourceCidrs: ['203.0.113.0/24', '2001:db8::/32'],
      allowAnySource: false,
      pathPrefix: 'abc',
      reservedConcurrency: 7,
    });
    expect(read({ allowAnySource: 'true' })).toMatchObject({ allowAnySource: true, reservedConcurrency: 10 });
    expect(read({ accessMode: 'iam', invokerRoleArn: ROLE })).toMatchObject({ accessMode: 'iam', invokerRoleArn: ROLE });
    // cdk.json may hold a real array and booleans.
    expect(read({ allowedSourceCidrs: ['10.0.0.0/8'], allowAnySource: false })).toMatchObject({ allowedSourceCidrs: ['10.0.0.0/8'] });
  });

  it.each([
    [{ accessMode: 'public' }, /accessMode must be 'network', 'iam' or 'private'/],
    [{ accessMode: 'iam' }, /accessMode 'iam' needs invokerRoleArn/],
    [{ accessMode: 'iam', invokerRoleArn: 'arn:aws:iam::123456789012:user/bob' }, /invokerRoleArn must be an IAM role ARN/],
    [{ allowedSourceCidrs: '203.0.113.0/24', invokerRoleArn: ROLE }, /invokerRoleArn is only used with accessMode 'iam'/],
    [{ allowedSourceCidrs: '203.0.113.0/33' }, /allowedSourceCidrs: '203.0.113.0\/33' is not an IPv4 or IPv6 CIDR/],
    [{ allowedSourceCidrs: '203.0.113.0/24', allowAnySource: 'true' }, /either allowedSourceCidrs or allowAnySource=true/],
    [{ allowAnySource: 'yes' }, /context 'allowAnySource' must be true or false/],
    [{ allowAnySource: 'true', pathPrefix: 'a/b' }, /pathPrefix must be 1–128 characters/],
    [{ allowAnySource: 'true', reservedConcurrency: '0' }, /context 'reservedConcurrency' must be an integer from 1 to 1000/],
  ])('rejects %j', (context, message) => {
    expect(() => read(context)).toThrow(message);
  });

  it('makes `cdk synth` with no context fail with that message and exit code 1', async () => {
    const outdir = mkdtempSync(join(tmpdir(), 'dcv-app-'));
    outdirs.push(outdir);
    const run = promisify(execFile)(process.execPath, ['--import', 'tsx', 'bin/app.ts'], {
      env: { ...process.env, CDK_OUTDIR: outdir, CDK_CONTEXT_JSON: '{}' },
      timeout: 30_000,
    });
    await expect(run).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining(MISSING_ALLOW_LIST_MESSAGE) });
  });
});
