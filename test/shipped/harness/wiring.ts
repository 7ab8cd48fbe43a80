import { createHash, randomUUID } from 'node:crypto';
import { ACCOUNT, REGION, type Synthesized } from './synthesized';

/**
 * How the template delivers events to a function: each EventBridge rule that reaches it, directly (a rule
 * target that is the function) or through a queue (a rule target that is a queue, and an event source
 * mapping from that queue to the function). `deliver` shapes an EventBridge event the way that path
 * hands it to the function: as is, or as an SQS record in a batch.
 */
export interface RuleDelivery {
  readonly ruleId: string;
  readonly ruleArn: string;
  readonly eventPattern?: Record<string, unknown>;
  readonly scheduleExpression?: string;
  readonly via: { readonly kind: 'direct' } | { readonly kind: 'queue'; readonly queueArn: string; readonly reportBatchItemFailures: boolean };
}

const getAttId = (value: unknown): string | undefined => (value as { 'Fn::GetAtt'?: [string, string] })?.['Fn::GetAtt']?.[0];

export function ruleDeliveries(synth: Synthesized, functionId: string): RuleDelivery[] {
  const resources = synth.template.Resources;
  const mappings = Object.values(resources).filter(
    (r) => r.Type === 'AWS::Lambda::EventSourceMapping' && (r.Properties.FunctionName as { Ref?: string })?.Ref === functionId,
  );
  const out: RuleDelivery[] = [];
  for (const [ruleId, rule] of Object.entries(resources)) {
    if (rule.Type !== 'AWS::Events::Rule') continue;
    for (const target of (rule.Properties.Targets ?? []) as { Arn: unknown }[]) {
      const targetId = getAttId(target.Arn);
      const base = {
        ruleId,
        ruleArn: `arn:aws:events:${REGION}:${ACCOUNT}:rule/${synth.stackName}-${ruleId}`,
        eventPattern: rule.Properties.EventPattern as Record<string, unknown> | undefined,
        scheduleExpression: rule.Properties.ScheduleExpression as string | undefined,
      };
      if (targetId === functionId) out.push({ ...base, via: { kind: 'direct' } });
      const mapping = mappings.find((m) => getAttId(m.Properties.EventSourceArn) === targetId);
      if (targetId && mapping && resources[targetId]!.Type === 'AWS::SQS::Queue') {
        out.push({
          ...base,
          via: {
            kind: 'queue',
            queueArn: `arn:aws:sqs:${REGION}:${ACCOUNT}:${synth.stackName}-${targetId}`,
            reportBatchItemFailures: ((mapping.Properties.FunctionResponseTypes ?? []) as string[]).includes('ReportBatchItemFailures'),
          },
        });
      }
    }
  }
  return out;
}

/** EventBridge's pattern matching, for the operators these rules use (values lists, prefix). */
export function matchesPattern(pattern: Record<string, unknown>, event: Record<string, unknown>): boolean {
  return Object.entries(pattern).every(([key, expected]) => {
    const actual = event[key];
    if (Array.isArray(expected)) {
      const values = Array.isArray(actual) ? actual : [actual];
      return expected.some((e) =>
        typeof e === 'object' && e !== null && 'prefix' in e
          ? values.some((v) => typeof v === 'string' && v.startsWith(String((e as { prefix: string }).prefix)))
          : values.includes(e),
      );
    }
    return typeof actual === 'object' && actual !== null && matchesPattern(expected as Record<string, unknown>, actual as Record<string, unknown>);
  });
}

/** An EventBridge event as delivered: the envelope every event has, around its source, type and detail. */
function eventBridgeEvent(source: string, detailType: string, resources: string[], detail: Record<string, unknown>): Record<string, unknown> {
  return { version: '0', id: randomUUID(), 'detail-type': detailType, source, account: ACCOUNT, time: new Date().toISOString(), region: REGION, resources, detail };
}

const instanceArn = (instanceId: string) => `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${instanceId}`;

export function scheduledEvent(delivery: RuleDelivery): Record<string, unknown> {
  return eventBridgeEvent('aws.events', 'Scheduled Event', [delivery.ruleArn], {});
}

export function stateChangeEvent(instanceId: string, state: string): Record<string, unknown> {
  return eventBridgeEvent('aws.ec2', 'EC2 Instance State-change Notification', [instanceArn(instanceId)], { 'instance-id': instanceId, state });
}

export function tagChangeEvent(instanceId: string, changed: string[], tags: Record<string, string>): Record<string, unknown> {
  return eventBridgeEvent('aws.tag', 'Tag Change on Resource', [instanceArn(instanceId)], {
    'changed-tag-keys': changed,
    service: 'ec2',
    'resource-type': 'instance',
    version: 3,
    tags,
  });
}

/** Lambda's SQS event for these message bodies (one record each). */
export function sqsBatch(queueArn: string, bodies: string[]): { Records: Record<string, unknown>[] } {
  const now = Date.now();
  return {
    Records: bodies.map((body) => ({
      messageId: randomUUID(),
      receiptHandle: `AQEB${createHash('sha256').update(body).digest('base64')}`,
      body,
      attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(now), SenderId: 'AIDAEVENTBRIDGE', ApproximateFirstReceiveTimestamp: String(now) },
      messageAttributes: {},
      md5OfBody: createHash('md5').update(body).digest('hex'),
      eventSource: 'aws:sqs',
      eventSourceARN: queueArn,
      awsRegion: REGION,
    })),
  };
}

/** The event as the rule's path hands it to the function. */
export function deliver(delivery: RuleDelivery, event: Record<string, unknown>): unknown {
  return delivery.via.kind === 'direct' ? event : sqsBatch(delivery.via.queueArn, [JSON.stringify(event)]);
}

/** The rule whose pattern (or schedule) takes this event. */
export function ruleFor(deliveries: readonly RuleDelivery[], event: Record<string, unknown>): RuleDelivery {
  const found = deliveries.filter((d) =>
    event['detail-type'] === 'Scheduled Event' ? d.scheduleExpression !== undefined : d.eventPattern !== undefined && matchesPattern(d.eventPattern, event),
  );
  if (found.length !== 1) throw new Error(`expected one rule for ${String(event['detail-type'])}, found ${found.map((d) => d.ruleId).join(', ') || 'none'}`);
  return found[0]!;
}
