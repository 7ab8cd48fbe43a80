import { Attr, parseSessionRecord, type RawItem } from './session-record.js';

/**
 * Managing session items by hand (the `sessions` CLI): the storage port both stores implement, and the
 * pure rules for building and checking an item before it is written. Every item is checked with the
 * resolver's own parser (`parseSessionRecord`), so nothing is written that the resolver would skip.
 */

/** An item as read, with the store's exact copy (opaque here) for "unchanged since read" conditions. */
export interface StoredItem {
  readonly item: RawItem;
  readonly token?: unknown;
}

/** What the store must still hold when a write lands; otherwise the write fails with ConcurrentChangeError. */
export type Expectation = { readonly kind: 'absent' } | { readonly kind: 'unchanged'; readonly current: StoredItem };

export interface ConditionalPut {
  readonly item: RawItem;
  readonly expected: Expectation;
}

export interface ListProgress {
  readonly items: number;
  readonly pages: number;
}

export interface PutManyResult {
  readonly written: number;
  /** Writes refused because the item changed since it was read (only a table can fail part-way). */
  readonly failed: readonly { readonly sessionId: string; readonly reason: string }[];
}

/** A session table or a sessions file, as the `sessions` command edits it. */
export interface SessionAdminStore {
  /** For messages: "table 'X' (region R)" or "sessions file 'F'". */
  readonly description: string;
  /** Every item, in no particular order. */
  list(onProgress?: (progress: ListProgress) => void): Promise<StoredItem[]>;
  get(sessionId: string): Promise<StoredItem | undefined>;
  /** Writes the item if the expectation still holds (ConcurrentChangeError otherwise). */
  putIf(put: ConditionalPut): Promise<void>;
  /** Many conditional puts; a file applies all of them at once or none. */
  putManyIf(puts: readonly ConditionalPut[], onProgress?: (done: number) => void): Promise<PutManyResult>;
  /** Sets these attributes on the item if it is still exactly as read, and returns the item as written (ConcurrentChangeError otherwise). */
  updateIf(expected: StoredItem, set: RawItem): Promise<RawItem>;
  /** Deletes the item if it is still exactly as read (ConcurrentChangeError otherwise). */
  deleteIf(expected: StoredItem): Promise<void>;
  close(): void;
}

export class SessionNotFoundError extends Error {
  override readonly name = 'SessionNotFoundError';
  constructor(
    readonly sessionId: string,
    where: string,
  ) {
    super(`no session '${sessionId}' in ${where}`);
  }
}

export class ConcurrentChangeError extends Error {
  override readonly name = 'ConcurrentChangeError';
  /** `detail` replaces the default "(another writer); nothing written, run it again" (e.g. which attribute appeared). */
  constructor(sessionId: string | undefined, where: string, detail = '(another writer); nothing written, run it again') {
    super(
      sessionId === undefined
        ? `${where} changed while this command ran; nothing written, run it again`
        : `session '${sessionId}' in ${where} changed since it was read ${detail}`,
    );
  }
}

/** The store could not be read or written (missing table or file, no access, unreachable). */
export class StoreError extends Error {
  override readonly name = 'StoreError';
}

/** A value that breaks a rule, named for the operator: the attribute (or flag) and the rule. */
export interface Problem {
  readonly field: string;
  readonly rule: string;
}

export function problemText(problem: Problem): string {
  return `${problem.field} ${problem.rule}`;
}

/** Splits the resolver's reason ("HttpPort must be 1–65535") into its attribute and its rule. */
export function problemFromReason(reason: string): Problem {
  const space = reason.indexOf(' ');
  return space < 0 ? { field: 'item', rule: reason } : { field: reason.slice(0, space), rule: reason.slice(space + 1) };
}

/**
 * Values both stores can hold and give back unchanged: strings, finite numbers, booleans, null, and lists
 * of strings (AllowedClientCidrs). Anything else (objects, nested lists) is refused before any write.
 */
export function unstorableAttribute(item: RawItem): Problem | undefined {
  for (const [field, value] of Object.entries(item)) {
    if (value === null || typeof value === 'string' || typeof value === 'boolean') continue;
    if (typeof value === 'number' && Number.isFinite(value)) continue;
    if (Array.isArray(value) && value.every((entry) => typeof entry === 'string')) continue;
    return { field, rule: 'must be a string, a finite number, a boolean, null or a list of strings' };
  }
  return undefined;
}

/** The resolver's rules plus storability: undefined when the item may be written. */
export function itemProblem(item: RawItem): Problem | undefined {
  const parsed = parseSessionRecord(item);
  if (!parsed.ok) return problemFromReason(parsed.reason);
  return unstorableAttribute(item);
}

export function isDiscovered(item: RawItem): boolean {
  return item[Attr.Source] === 'ec2';
}

// ---------------------------------------------------------------------------------------------------------
// put: flags → item

export interface PutFlags {
  readonly sessionId: string;
  readonly endpoint: string;
  readonly port?: string;
  readonly quicPort?: string;
  readonly webUrlPath?: string;
  readonly target?: string;
  readonly allowedClientCidrs?: readonly string[];
  readonly expiresAt?: string;
  readonly disabled?: boolean;
  /** Portal: user and group names; each entry may itself be a comma-separated list. */
  readonly allowedUsers?: readonly string[];
  readonly allowedGroups?: readonly string[];
  readonly pool?: string;
  /** DcvUser: the name the verifier gives the DCV server (the session's owner). */
  readonly dcvUser?: string;
}

