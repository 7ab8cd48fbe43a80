import { Attr } from '../session-record.js';
import { hostActivity, parseSignals, type Activity } from './signals.js';
import { inWindow, parseSchedule, windowStartsBetween, type Schedule } from './schedule.js';

/**
 * The power pass's decisions, pure: given what EC2 says of each on-demand instance and what its items
 * say, which instances to start, whose signals to read, which to stop, and what to write on the items.
 * No AWS, no clock (`now` is an argument), so every rule is a unit test.
 *
 * Runtime state lives on one item per instance, its anchor (the smallest SessionId among its discovered
 * items), so the pass writes one item per instance and the same one every time. Every write sets or
 * removes one runtime attribute and is conditional on that attribute still holding what the pass read (and
 * on the item still belonging to the instance): two passes, the CLI and the scheduled function, or an
 * operator's edit in between never lose to a blind write, and the loser of a claim does nothing.
 */

/** A start that has not reached a usable desktop (running, DCV answering with its sessions) by then is stuck. */
export const START_DEADLINE_MS = 10 * 60_000;
/** A stop still `stopping` (or the instance still running) after this is stuck. */
export const STOP_DEADLINE_MS = 10 * 60_000;
/** EC2 answers a start `pending` at once; a start claim on an instance still `stopped` after this failed. */
export const START_GRACE_MS = 2 * 60_000;
/** Outside its windows a scheduled instance without `AutoStopMinutes` stops after this many idle minutes. */
export const SCHEDULED_AUTO_STOP_MINUTES = 15;
/** How far back the current window's start is looked for (a week and a day covers any weekly window). */
const WINDOW_LOOKBACK_MS = 8 * 86_400_000;

export type RuntimeAttribute = typeof Attr.PowerStartAt | typeof Attr.PowerStopAt | typeof Attr.ScheduleStartAt | typeof Attr.IdleSince;

/** One discovered item as the pass reads it (runtime values kept as read: they are the write conditions). */
export interface PowerItem {
  readonly sessionId: string;
  readonly instanceId: string;
  readonly autoStopMinutes?: number;
  readonly startOnConnect?: boolean;
  readonly schedule?: string;
  readonly lastVerifiedAt?: string;
  readonly powerStartAt?: string;
  readonly powerStopAt?: string;
  readonly scheduleStartAt?: string;
  readonly idleSince?: string;
}

/** What EC2 says of the instance. */
export interface PowerInstance {
  readonly instanceId: string;
  readonly state: string;
  /** Epoch ms of the last start (EC2 LaunchTime). */
  readonly launchTime?: number;
  /** `windows`, or absent for Linux. */
  readonly platform?: string;
}

export interface Desktop {
  readonly instance: PowerInstance;
  /** The item that holds the instance's runtime state. */
  readonly anchor: PowerItem;
  readonly schedule?: Schedule;
  /** Idle minutes after which the instance is stopped outside its windows; absent: never idle-stopped. */
  readonly autoStopMinutes?: number;
  /** Latest LastVerifiedAt over the instance's items (epoch ms). */
  readonly lastVerifiedAt?: number;
}

/** Set (value) or remove (no value) one runtime attribute, if it still holds `read`. */
export interface PowerWrite {
  readonly sessionId: string;
  readonly instanceId: string;
  readonly attribute: RuntimeAttribute;
  readonly value?: string;
  readonly read?: string;
}

export type PowerEventKind =
  | 'start-stuck'
  | 'stop-stuck'
  | 'start-failed'
  | 'signals-unknown'
  | 'started'
  | 'stopped'
  | 'kept-running';

/** Something an operator should see in the log (and, for most kinds, in a metric). */
export interface PowerEvent {
  readonly instanceId: string;
  readonly kind: PowerEventKind;
  readonly message: string;
  /** For signals-unknown: why (an SSM cause, `unreadable`, `windows`). */
  readonly cause?: string;
}

export type ReadPurpose = 'idle' | 'start-check';

export interface DesktopPlan {
  readonly writes: PowerWrite[];
  readonly events: PowerEvent[];
  /** Start now: the claim (PowerStartAt) goes first; the start happens only if it wins. */
  readonly start?: { readonly reason: string; readonly claim: PowerWrite; readonly alsoWrite: readonly PowerWrite[] };
  /** Read the host's signals for these purposes. */
  readonly read: readonly ReadPurpose[];
}

