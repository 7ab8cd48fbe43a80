import { parseCidr, parseIp, CidrSet } from './ip.js';
import { parseSchedule } from './power/schedule.js';

// Validation is hand-written rather than a schema library: it runs on every cold start, and loading and
// building zod's schemas was ~50 ms of the resolver's first answer (measured, bench/coldstart.ts) for
// one flat record. The rules and messages are the contract below; test/unit/session-record.test.ts pins them.

/**
 * The session record: one item per client-facing session id, as operators see it in the DynamoDB console
 * (and as it appears in a sessions file). Attribute names are part of the product; do not rename them.
 *
 * Every item read goes through `parseSessionRecord`; an item that does not parse is treated as absent.
 */
export const DEFAULT_HTTP_PORT = 8443;
export const DEFAULT_WEB_URL_PATH = '/';
export const MAX_SESSION_ID_LENGTH = 256;

/** Attribute names, in one place, for the stores and discovery. */
export const Attr = {
  SessionId: 'SessionId',
  DcvServerEndpoint: 'DcvServerEndpoint',
  HttpPort: 'HttpPort',
  QuicPort: 'QuicPort',
  WebUrlPath: 'WebUrlPath',
  TargetSessionId: 'TargetSessionId',
  Enabled: 'Enabled',
  AllowedClientCidrs: 'AllowedClientCidrs',
  ExpiresAt: 'ExpiresAt',
  Source: 'Source',
  InstanceId: 'InstanceId',
  InstanceState: 'InstanceState',
  UpdatedAt: 'UpdatedAt',
  /** Fingerprint of the item as discovery wrote it (see core/discovery/fingerprint.ts). */
  DiscoveredHash: 'DiscoveredHash',
  /** Portal: who may open the session (see core/session-access.ts). */
  AllowedUsers: 'AllowedUsers',
  AllowedGroups: 'AllowedGroups',
  /** Portal: the host belongs to this pool (tag `dcv:pool`); Connect to the pool places a user on a free member. */
  Pool: 'Pool',
  /** Portal: on a `Source = lease` item, the user holding the pool host until `ExpiresAt`. */
  LeaseUser: 'LeaseUser',
  /**
   * The user name the verifier gives the DCV server for this session (tag `dcv:user`), typically the
   * session's owner: DCV authorizes that name, not the person (README "Setting up the DCV servers").
   */
  DcvUser: 'DcvUser',
  /** Desktops on demand (tag `dcv:auto-stop`): stop the instance once nobody has been connected for this many minutes. */
  AutoStopMinutes: 'AutoStopMinutes',
  /** Desktops on demand (tag `dcv:start-on-connect`): the portal may start the stopped instance. */
  StartOnConnect: 'StartOnConnect',
  /** Desktops on demand (tag `dcv:schedule`): weekly windows in IANA zones (core/power/schedule.ts). */
  Schedule: 'Schedule',
  /**
   * Power runtime state (ISO 8601 UTC strings, written by the verifier, the power pass and the portal, never
   * by discovery, each with a one-attribute conditional UpdateItem). Not fingerprinted, and carried over when
   * discovery rewrites the item for the same instance, so they never pin an item as "edited" nor get lost.
   */
  /** The verifier: the last token verified for this session (written at most once a minute). */
  LastVerifiedAt: 'LastVerifiedAt',
  /** A start was requested (portal Start and open, or a schedule window); removed once the desktop is usable. */
  PowerStartAt: 'PowerStartAt',
  /** A stop was requested by the power pass; removed once the instance is stopped. */
  PowerStopAt: 'PowerStopAt',
  /** The schedule window start the power pass last acted on (once per window). */
  ScheduleStartAt: 'ScheduleStartAt',
  /** The power pass: the host has been idle since this instant (absent while in use or unknown). */
  IdleSince: 'IdleSince',
} as const;

/** The power runtime attributes (see above): bookkeeping, not configuration. */
export const POWER_RUNTIME_ATTRIBUTES: readonly string[] = [
  Attr.LastVerifiedAt,
  Attr.PowerStartAt,
  Attr.PowerStopAt,
  Attr.ScheduleStartAt,
  Attr.IdleSince,
];

/** `AutoStopMinutes` bounds: under 5 minutes a reconnecting client could find its desktop gone; a day at most. */
export const MIN_AUTO_STOP_MINUTES = 5;
export const MAX_AUTO_STOP_MINUTES = 1440;

/** The EC2 state in which an item resolves; any other `InstanceState` is a host that is not up (404). */
export const RUNNING_STATE = 'running';