/** Which flag sets which attribute, so a problem names what the operator typed. */
const FLAG_OF: Record<string, string> = {
  [Attr.SessionId]: 'ID',
  [Attr.DcvServerEndpoint]: '--endpoint',
  [Attr.HttpPort]: '--port',
  [Attr.QuicPort]: '--quic-port',
  [Attr.WebUrlPath]: '--web-url-path',
  [Attr.TargetSessionId]: '--target',
  [Attr.AllowedClientCidrs]: '--allowed-client-cidr',
  [Attr.ExpiresAt]: '--expires-at',
  [Attr.AllowedUsers]: '--allowed-users',
  [Attr.AllowedGroups]: '--allowed-groups',
  [Attr.Pool]: '--pool',
  [Attr.DcvUser]: '--dcv-user',
};

/** `--allowed-users a,b --allowed-users c`: every name, trimmed, empty entries dropped (as the tags read them). */
function nameList(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

export type BuildResult = { readonly ok: true; readonly item: RawItem } | { readonly ok: false; readonly problem: Problem };

const DIGITS = /^\d{1,5}$/;

/** Ports are stored as numbers; anything else is handed to the resolver's rules as typed, for its message. */
function portValue(text: string): number | string {
  return DIGITS.test(text.trim()) ? Number(text.trim()) : text;
}

/**
 * The item `sessions put` writes: always `Source = manual`, `UpdatedAt` now, defaults written out so the
 * console shows what the resolver will use. Checked with the resolver's rules; a problem names the flag.
 */
export function buildManualItem(flags: PutFlags, nowMs: number): BuildResult {
  const item: RawItem = {
    [Attr.SessionId]: flags.sessionId,
    [Attr.DcvServerEndpoint]: flags.endpoint,
    [Attr.HttpPort]: flags.port === undefined ? 8443 : portValue(flags.port),
  };
  if (flags.quicPort !== undefined) item[Attr.QuicPort] = portValue(flags.quicPort);
  item[Attr.WebUrlPath] = flags.webUrlPath ?? '/';
  if (flags.target !== undefined) item[Attr.TargetSessionId] = flags.target;
  item[Attr.Enabled] = !flags.disabled;
  if (flags.allowedClientCidrs !== undefined) {
    item[Attr.AllowedClientCidrs] = flags.allowedClientCidrs.flatMap((c) => c.split(',')).map((c) => c.trim());
  }
  if (flags.allowedUsers !== undefined) item[Attr.AllowedUsers] = nameList(flags.allowedUsers);
  if (flags.allowedGroups !== undefined) item[Attr.AllowedGroups] = nameList(flags.allowedGroups);
  if (flags.pool !== undefined) item[Attr.Pool] = flags.pool.trim();
  // Trimmed as the dcv:user tag is (and --pool): a name never starts or ends with a space.
  if (flags.dcvUser !== undefined) item[Attr.DcvUser] = flags.dcvUser.trim();
  if (flags.expiresAt !== undefined) {
    const expiry = parseExpiresAt(flags.expiresAt, nowMs);
    if (!expiry.ok) return { ok: false, problem: { field: '--expires-at (ExpiresAt)', rule: expiry.rule } };
    item[Attr.ExpiresAt] = expiry.epochSeconds;
  }
  item[Attr.Source] = 'manual';
  item[Attr.UpdatedAt] = new Date(nowMs).toISOString();

  const problem = itemProblem(item);
  if (problem) {
    const flag = FLAG_OF[problem.field];
    return { ok: false, problem: { field: flag ? `${flag} (${problem.field})` : problem.field, rule: problem.rule } };
  }
  // The resolver trims the endpoint when it reads it; store what it will use.
  item[Attr.DcvServerEndpoint] = flags.endpoint.trim();
  return { ok: true, item };
}

const DURATION = /^\+((?:\d+[smhdw])+)$/;
const DURATION_PART = /(\d+)([smhdw])/g;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
// A calendar date, or a date and time with an explicit zone: a bare local time would depend on the host.
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

export type ExpiryResult = { readonly ok: true; readonly epochSeconds: number } | { readonly ok: false; readonly rule: string };

/** `--expires-at`: `+8h`, `+1d12h`, `+30m` (from now), or ISO 8601 (`2026-12-01`, `2026-12-01T18:00:00Z`). */
export function parseExpiresAt(text: string, nowMs: number): ExpiryResult {
  const value = text.trim();
  let ms: number;
  const duration = DURATION.exec(value);
  if (duration) {
    let seconds = 0;
    for (const [, count, unit] of duration[1]!.matchAll(DURATION_PART)) seconds += Number(count) * UNIT_SECONDS[unit!]!;
    if (seconds === 0) return { ok: false, rule: 'must be a duration longer than zero' };
    ms = nowMs + seconds * 1000;
  } else if (ISO_DATE.test(value) || ISO_DATE_TIME.test(value)) {
    ms = Date.parse(ISO_DATE.test(value) ? `${value}T00:00:00Z` : value);
    if (!Number.isFinite(ms)) return { ok: false, rule: `'${value}' is not a real date` };
  } else {
    return {
      ok: false,
      rule: "must be +DURATION (e.g. +8h, +1d12h; units s m h d w) or an ISO 8601 date-time with a zone (e.g. 2026-12-01T18:00:00Z)",
    };
  }
  if (!Number.isSafeInteger(Math.ceil(ms / 1000))) return { ok: false, rule: 'is too far in the future' };
  if (ms <= nowMs) return { ok: false, rule: `must be in the future ('${value}' has passed; use disable or rm instead)` };
  return { ok: true, epochSeconds: Math.ceil(ms / 1000) };
}

// ---------------------------------------------------------------------------------------------------------
// comparing items

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const entry = (value as Record<string, unknown>)[key];
      if (entry !== undefined) out[key] = canonical(entry);
    }
    return out;
  }
  return value;
}

/** Same attributes, same values and types (list order counts); key order does not. */
export function sameItem(a: RawItem, b: RawItem): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}
