import type { Context } from 'aws-lambda';
import type { Log } from '../core/log.js';
import { JsonLineLog, levelFromEnv } from './json-line-log.js';

// Not in logger.ts: importing Powertools there, even unused, brings its invocation store into a bundle.
const SERVICE_NAME = 'dcv-session-resolver';

/**
 * The resolver function's logger: Powertools' JSON keys (level, message, timestamp, service, and the
 * invocation's cold_start, function_name, function_request_id, …) without Powertools' start-up cost
 * (loading it, building a Logger and middy's middleware was ~20–30 ms of a cold start, measured with
 * bench/coldstart.ts). `addContext` is Powertools' method name, so either logger fits a handler that
 * calls it once per invocation.
 */
export class LambdaLog implements Log {
  private readonly lines: JsonLineLog;
  private context: Record<string, unknown> = {};
  private coldStart = true;

  constructor(options: { serviceName?: string; logLevel?: string; write?: (text: string) => void; env?: NodeJS.ProcessEnv } = {}) {
    const env = options.env ?? process.env;
    this.lines = new JsonLineLog({
      service: options.serviceName ?? env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
      // Lambda's own log-level control wins, as it does for Powertools.
      level: env.AWS_LAMBDA_LOG_LEVEL ?? options.logLevel ?? levelFromEnv(env) ?? 'INFO',
      write: options.write,
    });
  }

  /** The invocation's fields for every line until the next invocation. */
  addContext(context: Context): void {
    const trace = /Root=([^;]+)/.exec(process.env._X_AMZN_TRACE_ID ?? '')?.[1];
    this.context = {
      cold_start: this.coldStart,
      function_arn: context.invokedFunctionArn,
      function_memory_size: Number(context.memoryLimitInMB),
      function_name: context.functionName,
      function_request_id: context.awsRequestId,
      ...(trace ? { xray_trace_id: trace } : {}),
    };
    this.coldStart = false;
  }

  debug(message: string, ...extra: Record<string, unknown>[]): void {
    this.lines.debug(message, this.context, ...extra);
  }

  info(message: string, ...extra: Record<string, unknown>[]): void {
    this.lines.info(message, this.context, ...extra);
  }

  warn(message: string, ...extra: Record<string, unknown>[]): void {
    this.lines.warn(message, this.context, ...extra);
  }

  error(message: string, ...extra: Record<string, unknown>[]): void {
    this.lines.error(message, this.context, ...extra);
  }
}