/** How runtime attributes store an instant: ISO 8601 UTC text. */
export const isoInstant = (ms: number) => new Date(ms).toISOString();

/** A runtime attribute's instant (epoch ms), or undefined when absent or not a date. */
export function instantOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : undefined;
}

/** The instance's anchor among its discovered items: the smallest SessionId (the pass and the portal agree on it). */
export function anchorOf<T extends { readonly sessionId: string }>(items: readonly T[]): T | undefined {
  let anchor: T | undefined;
  for (const item of items) if (anchor === undefined || item.sessionId < anchor.sessionId) anchor = item;
  return anchor;
}

/** Idle minutes before a stop outside the windows: AutoStopMinutes, else 15 with a schedule, else never. */
export function autoStopLimit(autoStopMinutes: number | undefined, scheduled: boolean): number | undefined {
  return autoStopMinutes ?? (scheduled ? SCHEDULED_AUTO_STOP_MINUTES : undefined);
}

function write(desktop: Desktop, attribute: RuntimeAttribute, value: string | undefined, read: string | undefined): PowerWrite {
  return {
    sessionId: desktop.anchor.sessionId,
    instanceId: desktop.instance.instanceId,
    attribute,
    ...(value === undefined ? {} : { value }),
    ...(read === undefined ? {} : { read }),
  };
}

/**
 * The instance's desktop: its anchor item, and its settings from that item (discovery copies them from
 * the tags; an operator's edit of the item wins, as everywhere else). An unparsable schedule on an item
 * (only a hand edit can put one there) makes the instance unmanaged this pass, with the reason.
 */
export function desktopOf(instance: PowerInstance, items: readonly PowerItem[]): { ok: true; desktop: Desktop } | { ok: false; reason: string } {
  const anchor = anchorOf(items);
  if (anchor === undefined) return { ok: false, reason: 'no discovered item in the table (not registered: check its session-id tag, or run discover)' };
  let schedule: Schedule | undefined;
  if (anchor.schedule !== undefined) {
    const parsed = parseSchedule(anchor.schedule);
    if (!parsed.ok) return { ok: false, reason: `item '${anchor.sessionId}': Schedule ${parsed.reason}` };
    schedule = parsed.schedule;
  }
  const verified = items.map((i) => instantOf(i.lastVerifiedAt)).filter((ms): ms is number => ms !== undefined);
  const autoStopMinutes = autoStopLimit(anchor.autoStopMinutes, schedule !== undefined);
  return {
    ok: true,
    desktop: {
      instance,
      anchor,
      ...(schedule ? { schedule } : {}),
      ...(autoStopMinutes === undefined ? {} : { autoStopMinutes }),
      ...(verified.length > 0 ? { lastVerifiedAt: Math.max(...verified) } : {}),
    },
  };
}

/** The start of the schedule window open at `at`, or undefined outside every window. */
export function currentWindowStart(schedule: Schedule, at: number): number | undefined {
  if (!inWindow(schedule, at)) return undefined;
  const starts = windowStartsBetween(schedule, at - WINDOW_LOOKBACK_MS, at);
  // Open with no start in the lookback: a window that began before it (only possible for a 24h window every day).
  return starts.length > 0 ? starts[starts.length - 1] : at - WINDOW_LOOKBACK_MS;
}

export interface PlanClock {
  /** Now, for deadlines and idle time. */
  readonly now: number;
  /** The instant schedules are evaluated at (`--at` in a dry run; otherwise now). */
  readonly scheduleAt: number;
}

