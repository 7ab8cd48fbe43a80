import { Attr, type SessionRecord } from '../session-record.js';
import type { PowerOutcome } from '../power/power-ports.js';
import { anchorOf, autoStopLimit, instantOf, isoInstant, START_DEADLINE_MS, type PowerWrite } from '../power/power-plan.js';
import { inWindow, parseSchedule } from '../power/schedule.js';

/**
 * Start and open (desktops on demand): what the portal needs to start a stopped desktop and to tell
 * when it can be opened, as one port with no AWS types, and the decisions on top of it, pure (the clock is
 * an argument) so every rule is a unit test. The adapter is adapters/desktop-start-aws.ts.
 *
 * One start per desktop at a time: the start is claimed first with the power pass's own claim
 * (`PowerStartAt` on the instance's anchor item, a conditional write), and only the writer of the claim
 * calls StartInstances. The pass watches that claim too, and removes it once the desktop is usable.
 */

/** The instance's anchor item (smallest SessionId among its Source=ec2 items): where its runtime state lives. */
export interface StartAnchor {
  readonly sessionId: string;
  /** As read: the condition of the next write. */
  readonly powerStartAt?: string;
}

/** What the host's DCV says: the ids of its sessions, or why that is not known. */
export type DcvAnswer = { readonly ok: true; readonly sessionIds: readonly string[] } | { readonly ok: false; readonly reason: string };

export interface DesktopStartPort {
  /** EC2's state of the instance (`stopped`, `pending`, …); undefined when EC2 does not return it. */
  instanceState(instanceId: string): Promise<string | undefined>;
  /** The instance's anchor item, read consistently; undefined when the table holds no item of it. */
  anchor(instanceId: string): Promise<StartAnchor | undefined>;
  /** One conditional write of PowerStartAt (set or remove), as the power pass writes it. */
  writeClaim(write: PowerWrite): Promise<'written' | 'conflict'>;
  /** StartInstances for this one instance; never throws for an EC2 refusal. */
  start(instanceId: string): Promise<PowerOutcome>;
  /** Discovery for this one instance: its items get its current address and InstanceState now. */
  refresh(instanceId: string): Promise<void>;
  /** The sessions the host's DCV lists (the shipped host script through SSM), waiting until `deadline` at most. */
  dcvSessions(instanceId: string, deadline: number): Promise<DcvAnswer>;
}

/** How long a progress refresh waits for the host's answer: under the page's refresh, well under a request's budget. */
export const DCV_CHECK_MS = 3_500;
/**
 * A claim younger than this belongs to a request that is calling StartInstances right now: a progress view
 * that finds the instance still `stopped` leaves the start to it instead of starting a second time.
 */
export const CLAIM_IN_FLIGHT_MS = 15_000;
/** How long the progress page keeps trying before it says the desktop did not become ready. */
export const READY_DEADLINE_MS = START_DEADLINE_MS;

function claimWrite(instanceId: string, anchor: StartAnchor, now: number): PowerWrite {
  return {
    sessionId: anchor.sessionId,
    instanceId,
    attribute: Attr.PowerStartAt,
    value: isoInstant(now),
    ...(anchor.powerStartAt === undefined ? {} : { read: anchor.powerStartAt }),
  };
}

/** A claim (PowerStartAt as stored) that is set, reads as an instant and is not older than the start deadline. */
export function freshClaim(powerStartAt: string | undefined, now: number): boolean {
  const at = instantOf(powerStartAt);
  return at !== undefined && now - at <= START_DEADLINE_MS;
}

/** Why EC2's state means this instance will not start at all (gone, or being terminated). */
function gone(state: string | undefined): string | undefined {
  if (state === undefined) return 'the instance no longer exists';
  if (state === 'terminated' || state === 'shutting-down') return `the instance is ${state}`;
  return undefined;
}

