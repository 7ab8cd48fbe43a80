import type { RawItem } from './session-record';

/**
 * Where session records live. Adapters: DynamoDB, a JSON file, memory (tests and benchmarks).
 * A store returns items as they are stored; the resolver validates them, so every store gets the same
 * rules. A store throws (any error) when it cannot answer; the resolver turns that into a 503.
 */
export interface SessionStore {
  get(sessionId: string): Promise<RawItem | undefined>;
  close?(): Promise<void> | void;
}

/** A store over a plain list of items, keyed by SessionId. */
export class MemorySessionStore implements SessionStore {
  private readonly items = new Map<string, RawItem>();

  constructor(items: Iterable<RawItem> = []) {
    for (const item of items) this.put(item);
  }

  put(item: RawItem): void {
    this.items.set(String(item.SessionId), item);
  }

  delete(sessionId: string): void {
    this.items.delete(sessionId);
  }

  async get(sessionId: string): Promise<RawItem | undefined> {
    return this.items.get(sessionId);
  }
}