/** Phase one: from EC2 and the items alone, before any host is asked anything. */
export function planDesktop(desktop: Desktop, clock: PlanClock): DesktopPlan {
  const { instance, anchor } = desktop;
  const id = instance.instanceId;
  const { now } = clock;
  const writes: PowerWrite[] = [];
  const events: PowerEvent[] = [];
  const read: ReadPurpose[] = [];
  const linux = instance.platform !== 'windows';
  const state = instance.state;

  // A stop the pass asked for.
  const stopAt = instantOf(anchor.powerStopAt);
  if (anchor.powerStopAt !== undefined) {
    if (state === 'stopped' || state === 'pending' || stopAt === undefined) {
      // Done (or overtaken by a start, or junk): the claim has served.
      writes.push(write(desktop, Attr.PowerStopAt, undefined, anchor.powerStopAt));
    } else if (now - stopAt > STOP_DEADLINE_MS) {
      const minutes = Math.round((now - stopAt) / 60_000);
      events.push({ instanceId: id, kind: 'stop-stuck', message: `stop requested ${minutes} min ago (${anchor.powerStopAt}) and the instance is still ${state}` });
      if (state === 'running') {
        // EC2 accepted a stop that never happened: drop the claim so the next pass decides afresh.
        writes.push(write(desktop, Attr.PowerStopAt, undefined, anchor.powerStopAt));
      }
    }
  }

  // A start someone asked for (a schedule window, or the portal).
  const startAt = instantOf(anchor.powerStartAt);
  if (anchor.powerStartAt !== undefined) {
    const age = startAt === undefined ? Infinity : now - startAt;
    const late = age > START_DEADLINE_MS;
    const minutes = Math.round(age / 60_000);
    if (startAt === undefined) {
      writes.push(write(desktop, Attr.PowerStartAt, undefined, anchor.powerStartAt));
    } else if (state === 'running') {
      // Running is all the pass can know of a Windows host.
      if (!linux) writes.push(write(desktop, Attr.PowerStartAt, undefined, anchor.powerStartAt));
      else read.push('start-check');
    } else if (state === 'pending') {
      if (late) events.push({ instanceId: id, kind: 'start-stuck', message: `start requested ${minutes} min ago (${anchor.powerStartAt}) and the instance is still pending` });
    } else if (state === 'stopped' && age > START_GRACE_MS) {
      events.push({ instanceId: id, kind: 'start-failed', message: `start requested ${minutes} min ago (${anchor.powerStartAt}) and the instance is stopped again; not retried` });
      writes.push(write(desktop, Attr.PowerStartAt, undefined, anchor.powerStartAt));
    } else if (state === 'stopping' && late) {
      events.push({ instanceId: id, kind: 'start-stuck', message: `start requested ${minutes} min ago (${anchor.powerStartAt}) and the instance is still stopping` });
    }
  }

  // Schedules: start once per window, never idle-stop inside one.
  let inside = false;
  let start: DesktopPlan['start'];
  if (desktop.schedule) {
    const windowStart = currentWindowStart(desktop.schedule, clock.scheduleAt);
    inside = windowStart !== undefined;
    if (windowStart !== undefined && anchor.scheduleStartAt !== isoInstant(windowStart)) {
      const mark = write(desktop, Attr.ScheduleStartAt, isoInstant(windowStart), anchor.scheduleStartAt);
      // A claim present (even one this pass removes) means a start is already in hand: one start at a time.
      if (state === 'stopped' && anchor.powerStartAt === undefined) {
        start = {
          reason: `schedule window opened at ${isoInstant(windowStart)}`,
          claim: write(desktop, Attr.PowerStartAt, isoInstant(now), undefined),
          alsoWrite: [mark],
        };
      } else if (state === 'running' || state === 'pending') {
        // Already up at the window's start: this window is served (a later stop by its user is respected).
        writes.push(mark);
      }
      // stopping: left for the next pass, which starts it once it has stopped.
    }
  }

  // Idle stop: running, outside any window, with an idle limit, and no stop claim (a stale one is removed
  // above and the next pass decides afresh).
  const minutes = desktop.autoStopMinutes;
  if (state === 'running' && !inside && minutes !== undefined && anchor.powerStopAt === undefined) {
    const limit = minutes * 60_000;
    // The instance's start and the last verified token bound idleness from below: no read is needed yet.
    const knownActive = Math.max(instance.launchTime ?? -Infinity, desktop.lastVerifiedAt ?? -Infinity);
    if (now - knownActive >= limit) {
      if (linux) read.push('idle');
      else
        events.push({
          instanceId: id,
          kind: 'signals-unknown',
          cause: 'windows',
          message: 'Windows host: its DCV signals are not read (Linux hosts only), so it is never idle-stopped',
        });
    }
  }
  if (state !== 'running' && anchor.idleSince !== undefined) writes.push(write(desktop, Attr.IdleSince, undefined, anchor.idleSince));

  return { writes, events, read, ...(start ? { start } : {}) };
}

/** A host's answer as the pass got it: its stdout, or why there is none (an SSM cause and reason). */
export type SignalAnswer = { readonly ok: true; readonly stdout: string } | { readonly ok: false; readonly cause: string; readonly reason: string };

export interface SignalsAssessment {
  readonly writes: PowerWrite[];
  readonly events: PowerEvent[];
  readonly activity?: Activity;
  /** Idle for at least the limit: confirm with a second read, then stop. */
  readonly stopCandidate: boolean;
}

