import { AsyncLocalStorage } from 'node:async_hooks';
import type { Log } from '../core/log';

/**
 * A Log that tags every line written while handling a request with that request's id. The local server
 * handles requests concurrently, so per-request keys cannot live on the shared logger (Powertools'
 * appendKeys is process-wide); AsyncLocalStorage keeps each request's id with its own async chain.
 */
export class RequestScopedLog implements Log {
  private readonly scope = new AsyncLocalStorage<Record<string, unknown>>();

  constructor(private readonly base: Log) {}

  run<T>(keys: Record<string, unknown>, fn: () => T): T {
    return this.scope.run(keys, fn);
  }

  private extra(extra: Record<string, unknown>[]): Record<string, unknown>[] {
    const keys = this.scope.getStore();
    return keys ? [keys, ...extra] : extra;
  }

  debug(message: string, ...extra: Record<string, unknown>[]): void {
    this.base.debug(message, ...this.extra(extra));
  }

  info(message: string, ...extra: Record<string, unknown>[]): void {
    this.base.info(message, ...this.extra(extra));
  }

  warn(message: string, ...extra: Record<string, unknown>[]): void {
    this.base.warn(message, ...this.extra(extra));
  }

  error(message: string, ...extra: Record<string, unknown>[]): void {
    this.base.error(message, ...this.extra(extra));
  }
}
