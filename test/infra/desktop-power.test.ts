import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Aspects, Stack } from 'aws-cdk-lib';
import { Capture, Match, Template } from 'aws-cdk-lib/assertions';
import { AttributeType, Table } from 'aws-cdk-lib/aws-dynamodb';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DcvResolverStack } from '../../lib/dcv-resolver-stack';
import { DcvSessionResolver, type DcvSessionResolverProps } from '../../lib/dcv-session-resolver';
import { DesktopPower } from '../../lib/desktop-power';
import { FUNCTION_BUNDLES, functionAssetDir } from '../../lib/function-assets';
import { HostSignalsDocument } from '../../lib/host-signals-document';
import { readStackContext } from '../../lib/stack-context';
import { nagFindings } from '../helpers/nag-findings';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, string>>;
}

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
const INSTANCES = `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/*`;
const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

function newStack(id: string) {
  const outdir = mkdtempSync(join(tmpdir(), 'dcv-power-'));
  outdirs.push(outdir);
  const app = new App({ outdir });
  return { app, outdir, stack: new Stack(app, id, { env: { account: ACCOUNT, region: REGION } }) };
}

/** The construct on its own, with a custom prefix (so a hard-coded 'dcv:' anywhere shows). */
function standalone(nag = false) {
  const { app, stack, outdir } = newStack('PowerTest');
  const table = new Table(stack, 'Sessions', {
    partitionKey: { name: 'SessionId', type: AttributeType.STRING },
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
  });
  const document = new HostSignalsDocument(stack, 'Signals');
  const power = new DesktopPower(stack, 'Power', { table, tagPrefix: 'lab:', hostSignalsDocument: document });
  if (nag) {
    Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
    Aspects.of(app).add(new ServerlessChecks({ verbose: true }));
  }
  const template = Template.fromStack(stack);
  const id = (construct: { node: { defaultChild?: unknown } } | unknown) => stack.getLogicalId((construct as { node: { defaultChild: never } }).node.defaultChild);
  app.synth();
  return { stack, power, template, outdir, ids: { table: id(table), document: id(document), function: stack.getLogicalId(power.function.node.defaultChild as never) } };
}

function resolverStack(props: DcvSessionResolverProps) {
  const { stack } = newStack('ResolverTest');
  const resolver = new DcvSessionResolver(stack, 'Dcv', { allowedSourceCidrs: ['203.0.113.10/32'], ...props });
  return { stack, resolver, template: Template.fromStack(stack) };
}

/** Every statement of the policies attached to the role of the function with this logical id. */
function roleStatements(template: Template, functionId: string): Statement[] {
  const json = template.toJSON() as { Resources: Record<string, Json> };
  const roleId = json.Resources[functionId].Properties.Role['Fn::GetAtt'][0] as string;
  expect(json.Resources[roleId].Properties.ManagedPolicyArns ?? []).toEqual([]);
  return Object.values(json.Resources)
    .filter((r: Json) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((x: Json) => x.Ref === roleId))
    .flatMap((r: Json) => r.Properties.PolicyDocument.Statement as Statement[]);
}

const actionsOf = (s: Statement) => [s.Action].flat();
const tagged = (key: string, actions: string[], conditionKey: string) => ({
  Effect: 'Allow',
  Action: actions.length === 1 ? actions[0] : actions,
  Resource: INSTANCES,
  Condition: { Null: { [`${conditionKey}/${key}`]: 'false' } },
});

