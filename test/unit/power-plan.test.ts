import { describe, expect, it } from 'vitest';
import {
  assessSignals,
  confirmStop,
  currentWindowStart,
  desktopOf,
  planDesktop,
  releaseClaim,
  SCHEDULED_AUTO_STOP_MINUTES,
  type Desktop,
  type PowerInstance,
  type PowerItem,
} from '../../lambda/core/power/power-plan';
import { parseSchedule } from '../../lambda/core/power/schedule';

const MIN = 60_000;
const NOW = Date.parse('2026-12-07T12:00:00Z'); // a Monday
const iso = (ms: number) => new Date(ms).toISOString();

function desktop(instance: Partial<PowerInstance>, items: Partial<PowerItem>[] = [{}]): Desktop {
  const made = desktopOf(
    { instanceId: 'i-0000000000000000a', state: 'running', launchTime: NOW - 600 * MIN, ...instance },
    items.map((item, i) => ({ sessionId: `s${i}`, instanceId: 'i-0000000000000000a', ...item })),
  );
  if (!made.ok) throw new Error(made.reason);
  return made.desktop;
}

const clock = (now = NOW, scheduleAt = now) => ({ now, scheduleAt });

function signalsLine(sessions: [string, number, string, string][], gpu: number[] | null = null, errors: string[] = []): string {
  return `${JSON.stringify({
    v: 1,
    sessions: sessions.map(([id, n, created, left]) => ({ id, 'num-of-connections': n, 'creation-time': created, 'last-disconnection-time': left })),
    gpu,
    errors,
  })}\n`;
}

const longAgo = iso(NOW - 500 * MIN);

describe('desktopOf', () => {
  it('anchors on the smallest session id, takes the latest verification, defaults a schedule to 15 idle minutes', () => {
    const made = desktopOf({ instanceId: 'i-1', state: 'running' }, [
      { sessionId: 'zeta', instanceId: 'i-1', lastVerifiedAt: iso(NOW - 5 * MIN) },
      { sessionId: 'alpha', instanceId: 'i-1', schedule: 'Mon-Fri 08:00-19:00 Europe/Paris', lastVerifiedAt: iso(NOW - 50 * MIN) },
    ]);
    expect(made.ok).toBe(true);
    if (!made.ok) return;
    expect(made.desktop.anchor.sessionId).toBe('alpha');
    expect(made.desktop.lastVerifiedAt).toBe(NOW - 5 * MIN);
    expect(made.desktop.autoStopMinutes).toBe(SCHEDULED_AUTO_STOP_MINUTES);
  });

  it('refuses an instance with no items, or a hand-edited schedule that does not parse', () => {
    expect(desktopOf({ instanceId: 'i-1', state: 'running' }, []).ok).toBe(false);
    const bad = desktopOf({ instanceId: 'i-1', state: 'running' }, [{ sessionId: 'a', instanceId: 'i-1', schedule: 'weekdays' }]);
    expect(bad).toMatchObject({ ok: false, reason: expect.stringContaining('Schedule') });
  });
});

describe('planDesktop: idle candidates', () => {
  it('reads a running auto-stop host whose start and last verification are both older than the limit', () => {
    expect(planDesktop(desktop({}, [{ autoStopMinutes: 30 }]), clock()).read).toEqual(['idle']);
  });

  it('does not read a host started, or verified, within the limit (it cannot be idle long enough yet)', () => {
    expect(planDesktop(desktop({ launchTime: NOW - 10 * MIN }, [{ autoStopMinutes: 30 }]), clock()).read).toEqual([]);
    expect(planDesktop(desktop({}, [{ autoStopMinutes: 30, lastVerifiedAt: iso(NOW - 29 * MIN) }]), clock()).read).toEqual([]);
  });

  it('never reads a host without an idle limit, one being stopped, or one not running', () => {
    expect(planDesktop(desktop({}, [{ startOnConnect: true }]), clock()).read).toEqual([]);
    expect(planDesktop(desktop({}, [{ autoStopMinutes: 30, powerStopAt: iso(NOW - MIN) }]), clock()).read).toEqual([]);
    expect(planDesktop(desktop({ state: 'stopped' }, [{ autoStopMinutes: 30 }]), clock()).read).toEqual([]);
  });

  it('treats a Windows host as signals unknown: never read, never stopped, and says so', () => {
    const plan = planDesktop(desktop({ platform: 'windows' }, [{ autoStopMinutes: 30 }]), clock());
    expect(plan.read).toEqual([]);
    expect(plan.events).toEqual([expect.objectContaining({ kind: 'signals-unknown', cause: 'windows' })]);
  });

  it('removes IdleSince once the instance is not running', () => {
    const plan = planDesktop(desktop({ state: 'stopped' }, [{ autoStopMinutes: 30, idleSince: longAgo }]), clock());
    expect(plan.writes).toEqual([{ sessionId: 's0', instanceId: 'i-0000000000000000a', attribute: 'IdleSince', read: longAgo }]);
  });
});

