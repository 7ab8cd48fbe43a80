import { describe, expect, it } from 'vitest';
import {
  anchorsOf,
  CLAIM_IN_FLIGHT_MS,
  downLabel,
  planProgress,
  planStartRequest,
  readiness,
  startable,
  startRefusal,
  stopNote,
  timedOut,
} from '../../lambda/core/portal/desktop-start';
import { releaseClaim } from '../../lambda/core/power/power-plan';
import { parseSessionRecord, type RawItem, type SessionRecord } from '../../lambda/core/session-record';

const T = Date.parse('2026-12-07T10:00:00Z');
const MIN = 60_000;
const ID = 'i-00000000000000001';
const iso = (ms: number) => new Date(ms).toISOString();

function record(item: RawItem): SessionRecord {
  const parsed = parseSessionRecord({ DcvServerEndpoint: '10.0.0.1', ...item });
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.record;
}

describe('planStartRequest (POST /portal/start)', () => {
  const anchor = { sessionId: 'desk-a' };

  it('stopped, no claim: claims (attribute absent) and starts', () => {
    expect(planStartRequest({ instanceId: ID, state: 'stopped', anchor, now: T })).toEqual({
      kind: 'claim',
      claim: { sessionId: 'desk-a', instanceId: ID, attribute: 'PowerStartAt', value: iso(T) },
      start: true,
    });
  });

  it('stopping: claims only (the progress view starts it once stopped)', () => {
    const plan = planStartRequest({ instanceId: ID, state: 'stopping', anchor, now: T });
    expect(plan).toMatchObject({ kind: 'claim', start: false });
  });

  it('a fresh claim (another click, tab or schedule) is joined, never a second start', () => {
    const held = { sessionId: 'desk-a', powerStartAt: iso(T - 9 * MIN) };
    expect(planStartRequest({ instanceId: ID, state: 'stopped', anchor: held, now: T })).toEqual({ kind: 'progress' });
  });

  it('a stale (over 10 min) or unreadable claim is replaced, conditioned on the value read', () => {
    for (const old of [iso(T - 11 * MIN), 'junk']) {
      const plan = planStartRequest({ instanceId: ID, state: 'stopped', anchor: { sessionId: 'desk-a', powerStartAt: old }, now: T });
      expect(plan).toEqual({ kind: 'claim', claim: { sessionId: 'desk-a', instanceId: ID, attribute: 'PowerStartAt', value: iso(T), read: old }, start: true });
    }
  });

  it('running or pending: no claim, no start', () => {
    expect(planStartRequest({ instanceId: ID, state: 'running', anchor, now: T })).toEqual({ kind: 'progress' });
    expect(planStartRequest({ instanceId: ID, state: 'pending', anchor, now: T })).toEqual({ kind: 'progress' });
  });

  it('gone, terminated, or without an anchor item: refused', () => {
    expect(planStartRequest({ instanceId: ID, state: undefined, anchor, now: T })).toMatchObject({ kind: 'refuse', reason: 'the instance no longer exists' });
    expect(planStartRequest({ instanceId: ID, state: 'shutting-down', anchor, now: T })).toMatchObject({ kind: 'refuse' });
    expect(planStartRequest({ instanceId: ID, state: 'stopped', now: T })).toMatchObject({ kind: 'refuse' });
  });

  it('a refused start gives back exactly the claim written', () => {
    const claim = { sessionId: 'desk-a', instanceId: ID, attribute: 'PowerStartAt' as const, value: iso(T) };
    expect(releaseClaim(claim)).toEqual({ sessionId: 'desk-a', instanceId: ID, attribute: 'PowerStartAt', read: iso(T) });
  });
});

