import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Aspects } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { afterAll, describe, expect, it } from 'vitest';
import { DcvResolverStack } from '../../lib/dcv-resolver-stack';
import { ResolverObservability, type ResolverObservabilityProps } from '../../lib/resolver-observability';
import { readStackContext } from '../../lib/stack-context';
import { nagFindings } from '../helpers/nag-findings';

/** These tests read the template only: skip esbuild bundling of the function code. */
const NO_BUNDLING = { 'aws:cdk:bundling-stacks': [] };
const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:dcv-alarms';
const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

type Extra = Partial<Omit<ResolverObservabilityProps, 'resolver'>>;

/** The shipped stack with the observability construct added the way the lead will wire it in. */
function build(extra: Extra = {}, options: { discovery?: boolean; nag?: boolean } = {}) {
  const outdir = mkdtempSync(join(tmpdir(), 'dcv-obs-'));
  outdirs.push(outdir);
  const app = new App({ outdir, context: NO_BUNDLING });
  const stack = new DcvResolverStack(app, 'Obs', {
    allowedSourceCidrs: ['203.0.113.10/32'],
    reservedConcurrency: 20,
    discovery: options.discovery ?? true,
    // The stack wires its own (tested below); these tests add one with explicit props instead.
    observability: false,
  });
  const watch = new ResolverObservability(stack, 'Watch', {
    resolver: stack.resolver,
    discovery: stack.discovery?.function,
    discoveryDeadLetterQueue: stack.discovery?.deadLetterQueue,
    reservedConcurrency: stack.access.reservedConcurrency,
    ...extra,
  });
  if (options.nag) {
    Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
    Aspects.of(app).add(new ServerlessChecks({ verbose: true }));
  }
  return { stack, watch, template: Template.fromStack(stack) };
}

/** The one alarm whose properties match. */
function alarm(template: Template, props: Record<string, unknown>): Record<string, any> {
  const found = template.findResources('AWS::CloudWatch::Alarm', { Properties: Match.objectLike(props) });
  expect(Object.keys(found), JSON.stringify(props)).toHaveLength(1);
  return Object.values(found)[0]!.Properties;
}

const EMF_ALARMS: [string, string, string][] = [
  ['resolver 5xx', 'ServerErrors', 'resolver'],
  ['discovery failures', 'DiscoveryFailedRuns', 'discovery'],
];