describe('planDesktop: schedules', () => {
  const paris = 'Mon-Fri 08:00-19:00 Europe/Paris';

  it('starts a stopped instance once per window: claim first, then the window marked as served', () => {
    const plan = planDesktop(desktop({ state: 'stopped' }, [{ schedule: paris }]), clock());
    expect(plan.start?.reason).toContain('2026-12-07T07:00:00.000Z');
    expect(plan.start?.claim).toEqual({ sessionId: 's0', instanceId: 'i-0000000000000000a', attribute: 'PowerStartAt', value: iso(NOW) });
    expect(plan.start?.alsoWrite).toEqual([expect.objectContaining({ attribute: 'ScheduleStartAt', value: '2026-12-07T07:00:00.000Z' })]);
    // The window served already: a user who stopped it inside the window is not restarted.
    const served = planDesktop(desktop({ state: 'stopped' }, [{ schedule: paris, scheduleStartAt: '2026-12-07T07:00:00.000Z' }]), clock());
    expect(served.start).toBeUndefined();
  });

  it('marks the window on an instance already running, and never idle-reads it inside the window', () => {
    const plan = planDesktop(desktop({}, [{ schedule: paris, autoStopMinutes: 5 }]), clock());
    expect(plan.start).toBeUndefined();
    expect(plan.read).toEqual([]);
    expect(plan.writes).toEqual([expect.objectContaining({ attribute: 'ScheduleStartAt', value: '2026-12-07T07:00:00.000Z' })]);
  });

  it('outside the window applies the idle rule (15 minutes without auto-stop) and starts nothing', () => {
    const evening = Date.parse('2026-12-07T20:00:00Z');
    expect(planDesktop(desktop({ launchTime: evening - 600 * MIN }, [{ schedule: paris }]), clock(evening)).read).toEqual(['idle']);
    expect(planDesktop(desktop({ state: 'stopped' }, [{ schedule: paris }]), clock(evening)).start).toBeUndefined();
  });

  it('does not start while a start is already claimed, nor while the instance is still stopping', () => {
    expect(planDesktop(desktop({ state: 'stopped' }, [{ schedule: paris, powerStartAt: iso(NOW - 30_000) }]), clock()).start).toBeUndefined();
    expect(planDesktop(desktop({ state: 'stopping' }, [{ schedule: paris }]), clock()).start).toBeUndefined();
  });

  it('evaluates the schedule at --at, not now', () => {
    const saturday = Date.parse('2026-12-12T09:00:00Z');
    expect(planDesktop(desktop({ state: 'stopped' }, [{ schedule: paris }]), clock(NOW, saturday)).start).toBeUndefined();
  });

  // Window starts across daylight saving: 08:00 local is 07:00Z in winter, 06:00Z in summer (Paris);
  // 12:00Z in summer, 13:00Z in winter (New York).
  it.each([
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-03-27T10:00:00Z', '2026-03-27T07:00:00.000Z'],
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-03-30T10:00:00Z', '2026-03-30T06:00:00.000Z'],
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-10-23T10:00:00Z', '2026-10-23T06:00:00.000Z'],
    ['Mon-Fri 08:00-19:00 Europe/Paris', '2026-10-26T10:00:00Z', '2026-10-26T07:00:00.000Z'],
    ['Mon-Fri 08:00-19:00 America/New_York', '2026-03-06T15:00:00Z', '2026-03-06T13:00:00.000Z'],
    ['Mon-Fri 08:00-19:00 America/New_York', '2026-03-09T15:00:00Z', '2026-03-09T12:00:00.000Z'],
    ['Mon-Fri 08:00-19:00 America/New_York', '2026-10-30T15:00:00Z', '2026-10-30T12:00:00.000Z'],
    ['Mon-Fri 08:00-19:00 America/New_York', '2026-11-02T15:00:00Z', '2026-11-02T13:00:00.000Z'],
    ['Sun 02:30-05:00 Europe/Paris', '2026-03-29T01:30:00Z', '2026-03-29T01:00:00.000Z'],
  ])('%s at %s: the window opened at %s, and the pass starts the stopped instance then', (schedule, at, opened) => {
    const parsed = parseSchedule(schedule);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(iso(currentWindowStart(parsed.schedule, Date.parse(at))!)).toBe(opened);
    const plan = planDesktop(desktop({ state: 'stopped' }, [{ schedule }]), clock(Date.parse(at)));
    expect(plan.start?.alsoWrite[0]).toMatchObject({ attribute: 'ScheduleStartAt', value: opened });
  });

  it('opens no window before its start on the day clocks change (New York, spring forward)', () => {
    const parsed = parseSchedule('Mon-Fri 08:00-19:00 America/New_York');
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(currentWindowStart(parsed.schedule, Date.parse('2026-03-09T12:59:00Z'))).toBe(Date.parse('2026-03-09T12:00:00Z'));
    expect(currentWindowStart(parsed.schedule, Date.parse('2026-03-09T11:59:00Z'))).toBeUndefined();
  });
});