describe('planProgress (GET /portal/starting/…)', () => {
  it('pending and stopping wait with the state named; running checks the host', () => {
    expect(planProgress({ instanceId: ID, state: 'pending', now: T })).toEqual({ kind: 'wait', message: 'Starting the instance (EC2: pending)' });
    expect(planProgress({ instanceId: ID, state: 'stopping', now: T })).toMatchObject({ kind: 'wait', message: expect.stringContaining('stopping') });
    expect(planProgress({ instanceId: ID, state: 'running', now: T })).toEqual({ kind: 'check-host' });
  });

  it('stopped with a claim made seconds ago: its writer is starting it, so wait', () => {
    const anchor = { sessionId: 'desk-a', powerStartAt: iso(T - CLAIM_IN_FLIGHT_MS + 1000) };
    expect(planProgress({ instanceId: ID, state: 'stopped', anchor, now: T })).toMatchObject({ kind: 'wait' });
  });

  it('stopped with an older claim (the stopping case) or none: start through a claim conditioned on what was read', () => {
    const older = { sessionId: 'desk-a', powerStartAt: iso(T - 2 * MIN) };
    expect(planProgress({ instanceId: ID, state: 'stopped', anchor: older, now: T })).toEqual({
      kind: 'start',
      claim: { sessionId: 'desk-a', instanceId: ID, attribute: 'PowerStartAt', value: iso(T), read: older.powerStartAt },
    });
    expect(planProgress({ instanceId: ID, state: 'stopped', anchor: { sessionId: 'desk-a' }, now: T })).toEqual({
      kind: 'start',
      claim: { sessionId: 'desk-a', instanceId: ID, attribute: 'PowerStartAt', value: iso(T) },
    });
  });

  it('terminated: failed', () => {
    expect(planProgress({ instanceId: ID, state: 'terminated', now: T })).toMatchObject({ kind: 'failed' });
  });

  it('times out after 10 minutes, not before', () => {
    expect(timedOut(T - 10 * MIN, T)).toBe(false);
    expect(timedOut(T - 10 * MIN - 1, T)).toBe(true);
  });
});

describe('readiness: a link only when the item resolves AND DCV lists the target session', () => {
  it('item not resolving yet: not ready, whatever DCV says', () => {
    expect(readiness({ resolves: false, resolveReason: 'host stopped', target: 'console', dcv: { ok: true, sessionIds: ['console'] } })).toMatchObject({ ready: false });
  });
  it('DCV lists nothing, another session, or cannot be read: waiting for the DCV server, with why', () => {
    const none = readiness({ resolves: true, target: 'console', dcv: { ok: true, sessionIds: [] } });
    expect(none).toEqual({ ready: false, message: 'Instance running, waiting for the DCV server (DCV lists no session yet)' });
    expect(readiness({ resolves: true, target: 'console', dcv: { ok: true, sessionIds: ['other'] } })).toMatchObject({ ready: false, message: expect.stringContaining("not 'console'") });
    expect(readiness({ resolves: true, target: 'console', dcv: { ok: false, reason: 'no answer before the deadline' } })).toMatchObject({
      ready: false,
      message: expect.stringContaining('no answer before the deadline'),
    });
  });
  it('both: ready', () => {
    expect(readiness({ resolves: true, target: 'console', dcv: { ok: true, sessionIds: ['x', 'console'] } })).toEqual({ ready: true });
  });
});

