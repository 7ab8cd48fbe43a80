/**
 * Weekly power windows (`dcv:schedule` tag, `Schedule` attribute): parsed strictly, evaluated with Intl in
 * each window's own IANA time zone. Pure: no clock, no dependency (Intl.DateTimeFormat's formatToParts is
 * all the time-zone arithmetic needed, and it ships with Node's full ICU).
 *
 * Grammar (several windows joined by `;`, spaces around `;` ignored):
 *
 *   WINDOW = DAYS ' ' HH:MM '-' HH:MM ' ' ZONE
 *   DAYS   = DAY or DAY-DAY (a range, which may wrap: `Fri-Mon` is Fri, Sat, Sun, Mon), several joined by ','
 *   DAY    = Mon Tue Wed Thu Fri Sat Sun (any letter case)
 *   ZONE   = an IANA zone name (`Europe/Paris`, `America/New_York`, `UTC`); offsets such as `+01:00` are
 *            refused: they have no daylight-saving rules, which is the point of naming a zone
 *
 * Times: 00:00–23:59, and `24:00` as an end (midnight ending the day). An end after the start is a window
 * on that day; an end before the start is an overnight window that starts on the listed day and ends the
 * next day (`Mon-Fri 22:00-06:00`: Monday 22:00 to Tuesday 06:00, …, Friday 22:00 to Saturday 06:00).
 * An end equal to the start is refused (empty, or a whole day: write `00:00-24:00`).
 *
 * Evaluation works on instants, not on wall-clock comparisons, so a daylight-saving change never opens or
 * closes a window twice:
 * - A window on a local date runs from its start instant (inclusive) to its end instant (exclusive).
 * - A local time that does not exist (spring forward: 02:30 in Europe/Paris on the last Sunday of March)
 *   means the first instant after the gap (03:00 local): a window starting at 02:30 that day starts at
 *   03:00, and a window wholly inside the gap does not happen that day.
 * - A local time that happens twice (fall back: 02:30 in Europe/Paris on the last Sunday of October) means
 *   its first occurrence for a start and its second for an end: the window never closes and reopens, and is
 *   longer by the repeated hour rather than shorter (the safe side: the instance is never idle-stopped
 *   inside a window).
 */

export const DAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;

export const MAX_WINDOWS = 16;

export interface ScheduleWindow {
  /** Days the window starts on, as 0 = Sunday … 6 = Saturday (a Set for lookups). */
  readonly days: ReadonlySet<number>;
  /** Minutes after local midnight, 0–1439. */
  readonly start: number;
  /** Minutes after local midnight, 1–1440; below `start` for an overnight window. */
  readonly end: number;
  readonly zone: string;
  /** The window as written (trimmed), for messages. */
  readonly text: string;
}

export interface Schedule {
  readonly windows: readonly ScheduleWindow[];
}

export type ScheduleParse = { readonly ok: true; readonly schedule: Schedule } | { readonly ok: false; readonly reason: string };

const TIME = /^(\d{2}):(\d{2})$/;
const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)*$/;

class Bad extends Error {}

function dayIndex(name: string, window: string): number {
  const index = DAY_NAMES.findIndex((d) => d.toLowerCase() === name.toLowerCase());
  if (index === -1) throw new Bad(`'${window}': '${name}' is not a day (use ${DAY_NAMES.slice(1).join(' ')} ${DAY_NAMES[0]})`);
  return index;
}

function parseDays(text: string, window: string): Set<number> {
  const days = new Set<number>();
  for (const part of text.split(',')) {
    const bounds = part.split('-');
    if (part === '' || bounds.length > 2) throw new Bad(`'${window}': '${text}' must be days such as Mon-Fri or Mon,Wed,Sat-Sun`);
    const first = dayIndex(bounds[0]!, window);
    if (bounds.length === 1) {
      days.add(first);
      continue;
    }
    const last = dayIndex(bounds[1]!, window);
    if (first === last) throw new Bad(`'${window}': the range '${part}' starts and ends on the same day; write '${bounds[0]}'`);
    // A range may wrap past Sunday: Fri-Mon.
    for (let d = first; ; d = (d + 1) % 7) {
      days.add(d);
      if (d === last) break;
    }
  }
  return days;
}