/** `lease`: a pool placement the portal wrote (short-lived; discovery never touches it). */
export type RecordSource = 'manual' | 'ec2' | 'lease';

export interface SessionRecord {
  readonly sessionId: string;
  readonly dcvServerEndpoint: string;
  readonly httpPort: number;
  /** Absent: the host offers no QUIC, so QUIC lookups are 404. */
  readonly quicPort?: number;
  readonly webUrlPath: string;
  /** The session id on the DCV server; returned to the gateway as `SessionId`. */
  readonly targetSessionId: string;
  readonly enabled: boolean;
  /** Absent: any client. Present: only clients inside one of these (an empty list admits nobody). */
  readonly allowedClientCidrs?: CidrSet;
  /** Epoch seconds; the record stops resolving at this instant. */
  readonly expiresAt?: number;
  readonly source: RecordSource;
  readonly instanceId?: string;
  readonly instanceState?: string;
  readonly updatedAt?: string;
  /** Portal users allowed (matched against the ID token's subject, email and user name). */
  readonly allowedUsers?: readonly string[];
  /** Portal groups allowed (matched against the ID token's groups claim). */
  readonly allowedGroups?: readonly string[];
  readonly pool?: string;
  readonly leaseUser?: string;
  /** Absent: the verifier answers with the token's user (hosts whose permissions grant people by name). */
  readonly dcvUser?: string;
  readonly autoStopMinutes?: number;
  readonly startOnConnect?: boolean;
  /** The schedule as stored (validated); evaluate it with core/power/schedule.ts. */
  readonly schedule?: string;
  /**
   * Power runtime state, kept only when it reads as an instant (ISO text): bookkeeping written by the
   * portal and the power pass, so a junk value is dropped, never a reason to refuse the item.
   */
  readonly powerStartAt?: string;
  readonly idleSince?: string;
}

/** True when the item names an instance state other than running: the host is stopped, stopping or starting. */
export function isHostDown(record: Pick<SessionRecord, 'instanceState'>): boolean {
  return record.instanceState !== undefined && record.instanceState !== RUNNING_STATE;
}

/** A plain item as a store hands it over: attribute name to JS value (strings, numbers, booleans, arrays). */
export type RawItem = Record<string, unknown>;

// Control characters (C0, DEL, C1) never belong in ids, hosts or paths.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

