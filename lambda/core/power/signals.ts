/**
 * The host's own word on whether it is in use: the line host-scripts/dcv-idle-signals.sh prints (read
 * through SSM Run Command), parsed strictly, and the idle rule built on it. Pure: no AWS, no clock.
 *
 * The rule is DCV's, not CPU's: a host is in use while any DCV session has a client connected or any GPU
 * is busy; otherwise it has been idle since the latest of its sessions' last disconnection and creation,
 * the instance's last start, and the last token verified for one of its sessions (a connection starting).
 * Anything not understood is `unknown`, and an unknown host is never stopped.
 */

/** The script's output version this parser reads. */
export const SIGNALS_VERSION = 1;

/** A GPU at or above this utilization (percent of the sample period a kernel ran) makes the host busy. */
export const DEFAULT_GPU_BUSY_PERCENT = 10;

export interface SessionSignal {
  readonly id: string;
  readonly connections: number;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  /** Epoch milliseconds; absent when nobody ever disconnected (DCV prints ""). */
  readonly lastDisconnectedAt?: number;
}

export interface HostSignals {
  /** Absent: DCV could not be asked (see errors). */
  readonly sessions?: readonly SessionSignal[];
  /** Percent per GPU; absent: no nvidia-smi (or it failed: see errors). */
  readonly gpu?: readonly number[];
  /** What the script could not read, in its own fixed words (e.g. `dcv-missing`). */
  readonly errors: readonly string[];
}

export type SignalsParse = { readonly ok: true; readonly signals: HostSignals } | { readonly ok: false; readonly reason: string };

class Unreadable extends Error {}

const KEYS = ['v', 'sessions', 'gpu', 'errors'];
const SESSION_KEYS = ['id', 'num-of-connections', 'creation-time', 'last-disconnection-time'];
/** UTC, `Z` only; DCV prints microseconds at times, and anything up to nanoseconds is accepted. */
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$/;
const MAX_LINE = 24_000;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function exactKeys(value: Record<string, unknown>, keys: readonly string[], what: string): void {
  const have = Object.keys(value).sort();
  const want = [...keys].sort();
  if (have.length !== want.length || have.some((key, i) => key !== want[i])) {
    throw new Unreadable(`${what} has keys ${JSON.stringify(have)}, expected ${JSON.stringify(want)}`);
  }
}

/** Epoch milliseconds of a DCV timestamp, or an error naming the field. */
export function parseDcvTimestamp(text: string, what: string): number {
  const match = TIMESTAMP.exec(text);
  if (!match) throw new Unreadable(`${what} '${text.slice(0, 40)}' is not a UTC timestamp (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)`);
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const millis = Number((match[7] ?? '').padEnd(3, '0').slice(0, 3));
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  const back = new Date(ms);
  // Date.UTC rolls 2026-02-30 over to March: a date that does not round-trip is not a date.
  if (back.getUTCFullYear() !== year || back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    throw new Unreadable(`${what} '${text}' is not a real date and time`);
  }
  return ms;
}

function session(value: unknown, index: number): SessionSignal {
  const what = `sessions[${index}]`;
  if (!isObject(value)) throw new Unreadable(`${what} is not an object`);
  exactKeys(value, SESSION_KEYS, what);
  const id = value.id;
  if (typeof id !== 'string' || id === '') throw new Unreadable(`${what}.id is not a non-empty string`);
  const connections = value['num-of-connections'];
  if (typeof connections !== 'number' || !Number.isSafeInteger(connections) || connections < 0) {
    throw new Unreadable(`${what}.num-of-connections is not a whole number ≥ 0`);
  }
  const created = value['creation-time'];
  if (typeof created !== 'string') throw new Unreadable(`${what}.creation-time is not a string`);
  const disconnected = value['last-disconnection-time'];
  if (typeof disconnected !== 'string') throw new Unreadable(`${what}.last-disconnection-time is not a string`);
  const createdAt = parseDcvTimestamp(created, `${what}.creation-time`);
  return disconnected === ''
    ? { id, connections, createdAt }
    : { id, connections, createdAt, lastDisconnectedAt: parseDcvTimestamp(disconnected, `${what}.last-disconnection-time`) };
}

