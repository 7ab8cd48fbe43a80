import { Attr, POWER_RUNTIME_ATTRIBUTES, type RawItem } from '../session-record.js';
import { isUntouchedSinceDiscovery } from './fingerprint.js';
import type { DesiredRecord, InstanceClaims, InstanceInfo } from './tag-parser.js';

/**
 * The reconcile planner: desired records (from described instances) + the table's current items →
 * the writes that make the table match. Pure and deterministic, so the same inputs always give the
 * same plan (no flapping), and it can be tested without AWS.
 *
 * A `Source = ec2` item whose `DiscoveredHash` is missing or does not match its content was written or
 * edited by hand: it is never changed or removed, no instance gets its session id, and it is reported
 * (kind `edited`) so the operator can settle it (set `Source = manual` to keep it, or delete it).
 */

/** A `Source = ec2` item as read from the table. */
export interface CurrentItem {
  readonly sessionId: string;
  readonly item: RawItem;
  /** Opaque to the core: the store's exact copy, used to make the write conditional on "unchanged since read". */
  readonly token?: unknown;
}

export type Change =
  | { readonly kind: 'add'; readonly sessionId: string; readonly instanceId: string; readonly item: RawItem }
  | {
      readonly kind: 'change';
      readonly sessionId: string;
      readonly instanceId: string;
      readonly item: RawItem;
      readonly previous: CurrentItem;
      /** Attribute names that differ, for the report. */
      readonly changed: readonly string[];
    }
  | {
      readonly kind: 'remove';
      readonly sessionId: string;
      readonly instanceId?: string;
      readonly previous: CurrentItem;
      readonly reason: string;
    };

export type ConflictKind = 'manual' | 'duplicate' | 'held' | 'edited';

export const EDITED_REASON =
  'edited by hand since discovery wrote it; left alone — set Source = manual to keep it, or delete the item to let discovery manage it again';

export interface Conflict {
  readonly kind: ConflictKind;
  readonly sessionId: string;
  /** The instance that did not get the session id; for `edited`, the item's InstanceId (or '-'). */
  readonly instanceId: string;
  readonly reason: string;
}

export interface Unparsable {
  readonly instanceId: string;
  readonly reason: string;
}

/**
 * `full`: the claims cover every tagged instance, so an item whose instance is not among them is stale.
 * A set of instance ids: only these instances were described (event-driven), so only their items may be
 * removed, and an item held by any other instance is left alone.
 */
export type PlanScope = 'full' | ReadonlySet<string>;

export interface PlanInput {
  readonly claims: readonly InstanceClaims[];
  /** Every `Source = ec2` item in the table. */
  readonly current: readonly CurrentItem[];
  /** Session ids of items that are not `Source = ec2` (manual, or anything else): never touched. */
  readonly protectedIds: ReadonlySet<string>;
  readonly scope: PlanScope;
  /** False when the instance scan did not finish: the plan is then empty. */
  readonly complete: boolean;
}

export interface Plan {
  /** True when the scan was incomplete and nothing may be written. */
  readonly aborted: boolean;
  readonly changes: readonly Change[];
  readonly conflicts: readonly Conflict[];
  readonly unparsable: readonly Unparsable[];
  /** Desired items already in the table exactly as wanted. */
  readonly unchanged: number;
}

// DiscoveredHash is a function of the other attributes: for an item discovery wrote (hash matching), equal
// content means an equal hash, so leaving it out only keeps it out of the `changed` list.
// The power runtime attributes are not discovery's to compare (nor to drop: see withRuntimeState).
const IGNORED_IN_COMPARISON = new Set<string>([Attr.UpdatedAt, Attr.DiscoveredHash, ...POWER_RUNTIME_ATTRIBUTES]);

/**
 * The wanted item plus the power runtime attributes of the item it replaces, when the same instance keeps
 * it: a new address after a start must not forget the pending start, the idle clock or the last verification.
 */
function withRuntimeState(wanted: RawItem, previous: RawItem, sameInstance: boolean): RawItem {
  if (!sameInstance) return wanted;
  let out: RawItem | undefined;
  for (const key of POWER_RUNTIME_ATTRIBUTES) {
    if (previous[key] === undefined) continue;
    out ??= { ...wanted };
    out[key] = previous[key];
  }
  return out ?? wanted;
}