describe('DesktopPower construct', () => {
  let template: Template;
  let ids: { table: string; document: string; function: string };
  let stack: Stack;
  let outdir: string;
  beforeAll(() => {
    ({ template, ids, stack, outdir } = standalone(true));
  });

  it('a Node.js 24 function: 60 s timeout, reserved concurrency 1, the table, the prefix and the signals document', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Handler: 'index.handler',
      Timeout: 60,
      ReservedConcurrentExecutions: 1,
      Environment: {
        Variables: {
          TABLE_NAME: { Ref: ids.table },
          TAG_PREFIX: 'lab:',
          SIGNALS_DOCUMENT: { Ref: ids.document },
          NODE_OPTIONS: '--enable-source-maps',
        },
      },
    });
    template.resourceCountIs('AWS::Lambda::Function', 1);
  });

  it('deploys the power bundle the build made (assets/power), byte for byte', () => {
    const key = template.toJSON().Resources[ids.function].Properties.Code.S3Key as string;
    const staged = readFileSync(join(outdir, `asset.${key.replace(/\.zip$/, '')}`, 'index.mjs'));
    expect(staged.equals(readFileSync(join(functionAssetDir('power', true), 'index.mjs')))).toBe(true);
    expect(FUNCTION_BUNDLES.power.entry).toBe('lambda/handlers/power.ts');
  });

  it('an EventBridge rule every minute invokes it directly, with no retries; Lambda does not retry either', () => {
    const target = new Capture();
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 minute)', State: 'ENABLED', Targets: target });
    expect(target.asArray()).toEqual([
      expect.objectContaining({ Arn: { 'Fn::GetAtt': [ids.function, 'Arn'] }, RetryPolicy: { MaximumRetryAttempts: 0 } }),
    ]);
    template.resourceCountIs('AWS::Events::Rule', 1);
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: ids.function },
      MaximumRetryAttempts: 0,
      MaximumEventAgeInSeconds: 60,
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [ids.function, 'Arn'] },
    });
  });

  it('its role: exactly these statements (tag-conditioned start/stop and SendCommand, the one document, the table)', () => {
    const statements = roleStatements(template, ids.function).filter((s) => !actionsOf(s).every((a) => a.startsWith('logs:')));
    const documentArn = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:ssm:${REGION}:${ACCOUNT}:document/`, { Ref: ids.document }]] };
    const instances = stack.resolve(Stack.of(stack).formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' }));
    const expected = [
      { Effect: 'Allow', Action: 'ec2:DescribeInstances', Resource: '*' },
      tagged('lab:auto-stop', ['ec2:StopInstances'], 'aws:ResourceTag'),
      tagged('lab:schedule', ['ec2:StartInstances', 'ec2:StopInstances'], 'aws:ResourceTag'),
      { Effect: 'Allow', Action: 'ssm:SendCommand', Resource: documentArn },
      tagged('lab:auto-stop', ['ssm:SendCommand'], 'ssm:resourceTag'),
      tagged('lab:schedule', ['ssm:SendCommand'], 'ssm:resourceTag'),
      tagged('lab:start-on-connect', ['ssm:SendCommand'], 'ssm:resourceTag'),
      {
        Effect: 'Allow',
        Action: ['ssm:ListCommandInvocations', 'ssm:GetCommandInvocation', 'ssm:DescribeInstanceInformation'],
        Resource: '*',
      },
      { Effect: 'Allow', Action: 'dynamodb:Scan', Resource: { 'Fn::GetAtt': [ids.table, 'Arn'] } },
      // One runtime attribute per write, conditional on InstanceId; the key; nothing returned.
      {
        Effect: 'Allow',
        Action: 'dynamodb:UpdateItem',
        Resource: { 'Fn::GetAtt': [ids.table, 'Arn'] },
        Condition: {
          'ForAllValues:StringEquals': {
            'dynamodb:Attributes': ['SessionId', 'InstanceId', 'PowerStartAt', 'PowerStopAt', 'ScheduleStartAt', 'IdleSince'],
          },
          StringEqualsIfExists: { 'dynamodb:ReturnValues': 'NONE' },
        },
      },
    ].map((s) => (s.Resource === INSTANCES ? { ...s, Resource: instances } : s));
    // The instance ARN is the account's and region's, nothing wider.
    expect(JSON.stringify(instances)).toContain(`:ec2:${REGION}:${ACCOUNT}:instance/*`);
    expect(statements).toHaveLength(expected.length);
    expect(statements).toEqual(expect.arrayContaining(expected));
  });

  it('nothing broader: start/stop and SendCommand to instances only with a power tag; no other document; no index', () => {
    const statements = roleStatements(template, ids.function);
    const instanceStatements = statements.filter((s) => actionsOf(s).some((a) => ['ec2:StartInstances', 'ec2:StopInstances'].includes(a)));
    expect(instanceStatements).toHaveLength(2);
    for (const s of [...instanceStatements, ...statements.filter((x) => actionsOf(x).includes('ssm:SendCommand') && x.Condition)]) {
      const nulls = Object.entries(s.Condition?.Null ?? {});
      expect(nulls).toHaveLength(1);
      expect(nulls[0]![0]).toMatch(/^(aws|ssm):(ResourceTag|resourceTag)\/lab:(auto-stop|schedule|start-on-connect)$/);
      expect(nulls[0]![1]).toBe('false');
      expect(Object.keys(s.Condition!)).toEqual(['Null']);
    }
    // Start only for schedule (start-on-connect starts are the portal's role); stop only for auto-stop and schedule.
    const keysFor = (action: string) =>
      instanceStatements.filter((s) => actionsOf(s).includes(action)).map((s) => Object.keys(s.Condition!.Null)[0]).sort();
    expect(keysFor('ec2:StartInstances')).toEqual(['aws:ResourceTag/lab:schedule']);
    expect(keysFor('ec2:StopInstances')).toEqual(['aws:ResourceTag/lab:auto-stop', 'aws:ResourceTag/lab:schedule']);
    // SendCommand without a tag condition only on the stack's own document.
    const unconditioned = statements.filter((s) => actionsOf(s).includes('ssm:SendCommand') && !s.Condition);
    expect(unconditioned).toHaveLength(1);
    expect(JSON.stringify(unconditioned[0]!.Resource)).toContain(`"Ref":"${ids.document}"`);
    const text = JSON.stringify(statements);
    expect(text).not.toContain('AWS-RunShellScript');
    expect(text).not.toContain('/index/');
    expect(text).not.toMatch(/"(ec2|ssm|dynamodb):\*"/);
    // '*' only for what supports no resource-level permissions.
    for (const s of statements.filter((x) => x.Resource === '*')) {
      for (const a of actionsOf(s)) {
        expect(['ec2:DescribeInstances', 'ssm:ListCommandInvocations', 'ssm:GetCommandInvocation', 'ssm:DescribeInstanceInformation']).toContain(a);
      }
    }
  });

  it('leaves no unacknowledged AwsSolutions or Serverless finding', () => {
    expect(nagFindings(stack)).toEqual([]);
  });

  it('refuses a tag prefix the function would refuse', () => {
    const { stack: other } = newStack('BadPrefix');
    const table = new Table(other, 'Sessions', { partitionKey: { name: 'SessionId', type: AttributeType.STRING } });
    const hostSignalsDocument = new HostSignalsDocument(other, 'Signals');
    expect(() => new DesktopPower(other, 'Power', { table, tagPrefix: 'aws:x', hostSignalsDocument })).toThrow(/reserved/);
  });
});

describe('DesktopPower in DcvSessionResolver', () => {
  const powerFunctionId = (stack: Stack, resolver: DcvSessionResolver) => stack.getLogicalId(resolver.power!.function.node.defaultChild as never);

  it('on by default (with discovery): one host-signals document, the function with the resolver tag prefix', () => {
    const { stack, resolver, template } = resolverStack({ tagPrefix: 'team:' });
    expect(resolver.power).toBeDefined();
    template.resourceCountIs('AWS::SSM::Document', 1);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ TAG_PREFIX: 'team:', SIGNALS_DOCUMENT: { Ref: Match.stringLikeRegexp('^DcvHostSignals') } }) },
      ReservedConcurrentExecutions: 1,
    });
    const statements = roleStatements(template, powerFunctionId(stack, resolver));
    expect(JSON.stringify(statements)).toContain('aws:ResourceTag/team:auto-stop');
  });

  it('alarms: the function errors, start/stop failures (all outcomes), starts stuck, stops stuck, under service=power', () => {
    const { stack, resolver, template } = resolverStack({ alarmTopicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:alarms` });
    const alarms = resolver.observability!.alarms;
    for (const a of [alarms.powerErrors, alarms.powerFailures, alarms.powerStartsStuck, alarms.powerStopsStuck]) expect(a).toBeDefined();
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: powerFunctionId(stack, resolver) } }],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });
    for (const name of ['PowerStartsStuck', 'PowerStopsStuck']) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'DcvSessionResolver',
        MetricName: name,
        Dimensions: [{ Name: 'service', Value: 'power' }],
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });
    }
    // PowerFailures is published per Outcome (service + Outcome): the alarm sums every outcome.
    const failures = Object.values(template.findResources('AWS::CloudWatch::Alarm'))
      .map((a) => a.Properties.Metrics as Json[] | undefined)
      .find((m) => m?.some((x) => x.MetricStat?.Metric?.MetricName === 'PowerFailures'));
    expect(failures).toBeDefined();
    const outcomes = failures!
      .filter((x) => x.MetricStat)
      .map((x) => {
        expect(x.MetricStat.Metric.Namespace).toBe('DcvSessionResolver');
        const dims = Object.fromEntries((x.MetricStat.Metric.Dimensions as { Name: string; Value: string }[]).map((d) => [d.Name, d.Value]));
        expect(dims.service).toBe('power');
        return dims.Outcome;
      })
      .sort();
    // The runner's EC2 outcomes, and not-started (accepted, yet the instance never left stopped).
    expect(outcomes).toEqual(['failed', 'incorrect-state', 'insufficient-capacity', 'not-found', 'not-started', 'throttled']);
    const expression = failures!.find((x) => x.Expression)!.Expression as string;
    expect(expression.match(/FILL\(/g)).toHaveLength(6);
  });

  it('no power alarms without observability', () => {
    const { template } = resolverStack({ observability: false });
    template.resourceCountIs('AWS::CloudWatch::Alarm', 0);
    template.resourceCountIs('AWS::SSM::Document', 1);
  });

  it.each<[string, DcvSessionResolverProps]>([
    ['desktopPower: false', { desktopPower: false }],
    ['discovery: false', { discovery: false }],
  ])('%s leaves none of it: no function, rule, document, start/stop or SendCommand permission, alarm', (_, props) => {
    const { resolver, template } = resolverStack(props);
    expect(resolver.power).toBeUndefined();
    template.resourceCountIs('AWS::SSM::Document', 0);
    const text = JSON.stringify(template.toJSON());
    for (const absent of ['ec2:StartInstances', 'ec2:StopInstances', 'ssm:SendCommand', 'SIGNALS_DOCUMENT', 'rate(1 minute)', 'PowerStartsStuck', 'PowerFailures']) {
      expect(text).not.toContain(absent);
    }
    expect(resolver.observability!.alarms.powerErrors).toBeUndefined();
    // Discovery itself is unaffected by desktopPower: false.
    if (props.discovery === undefined) expect(resolver.discovery).toBeDefined();
  });

  it('the shipped stack outputs the document name (what `dcv-resolver power --document` takes), only with the pass', () => {
    const template = (props: DcvSessionResolverProps) => {
      const { app } = newStack('Unused');
      return Template.fromStack(new DcvResolverStack(app, 'Shipped', { allowAnySource: true, ...props }));
    };
    const on = template({});
    const docId = Object.keys(on.findResources('AWS::SSM::Document'))[0]!;
    on.hasOutput('HostSignalsDocumentName', { Value: { Ref: docId } });
    expect(template({ desktopPower: false }).findOutputs('HostSignalsDocumentName')).toEqual({});
  });

  it('the CDK context key desktopPower (-c desktopPower=false), checked like the other switches', () => {
    const access = { allowAnySource: 'true' };
    expect(readStackContext((k) => ({ ...access, desktopPower: 'false' })[k])).toMatchObject({ desktopPower: false });
    expect(readStackContext((k) => (access as Record<string, unknown>)[k]).desktopPower).toBeUndefined();
    expect(() => readStackContext((k) => ({ ...access, desktopPower: 'off' })[k])).toThrow(/context 'desktopPower' must be true or false/);
    expect(readFileSync(new URL('../../bin/app.ts', import.meta.url), 'utf8')).toContain('desktopPower: settings.desktopPower');
  });

  it('refuses desktopPower: true without discovery (nothing would write the items it acts on)', () => {
    expect(() => resolverStack({ desktopPower: true, discovery: false })).toThrow(/desktopPower: true needs discovery/);
  });
});
