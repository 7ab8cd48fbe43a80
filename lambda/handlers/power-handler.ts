import middy from '@middy/core';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { Context } from 'aws-lambda';
import { NO_METRICS, type MetricsSink } from '../core/metrics.js';
import type { PowerFunctionConfig } from '../power/power-config.js';
import { runPowerPass, type PowerPassClients, type PowerPassResult } from '../power/power-runner.js';

/**
 * Time kept back from the invocation's own timeout: the pass stops starting new work at its deadline, and
 * this leaves room to finish the request in flight, log the summary and flush the metrics before Lambda
 * kills the invocation.
 */
export const DEADLINE_MARGIN_MS = 10_000;

export interface PowerHandlerDeps {
  readonly config: PowerFunctionConfig;
  readonly clients: PowerPassClients;
  readonly logger: Logger;
  /** Handed to the pass, which records into it; flushed once per invocation. @default none */
  readonly metrics?: MetricsSink;
  /** @default runPowerPass (a seam for tests) */
  readonly runPass?: typeof runPowerPass;
  /** @default Date.now */
  readonly now?: () => number;
}

export interface PowerHandlerResult {
  readonly counts: Readonly<Record<string, number>>;
  readonly actions: number;
  readonly failures: number;
}

export type PowerHandler = (event: unknown, context: Context) => Promise<PowerHandlerResult>;

/**
 * EventBridge schedule (every minute) → one power pass. A start or stop EC2 refused is counted and logged,
 * never thrown: the next minute's pass looks again, and failing the invocation would only hide the other
 * instances' outcomes. A pass that cannot run at all (EC2 listing or table scan failed) throws, so the
 * function's Errors metric (and its alarm) sees it.
 */
export function createPowerHandler(deps: PowerHandlerDeps): PowerHandler {
  const { config, clients, logger } = deps;
  const metrics = deps.metrics ?? { ...NO_METRICS, flush() {} };
  const runPass = deps.runPass ?? runPowerPass;
  const now = deps.now ?? Date.now;

  const handle = async function powerHandler(_event: unknown, context: Context): Promise<PowerHandlerResult> {
    try {
      const result: PowerPassResult = await runPass(clients, {
        tableName: config.tableName,
        tagPrefix: config.tagPrefix,
        signals: { documentName: config.signalsDocument },
        deadline: now() + context.getRemainingTimeInMillis() - DEADLINE_MARGIN_MS,
        now,
        log: logger,
        metrics,
      });
      // One line per pass: what it did and what failed, enough to answer "why did my desktop stop".
      const summary = {
        counts: result.counts,
        actions: result.actions,
        failures: result.failures,
        requests: result.requests,
        elapsedMs: result.elapsedMs,
      };
      if (result.failures.length > 0) logger.warn('power pass done, with failures', summary);
      else logger.info('power pass done', summary);
      return { counts: result.counts, actions: result.actions.length, failures: result.failures.length };
    } finally {
      metrics.flush();
    }
  };
  return middy<unknown, PowerHandlerResult>(handle).use(injectLambdaContext(logger, { resetKeys: true })) as unknown as PowerHandler;
}