/** Attribute names whose values differ between two items, ignoring bookkeeping that changes every write. */
export function differingAttributes(a: RawItem, b: RawItem): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys]
    .filter((key) => !IGNORED_IN_COMPARISON.has(key))
    .filter((key) => canonical(a[key]) !== canonical(b[key]))
    .sort();
}

function canonical(value: unknown): string {
  return JSON.stringify(value) ?? 'undefined';
}

/**
 * A running instance first (a stopped desktops-on-demand instance never takes an id from one that runs),
 * then the earliest launch, then the smallest instance id: a stable order, the same on every run.
 */
export function compareClaimants(a: InstanceInfo, b: InstanceInfo): number {
  const ra = a.state === 'running';
  if (ra !== (b.state === 'running')) return ra ? -1 : 1;
  const ta = a.launchTime ?? Number.POSITIVE_INFINITY;
  const tb = b.launchTime ?? Number.POSITIVE_INFINITY;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0;
}

function ownerOf(current: CurrentItem): string | undefined {
  const id = current.item[Attr.InstanceId];
  return typeof id === 'string' && id !== '' ? id : undefined;
}

function removalReason(owner: string | undefined, claims: ReadonlyMap<string, InstanceClaims>): string {
  if (owner === undefined) return 'item names no instance';
  const claim = claims.get(owner);
  if (!claim) return `instance ${owner} not found among tagged instances`;
  if (claim.instance.state !== 'running') return `instance ${owner} is ${claim.instance.state}`;
  if (!claim.ok) return `instance ${owner} tags do not parse`;
  return `instance ${owner} no longer claims it`;
}

const EMPTY_PLAN = { changes: [], conflicts: [], unparsable: [], unchanged: 0 };

interface Claimant {
  readonly record: DesiredRecord;
  readonly instance: InstanceInfo;
}

/**
 * The planner fed one table item at a time, so a full reconcile of a large fleet never holds the table:
 * an item that is already as wanted is decided on sight and dropped; only the items a write needs (its
 * exact read copy makes the write conditional) stay until the plan is done. Every claim must be known
 * first (the duplicate rule needs them all); each table key must be observed at most once.
 */
export class ReconcilePlanner {
  private readonly claimsByInstance = new Map<string, InstanceClaims>();
  /** Session id → its claimants, winner first. Deleted once an observed item (or a manual id) settles it. */
  private readonly open = new Map<string, Claimant[]>();
  private readonly unparsable: Unparsable[] = [];
  private readonly changes: Change[] = [];
  private readonly conflicts: Conflict[] = [];
  private unchanged = 0;

  constructor(
    claims: readonly InstanceClaims[],
    private readonly scope: PlanScope,
  ) {
    for (const claim of claims) this.claimsByInstance.set(claim.instance.instanceId, claim);
    for (const claim of this.claimsByInstance.values()) {
      if (!claim.ok) {
        this.unparsable.push({ instanceId: claim.instance.instanceId, reason: claim.reason });
        continue;
      }
      for (const record of claim.records) {
        const list = this.open.get(record.sessionId) ?? [];
        list.push({ record, instance: claim.instance });
        this.open.set(record.sessionId, list);
      }
    }
    for (const list of this.open.values()) list.sort((a, b) => compareClaimants(a.instance, b.instance));
  }

  /** Session ids some instance in this run wants. */
  wantedIds(): IterableIterator<string> {
    return this.open.keys();
  }

  private inScope(instanceId: string | undefined): boolean {
    return this.scope === 'full' || (instanceId !== undefined && this.scope.has(instanceId));
  }

  /** An item that is not `Source = ec2`: never touched; any instance claiming its id is told so. */
  observeProtected(sessionId: string): void {
    const list = this.open.get(sessionId);
    if (!list) return;
    this.open.delete(sessionId);
    for (const { instance } of list) {
      this.conflicts.push({
        kind: 'manual',
        sessionId,
        instanceId: instance.instanceId,
        reason: 'a manual item has this session id; the manual item wins',
      });
    }
  }