export function hasControlChars(value: string): boolean {
  return CONTROL_CHARS.test(value);
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;

function isHostOrIp(value: string): boolean {
  return parseIp(value) !== undefined || HOSTNAME.test(value);
}

/** A rule failure: the reason without the attribute name, which parseSessionRecord puts in front. */
class Invalid {
  constructor(readonly message: string) {}
}

type Rule<T> = (value: unknown) => T | Invalid;

function typeName(value: unknown): string {
  return Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
}

function text(value: unknown): string | Invalid {
  return typeof value === 'string' ? value : new Invalid(`must be a string, not ${typeName(value)}`);
}

/** A number, or a string (trimmed) of the given shape: the console makes typing either easy. */
function numeric(value: unknown, shape: RegExp, message: string): number | Invalid {
  if (typeof value === 'number') return Number.isFinite(value) ? value : new Invalid(message);
  if (typeof value === 'string' && shape.test(value.trim())) return Number(value.trim());
  return new Invalid(message);
}

/** Ports are typed as strings in the console as often as numbers: accept both, integers 1–65535 only. */
const port: Rule<number> = (value) => {
  const n = numeric(value, /^\d{1,5}$/, 'must be an integer 1–65535');
  if (n instanceof Invalid) return n;
  if (!Number.isSafeInteger(n)) return new Invalid('must be an integer');
  return n >= 1 && n <= 65535 ? n : new Invalid('must be 1–65535');
};

const epochSeconds: Rule<number> = (value) => {
  const n = numeric(value, /^\d+(\.\d+)?$/, 'must be epoch seconds');
  if (n instanceof Invalid) return n;
  return Number.isFinite(n) && n >= 0 ? n : new Invalid('must be epoch seconds (a number ≥ 0)');
};

const idText: Rule<string> = (value) => {
  const v = text(value);
  if (v instanceof Invalid) return v;
  if (v.length < 1) return new Invalid('must not be empty');
  if (v.length > MAX_SESSION_ID_LENGTH) return new Invalid(`must be at most ${MAX_SESSION_ID_LENGTH} characters`);
  return hasControlChars(v) ? new Invalid('must not contain control characters') : v;
};

const endpoint: Rule<string> = (value) => {
  const v = text(value);
  if (v instanceof Invalid) return v;
  const trimmed = v.trim();
  return isHostOrIp(trimmed) ? trimmed : new Invalid('must be a host name or an IP address');
};

const webUrlPath: Rule<string> = (value) => {
  const v = text(value);
  if (v instanceof Invalid) return v;
  if (!v.startsWith('/')) return new Invalid("must start with '/'");
  if (v.length > 1024) return new Invalid('must be at most 1024 characters');
  return hasControlChars(v) || /\s/.test(v) ? new Invalid('must not contain spaces or control characters') : v;
};

const boolean: Rule<boolean> = (value) => (typeof value === 'boolean' ? value : new Invalid('must be a boolean (BOOL)'));

const cidrList: Rule<CidrSet> = (value) => {
  if (!Array.isArray(value)) return new Invalid(`must be an array (L or SS) of CIDR strings, not ${typeName(value)}`);
  const cidrs = [];
  for (const entry of value as unknown[]) {
    if (typeof entry !== 'string') return new Invalid(`must be an array of CIDR strings, not one with a ${typeName(entry)}`);
    const cidr = parseCidr(entry);
    if (!cidr) return new Invalid(`'${entry.slice(0, 64)}' is not a CIDR`);
    cidrs.push(cidr);
  }
  return new CidrSet(cidrs);
};

const autoStopMinutes: Rule<number> = (value) => {
  const message = `must be whole minutes ${MIN_AUTO_STOP_MINUTES}–${MAX_AUTO_STOP_MINUTES}`;
  const n = numeric(value, /^\d{1,4}$/, message);
  if (n instanceof Invalid) return n;
  return Number.isSafeInteger(n) && n >= MIN_AUTO_STOP_MINUTES && n <= MAX_AUTO_STOP_MINUTES ? n : new Invalid(message);
};

const schedule: Rule<string> = (value) => {
  const v = text(value);
  if (v instanceof Invalid) return v;
  const parsed = parseSchedule(v);
  return parsed.ok ? v : new Invalid(parsed.reason);
};

const source: Rule<RecordSource> = (value) =>
  value === 'manual' || value === 'ec2' || value === 'lease' ? value : new Invalid("must be 'manual', 'ec2' or 'lease'");

export const MAX_PRINCIPAL_LENGTH = 256;
export const MAX_PRINCIPALS = 100;

/** User or group names: a list (L or SS) of 1–100 non-empty strings without control characters. */
const principalList: Rule<readonly string[]> = (value) => {
  if (!Array.isArray(value)) return new Invalid(`must be an array (L or SS) of strings, not ${typeName(value)}`);
  // An empty list would read as "has rules" yet admit nobody; remove the attribute instead (it is clearer).
  if (value.length === 0) return new Invalid('must name at least one entry (remove the attribute to name none)');
  if (value.length > MAX_PRINCIPALS) return new Invalid(`must have at most ${MAX_PRINCIPALS} entries`);
  for (const entry of value as unknown[]) {
    if (typeof entry !== 'string') return new Invalid(`must be an array of strings, not one with a ${typeName(entry)}`);
    const problem = principalProblem(entry);
    if (problem) return new Invalid(`entry '${entry.slice(0, 64)}' ${problem}`);
  }
  return value as string[];
};

/** Why a user or group name can't be one, or undefined when it can. */
export function principalProblem(name: string): string | undefined {
  if (name.trim() === '') return 'must not be empty';
  if (name.length > MAX_PRINCIPAL_LENGTH) return `must be at most ${MAX_PRINCIPAL_LENGTH} characters`;
  if (hasControlChars(name)) return 'must not contain control characters';
  // ' alice' typed in the console would never match anyone: say so instead of silently admitting nobody.
  return name.trim() === name ? undefined : 'must not start or end with a space';
}

/** Pool names appear in tags, forms and item keys: letters, digits, '.', '_', '-', 1–64 characters. */
export const POOL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Why a value can't be a pool name, or undefined when it can. */
export function poolNameProblem(name: string): string | undefined {
  return POOL_NAME.test(name) ? undefined : "must be 1–64 letters, digits, '.', '_' or '-' (starting with a letter or digit)";
}

/** Session ids of the portal's pool leases (`lease:<member SessionId>`): no other item may take one. */
export const LEASE_PREFIX = 'lease:';

const poolName: Rule<string> = (value) => {
  const v = text(value);
  if (v instanceof Invalid) return v;
  const problem = poolNameProblem(v);
  return problem ? new Invalid(problem) : v;
};

const principal: Rule<string> = (value) => {
  const v = text(value);
  if (v instanceof Invalid) return v;
  const problem = principalProblem(v);
  return problem ? new Invalid(problem) : v;
};

/** A runtime attribute's value when it is ISO-like text naming an instant; anything else reads as absent. */
function instantText(value: unknown): string | undefined {
  return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value) && Number.isFinite(Date.parse(value)) ? value : undefined;
}