function parseTime(text: string, window: string, allow24: boolean): number {
  const match = TIME.exec(text);
  const hours = match ? Number(match[1]) : NaN;
  const minutes = match ? Number(match[2]) : NaN;
  if (allow24 && hours === 24 && minutes === 0) return 1440;
  if (!(hours <= 23 && minutes <= 59)) {
    throw new Bad(`'${window}': '${text}' is not a time HH:MM (00:00–23:59${allow24 ? ', or 24:00 as an end' : ''})`);
  }
  return hours * 60 + minutes;
}

const zoneCache = new Map<string, Intl.DateTimeFormat | undefined>();

/** The formatter for an IANA zone (cached), or undefined when Intl does not know the zone. */
function zoneFormatter(zone: string): Intl.DateTimeFormat | undefined {
  if (zoneCache.has(zone)) return zoneCache.get(zone);
  let format: Intl.DateTimeFormat | undefined;
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
  }
  // Bounded: a table full of distinct bad zones must not grow this without end.
  if (zoneCache.size < 1000) zoneCache.set(zone, format);
  return format;
}

/** True when `zone` is an IANA zone name Intl knows (not an offset such as +01:00). */
export function isIanaZone(zone: string): boolean {
  return ZONE_NAME.test(zone) && zoneFormatter(zone) !== undefined;
}

function parseWindow(raw: string): ScheduleWindow {
  const text = raw.trim();
  const fields = text.split(/\s+/);
  if (text === '' || fields.length !== 3) {
    throw new Bad(`'${text}' must be DAYS HH:MM-HH:MM ZONE, e.g. 'Mon-Fri 08:00-19:00 Europe/Paris'`);
  }
  const [daysText, timesText, zone] = fields as [string, string, string];
  const days = parseDays(daysText, text);
  const times = timesText.split('-');
  if (times.length !== 2) throw new Bad(`'${text}': '${timesText}' must be HH:MM-HH:MM`);
  const start = parseTime(times[0]!, text, false);
  const end = parseTime(times[1]!, text, true);
  if (end === start) throw new Bad(`'${text}': the window starts and ends at ${times[0]} (for a whole day write 00:00-24:00)`);
  if (!isIanaZone(zone)) throw new Bad(`'${text}': '${zone}' is not an IANA time zone (e.g. Europe/Paris, America/New_York, UTC)`);
  return { days, start, end, zone, text };
}