function activityOf(desktop: Desktop, answer: SignalAnswer, now: number): Activity {
  return hostActivity({
    output: answer.ok ? { ok: true, text: answer.stdout } : { ok: false, reason: answer.reason },
    ...(desktop.instance.launchTime === undefined ? {} : { instanceStartedAt: desktop.instance.launchTime }),
    ...(desktop.lastVerifiedAt === undefined ? {} : { lastVerifiedAt: desktop.lastVerifiedAt }),
    now,
  });
}

/** True when the host's DCV answered with at least one session: the desktop can be connected to. */
export function dcvReady(answer: SignalAnswer): boolean {
  if (!answer.ok) return false;
  const parsed = parseSignals(answer.stdout);
  return parsed.ok && parsed.signals.errors.length === 0 && (parsed.signals.sessions?.length ?? 0) > 0;
}

/** Phase two: what the host's first answer means. */
export function assessSignals(desktop: Desktop, purposes: readonly ReadPurpose[], answer: SignalAnswer, now: number): SignalsAssessment {
  const { anchor, instance } = desktop;
  const id = instance.instanceId;
  const writes: PowerWrite[] = [];
  const events: PowerEvent[] = [];
  if (purposes.includes('start-check') && anchor.powerStartAt !== undefined) {
    const startAt = instantOf(anchor.powerStartAt) ?? 0;
    if (dcvReady(answer)) {
      events.push({ instanceId: id, kind: 'started', message: `usable ${Math.round((now - startAt) / 1000)} s after the start was requested (DCV reports its sessions)` });
      writes.push(write(desktop, Attr.PowerStartAt, undefined, anchor.powerStartAt));
    } else if (now - startAt > START_DEADLINE_MS) {
      const why = answer.ok ? 'DCV does not report a session yet' : answer.reason;
      events.push({
        instanceId: id,
        kind: 'start-stuck',
        message: `running but not usable ${Math.round((now - startAt) / 60_000)} min after the start was requested (${why}); no longer watched`,
      });
      writes.push(write(desktop, Attr.PowerStartAt, undefined, anchor.powerStartAt));
    }
  }
  if (!purposes.includes('idle')) return { writes, events, stopCandidate: false };

  const activity = activityOf(desktop, answer, now);
  if (activity.state !== 'idle') {
    if (activity.state === 'unknown') {
      events.push({ instanceId: id, kind: 'signals-unknown', cause: answer.ok ? 'unreadable' : answer.cause, message: `not idle-stopped: ${activity.reason}` });
    }
    if (anchor.idleSince !== undefined) writes.push(write(desktop, Attr.IdleSince, undefined, anchor.idleSince));
    return { writes, events, activity, stopCandidate: false };
  }
  const since = isoInstant(activity.since);
  if (anchor.idleSince !== since) writes.push(write(desktop, Attr.IdleSince, since, anchor.idleSince));
  const stopCandidate = desktop.autoStopMinutes !== undefined && activity.idleMs >= desktop.autoStopMinutes * 60_000;
  return { writes, events, activity, stopCandidate };
}

/** Phase three: the second read, immediately before StopInstances. Stop only if still idle past the limit. */
export function confirmStop(desktop: Desktop, answer: SignalAnswer, now: number): { stop: true; reason: string; claim: PowerWrite } | { stop: false; reason: string } {
  const activity = activityOf(desktop, answer, now);
  const minutes = desktop.autoStopMinutes;
  if (activity.state !== 'idle') return { stop: false, reason: `not stopped: ${activity.state === 'in-use' ? `in use again (${activity.reason})` : activity.reason}` };
  if (minutes === undefined || activity.idleMs < minutes * 60_000) return { stop: false, reason: `not stopped: ${activity.reason}, under ${minutes} min` };
  return {
    stop: true,
    reason: `no DCV client for ${Math.floor(activity.idleMs / 60_000)} min (limit ${minutes}): ${activity.reason}`,
    // planDesktop asks for an idle read only when there is no stop claim.
    claim: write(desktop, Attr.PowerStopAt, isoInstant(now), undefined),
  };
}

/** The write that undoes a claim the pass itself made (after EC2 refused the start or stop). */
export function releaseClaim(claim: PowerWrite): PowerWrite {
  return { sessionId: claim.sessionId, instanceId: claim.instanceId, attribute: claim.attribute, ...(claim.value === undefined ? {} : { read: claim.value }) };
}