export type StartRequestPlan =
  /** Nothing can start it. */
  | { readonly kind: 'refuse'; readonly reason: string }
  /** Already running, starting, or a start is in hand: straight to the progress page. */
  | { readonly kind: 'progress' }
  /** Claim; if the claim is written and `start`, StartInstances (a `stopping` instance is started later). */
  | { readonly kind: 'claim'; readonly claim: PowerWrite; readonly start: boolean };

/** POST /portal/start, once the user may start this desktop. */
export function planStartRequest(input: { readonly instanceId: string; readonly state: string | undefined; readonly anchor?: StartAnchor; readonly now: number }): StartRequestPlan {
  const { state, anchor, now } = input;
  const why = gone(state);
  if (why) return { kind: 'refuse', reason: why };
  if (state !== 'stopped' && state !== 'stopping') return { kind: 'progress' };
  if (!anchor) return { kind: 'refuse', reason: 'the desktop is not registered (no discovered item for its instance)' };
  // Someone (another click, another tab, a schedule) holds a live claim: their start, not a second one.
  if (freshClaim(anchor.powerStartAt, now)) return { kind: 'progress' };
  // No claim, or a stale or unreadable one: replace it only if it is still what was read.
  return { kind: 'claim', claim: claimWrite(input.instanceId, anchor, now), start: state === 'stopped' };
}

export type ProgressPlan =
  | { readonly kind: 'failed'; readonly reason: string }
  /** Claim (replacing what was read) and, if written, StartInstances. */
  | { readonly kind: 'start'; readonly claim: PowerWrite }
  | { readonly kind: 'wait'; readonly message: string }
  /** EC2 says running: check the item and the host's DCV. */
  | { readonly kind: 'check-host' };

export const STARTING_MESSAGE = 'Starting the instance';

/** GET /portal/starting/…: what EC2 and the anchor say, before the host is asked anything. */
export function planProgress(input: { readonly instanceId: string; readonly state: string | undefined; readonly anchor?: StartAnchor; readonly now: number }): ProgressPlan {
  const { state, anchor, now } = input;
  const why = gone(state);
  if (why) return { kind: 'failed', reason: why };
  if (state === 'running') return { kind: 'check-host' };
  if (state === 'pending') return { kind: 'wait', message: `${STARTING_MESSAGE} (EC2: pending)` };
  if (state === 'stopping') return { kind: 'wait', message: `${STARTING_MESSAGE} (EC2: stopping; it is started once it has stopped)` };
  if (state === 'stopped') {
    if (!anchor) return { kind: 'failed', reason: 'the desktop is not registered (no discovered item for its instance)' };
    const at = instantOf(anchor.powerStartAt);
    // The claim's writer is calling StartInstances right now: let it.
    if (at !== undefined && now - at >= 0 && now - at < CLAIM_IN_FLIGHT_MS) return { kind: 'wait', message: `${STARTING_MESSAGE} (EC2: stopped)` };
    // Stopped with an older claim (it was `stopping` when clicked) or none: start it, once, through the claim.
    return { kind: 'start', claim: claimWrite(input.instanceId, anchor, now) };
  }
  return { kind: 'wait', message: `${STARTING_MESSAGE} (EC2: ${state})` };
}

export type Readiness = { readonly ready: true } | { readonly ready: false; readonly message: string };

/**
 * Running: a link only when the item resolves (its address and InstanceState are current) AND the host's
 * DCV lists the record's target session; before that the gateway would answer 404, or DCV refuse.
 */
export function readiness(input: { readonly resolves: boolean; readonly resolveReason?: string; readonly target: string; readonly dcv?: DcvAnswer }): Readiness {
  const waiting = 'Instance running, waiting for the DCV server';
  if (!input.resolves) return { ready: false, message: `Instance running, updating the desktop's record (${input.resolveReason ?? 'not usable yet'})` };
  if (!input.dcv) return { ready: false, message: waiting };
  if (!input.dcv.ok) return { ready: false, message: `${waiting} (its state cannot be read yet: ${input.dcv.reason})` };
  if (!input.dcv.sessionIds.includes(input.target)) {
    const listed = input.dcv.sessionIds.length === 0 ? 'no session yet' : `sessions ${input.dcv.sessionIds.slice(0, 5).join(', ')}, not '${input.target}'`;
    return { ready: false, message: `${waiting} (DCV lists ${listed})` };
  }
  return { ready: true };
}