describe('planDesktop: never stuck', () => {
  it('reports a start still pending past the deadline, every pass until it changes', () => {
    const plan = planDesktop(desktop({ state: 'pending' }, [{ startOnConnect: true, powerStartAt: iso(NOW - 11 * MIN) }]), clock());
    expect(plan.events).toEqual([expect.objectContaining({ kind: 'start-stuck', message: expect.stringContaining('still pending') })]);
    expect(plan.writes).toEqual([]);
  });

  it('reports a start that left the instance stopped, and drops its claim (not retried)', () => {
    const at = iso(NOW - 3 * MIN);
    const plan = planDesktop(desktop({ state: 'stopped' }, [{ startOnConnect: true, powerStartAt: at }]), clock());
    expect(plan.events).toEqual([expect.objectContaining({ kind: 'start-failed' })]);
    expect(plan.writes).toEqual([expect.objectContaining({ attribute: 'PowerStartAt', read: at })]);
    expect(plan.writes[0]).not.toHaveProperty('value');
  });

  it('reports a stop still stopping past the deadline; drops a stop claim once stopped', () => {
    const at = iso(NOW - 11 * MIN);
    expect(planDesktop(desktop({ state: 'stopping' }, [{ autoStopMinutes: 5, powerStopAt: at }]), clock()).events).toEqual([
      expect.objectContaining({ kind: 'stop-stuck' }),
    ]);
    const done = planDesktop(desktop({ state: 'stopped' }, [{ autoStopMinutes: 5, powerStopAt: at }]), clock());
    expect(done.events).toEqual([]);
    expect(done.writes).toEqual([expect.objectContaining({ attribute: 'PowerStopAt', read: at })]);
  });

  it('a stop EC2 accepted that never happened: reported, claim dropped, no stop decided this pass', () => {
    const at = iso(NOW - 11 * MIN);
    const plan = planDesktop(desktop({}, [{ autoStopMinutes: 5, powerStopAt: at }]), clock());
    expect(plan.events).toEqual([expect.objectContaining({ kind: 'stop-stuck', message: expect.stringContaining('still running') })]);
    expect(plan.writes).toEqual([expect.objectContaining({ attribute: 'PowerStopAt', read: at })]);
    expect(plan.read).toEqual([]);
  });

  it('watches a started Linux desktop until DCV answers', () => {
    expect(planDesktop(desktop({ launchTime: NOW - MIN }, [{ startOnConnect: true, powerStartAt: iso(NOW - 2 * MIN) }]), clock()).read).toEqual([
      'start-check',
    ]);
  });
});