describe('alarms', () => {
  const { template, stack } = build({ alarmTopicArn: TOPIC });

  it.each(EMF_ALARMS)('%s: %s (service %s) Sum >= 1 in 5 minutes, missing data fine, notifies the topic', (_what, metric, service) => {
    const props = alarm(template, { MetricName: metric });
    expect(props).toMatchObject({
      Namespace: 'DcvSessionResolver',
      Dimensions: [{ Name: 'service', Value: service }],
      Statistic: 'Sum',
      Period: 300,
      Threshold: 1,
      EvaluationPeriods: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [TOPIC],
    });
  });

  it.each([
    ['Errors', 'Sum', 1],
    ['Throttles', 'Sum', 1],
    ['ConcurrentExecutions', 'Maximum', 20],
  ])("the resolver function's %s (%s) >= %s", (metric, statistic, threshold) => {
    const props = alarm(template, { Namespace: 'AWS/Lambda', MetricName: metric });
    expect(props).toMatchObject({ Statistic: statistic, Threshold: threshold, ComparisonOperator: 'GreaterThanOrEqualToThreshold', AlarmActions: [TOPIC] });
    expect(props.Dimensions).toEqual([{ Name: 'FunctionName', Value: { Ref: stack.getLogicalId(stack.resolver.node.defaultChild as never) } }]);
  });

  it('store errors: store-error resolutions plus store-error verifications, >= 1', () => {
    const found = Object.values(template.findResources('AWS::CloudWatch::Alarm')).filter((r) =>
      (r.Properties.Metrics as unknown[] | undefined)?.some((m: any) => m.Expression === 'FILL(resolve, 0) + FILL(verify, 0)'),
    );
    expect(found).toHaveLength(1);
    const props = found[0]!.Properties;
    expect(props).toMatchObject({ Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', AlarmActions: [TOPIC] });
    const inputs = (props.Metrics as any[]).filter((m) => m.MetricStat).map((m) => [m.Id, m.MetricStat.Metric.MetricName, m.MetricStat.Metric.Dimensions]);
    expect(inputs).toEqual([
      ['resolve', 'Resolutions', [{ Name: 'Outcome', Value: 'store-error' }, { Name: 'service', Value: 'resolver' }]],
      ['verify', 'TokenVerifications', [{ Name: 'Outcome', Value: 'store-error' }, { Name: 'service', Value: 'resolver' }]],
    ]);
  });

  it("dead-letter queue not empty: the discovery DLQ's visible messages (Maximum) >= 1", () => {
    const props = alarm(template, { Namespace: 'AWS/SQS', MetricName: 'ApproximateNumberOfMessagesVisible' });
    expect(props).toMatchObject({ Statistic: 'Maximum', Threshold: 1, AlarmActions: [TOPIC] });
    expect(props.Dimensions).toEqual([
      { Name: 'QueueName', Value: { 'Fn::GetAtt': [stack.getLogicalId(stack.discovery!.deadLetterQueue.node.defaultChild as never), 'QueueName'] } },
    ]);
  });

  it('seven alarms in all, every one with a description', () => {
    const all = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    expect(all).toHaveLength(7);
    for (const a of all) expect(a.Properties.AlarmDescription.length).toBeGreaterThan(20);
  });
});

describe('without a topic, without discovery', () => {
  it('alarms have no actions', () => {
    const { template } = build();
    const all = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    expect(all).toHaveLength(7);
    for (const a of all) expect(a.Properties.AlarmActions).toBeUndefined();
  });

  it('a stack without discovery gets no discovery or dead-letter alarm, and no discovery widgets', () => {
    const { template, watch } = build({}, { discovery: false });
    expect(watch.alarms.discoveryFailures).toBeUndefined();
    expect(watch.alarms.deadLetters).toBeUndefined();
    expect(Object.values(template.findResources('AWS::CloudWatch::Alarm'))).toHaveLength(5);
    expect(JSON.stringify(template.findResources('AWS::CloudWatch::Dashboard'))).not.toContain('Discovery');
  });

  it('no reserved concurrency given: no concurrency alarm', () => {
    const { watch } = build({ reservedConcurrency: undefined });
    expect(watch.alarms.concurrencyAtLimit).toBeUndefined();
  });
});

describe('dashboard', () => {
  const { template, stack, watch } = build({ alarmTopicArn: TOPIC, dashboardName: 'dcv-resolver' });
  const body = (): any => {
    const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    expect(dashboards).toHaveLength(1);
    expect(dashboards[0]!.Properties.DashboardName).toBe('dcv-resolver');
    // The body is a Fn::Join of literal JSON and tokens (function names, alarm ARNs): resolve to text.
    const parts = dashboards[0]!.Properties.DashboardBody['Fn::Join'][1] as unknown[];
    return parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('');
  };

  it('shows every alarm in an alarm status widget', () => {
    const text = body();
    expect(text).toContain('"type":"alarm"');
    for (const a of Object.values(watch.alarms)) {
      expect(text).toContain(stack.getLogicalId(a.node.defaultChild as never));
    }
  });

  it.each([
    'Resolutions',
    'ResolveLatency',
    'StoreLatency',
    'TokenVerifications',
    'ServerErrors',
    'DiscoveryAdded',
    'DiscoveryChanged',
    'DiscoveryRemoved',
    'DiscoveryConflicts',
    'DiscoveryUnparsableTags',
    'DiscoveryFailedRuns',
    'DiscoveryRunDuration',
    'DiscoveryFleetSize',
    'ApproximateNumberOfMessagesVisible',
    'Throttles',
    'ConcurrentExecutions',
  ])('graphs %s', (metric) => {
    expect(body()).toContain(`"${metric}"`);
  });

  it('graphs resolutions under each outcome, never a session id dimension', () => {
    const text = body();
    for (const outcome of ['hit', 'not-found', 'disabled', 'expired', 'client-refused', 'source-refused', 'bad-request', 'store-error']) {
      expect(text).toContain(`"Resolutions","Outcome","${outcome}"`);
    }
    expect(text).not.toMatch(/SessionId/i);
  });
});

describe('cdk-nag', () => {
  it('the stack with the construct (and a topic) has no unacknowledged AwsSolutions or Serverless finding', () => {
    const { stack } = build({ alarmTopicArn: TOPIC }, { nag: true });
    const findings = nagFindings(stack);
    expect(findings).toEqual([]);
  });
});

describe('context: alarmTopicArn', () => {
  const base = { allowedSourceCidrs: '203.0.113.10/32' };
  it('is read and passed through', () => {
    expect(readStackContext((k) => ({ ...base, alarmTopicArn: TOPIC })[k]).alarmTopicArn).toBe(TOPIC);
    expect(readStackContext((k) => (base as Record<string, unknown>)[k]).alarmTopicArn).toBeUndefined();
  });

  it.each(['dcv-alarms', 'arn:aws:sqs:eu-west-1:123456789012:q', 'arn:aws:sns:eu-west-1:12345:x'])('refuses %s, naming the key', (value) => {
    expect(() => readStackContext((k) => ({ ...base, alarmTopicArn: value })[k])).toThrow(/context 'alarmTopicArn' must be an SNS topic ARN/);
  });
});

describe('wired into the shipped stack and the construct', () => {
  function shipped(props: Record<string, unknown>) {
    const app = new App({ context: NO_BUNDLING });
    const stack = new DcvResolverStack(app, 'Shipped', { allowedSourceCidrs: ['203.0.113.10/32'], ...props });
    return { stack, template: Template.fromStack(stack) };
  }

  it('by default: the eleven alarms (the power pass adds four), each notifying alarmTopicArn, and one dashboard', () => {
    const { stack, template } = shipped({ alarmTopicArn: TOPIC });
    expect(stack.sessionResolver.observability).toBeDefined();
    const all = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    expect(all).toHaveLength(11);
    for (const a of all) expect(a.Properties.AlarmActions).toEqual([TOPIC]);
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    // The concurrency alarm watches the reserved limit the stack set (default 10).
    alarm(template, { MetricName: 'ConcurrentExecutions', Threshold: 10 });
  });

  it('observability: false leaves alarms and dashboard out', () => {
    const { stack, template } = shipped({ observability: false });
    expect(stack.sessionResolver.observability).toBeUndefined();
    template.resourceCountIs('AWS::CloudWatch::Alarm', 0);
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 0);
  });
});
