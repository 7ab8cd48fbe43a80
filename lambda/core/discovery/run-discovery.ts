import type { Log } from '../log.js';
import { Attr } from '../session-record.js';
import { planReconcile, ReconcilePlanner, type Change, type CurrentItem, type Plan } from './reconcile.js';
import { DEFAULT_TAG_PREFIX, parseInstanceTags, TagName, type InstanceClaims, type InstanceInfo } from './tag-parser.js';

/**
 * Discovery as a service over two ports (EC2 and the table), so the Lambda handler, the CLI and the
 * benchmarks run exactly the same steps: read instances → read table → plan → conditional writes.
 */
export interface InstanceSource {
  /** Every instance carrying `tagKey`, page by page. Throws when the listing cannot be finished. */
  listTagged(tagKey: string): AsyncIterable<readonly InstanceInfo[]>;
  /** The named instances as EC2 sees them now (any state, any tags); an id not returned is gone. */
  describe(instanceIds: readonly string[]): Promise<readonly InstanceInfo[]>;
  /** DescribeInstances requests made so far (page retries included; the SDK's own retries are not seen). */
  readonly calls: number;
}

/** Table items as read: `Source = ec2` items in full, every other item's key only (never touched). */
export interface TableSnapshot {
  readonly current: readonly CurrentItem[];
  readonly protectedIds: ReadonlySet<string>;
}

export interface ScopedRead {
  /** Items these instances hold (their `InstanceId`), wherever a lagging index lets us find them. */
  readonly instanceIds: readonly string[];
  /** Items with these keys, whoever holds them: read strongly consistent. */
  readonly sessionIds: readonly string[];
}

export type WriteOutcome = { readonly status: 'applied' } | { readonly status: 'skipped'; readonly reason: string };

export interface DiscoveryTable {
  /** Every item, page by page, strongly consistent (a full reconcile). Throws when a page cannot be read. */
  scan(): AsyncIterable<TableSnapshot>;
  /**
   * Just what an event run needs: the items the named instances hold and the items with the named keys.
   * Item content is read strongly consistent; finding an instance's items may lag a write by a moment
   * (an index): such an item is then left for the next full reconcile, never wrongly written.
   */
  readScoped(request: ScopedRead): Promise<TableSnapshot>;
  /**
   * One conditional write. Resolves `skipped` when the item is no longer what the plan saw (a manual item
   * appeared, an operator edited it); throws for anything else.
   */
  apply(change: Change, updatedAt: string): Promise<WriteOutcome>;
}

export interface DiscoveryOptions {
  readonly tagPrefix?: string;
  readonly dryRun?: boolean;
  /** Conditional writes in flight at once. @default 16 */
  readonly writeConcurrency?: number;
  readonly log: Log;
  readonly now?: () => number;
  readonly onProgress?: (progress: DiscoveryProgress) => void;
}

export type DiscoveryProgress =
  | { readonly phase: 'instances'; readonly pages: number; readonly instances: number }
  | { readonly phase: 'table'; readonly items: number }
  | { readonly phase: 'writes'; readonly done: number; readonly total: number };

export interface ChangeOutcome {
  readonly change: Change;
  readonly reason: string;
}

export interface DiscoveryCounts {
  readonly instances: number;
  readonly added: number;
  readonly changed: number;
  readonly removed: number;
  readonly unchanged: number;
  readonly conflicts: number;
  readonly unparsable: number;
  readonly skipped: number;
  readonly failed: number;
  /** Adds and changes attempted (a PutItem for a new item, an UpdateItem for a change). */
  readonly puts: number;
  /** DeleteItem calls made. */
  readonly deletes: number;
  readonly ec2Calls: number;
}

export interface DiscoveryResult {
  readonly trigger: string;
  readonly dryRun: boolean;
  /** Set when the instance listing failed part-way: nothing was written. */
  readonly abortReason?: string;
  readonly plan: Plan;
  readonly applied: readonly Change[];
  readonly skipped: readonly ChangeOutcome[];
  readonly failed: readonly ChangeOutcome[];
  readonly counts: DiscoveryCounts;
}

const DEFAULT_WRITE_CONCURRENCY = 16;

export class DiscoveryService {
  private readonly prefix: string;
  private readonly now: () => number;

