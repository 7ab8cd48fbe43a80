import type { Log } from '../log';
import { Attr } from '../session-record';
import { planReconcile, type Change, type CurrentItem, type Plan, type PlanScope } from './reconcile';
import { DEFAULT_TAG_PREFIX, parseInstanceTags, TagName, type InstanceInfo } from './tag-parser';

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

export interface TableSnapshot {
  readonly current: readonly CurrentItem[];
  readonly protectedIds: ReadonlySet<string>;
}

export type WriteOutcome = { readonly status: 'applied' } | { readonly status: 'skipped'; readonly reason: string };

export interface DiscoveryTable {
  read(): Promise<TableSnapshot>;
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
  /** PutItem calls made (adds and changes attempted). */
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
    const seen: InstanceInfo[] = [];
    let abortReason: string | undefined;
    try {
      let pages = 0;
      for await (const page of this.instances.listTagged(`${this.prefix}${TagName.sessionId}`)) {
        seen.push(...page);
        this.options.onProgress?.({ phase: 'instances', pages: ++pages, instances: seen.length });
      }
    } catch (error) {
      // The fleet was not fully seen: removing "missing" items now could delete live sessions.
      abortReason = `instance listing failed after ${seen.length} instances: ${errorText(error)}`;
      this.options.log.error('discovery aborted; nothing changed', { trigger, reason: abortReason });
    }
    if (abortReason !== undefined) {
      const plan = planReconcile({ claims: [], current: [], protectedIds: new Set(), scope: 'full', complete: false });
      return this.finish(trigger, plan, 0, callsBefore, abortReason);
    }
    const snapshot = await this.readTable();
    const claims = seen.map((instance) => parseInstanceTags(instance, this.prefix));
    const plan = planReconcile({ claims, ...snapshot, scope: 'full', complete: true });
    return this.finish(trigger, plan, seen.length, callsBefore);
  }

  /**
   * Only the named instances (an event named them). The event is a hint: the instances are described
   * again, and an instance EC2 no longer returns has its items removed.
   */
  async reconcileInstances(instanceIds: readonly string[], trigger = 'event'): Promise<DiscoveryResult> {
    const callsBefore = this.instances.calls;
    const described = [...(await this.instances.describe(instanceIds))];
    const snapshot = await this.readTable();
    const scope = new Set(instanceIds);
    let claims = described.map((instance) => parseInstanceTags(instance, this.prefix));

    // A session id these instances want may be held by another instance: describe the holders too, so the
    // duplicate rule (earliest launch, then smallest id) decides here exactly as a full run would.
    const wanted = new Set(claims.flatMap((c) => (c.ok ? c.records.map((r) => r.sessionId) : [])));
    const holders = new Set<string>();
    for (const current of snapshot.current) {
      const holder = current.item[Attr.InstanceId];
      if (wanted.has(current.sessionId) && typeof holder === 'string' && !scope.has(holder)) holders.add(holder);
    }
    if (holders.size > 0) {
      const more = await this.instances.describe([...holders]);
      described.push(...more);
      claims = [...claims, ...more.map((instance) => parseInstanceTags(instance, this.prefix))];
      for (const holder of holders) scope.add(holder);
    }
    const plan = planReconcile({ claims, ...snapshot, scope: scope as PlanScope, complete: true });
    return this.finish(trigger, plan, described.length, callsBefore);
  }

  private async readTable(): Promise<TableSnapshot> {
    const snapshot = await this.table.read();
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