  /** A `Source = ec2` item as read. */
  observe(current: CurrentItem): void {
    const sessionId = current.sessionId;
    const list = this.open.get(sessionId);
    const owner = ownerOf(current);
    if (!list) {
      // Nobody in this run wants it: stale if its instance was described.
      if (!this.inScope(owner)) return;
      if (!isUntouchedSinceDiscovery(current.item)) {
        // Never removed, even when its instance is stopped, terminated or gone.
        this.reportEdited(current);
        return;
      }
      this.changes.push({ kind: 'remove', sessionId, instanceId: owner, previous: current, reason: removalReason(owner, this.claimsByInstance) });
      return;
    }
    this.open.delete(sessionId);
    if (!isUntouchedSinceDiscovery(current.item)) {
      // Written or edited by hand: nobody gets it, and it is left exactly as it is.
      this.reportEdited(current);
      return;
    }
    if (!this.inScope(owner)) {
      // Event-driven run: the holder was not described, so who should win is unknown; the scheduled
      // full reconcile decides. Leaving it alone never overwrites a rightful owner.
      for (const { instance } of list) {
        this.conflicts.push({
          kind: 'held',
          sessionId,
          instanceId: instance.instanceId,
          reason: `held by instance ${owner}; the next full reconcile decides`,
        });
      }
      return;
    }
    const wanted = this.grant(sessionId, list);
    // Untouched and fingerprinted alike: the same content (the common case of a full run, decided without
    // comparing attribute by attribute).
    if (current.item[Attr.DiscoveredHash] === wanted.item[Attr.DiscoveredHash]) {
      this.unchanged++;
      return;
    }
    const changed = differingAttributes(current.item, wanted.item);
    if (changed.length === 0) this.unchanged++;
    else {
      const item = withRuntimeState(wanted.item, current.item, wanted.instanceId === owner);
      this.changes.push({ kind: 'change', sessionId, instanceId: wanted.instanceId, item, previous: current, changed });
    }
  }

  /** Every item observed: ids nobody holds go to their winners. */
  finish(): Plan {
    for (const [sessionId, list] of this.open) {
      const wanted = this.grant(sessionId, list);
      this.changes.push({ kind: 'add', sessionId, instanceId: wanted.instanceId, item: wanted.item });
    }
    this.open.clear();
    this.changes.sort((a, b) => (a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0));
    this.conflicts.sort((a, b) => a.sessionId.localeCompare(b.sessionId) || a.instanceId.localeCompare(b.instanceId));
    this.unparsable.sort((a, b) => a.instanceId.localeCompare(b.instanceId));
    return { aborted: false, changes: this.changes, conflicts: this.conflicts, unparsable: this.unparsable, unchanged: this.unchanged };
  }

  /** The winner's record; the others are reported as duplicates. */
  private grant(sessionId: string, list: readonly Claimant[]): DesiredRecord {
    const [winner, ...losers] = list;
    for (const loser of losers) {
      this.conflicts.push({
        kind: 'duplicate',
        sessionId,
        instanceId: loser.instance.instanceId,
        reason:
          winner!.instance.state === 'running' && loser.instance.state !== 'running'
            ? `also claimed by ${winner!.instance.instanceId}, which wins (it is running; this instance is ${loser.instance.state})`
            : `also claimed by ${winner!.instance.instanceId}, which wins (earlier launch time, then smaller instance id)`,
      });
    }
    return winner!.record;
  }

  private reportEdited(current: CurrentItem): void {
    this.conflicts.push({ kind: 'edited', sessionId: current.sessionId, instanceId: ownerOf(current) ?? '-', reason: EDITED_REASON });
  }
}

/** The whole plan at once (each table key once in `current` or `protectedIds`). */
export function planReconcile(input: PlanInput): Plan {
  if (!input.complete) return { aborted: true, ...EMPTY_PLAN };
  const planner = new ReconcilePlanner(input.claims, input.scope);
  for (const sessionId of input.protectedIds) planner.observeProtected(sessionId);
  for (const current of input.current) planner.observe(current);
  return planner.finish();
}
