import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Aspects, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AttributeType, Table } from 'aws-cdk-lib/aws-dynamodb';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DcvResolverStack, type DcvResolverStackProps } from '../../lib/dcv-resolver-stack';
import { SessionDiscovery, type SessionDiscoveryProps } from '../../lib/session-discovery';
import { readStackContext } from '../../lib/stack-context';
import { nagFindings } from '../helpers/nag-findings';

const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

function synth(props: Partial<SessionDiscoveryProps> = {}, nag = false) {
  const outdir = mkdtempSync(join(tmpdir(), 'dcv-discovery-'));
  outdirs.push(outdir);
  const app = new App({ outdir });
  const stack = new Stack(app, 'DiscoveryTest', { env: { account: '123456789012', region: 'us-east-1' } });
  const table = new Table(stack, 'Sessions', { partitionKey: { name: 'SessionId', type: AttributeType.STRING } });
  const discovery = new SessionDiscovery(stack, 'Discovery', { table, ...props });
  if (nag) {
    Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
    Aspects.of(app).add(new ServerlessChecks({ verbose: true }));
  }
  return { stack, discovery, template: Template.fromStack(stack) };
}

function statements(template: Template): { Action: string | string[]; Resource: unknown; Effect: string }[] {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies).flatMap((p) => (p as { Properties: { PolicyDocument: { Statement: never[] } } }).Properties.PolicyDocument.Statement);
}

describe('SessionDiscovery construct', () => {
  let template: Template;
  let stack: Stack;
  beforeAll(() => {
    ({ template, stack } = synth({}, true));
  });

  it('a Node.js 24 arm64 function configured with the table and the tag prefix, sized from the 100,000-instance bench', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Timeout: 600,
      MemorySize: 1024,
      Environment: { Variables: Match.objectLike({ TABLE_NAME: { Ref: Match.stringLikeRegexp('^Sessions') }, TAG_PREFIX: 'dcv:', NODE_OPTIONS: '--enable-source-maps' }) },
    });
  });

  it('state-change rule: aws.ec2 instance state changes that matter', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ec2'],
        'detail-type': ['EC2 Instance State-change Notification'],
        detail: { state: ['running', 'stopping', 'stopped', 'shutting-down', 'terminated'] },
      },
      State: 'ENABLED',
    });
  });

  it('tag-change rule: aws.tag, EC2 instances, only changes under the prefix', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.tag'],
        'detail-type': ['Tag Change on Resource'],
        detail: { service: ['ec2'], 'resource-type': ['instance'], 'changed-tag-keys': [{ prefix: 'dcv:' }] },
      },
    });
  });

  it('schedule rule: every 5 minutes by default', () => {
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(5 minutes)' });
  });

  it('instance events go to the event queue, the schedule to the function; each with retries and the dead-letter queue', () => {
    const rules = Object.values(template.findResources('AWS::Events::Rule')) as { Properties: { Targets: Record<string, unknown>[]; ScheduleExpression?: string } }[];
    expect(rules).toHaveLength(3);
    for (const rule of rules) {
      const destination = rule.Properties.ScheduleExpression
        ? { 'Fn::GetAtt': [expect.stringMatching(/^DiscoveryFunction/), 'Arn'] }
        : { 'Fn::GetAtt': [expect.stringMatching(/^DiscoveryEvents/), 'Arn'] };
      expect(rule.Properties.Targets).toEqual([
        expect.objectContaining({
          Arn: destination,
          RetryPolicy: { MaximumRetryAttempts: 4, MaximumEventAgeInSeconds: 3600 },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [expect.stringMatching(/^DiscoveryDeadLetters/), 'Arn'] } },
        }),
      ]);
    }
  });

  it('the event queue feeds the function in batches, reports partial batch failures, and dead-letters after 3 receives', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DiscoveryEvents'), 'Arn'] },
      FunctionName: { Ref: Match.stringLikeRegexp('^DiscoveryFunction') },
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 5,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ScalingConfig: { MaximumConcurrency: 2 },
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      VisibilityTimeout: 1200,
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DiscoveryDeadLetters'), 'Arn'] }, maxReceiveCount: 3 },
    });
    // Lambda refuses a queue whose visibility timeout is shorter than the function's timeout.
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0] as { Properties: { Timeout: number } };
    const queue = Object.entries(template.findResources('AWS::SQS::Queue')).find(([id]) => id.startsWith('DiscoveryEvents'))![1] as {
      Properties: { VisibilityTimeout: number };
    };
    expect(queue.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(fn.Properties.Timeout);
    // EventBridge may send to it, only from the two instance rules.
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: Match.stringLikeRegexp('^DiscoveryEvents') }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 'sqs:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({ Effect: 'Allow', Action: Match.arrayWith(['sqs:SendMessage']), Principal: { Service: 'events.amazonaws.com' } }),
        ]),
      },
    });
  });

  it('adds the sparse keys-only InstanceId index to the session table', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'SessionId', KeyType: 'HASH' }],
      AttributeDefinitions: Match.arrayWith([{ AttributeName: 'InstanceId', AttributeType: 'S' }]),
      GlobalSecondaryIndexes: [
        { IndexName: 'ByInstanceId', KeySchema: [{ AttributeName: 'InstanceId', KeyType: 'HASH' }], Projection: { ProjectionType: 'KEYS_ONLY' } },
      ],
    });
  });

  it('failed async invocations: retried twice, then the on-failure destination is the same queue', () => {
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 3600,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DiscoveryDeadLetters'), 'Arn'] } } },
    });
  });

  it('the dead-letter queue is encrypted, refuses non-TLS access and keeps messages 14 days', () => {
    template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 1209600 });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 'sqs:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          // EventBridge may dead-letter into it, only from these rules.
          Match.objectLike({ Effect: 'Allow', Action: 'sqs:SendMessage', Principal: { Service: 'events.amazonaws.com' } }),
        ]),
      },
    });
  });

  it('IAM: DescribeInstances on * (EC2 requires it); Scan/BatchGetItem/PutItem/UpdateItem/DeleteItem on this table; Query on its index only', () => {
    const all = statements(template);
    const byAction = (action: string) => all.filter((s) => [s.Action].flat().includes(action));
    expect(byAction('ec2:DescribeInstances')).toEqual([{ Action: 'ec2:DescribeInstances', Effect: 'Allow', Resource: '*' }]);
    const dynamo = all.filter((s) => [s.Action].flat().some((a) => a.startsWith('dynamodb:')));
    const table = { 'Fn::GetAtt': [expect.stringMatching(/^Sessions/), 'Arn'] };
    expect(dynamo.map((s) => ({ actions: [s.Action].flat().sort(), resources: [s.Resource].flat() }))).toEqual([
      { actions: ['dynamodb:BatchGetItem', 'dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:Scan', 'dynamodb:UpdateItem'], resources: [table] },
      { actions: ['dynamodb:Query'], resources: [{ 'Fn::Join': ['', [table, '/index/ByInstanceId']] }] },
    ]);
    // The only '*' resource is DescribeInstances.
    const wildcards = all.filter((s) => JSON.stringify(s.Resource) === '"*"' || JSON.stringify(s.Resource).includes('"*"'));
    expect(wildcards.map((s) => s.Action)).toEqual(['ec2:DescribeInstances']);
  });

  it('leaves no unacknowledged cdk-nag finding', () => {
    expect(nagFindings(stack).filter((finding) => finding.startsWith('/DiscoveryTest/Discovery/'))).toEqual([]);
  });
});