  constructor(
    private readonly instances: InstanceSource,
    private readonly table: DiscoveryTable,
    private readonly options: DiscoveryOptions,
  ) {
    this.prefix = options.tagPrefix ?? DEFAULT_TAG_PREFIX;
    this.now = options.now ?? Date.now;
  }

  /** Every tagged instance against every discovered item: the only run that removes items of gone instances. */
  async reconcileAll(trigger = 'full'): Promise<DiscoveryResult> {
    const callsBefore = this.instances.calls;
    const claims: InstanceClaims[] = [];
    let abortReason: string | undefined;
    try {
      let pages = 0;
      for await (const page of this.instances.listTagged(`${this.prefix}${TagName.sessionId}`)) {
        // Parsed page by page and kept compact: a big fleet's tags and addresses never pile up.
        for (const instance of page) claims.push(compactClaims(parseInstanceTags(instance, this.prefix)));
        this.options.onProgress?.({ phase: 'instances', pages: ++pages, instances: claims.length });
      }
    } catch (error) {
      // The fleet was not fully seen: removing "missing" items now could delete live sessions.
      abortReason = `instance listing failed after ${claims.length} instances: ${errorText(error)}`;
      this.options.log.error('discovery aborted; nothing changed', { trigger, reason: abortReason });
    }
    if (abortReason !== undefined) {
      const plan = planReconcile({ claims: [], current: [], protectedIds: new Set(), scope: 'full', complete: false });
      return this.finish(trigger, plan, 0, callsBefore, abortReason);
    }
    const instances = claims.length;
    const planner = new ReconcilePlanner(claims, 'full');
    claims.length = 0;
    let items = 0;
    // The table streams through the planner: an item already as wanted is dropped as soon as it is seen.
    for await (const page of this.table.scan()) {
      for (const sessionId of page.protectedIds) planner.observeProtected(sessionId);
      for (const current of page.current) planner.observe(current);
      items += page.current.length + page.protectedIds.size;
      this.options.onProgress?.({ phase: 'table', items });
    }
    return this.finish(trigger, planner.finish(), instances, callsBefore);
  }

  /**
   * Only the named instances (an event named them). The event is a hint: the instances are described
   * again, and an instance EC2 no longer returns has its items removed. Reads only the items these
   * instances hold or want, never the whole table.
   */
  async reconcileInstances(instanceIds: readonly string[], trigger = 'event'): Promise<DiscoveryResult> {
    const callsBefore = this.instances.calls;
    const scope = new Set(instanceIds);
    const described = [...(await this.instances.describe(instanceIds))];
    let claims = described.map((instance) => parseInstanceTags(instance, this.prefix));
    const wanted = wantedIds(claims);
    let snapshot = await this.readScoped({ instanceIds: [...scope], sessionIds: [...wanted] });

    // A session id these instances want may be held by another instance: describe the holders too, so the
    // duplicate rule (earliest launch, then smallest id) decides here exactly as a full run would.
    const holders = new Set<string>();
    for (const current of snapshot.current) {
      const holder = current.item[Attr.InstanceId];
      if (wanted.has(current.sessionId) && typeof holder === 'string' && !scope.has(holder)) holders.add(holder);
    }
    if (holders.size > 0) {
      const more = await this.instances.describe([...holders]);
      described.push(...more);
      const moreClaims = more.map((instance) => parseInstanceTags(instance, this.prefix));
      claims = [...claims, ...moreClaims];
      for (const holder of holders) scope.add(holder);
      const alreadyRead = new Set([...snapshot.current.map((c) => c.sessionId), ...snapshot.protectedIds]);
      const extra = await this.readScoped({
        instanceIds: [...holders],
        sessionIds: [...wantedIds(moreClaims)].filter((id) => !alreadyRead.has(id)),
      });
      snapshot = mergeSnapshots(snapshot, extra);
    }
    const plan = planReconcile({ claims, ...snapshot, scope, complete: true });
    return this.finish(trigger, plan, described.length, callsBefore);
  }

  private async readScoped(request: ScopedRead): Promise<TableSnapshot> {
    const snapshot = await this.table.readScoped(request);
    this.options.onProgress?.({ phase: 'table', items: snapshot.current.length + snapshot.protectedIds.size });
    return snapshot;
  }

