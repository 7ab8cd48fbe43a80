import middy from '@middy/core';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { Context } from 'aws-lambda';
import { parseDiscoveryEvent } from '../core/discovery/discovery-event';
import type { DiscoveryCounts, DiscoveryService } from '../core/discovery/run-discovery';

export interface DiscoveryHandlerDeps {
  readonly service: DiscoveryService;
  readonly logger: Logger;
}

export interface DiscoveryHandlerResult {
  readonly trigger: string;
  readonly counts: DiscoveryCounts;
}

export type DiscoveryHandler = (event: unknown, context: Context) => Promise<DiscoveryHandlerResult>;

/** Thrown so Lambda's async retries, then the on-failure destination / DLQ, get the event. */
export class DiscoveryRunFailed extends Error {
  override readonly name = 'DiscoveryRunFailed';
}

/**
 * EventBridge → discovery. Scheduled events run a full reconcile; instance state and tag events reconcile
 * just the instances they name. An unusable event, an aborted scan or a failed write fails the invocation.
 */
export function createDiscoveryHandler(deps: DiscoveryHandlerDeps): DiscoveryHandler {
  const handle = async function discoveryHandler(event: unknown): Promise<DiscoveryHandlerResult> {
    const request = parseDiscoveryEvent(event);
    const result =
      request.kind === 'full'
        ? await deps.service.reconcileAll(request.trigger)
        : await deps.service.reconcileInstances(request.instanceIds, request.trigger);
    if (result.abortReason !== undefined) throw new DiscoveryRunFailed(`discovery aborted, nothing changed: ${result.abortReason}`);
    if (result.failed.length > 0) {
      const first = result.failed[0]!;
      throw new DiscoveryRunFailed(
        `${result.failed.length} write(s) failed (first: ${first.change.kind} '${first.change.sessionId}': ${first.reason})`,
      );
    }
    return { trigger: result.trigger, counts: result.counts };
  };
  return middy<unknown, DiscoveryHandlerResult>(handle).use(
    injectLambdaContext(deps.logger, { resetKeys: true }),
  ) as unknown as DiscoveryHandler;
}