describe('SessionDiscovery props', () => {
  it('a shorter timeout and batch window carry over to the event queue and its mapping', () => {
    const { template } = synth({ timeout: Duration.minutes(2), memorySize: 512, eventBatchWindow: Duration.seconds(1) });
    template.hasResourceProperties('AWS::Lambda::Function', { Timeout: 120, MemorySize: 512 });
    template.hasResourceProperties('AWS::SQS::Queue', { VisibilityTimeout: 240, RedrivePolicy: Match.anyValue() });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { MaximumBatchingWindowInSeconds: 1 });
  });


  it.each([
    [{ tagPrefix: 'aws:x' }, /reserved/],
    [{ tagPrefix: '' }, /must not be empty/],
    [{ schedule: Duration.seconds(30) }, /whole number of minutes, at least 1/],
    [{ schedule: Duration.seconds(90) }, /whole number of minutes/],
  ])('refuses %j', (props, message) => {
    expect(() => synth(props)).toThrow(message);
  });
});

describe('DcvResolverStack wiring and context', () => {
  const access = { allowedSourceCidrs: ['203.0.113.10/32'] };

  function stackTemplate(props: Partial<DcvResolverStackProps>) {
    const outdir = mkdtempSync(join(tmpdir(), 'dcv-discovery-stack-'));
    outdirs.push(outdir);
    return Template.fromStack(new DcvResolverStack(new App({ outdir }), 'Wired', { ...access, ...props }));
  }

  it('discovery is on by default, on the stack table, with the given prefix and schedule', () => {
    const template = stackTemplate({ tagPrefix: 'team:', discoverySchedule: Duration.minutes(10) });
    template.hasResourceProperties('AWS::Events::Rule', { EventPattern: Match.objectLike({ detail: Match.objectLike({ 'changed-tag-keys': [{ prefix: 'team:' }] }) }) });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ TAG_PREFIX: 'team:', TABLE_NAME: { Ref: Match.stringLikeRegexp('^Sessions') } }) },
    });
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(10 minutes)' });
    // Discovery's three, and the power pass's one-minute schedule (on with discovery).
    template.resourceCountIs('AWS::Events::Rule', 4);
    template.hasOutput('DiscoveryDeadLetterQueueUrl', {});
  });

  it('discovery: false leaves it out entirely', () => {
    const template = stackTemplate({ discovery: false });
    template.resourceCountIs('AWS::Events::Rule', 0);
    template.resourceCountIs('AWS::SQS::Queue', 0);
    expect(JSON.stringify(template.toJSON())).not.toContain('ec2:DescribeInstances');
  });

  it('reads discovery, tagPrefix and discoveryScheduleMinutes from context', () => {
    const context: Record<string, unknown> = { ...access, discovery: 'false', tagPrefix: 'corp/', discoveryScheduleMinutes: '15' };
    expect(readStackContext((k) => context[k])).toMatchObject({ discovery: false, tagPrefix: 'corp/', discoveryScheduleMinutes: 15 });
    expect(readStackContext((k) => (access as Record<string, unknown>)[k])).toMatchObject({ discovery: undefined, tagPrefix: undefined, discoveryScheduleMinutes: undefined });
  });

  it.each([
    [{ tagPrefix: 'aws:x' }, /context 'tagPrefix': .*reserved/],
    [{ discoveryScheduleMinutes: '0' }, /context 'discoveryScheduleMinutes' must be an integer from 1 to 1440/],
    [{ discovery: 'yes' }, /context 'discovery' must be true or false/],
  ])('refuses context %j', (bad, message) => {
    const context: Record<string, unknown> = { ...access, ...bad };
    expect(() => readStackContext((k) => context[k])).toThrow(message);
  });
});