describe('the list: who gets Start and open, and what it says', () => {
  const base = { SessionId: 'desk-a', Source: 'ec2', InstanceId: ID, InstanceState: 'stopped', StartOnConnect: true };

  it('only StartOnConnect=true discovered desktops outside pools are startable', () => {
    expect(startable(record(base))).toBe(true);
    expect(startable(record({ ...base, StartOnConnect: false }))).toBe(false);
    expect(startable(record({ ...base, StartOnConnect: undefined }))).toBe(false);
    expect(startable(record({ ...base, Source: 'manual' }))).toBe(false);
    expect(startable(record({ ...base, Pool: 'gpu' }))).toBe(false);
    expect(startable(record({ ...base, InstanceId: undefined }))).toBe(false);
  });

  it('Stopped / Stopping / Starting (pending, or a fresh claim on the anchor)', () => {
    expect(downLabel(record(base), undefined, T)).toBe('Stopped');
    expect(downLabel(record({ ...base, InstanceState: 'stopping' }), undefined, T)).toBe('Stopping');
    expect(downLabel(record({ ...base, InstanceState: 'pending' }), undefined, T)).toBe('Starting');
    const anchor = record({ ...base, SessionId: 'desk-0', PowerStartAt: iso(T - MIN) });
    expect(downLabel(record(base), anchor, T)).toBe('Starting');
    expect(downLabel(record(base), record({ ...base, PowerStartAt: iso(T - 20 * MIN) }), T)).toBe('Stopped');
  });

  it('anchors: the smallest SessionId of the instance’s ec2 items', () => {
    const anchors = anchorsOf([record({ ...base, SessionId: 'b' }), record({ ...base, SessionId: 'a' }), record({ SessionId: '0', InstanceId: ID })]);
    expect(anchors.get(ID)?.sessionId).toBe('a');
  });

  it('stop note: IdleSince + AutoStopMinutes, else the limit; 15 min with only a schedule outside its windows; nothing inside one', () => {
    const running = { ...base, InstanceState: 'running' };
    expect(stopNote(record({ ...running, AutoStopMinutes: 30, IdleSince: '2026-12-07T09:50:00Z' }), undefined, T)).toBe('Stops at 10:20 UTC if nobody connects');
    expect(stopNote(record({ ...running, AutoStopMinutes: 30 }), undefined, T)).toBe('Stops after 30 min with nobody connected');
    // Sunday-only window: Monday 10:00 is outside it.
    const outside = record({ ...running, Schedule: 'Sun 08:00-18:00 UTC', IdleSince: '2026-12-07T09:55:00Z' });
    expect(stopNote(outside, undefined, T)).toBe('Stops at 10:10 UTC if nobody connects');
    expect(stopNote(record({ ...running, Schedule: 'Mon 08:00-18:00 UTC' }), undefined, T)).toBe('Kept running during its schedule');
    // IdleSince lives on the anchor: the anchor's wins.
    const anchor = record({ ...running, SessionId: 'desk-0', AutoStopMinutes: 60, IdleSince: '2026-12-07T09:30:00Z' });
    expect(stopNote(record({ ...running, AutoStopMinutes: 60 }), anchor, T)).toBe('Stops at 10:30 UTC if nobody connects');
    expect(stopNote(record({ ...running, AutoStopMinutes: 10, IdleSince: '2026-12-07T09:00:00Z' }), undefined, T)).toBe('Stops within a few minutes if nobody connects');
    expect(stopNote(record(running), undefined, T)).toBeUndefined();
  });

  it('EC2 refusals are said plainly', () => {
    expect(startRefusal({ instanceId: ID, outcome: 'insufficient-capacity', message: 'x' })).toMatch(/no capacity/);
    expect(startRefusal({ instanceId: ID, outcome: 'accepted', previousState: 'stopped', currentState: 'pending' })).toBeUndefined();
  });
});

describe('SessionRecord: PowerStartAt and IdleSince are kept only when they read as instants', () => {
  it('kept', () => {
    expect(record({ SessionId: 'a', PowerStartAt: '2026-12-07T09:00:00.000Z', IdleSince: '2026-12-07T08:00:00Z' })).toMatchObject({
      powerStartAt: '2026-12-07T09:00:00.000Z',
      idleSince: '2026-12-07T08:00:00Z',
    });
  });
  it('junk dropped, never malformed', () => {
    const r = record({ SessionId: 'a', PowerStartAt: 'yesterday', IdleSince: 42 });
    expect(r).not.toHaveProperty('powerStartAt');
    expect(r).not.toHaveProperty('idleSince');
  });
});