/** Parses a schedule; the reason quotes the window that is wrong and says what is expected. */
export function parseSchedule(text: string): ScheduleParse {
  try {
    const parts = text.split(';');
    if (parts.length > MAX_WINDOWS) throw new Bad(`has ${parts.length} windows; at most ${MAX_WINDOWS}`);
    const windows = parts.map(parseWindow);
    return { ok: true, schedule: { windows } };
  } catch (error) {
    if (error instanceof Bad) return { ok: false, reason: error.message };
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------------
// evaluation

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/** windowStartsBetween walks local dates; a longer span is a caller's bug, not a schedule to evaluate. */
export const MAX_SPAN_MS = 366 * DAY_MS;

/** The local wall-clock time at `instantMs` in `zone`, as milliseconds of a UTC date with the same fields (whole seconds). */
function wallClock(instantMs: number, format: Intl.DateTimeFormat): number {
  const fields: Record<string, number> = {};
  for (const part of format.formatToParts(Math.floor(instantMs / 1000) * 1000)) {
    if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  return Date.UTC(fields.year!, fields.month! - 1, fields.day!, fields.hour!, fields.minute!, fields.second!);
}

/** UTC offset (ms, local minus UTC) in force at `instantMs`. */
function offsetAt(instantMs: number, format: Intl.DateTimeFormat): number {
  const whole = Math.floor(instantMs / 1000) * 1000;
  return wallClock(whole, format) - whole;
}

/**
 * The instant at which the local wall clock reads `wallMs` (a UTC-date encoding of local fields). Twice in a
 * fall-back hour: `pick` chooses. Never in a spring-forward gap: the first instant after the gap.
 */
function instantOf(wallMs: number, format: Intl.DateTimeFormat, pick: 'earliest' | 'latest'): number {
  // Real zones change offset at most once within a day either side.
  const before = offsetAt(wallMs - DAY_MS, format);
  const after = offsetAt(wallMs + DAY_MS, format);
  const candidates = [...new Set([wallMs - before, wallMs - after])].filter((t) => wallClock(t, format) === wallMs);
  if (candidates.length > 0) return pick === 'earliest' ? Math.min(...candidates) : Math.max(...candidates);
  // The gap: the wall clock jumps over wallMs between these two instants; find the jump to the second.
  let low = Math.min(wallMs - before, wallMs - after);
  let high = Math.max(wallMs - before, wallMs - after);
  while (high - low > 1000) {
    const middle = Math.floor((low + high) / 2000) * 1000;
    if (wallClock(middle, format) >= wallMs) high = middle;
    else low = middle;
  }
  return high;
}

interface Occurrence {
  readonly start: number;
  readonly end: number;
}

function formatFor(window: ScheduleWindow): Intl.DateTimeFormat {
  const format = zoneFormatter(window.zone);
  // parseSchedule checked the zone; only a hand-built Schedule can get here.
  if (!format) throw new RangeError(`unknown time zone '${window.zone}'`);
  return format;
}

/** The window's occurrence starting on the local date `dayMs` (UTC-date encoding), or undefined (not that day, or inside a gap). */
function occurrence(window: ScheduleWindow, dayMs: number, format: Intl.DateTimeFormat): Occurrence | undefined {
  if (!window.days.has(new Date(dayMs).getUTCDay())) return undefined;
  const start = instantOf(dayMs + window.start * MINUTE_MS, format, 'earliest');
  const endWall = dayMs + (window.end > window.start ? window.end : window.end + 1440) * MINUTE_MS;
  const end = instantOf(endWall, format, 'latest');
  return end > start ? { start, end } : undefined;
}

function localDay(instantMs: number, format: Intl.DateTimeFormat): number {
  return Math.floor(wallClock(instantMs, format) / DAY_MS) * DAY_MS;
}

/** True when `instantMs` is inside one of the schedule's windows (start inclusive, end exclusive). */
export function inWindow(schedule: Schedule, instantMs: number): boolean {
  for (const window of schedule.windows) {
    const format = formatFor(window);
    const today = localDay(instantMs, format);
    // An overnight window that started yesterday may still be open.
    for (const day of [today - DAY_MS, today]) {
      const o = occurrence(window, day, format);
      if (o && o.start <= instantMs && instantMs < o.end) return true;
    }
  }
  return false;
}

/**
 * The instants, sorted and distinct, at which one of the schedule's windows starts, with `fromMs < start <= toMs`
 * (a pass covering (last pass, now] sees each start exactly once). At most a year apart.
 */
export function windowStartsBetween(schedule: Schedule, fromMs: number, toMs: number): number[] {
  if (!(toMs > fromMs)) return [];
  if (toMs - fromMs > MAX_SPAN_MS) throw new RangeError('windowStartsBetween spans more than a year');
  const starts = new Set<number>();
  for (const window of schedule.windows) {
    const format = formatFor(window);
    const last = localDay(toMs, format) + DAY_MS;
    for (let day = localDay(fromMs, format) - DAY_MS; day <= last; day += DAY_MS) {
      const o = occurrence(window, day, format);
      if (o && fromMs < o.start && o.start <= toMs) starts.add(o.start);
    }
  }
  return [...starts].sort((a, b) => a - b);
}
