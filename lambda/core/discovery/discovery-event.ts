/**
 * The events the discovery function accepts, validated: a malformed or unexpected event is an error
 * (so it lands in the dead-letter queue where someone can look at it), never a silent no-op.
 */
export type DiscoveryRequest =
  | { readonly kind: 'full'; readonly trigger: string }
  | { readonly kind: 'instances'; readonly trigger: string; readonly instanceIds: readonly string[] };

export const STATE_CHANGE_DETAIL_TYPE = 'EC2 Instance State-change Notification';
export const TAG_CHANGE_DETAIL_TYPE = 'Tag Change on Resource';
export const SCHEDULED_DETAIL_TYPE = 'Scheduled Event';

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
// arn:aws:ec2:us-east-1:123456789012:instance/i-0abc… (any partition)
const INSTANCE_ARN = /^arn:[a-z-]+:ec2:[a-z0-9-]*:\d*:instance\/(i-[0-9a-f]{8,17})$/;

export class DiscoveryEventError extends Error {
  override readonly name = 'DiscoveryEventError';
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

export function isInstanceId(value: unknown): value is string {
  return typeof value === 'string' && INSTANCE_ID.test(value);
}

export function parseDiscoveryEvent(event: unknown): DiscoveryRequest {
  const e = record(event);
  if (!e) throw new DiscoveryEventError('event is not an object');
  const source = e.source;
  const detailType = e['detail-type'];
  const detail = record(e.detail);

  if (source === 'aws.events' && detailType === SCHEDULED_DETAIL_TYPE) return { kind: 'full', trigger: 'schedule' };

  if (source === 'aws.ec2' && detailType === STATE_CHANGE_DETAIL_TYPE) {
    const id = detail?.['instance-id'];
    if (!isInstanceId(id)) throw new DiscoveryEventError(`state-change event has no valid detail.instance-id`);
    return { kind: 'instances', trigger: `state-change ${String(detail?.state ?? 'unknown')}`, instanceIds: [id] };
  }

  if (source === 'aws.tag' && detailType === TAG_CHANGE_DETAIL_TYPE) {
    if (detail?.service !== 'ec2' || detail['resource-type'] !== 'instance') {
      throw new DiscoveryEventError('tag-change event is not about an EC2 instance');
    }
    const resources = Array.isArray(e.resources) ? e.resources : [];
    const ids = new Set<string>();
    for (const arn of resources) {
      const match = typeof arn === 'string' ? INSTANCE_ARN.exec(arn) : null;
      if (match) ids.add(match[1]!);
    }
    if (ids.size === 0) throw new DiscoveryEventError('tag-change event names no EC2 instance ARN in resources');
    return { kind: 'instances', trigger: 'tag-change', instanceIds: [...ids].sort() };
  }

  throw new DiscoveryEventError(
    `unsupported event (source '${String(source).slice(0, 64)}', detail-type '${String(detailType).slice(0, 64)}')`,
  );
}

/** One SQS message of a batch: the EventBridge event it carries, or why it cannot be used. */
export type QueuedRequest =
  | { readonly messageId: string; readonly ok: true; readonly request: DiscoveryRequest }
  | { readonly messageId: string; readonly ok: false; readonly reason: string };

/** True for the SQS event Lambda delivers from a queue (`Records` from `aws:sqs`). */
export function isQueueBatch(event: unknown): event is { Records: unknown[] } {
  const records = record(event)?.Records;
  return Array.isArray(records) && records.length > 0 && records.every((r) => record(r)?.eventSource === 'aws:sqs');
}

/** Each message's body is an EventBridge event (the rules' queue target sends the event as is). */
export function parseQueuedRequests(batch: { Records: unknown[] }): QueuedRequest[] {
  return batch.Records.map((raw) => {
    const message = record(raw)!;
    const messageId = typeof message.messageId === 'string' ? message.messageId : '';
    try {
      if (typeof message.body !== 'string') throw new DiscoveryEventError('queue message has no body');
      let body: unknown;
      try {
        body = JSON.parse(message.body);
      } catch {
        throw new DiscoveryEventError('queue message body is not JSON');
      }
      return { messageId, ok: true, request: parseDiscoveryEvent(body) };
    } catch (error) {
      if (!(error instanceof DiscoveryEventError)) throw error;
      return { messageId, ok: false, reason: error.message };
    }
  });
}
