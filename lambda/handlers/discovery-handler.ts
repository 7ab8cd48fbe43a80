import middy from '@middy/core';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { Context, SQSBatchResponse } from 'aws-lambda';
import { isQueueBatch, parseDiscoveryEvent, parseQueuedRequests } from '../core/discovery/discovery-event.js';
import type { DiscoveryCounts, DiscoveryResult, DiscoveryService } from '../core/discovery/run-discovery.js';
import { NO_METRICS, recordDiscoveryRun, type MetricsSink } from '../core/metrics.js';

export interface DiscoveryHandlerDeps {
  readonly service: DiscoveryService;
  readonly logger: Logger;
  /** Each run's counts, duration and failure; flushed once per invocation. @default none */
  readonly metrics?: MetricsSink;
}

export interface DiscoveryHandlerResult {
  readonly trigger: string;
  readonly counts: DiscoveryCounts;
}

export type DiscoveryHandler = (event: unknown, context: Context) => Promise<DiscoveryHandlerResult | SQSBatchResponse>;

/** Thrown so Lambda's async retries, then the on-failure destination / DLQ, get the event. */
export class DiscoveryRunFailed extends Error {
  override readonly name = 'DiscoveryRunFailed';
}

/** Why a run must count as failed (an aborted scan or a failed write), or undefined when it succeeded. */
function failureOf(result: DiscoveryResult): string | undefined {
  if (result.abortReason !== undefined) return `discovery aborted, nothing changed: ${result.abortReason}`;
  if (result.failed.length === 0) return undefined;
  const first = result.failed[0]!;
  return `${result.failed.length} write(s) failed (first: ${first.change.kind} '${first.change.sessionId}': ${first.reason})`;
}

/**
 * EventBridge → discovery. Scheduled events (invoked directly) run a full reconcile. Instance state and tag
 * events arrive from the event queue in batches: one run over every instance the batch names (a burst
 * costs one describe and one table read per batch, not per event). An unusable event, an aborted scan
 * or a failed write fails the invocation (direct) or just the messages concerned (queue: partial batch
 * failures, so the queue retries them and then moves them to the dead-letter queue).
 */
export function createDiscoveryHandler(deps: DiscoveryHandlerDeps): DiscoveryHandler {
  const { service, logger } = deps;
  const metrics = deps.metrics ?? { ...NO_METRICS, flush() {} };

  /** Runs one reconcile and records it; a thrown error is recorded as a failed run and rethrown. */
  async function run(full: boolean, reconcile: () => Promise<DiscoveryResult>): Promise<DiscoveryResult> {
    const started = performance.now();
    let result: DiscoveryResult | undefined;
    try {
      result = await reconcile();
      return result;
    } finally {
      const failed = result === undefined || failureOf(result) !== undefined;
      // An aborted run saw part of the fleet: its counts would read as a shrunken fleet.
      const counts = result?.abortReason === undefined ? result?.counts : undefined;
      recordDiscoveryRun(metrics, { full, failed, ms: performance.now() - started, counts });
    }
  }

  async function handleBatch(batch: { Records: unknown[] }): Promise<SQSBatchResponse> {
    const queued = parseQueuedRequests(batch);
    const failures = new Set<string>();
    for (const q of queued) {
      if (!q.ok) {
        logger.error('unusable discovery event', { messageId: q.messageId, reason: q.reason });
        failures.add(q.messageId);
      }
    }
    const usable = queued.filter((q) => q.ok);
    if (usable.length === 0) return { batchItemFailures: [...failures].map((itemIdentifier) => ({ itemIdentifier })) };

    // A full reconcile (a scheduled event sent through the queue) covers every instance event with it.
    const full = usable.some((q) => q.request.kind === 'full');
    const named = new Map<string, string[]>(); // instance id → the messages naming it
    for (const q of usable) {
      if (q.request.kind !== 'instances') continue;
      for (const id of q.request.instanceIds) named.set(id, [...(named.get(id) ?? []), q.messageId]);
    }
    const trigger = full ? 'queued full' : `batch of ${usable.length} event(s)`;
    let result: DiscoveryResult;
    try {
      result = await run(full, () =>
        full ? service.reconcileAll(trigger) : service.reconcileInstances([...named.keys()].sort(), trigger),
      );
    } catch (error) {
      logger.error('discovery batch failed', { trigger, reason: (error as Error).message });
      for (const q of usable) failures.add(q.messageId);
      return { batchItemFailures: [...failures].map((itemIdentifier) => ({ itemIdentifier })) };
    }
    const failure = failureOf(result);
    if (failure !== undefined) {
      // Only the messages whose instances had a failed write go back; a failure no message names
      // (an aborted scan, a write for another instance) sends the whole batch back.
      const owners = result.failed.map((f) => (f.change.instanceId === undefined ? undefined : named.get(f.change.instanceId)));
      const all = full || result.abortReason !== undefined || owners.some((o) => o === undefined);
      for (const q of usable) if (all) failures.add(q.messageId);
      if (!all) for (const ids of owners) for (const id of ids!) failures.add(id);
      logger.error('discovery batch failed', { trigger, reason: failure, retried: failures.size });
    }
    logger.info('discovery batch done', { trigger, messages: queued.length, instances: named.size, failed: failures.size });
    return { batchItemFailures: [...failures].map((itemIdentifier) => ({ itemIdentifier })) };
  }

  async function handleDirect(event: unknown): Promise<DiscoveryHandlerResult> {
    const request = parseDiscoveryEvent(event);
    const result = await run(request.kind === 'full', () =>
      request.kind === 'full'
        ? service.reconcileAll(request.trigger)
        : service.reconcileInstances(request.instanceIds, request.trigger),
    );
    const failure = failureOf(result);
    if (failure !== undefined) throw new DiscoveryRunFailed(failure);
    return { trigger: result.trigger, counts: result.counts };
  }

  const handle = async function discoveryHandler(event: unknown): Promise<DiscoveryHandlerResult | SQSBatchResponse> {
    try {
      return isQueueBatch(event) ? await handleBatch(event) : await handleDirect(event);
    } finally {
      metrics.flush();
    }
  };
  return middy<unknown, DiscoveryHandlerResult | SQSBatchResponse>(handle).use(
    injectLambdaContext(logger, { resetKeys: true }),
  ) as unknown as DiscoveryHandler;
}