describe('assessSignals and confirmStop', () => {
  const idleDesk = desktop({}, [{ autoStopMinutes: 30 }]);
  const idleLine = signalsLine([['console', 0, iso(NOW - 900 * MIN), iso(NOW - 45 * MIN)]]);

  it('an idle host past its limit: IdleSince written from the last disconnection, a stop candidate', () => {
    const a = assessSignals(idleDesk, ['idle'], { ok: true, stdout: idleLine }, NOW);
    expect(a.stopCandidate).toBe(true);
    expect(a.writes).toEqual([expect.objectContaining({ attribute: 'IdleSince', value: iso(NOW - 45 * MIN) })]);
  });

  it('recently disconnected, connected or GPU-busy hosts are not candidates', () => {
    const recent = signalsLine([['console', 0, iso(NOW - 900 * MIN), iso(NOW - 10 * MIN)]]);
    expect(assessSignals(idleDesk, ['idle'], { ok: true, stdout: recent }, NOW).stopCandidate).toBe(false);
    const connected = signalsLine([['console', 1, iso(NOW - 900 * MIN), '']]);
    expect(assessSignals(idleDesk, ['idle'], { ok: true, stdout: connected }, NOW)).toMatchObject({ stopCandidate: false, activity: { state: 'in-use' } });
    const gpu = signalsLine([['console', 0, iso(NOW - 900 * MIN), iso(NOW - 45 * MIN)]], [87]);
    expect(assessSignals(idleDesk, ['idle'], { ok: true, stdout: gpu }, NOW)).toMatchObject({ stopCandidate: false, activity: { state: 'in-use' } });
  });

  it('unknown signals: never a candidate, an event naming the cause, IdleSince removed', () => {
    const d = desktop({}, [{ autoStopMinutes: 30, idleSince: longAgo }]);
    const a = assessSignals(d, ['idle'], { ok: false, cause: 'unmanaged', reason: 'not a managed node' }, NOW);
    expect(a.stopCandidate).toBe(false);
    expect(a.events).toEqual([expect.objectContaining({ kind: 'signals-unknown', cause: 'unmanaged' })]);
    expect(a.writes).toEqual([expect.objectContaining({ attribute: 'IdleSince', read: longAgo })]);
    expect(assessSignals(idleDesk, ['idle'], { ok: true, stdout: 'garbage' }, NOW).events[0]).toMatchObject({ cause: 'unreadable' });
  });

  it('a started desktop is usable once DCV lists a session: the start claim goes', () => {
    const at = iso(NOW - 2 * MIN);
    const d = desktop({ launchTime: NOW - MIN }, [{ startOnConnect: true, powerStartAt: at }]);
    const empty = signalsLine([]);
    expect(assessSignals(d, ['start-check'], { ok: true, stdout: empty }, NOW).writes).toEqual([]);
    const ready = assessSignals(d, ['start-check'], { ok: true, stdout: signalsLine([['console', 0, iso(NOW - 30_000), '']]) }, NOW);
    expect(ready.writes).toEqual([expect.objectContaining({ attribute: 'PowerStartAt', read: at })]);
    expect(ready.events[0]?.kind).toBe('started');
  });

  it('confirmStop stops only if still idle past the limit, behind a fresh claim', () => {
    const still = confirmStop(idleDesk, { ok: true, stdout: idleLine }, NOW);
    expect(still).toMatchObject({ stop: true, claim: { attribute: 'PowerStopAt', value: iso(NOW) } });
    if (still.stop) expect(releaseClaim(still.claim)).toEqual({ sessionId: 's0', instanceId: 'i-0000000000000000a', attribute: 'PowerStopAt', read: iso(NOW) });
    const back = signalsLine([['console', 1, iso(NOW - 900 * MIN), iso(NOW - 45 * MIN)]]);
    expect(confirmStop(idleDesk, { ok: true, stdout: back }, NOW)).toMatchObject({ stop: false, reason: expect.stringContaining('in use again') });
    expect(confirmStop(idleDesk, { ok: false, cause: 'deadline', reason: 'no answer' }, NOW).stop).toBe(false);
  });
});