/** Thrown inside parseSessionRecord only, to stop at the first attribute that does not validate. */
class Rejected {
  constructor(readonly reason: string) {}
}

export type ParseResult = { ok: true; record: SessionRecord } | { ok: false; reason: string };

/** DynamoDB NULL values and console-cleared attributes arrive as null: treat them as absent. */
function dropNulls(item: RawItem): RawItem {
  let copy: RawItem | undefined;
  for (const key in item) {
    if (item[key] === null) {
      copy ??= { ...item };
      delete copy[key];
    }
  }
  return copy ?? item;
}

/** Validates one item; the reason names the attribute and what is wrong, for the operator's log. */
export function parseSessionRecord(item: RawItem): ParseResult {
  const v = dropNulls(item);
  // Attributes are checked in the contract's order, and the first one that fails is the reason.
  function required<T>(name: string, rule: Rule<T>): T {
    if (v[name] === undefined) throw new Rejected(`${name} is required`);
    return optional(name, rule)!;
  }
  function optional<T>(name: string, rule: Rule<T>): T | undefined {
    if (v[name] === undefined) return undefined;
    const result = rule(v[name]);
    if (result instanceof Invalid) throw new Rejected(`${name} ${result.message}`);
    return result;
  }
  try {
    const sessionId = required(Attr.SessionId, idText);
    const dcvServerEndpoint = required(Attr.DcvServerEndpoint, endpoint);
    const httpPort = optional(Attr.HttpPort, port) ?? DEFAULT_HTTP_PORT;
    const quicPort = optional(Attr.QuicPort, port);
    const webUrl = optional(Attr.WebUrlPath, webUrlPath) ?? DEFAULT_WEB_URL_PATH;
    const targetSessionId = optional(Attr.TargetSessionId, idText);
    const enabled = optional(Attr.Enabled, boolean) ?? true;
    const allowedClientCidrs = optional(Attr.AllowedClientCidrs, cidrList);
    const expiresAt = optional(Attr.ExpiresAt, epochSeconds);
    const recordSource = optional(Attr.Source, source) ?? 'manual';
    const instanceId = optional(Attr.InstanceId, text);
    const instanceState = optional(Attr.InstanceState, text);
    const updatedAt = optional(Attr.UpdatedAt, text);
    optional(Attr.DiscoveredHash, text);
    const allowedUsers = optional(Attr.AllowedUsers, principalList);
    const allowedGroups = optional(Attr.AllowedGroups, principalList);
    const pool = optional(Attr.Pool, poolName);
    const leaseUser = optional(Attr.LeaseUser, principal);
    // The same rules as a user name: 'ubuntu ' would be refused by DCV as surely as a typo, so say so here.
    const dcvUser = optional(Attr.DcvUser, principal);
    const autoStop = optional(Attr.AutoStopMinutes, autoStopMinutes);
    const startOnConnect = optional(Attr.StartOnConnect, boolean);
    const scheduleText = optional(Attr.Schedule, schedule);
    const powerStartAt = instantText(v[Attr.PowerStartAt]);
    const idleSince = instantText(v[Attr.IdleSince]);
    return {
      ok: true,
      record: {
        sessionId,
        dcvServerEndpoint,
        httpPort,
        quicPort,
        webUrlPath: webUrl,
        targetSessionId: targetSessionId ?? sessionId,
        enabled,
        allowedClientCidrs,
        expiresAt,
        source: recordSource,
        instanceId,
        instanceState,
        updatedAt,
        ...(allowedUsers ? { allowedUsers } : {}),
        ...(allowedGroups ? { allowedGroups } : {}),
        ...(pool ? { pool } : {}),
        ...(leaseUser ? { leaseUser } : {}),
        ...(dcvUser ? { dcvUser } : {}),
        ...(autoStop === undefined ? {} : { autoStopMinutes: autoStop }),
        ...(startOnConnect === undefined ? {} : { startOnConnect }),
        ...(scheduleText === undefined ? {} : { schedule: scheduleText }),
        ...(powerStartAt === undefined ? {} : { powerStartAt }),
        ...(idleSince === undefined ? {} : { idleSince }),
      },
    };
  } catch (error) {
    if (error instanceof Rejected) return { ok: false, reason: error.reason };
    throw error;
  }
}