  private async finish(
    trigger: string,
    plan: Plan,
    instances: number,
    callsBefore: number,
    abortReason?: string,
  ): Promise<DiscoveryResult> {
    const dryRun = this.options.dryRun ?? false;
    const applied: Change[] = [];
    const skipped: ChangeOutcome[] = [];
    const failed: ChangeOutcome[] = [];
    let puts = 0;
    let deletes = 0;
    if (!dryRun && !plan.aborted) {
      const updatedAt = new Date(this.now()).toISOString();
      let done = 0;
      await forEachLimited(plan.changes, this.options.writeConcurrency ?? DEFAULT_WRITE_CONCURRENCY, async (change) => {
        if (change.kind === 'remove') deletes++;
        else puts++;
        try {
          const outcome = await this.table.apply(change, updatedAt);
          if (outcome.status === 'applied') applied.push(change);
          else skipped.push({ change, reason: outcome.reason });
        } catch (error) {
          failed.push({ change, reason: errorText(error) });
        }
        this.options.onProgress?.({ phase: 'writes', done: ++done, total: plan.changes.length });
      });
    }
    this.logOutcome(trigger, plan, skipped, failed);
    const visible = dryRun ? plan.changes : applied;
    const result: DiscoveryResult = {
      trigger,
      dryRun,
      abortReason,
      plan,
      applied: sortChanges(applied),
      skipped: skipped.sort((a, b) => compareIds(a.change.sessionId, b.change.sessionId)),
      failed: failed.sort((a, b) => compareIds(a.change.sessionId, b.change.sessionId)),
      counts: {
        instances,
        added: visible.filter((c) => c.kind === 'add').length,
        changed: visible.filter((c) => c.kind === 'change').length,
        removed: visible.filter((c) => c.kind === 'remove').length,
        unchanged: plan.unchanged,
        conflicts: plan.conflicts.length,
        unparsable: plan.unparsable.length,
        skipped: skipped.length,
        failed: failed.length,
        puts,
        deletes,
        ec2Calls: this.instances.calls - callsBefore,
      },
    };
    this.options.log.info('discovery finished', { trigger, dryRun, ...result.counts });
    return result;
  }

  private logOutcome(trigger: string, plan: Plan, skipped: ChangeOutcome[], failed: ChangeOutcome[]): void {
    const log = this.options.log;
    for (const u of plan.unparsable) log.warn('instance tags do not parse; nothing registered', { trigger, ...u });
    for (const c of plan.conflicts) {
      log.warn(c.kind === 'edited' ? 'discovered item edited by hand; left alone' : 'session id conflict', { trigger, ...c });
    }
    for (const s of skipped) log.warn('write skipped: item changed since it was read', { trigger, sessionId: s.change.sessionId, reason: s.reason });
    for (const f of failed) log.error('write failed', { trigger, sessionId: f.change.sessionId, kind: f.change.kind, reason: f.reason });
  }
}

/** The claim without the instance's tags and addresses (already turned into records): what planning needs. */
export function compactClaims(claims: InstanceClaims): InstanceClaims {
  const { instanceId, state, launchTime } = claims.instance;
  const instance: InstanceInfo = launchTime === undefined ? { instanceId, state, tags: NO_TAGS } : { instanceId, state, launchTime, tags: NO_TAGS };
  return { ...claims, instance };
}

const NO_TAGS: Readonly<Record<string, string>> = Object.freeze({});

function wantedIds(claims: readonly InstanceClaims[]): Set<string> {
  return new Set(claims.flatMap((c) => (c.ok ? c.records.map((r) => r.sessionId) : [])));
}

/** Two reads of the table for one plan: a key read twice takes the later copy (it is the newer). */
export function mergeSnapshots(first: TableSnapshot, later: TableSnapshot): TableSnapshot {
  const current = new Map(first.current.map((c) => [c.sessionId, c]));
  const protectedIds = new Set(first.protectedIds);
  for (const id of later.protectedIds) {
    current.delete(id);
    protectedIds.add(id);
  }
  for (const c of later.current) {
    protectedIds.delete(c.sessionId);
    current.set(c.sessionId, c);
  }
  return { current: [...current.values()], protectedIds };
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortChanges(changes: Change[]): Change[] {
  return changes.sort((a, b) => compareIds(a.sessionId, b.sessionId));
}

function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/** Runs `work` over `items` with at most `limit` in flight. */
export async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}