/** Whether the progress page has tried long enough. */
export function timedOut(startedAt: number, now: number): boolean {
  return now - startedAt > READY_DEADLINE_MS;
}

/** A desktop the user may start from the list (not whether this portal can: that is the port's presence). */
export function startable(record: SessionRecord): boolean {
  return record.startOnConnect === true && record.source === 'ec2' && record.instanceId !== undefined && record.pool === undefined;
}

/** The list's state for a desktop whose host is not running. */
export function downLabel(record: SessionRecord, anchor: SessionRecord | undefined, now: number): string {
  if (record.instanceState === 'pending') return 'Starting';
  if (freshClaim(anchor?.powerStartAt ?? record.powerStartAt, now)) return 'Starting';
  if (record.instanceState === 'stopping') return 'Stopping';
  return 'Stopped';
}

/**
 * Each instance's anchor among the records (smallest SessionId of its Source=ec2 records), where the
 * power pass keeps IdleSince and PowerStartAt for all of the instance's desktops.
 */
export function anchorsOf(records: readonly SessionRecord[]): Map<string, SessionRecord> {
  const anchors = new Map<string, SessionRecord>();
  for (const record of records) {
    if (record.source !== 'ec2' || record.instanceId === undefined) continue;
    const held = anchors.get(record.instanceId);
    anchors.set(record.instanceId, held ? anchorOf([held, record])! : record);
  }
  return anchors;
}

function hhmm(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

/**
 * When a running desktop stops if unused, as the power pass decides it: `AutoStopMinutes` (or 15 minutes
 * with only a schedule), counted from IdleSince, never inside a schedule window. The settings are the
 * anchor's (the pass reads them there), else the record's own.
 */
export function stopNote(record: SessionRecord, anchor: SessionRecord | undefined, now: number): string | undefined {
  const settings = anchor ?? record;
  const scheduleText = settings.schedule ?? record.schedule;
  const parsed = scheduleText === undefined ? undefined : parseSchedule(scheduleText);
  const schedule = parsed?.ok ? parsed.schedule : undefined;
  const minutes = autoStopLimit(settings.autoStopMinutes ?? record.autoStopMinutes, schedule !== undefined);
  if (minutes === undefined) return undefined;
  if (schedule && inWindow(schedule, now)) return 'Kept running during its schedule';
  const idleSince = instantOf(anchor?.idleSince ?? record.idleSince);
  if (idleSince === undefined) return `Stops after ${minutes} min with nobody connected`;
  const stopAt = idleSince + minutes * 60_000;
  if (stopAt <= now) return 'Stops within a few minutes if nobody connects';
  return `Stops at ${hhmm(stopAt)} UTC if nobody connects`;
}

/** What an EC2 refusal of the start means for the user, plainly. */
export function startRefusal(outcome: PowerOutcome): string | undefined {
  switch (outcome.outcome) {
    case 'accepted':
      return undefined;
    case 'insufficient-capacity':
      return 'AWS has no capacity for this desktop’s instance type in its zone right now. Try again in a few minutes, or ask your administrator.';
    case 'incorrect-state':
      return `EC2 cannot start the instance in its current state (${outcome.message}). Try again in a minute.`;
    case 'throttled':
      return 'EC2 is refusing requests just now (throttled). Try again in a minute.';
    case 'not-found':
      return 'The desktop’s instance no longer exists. Ask your administrator.';
    case 'failed':
      return `EC2 refused to start the instance (${outcome.code}). Ask your administrator if it keeps happening.`;
  }
}
