import { assertLeaseItem, mayClaim, type LeaseStore, type SessionCatalog } from './portal/session-catalog.js';
import { Attr, LEASE_PREFIX, type RawItem } from './session-record.js';

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
export class MemorySessionStore implements SessionStore, SessionCatalog, LeaseStore {
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

  async list(): Promise<RawItem[]> {
    return [...this.items.values()];
  }

  /** Check and write in one synchronous step: atomic among everything in this process. */
  async claim(item: RawItem, nowSeconds: number): Promise<boolean> {
    assertLeaseItem(item);
    const id = item[Attr.SessionId] as string;
    if (!mayClaim(this.items.get(id), item, nowSeconds)) return false;
    this.items.set(id, item);
    return true;
  }
}

/**
 * Pool leases over a store that cannot take them (the sessions file: the portal must not rewrite an
 * operator's file): lease items live in this process's memory, in front of the base store. `get` answers
 * `lease:` ids from here first, so `serve --sessions FILE` resolves them; `list` is the base's items
 * plus the live leases. Leases end with the process, which only frees hosts early.
 */
export class LeasedSessionStore implements SessionStore, SessionCatalog, LeaseStore {
  private readonly leases = new MemorySessionStore();

  constructor(
    private readonly base: SessionStore & SessionCatalog,
    /** Milliseconds since the epoch; decides which leases `list` still shows. */
    private readonly now: () => number = Date.now,
  ) {}

  async get(sessionId: string): Promise<RawItem | undefined> {
    if (sessionId.startsWith(LEASE_PREFIX)) {
      const lease = await this.leases.get(sessionId);
      if (lease !== undefined) return lease;
    }
    return this.base.get(sessionId);
  }

  async list(): Promise<RawItem[]> {
    const nowSeconds = this.now() / 1000;
    // Expired leases stay in the map (one item per host ever leased, so bounded) until taken over.
    const live = (await this.leases.list()).filter((lease) => (lease[Attr.ExpiresAt] as number) > nowSeconds);
    const leased = new Set(live.map((lease) => lease[Attr.SessionId]));
    const base = (await this.base.list()).filter((item) => !leased.has(item[Attr.SessionId]));
    return [...base, ...live];
  }

  claim(item: RawItem, nowSeconds: number): Promise<boolean> {
    return this.leases.claim(item, nowSeconds);
  }

  close(): Promise<void> | void {
    return this.base.close?.();
  }
}