/** The script's stdout: exactly one JSON line (a final newline allowed) of the documented shape. */
export function parseSignals(output: string): SignalsParse {
  try {
    if (output.length > MAX_LINE) throw new Unreadable(`output is ${output.length} characters; at most ${MAX_LINE}`);
    const line = output.endsWith('\n') ? output.slice(0, -1) : output;
    if (line.trim() === '') throw new Unreadable('no output');
    if (line.includes('\n')) throw new Unreadable('more than one line of output');
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new Unreadable(`not JSON: '${line.slice(0, 80)}'`);
    }
    if (!isObject(value)) throw new Unreadable('not a JSON object');
    exactKeys(value, KEYS, 'the line');
    if (value.v !== SIGNALS_VERSION) throw new Unreadable(`version ${JSON.stringify(value.v)}, expected ${SIGNALS_VERSION}`);
    const errors = value.errors;
    if (!Array.isArray(errors) || !errors.every((e) => typeof e === 'string')) throw new Unreadable('errors is not a list of strings');
    let sessions: SessionSignal[] | undefined;
    if (value.sessions !== null) {
      if (!Array.isArray(value.sessions)) throw new Unreadable('sessions is neither a list nor null');
      sessions = value.sessions.map(session);
      const ids = new Set(sessions.map((s) => s.id));
      if (ids.size !== sessions.length) throw new Unreadable('a session id appears twice');
    }
    let gpu: number[] | undefined;
    if (value.gpu !== null) {
      if (!Array.isArray(value.gpu) || value.gpu.length === 0) throw new Unreadable('gpu is neither a non-empty list nor null');
      gpu = value.gpu.map((percent, i) => {
        if (typeof percent !== 'number' || !Number.isInteger(percent) || percent < 0 || percent > 100) {
          throw new Unreadable(`gpu[${i}] is not a percentage 0–100`);
        }
        return percent;
      });
    }
    return { ok: true, signals: { ...(sessions ? { sessions } : {}), ...(gpu ? { gpu } : {}), errors: errors as string[] } };
  } catch (error) {
    if (error instanceof Unreadable) return { ok: false, reason: error.message };
    throw error;
  }
}

export interface ActivityInput {
  /** The script's output, or the reason it could not be had (SSM failure, timeout, no agent). */
  readonly output: { readonly ok: true; readonly text: string } | { readonly ok: false; readonly reason: string };
  /** Epoch ms of the instance's last start (EC2 LaunchTime). */
  readonly instanceStartedAt?: number;
  /** Epoch ms of the last successful token verification for one of the instance's sessions. */
  readonly lastVerifiedAt?: number;
  readonly now: number;
  readonly gpuBusyPercent?: number;
}

export type Activity =
  | { readonly state: 'in-use'; readonly reason: string }
  /** Never stopped: the reason says what went wrong, for the log and the operator. */
  | { readonly state: 'unknown'; readonly reason: string }
  | { readonly state: 'idle'; readonly since: number; readonly idleMs: number; readonly reason: string };

/** In use, idle since when, or unknown: the only input the stop decision may take from the host. */
export function hostActivity(input: ActivityInput): Activity {
  if (!input.output.ok) return { state: 'unknown', reason: `no signals: ${input.output.reason}` };
  const parsed = parseSignals(input.output.text);
  if (!parsed.ok) return { state: 'unknown', reason: `unreadable signals: ${parsed.reason}` };
  const { sessions, gpu, errors } = parsed.signals;
  if (errors.length > 0) return { state: 'unknown', reason: `the host reported: ${errors.join(', ')}` };
  if (!sessions) return { state: 'unknown', reason: 'the host reported no sessions list' };
  const connected = sessions.filter((s) => s.connections > 0);
  if (connected.length > 0) {
    return { state: 'in-use', reason: connected.map((s) => `${s.connections} client(s) on session '${s.id}'`).join(', ') };
  }
  const threshold = input.gpuBusyPercent ?? DEFAULT_GPU_BUSY_PERCENT;
  const busy = (gpu ?? []).map((percent, i) => [i, percent] as const).filter(([, percent]) => percent >= threshold);
  if (busy.length > 0) return { state: 'in-use', reason: busy.map(([i, percent]) => `GPU ${i} at ${percent}%`).join(', ') };
  const moments: [string, number][] = [];
  for (const s of sessions) {
    moments.push([`session '${s.id}' created`, s.createdAt]);
    if (s.lastDisconnectedAt !== undefined) moments.push([`last client left session '${s.id}'`, s.lastDisconnectedAt]);
  }
  if (input.instanceStartedAt !== undefined) moments.push(['instance started', input.instanceStartedAt]);
  if (input.lastVerifiedAt !== undefined) moments.push(['token verified', input.lastVerifiedAt]);
  if (moments.length === 0) return { state: 'unknown', reason: 'no session and no known start: idle since when is unknown' };
  const [what, since] = moments.reduce((a, b) => (b[1] > a[1] ? b : a));
  // A clock ahead of ours (host or EC2) counts as "just now", never as idle for longer.
  const idleMs = Math.max(0, input.now - since);
  return { state: 'idle', since, idleMs, reason: `idle since ${new Date(since).toISOString()} (${what})` };
}
