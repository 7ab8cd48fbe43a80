import { describe, expect, it } from 'vitest';
import { createLogger } from '../../lambda/adapters/logger';
import type { Change } from '../../lambda/core/discovery/reconcile';
import type { DiscoveryResult, DiscoveryService } from '../../lambda/core/discovery/run-discovery';
import { createDiscoveryHandler } from '../../lambda/handlers/discovery-handler';

/**
 * Queue batches: one run over every instance a batch names, and partial batch failures that send back
 * exactly the messages whose work failed (the queue retries them, then dead-letters them).
 */
const iid = (n: number) => `i-${String(n).padStart(17, '0')}`;
const context = { functionName: 'discovery', awsRequestId: 'r-1' } as never;

const stateChange = (n: number) => ({
  source: 'aws.ec2',
  'detail-type': 'EC2 Instance State-change Notification',
  detail: { 'instance-id': iid(n), state: 'stopped' },
});
const tagChange = (...ns: number[]) => ({
  source: 'aws.tag',
  'detail-type': 'Tag Change on Resource',
  resources: ns.map((n) => `arn:aws:ec2:us-east-1:123456789012:instance/${iid(n)}`),
  detail: { service: 'ec2', 'resource-type': 'instance', 'changed-tag-keys': ['dcv:session-id'] },
});
const scheduled = { source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} };

function batch(...bodies: (unknown | string)[]) {
  return {
    Records: bodies.map((body, i) => ({
      messageId: `m${i}`,
      eventSource: 'aws:sqs',
      body: typeof body === 'string' ? body : JSON.stringify(body),
    })),
  };
}

function result(extra: Partial<DiscoveryResult> = {}): DiscoveryResult {
  return {
    trigger: 't',
    dryRun: false,
    plan: { aborted: false, changes: [], conflicts: [], unparsable: [], unchanged: 0 },
    applied: [],
    skipped: [],
    failed: [],
    counts: { instances: 0, added: 0, changed: 0, removed: 0, unchanged: 0, conflicts: 0, unparsable: 0, skipped: 0, failed: 0, puts: 0, deletes: 0, ec2Calls: 0 },
    ...extra,
  };
}

const removal = (sessionId: string, instanceId: string): Change => ({
  kind: 'remove',
  sessionId,
  instanceId,
  previous: { sessionId, item: {} },
  reason: 'stopped',
});

/** A service that records its calls and answers with `answer` (or throws it). */
function fakeService(answer: (ids: readonly string[] | 'all') => DiscoveryResult | Error) {
  const calls: (readonly string[] | 'all')[] = [];
  const respond = async (ids: readonly string[] | 'all') => {
    calls.push(ids);
    const outcome = answer(ids);
    if (outcome instanceof Error) throw outcome;
    return outcome;
  };
  const service = {
    reconcileAll: () => respond('all'),
    reconcileInstances: (ids: readonly string[]) => respond(ids),
  } as unknown as DiscoveryService;
  return { service, calls };
}

const logger = createLogger({ logLevel: 'SILENT' });

describe('discovery handler, queue batches', () => {
  it('one run over every instance the batch names, each once; nothing failed', async () => {
    const { service, calls } = fakeService(() => result());
    const answer = await createDiscoveryHandler({ service, logger })(batch(stateChange(3), tagChange(1, 2), stateChange(3), stateChange(2)), context);
    expect(answer).toEqual({ batchItemFailures: [] });
    expect(calls).toEqual([[iid(1), iid(2), iid(3)]]);
  });

  it('an unusable message fails alone; the others are handled', async () => {
    const { service, calls } = fakeService(() => result());
    const answer = await createDiscoveryHandler({ service, logger })(
      batch(stateChange(1), 'not json', { source: 'aws.s3', 'detail-type': 'Object Created' }, stateChange(2)),
      context,
    );
    expect(answer).toEqual({ batchItemFailures: [{ itemIdentifier: 'm1' }, { itemIdentifier: 'm2' }] });
    expect(calls).toEqual([[iid(1), iid(2)]]);
  });

  it('a failed write sends back only the messages naming that instance', async () => {
    const { service } = fakeService(() => result({ failed: [{ change: removal('s2', iid(2)), reason: 'InternalServerError: boom' }] }));
    const answer = await createDiscoveryHandler({ service, logger })(batch(stateChange(1), stateChange(2), tagChange(2, 3), stateChange(4)), context);
    expect(answer).toEqual({ batchItemFailures: [{ itemIdentifier: 'm1' }, { itemIdentifier: 'm2' }] });
  });

  it('a failed write for an instance no message names (a holder described for a duplicate) sends back the whole batch', async () => {
    const { service } = fakeService(() => result({ failed: [{ change: removal('s9', iid(9)), reason: 'boom' }] }));
    const answer = await createDiscoveryHandler({ service, logger })(batch(stateChange(1), stateChange(2)), context);
    expect(answer).toEqual({ batchItemFailures: [{ itemIdentifier: 'm0' }, { itemIdentifier: 'm1' }] });
  });

  it('a run that throws (EC2 unreachable) or aborts sends back every usable message', async () => {
    const throwing = fakeService(() => Object.assign(new Error('denied'), { name: 'UnauthorizedOperation' }));
    expect(await createDiscoveryHandler({ service: throwing.service, logger })(batch(stateChange(1), '{}', stateChange(2)), context)).toEqual({
      batchItemFailures: [{ itemIdentifier: 'm1' }, { itemIdentifier: 'm0' }, { itemIdentifier: 'm2' }],
    });
    const aborted = fakeService(() => result({ abortReason: 'listing failed' }));
    expect(await createDiscoveryHandler({ service: aborted.service, logger })(batch(stateChange(1)), context)).toEqual({
      batchItemFailures: [{ itemIdentifier: 'm0' }],
    });
  });

  it('a scheduled event in the batch runs one full reconcile, which covers the instance events', async () => {
    const { service, calls } = fakeService(() => result());
    const answer = await createDiscoveryHandler({ service, logger })(batch(stateChange(1), scheduled, stateChange(2)), context);
    expect(answer).toEqual({ batchItemFailures: [] });
    expect(calls).toEqual(['all']);
  });

  it('a batch of only unusable messages runs nothing', async () => {
    const { service, calls } = fakeService(() => result());
    const answer = await createDiscoveryHandler({ service, logger })(batch('[]'), context);
    expect(answer).toEqual({ batchItemFailures: [{ itemIdentifier: 'm0' }] });
    expect(calls).toEqual([]);
  });

  it('a direct invocation (the schedule) still throws on failure, for Lambda retries and the on-failure destination', async () => {
    const { service } = fakeService(() => result({ failed: [{ change: removal('s1', iid(1)), reason: 'boom' }] }));
    await expect(createDiscoveryHandler({ service, logger })(scheduled, context)).rejects.toThrow(/1 write\(s\) failed/);
  });
});
