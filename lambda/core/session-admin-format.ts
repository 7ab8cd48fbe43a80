import { hasAccessRules } from './session-access.js';
import { Attr, isHostDown, parseSessionRecord, type RawItem, type SessionRecord } from './session-record.js';

/**
 * What `sessions list`, `get` and `export` print. Valid items show the values the resolver will use
 * (defaults filled in); malformed items show what is stored, marked with the reason the resolver skips them.
 */

export interface SessionRow {
  readonly id: string;
  readonly endpoint: string;
  readonly http: string;
  readonly quic: string;
  readonly path: string;
  readonly target: string;
  readonly source: string;
  readonly enabled: string;
  readonly expiry: string;
  readonly instance: string;
  /** Portal pool, or `-`. */
  readonly pool: string;
  /** Portal: allowed users, then groups as `group:<name>`; `-` when neither (shown to nobody). */
  readonly access: string;
  /** DcvUser (the name the verifier answers DCV with), or `-`: the token's user. */
  readonly dcvUser: string;
  /** `malformed: <reason>`, `expired`, `host not running (InstanceState = …)`, or empty. */
  readonly note: string;
}

const HEADER: SessionRow = {
  id: 'ID',
  endpoint: 'ENDPOINT',
  http: 'HTTP',
  quic: 'QUIC',
  path: 'PATH',
  target: 'TARGET',
  source: 'SOURCE',
  enabled: 'ENABLED',
  expiry: 'EXPIRES',
  instance: 'INSTANCE',
  pool: 'POOL',
  access: 'ACCESS',
  dcvUser: 'DCV USER',
  note: 'NOTE',
};

const COLUMNS = Object.keys(HEADER) as (keyof SessionRow)[];
const MAX_CELL = 40;

export function isoSeconds(epochSeconds: number): string {
  const ms = epochSeconds * 1000;
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return String(epochSeconds);
  return new Date(ms).toISOString().replace(/\.000Z$/, 'Z');
}

function raw(value: unknown): string {
  if (value === undefined || value === null) return '-';
  if (typeof value === 'string') return value === '' ? "''" : value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value) ?? '-';
}

function isExpired(record: SessionRecord, nowMs: number): boolean {
  return record.expiresAt !== undefined && nowMs >= record.expiresAt * 1000;
}

export function sessionRow(item: RawItem, nowMs: number): SessionRow {
  const parsed = parseSessionRecord(item);
  if (!parsed.ok) {
    return {
      id: raw(item[Attr.SessionId]),
      endpoint: raw(item[Attr.DcvServerEndpoint]),
      http: raw(item[Attr.HttpPort]),
      quic: raw(item[Attr.QuicPort]),
      path: raw(item[Attr.WebUrlPath]),
      target: raw(item[Attr.TargetSessionId]),
      source: raw(item[Attr.Source]),
      enabled: raw(item[Attr.Enabled]),
      expiry: typeof item[Attr.ExpiresAt] === 'number' ? isoSeconds(item[Attr.ExpiresAt] as number) : raw(item[Attr.ExpiresAt]),
      instance: raw(item[Attr.InstanceId]),
      pool: raw(item[Attr.Pool]),
      access: rawAccess(item),
      dcvUser: raw(item[Attr.DcvUser]),
      note: `malformed: ${parsed.reason}`,
    };
  }
  const r = parsed.record;
  return {
    id: r.sessionId,
    endpoint: r.dcvServerEndpoint,
    http: String(r.httpPort),
    quic: r.quicPort === undefined ? '-' : String(r.quicPort),
    path: r.webUrlPath,
    target: r.targetSessionId === r.sessionId ? '-' : r.targetSessionId,
    source: r.source,
    enabled: r.enabled ? 'yes' : 'no',
    expiry: r.expiresAt === undefined ? '-' : isoSeconds(r.expiresAt),
    instance: r.instanceId ?? '-',
    pool: r.pool ?? '-',
    access: accessList(r.allowedUsers, r.allowedGroups),
    dcvUser: r.dcvUser ?? '-',
    note: isExpired(r, nowMs) ? 'expired' : isHostDown(r) ? hostDownText(r.instanceState!) : '',
  };
}

/** Why an item of a host that is not running does not resolve (the resolver's 404 says the same). */
function hostDownText(state: string): string {
  return `host not running (InstanceState = ${JSON.stringify(state)})`;
}

/**
 * Desktops on demand, for `get` and `put`; undefined for a session that uses none of the attributes.
 * Phase 1 records them; the power pass that acts on them is to come.
 */
export function powerSettings(item: RawItem): string | undefined {
  const parsed = parseSessionRecord(item);
  if (!parsed.ok) return undefined;
  const r = parsed.record;
  const parts: string[] = [];
  if (r.autoStopMinutes !== undefined) parts.push(`stops after ${r.autoStopMinutes} minutes with nobody connected`);
  if (r.startOnConnect !== undefined) parts.push(r.startOnConnect ? 'the portal may start it (StartOnConnect)' : 'not started by the portal');
  if (r.schedule !== undefined) parts.push(`runs in ${r.schedule}`);
  return parts.length === 0 ? undefined : `power: ${parts.join('; ')}`;
}

function accessList(users: readonly string[] | undefined, groups: readonly string[] | undefined): string {
  const all = [...(users ?? []), ...(groups ?? []).map((g) => `group:${g}`)];
  return all.length === 0 ? '-' : all.join(',');
}

function rawAccess(item: RawItem): string {
  const users = item[Attr.AllowedUsers];
  const groups = item[Attr.AllowedGroups];
  if (users === undefined && groups === undefined) return '-';
  const strings = (value: unknown) => (Array.isArray(value) && value.every((v) => typeof v === 'string') ? (value as string[]) : undefined);
  const [u, g] = [strings(users), strings(groups)];
  if ((users !== undefined && !u) || (groups !== undefined && !g)) return raw([users ?? null, groups ?? null]);
  return accessList(u, g);
}

/**
 * Who the portal shows the session to, for `get` and `put`; undefined for a session that uses none of the
 * portal attributes (most operators never see this line).
 */
export function portalAccess(item: RawItem): string | undefined {
  const parsed = parseSessionRecord(item);
  if (!parsed.ok) return undefined;
  const r = parsed.record;
  if (!hasAccessRules(r) && r.pool === undefined && r.leaseUser === undefined) return undefined;
  const parts: string[] = [];
  if (!hasAccessRules(r)) parts.push('shown to nobody (no AllowedUsers or AllowedGroups)');
  if (r.allowedUsers) parts.push(`users ${r.allowedUsers.join(', ')}`);
  if (r.allowedGroups) parts.push(`groups ${r.allowedGroups.join(', ')}`);
  if (r.pool !== undefined) parts.push(r.source === 'lease' ? `lease in pool ${r.pool}` : `member of pool ${r.pool}`);
  if (r.leaseUser !== undefined) parts.push(`held by ${r.leaseUser}`);
  return `portal: ${parts.join('; ')}`;
}

/** Code-unit order, the same on every machine and locale. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function sortById(items: readonly RawItem[]): RawItem[] {
  return [...items].sort((a, b) => compareIds(String(a[Attr.SessionId]), String(b[Attr.SessionId])));
}

/** One line per row, whatever an item holds. */
function flat(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

function cell(text: string): string {
  const line = flat(text);
  return line.length > MAX_CELL ? `${line.slice(0, MAX_CELL - 1)}…` : line;
}

/** A fixed-width table, header first; the last column (NOTE) is never cut. */
export function formatSessionTable(rows: readonly SessionRow[]): string {
  const all = [HEADER, ...rows].map((row) =>
    Object.fromEntries(COLUMNS.map((c) => [c, c === 'note' ? flat(row[c]) : cell(row[c])])) as unknown as SessionRow,
  );
  const widths = COLUMNS.map((c) => Math.max(...all.map((row) => row[c].length)));
  return all
    .map((row) =>
      COLUMNS.map((c, i) => (i === COLUMNS.length - 1 ? row[c] : row[c].padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export interface ListEntry {
  readonly sessionId: unknown;
  readonly valid: boolean;
  readonly reason?: string;
  readonly item: RawItem;
}

/** `list --json`: every item as stored, with the resolver's verdict. */
export function listEntries(items: readonly RawItem[]): ListEntry[] {
  return sortById(items).map((item) => {
    const parsed = parseSessionRecord(item);
    return { sessionId: item[Attr.SessionId], valid: parsed.ok, ...(parsed.ok ? {} : { reason: parsed.reason }), item };
  });
}

const ATTRIBUTE_ORDER: readonly string[] = Object.values(Attr);

/** `get`: the stored attributes (JSON values, so a port typed as a string shows as one), then the verdict. */
export function describeSession(item: RawItem, nowMs: number): string {
  const keys = Object.keys(item).sort((a, b) => {
    const ia = ATTRIBUTE_ORDER.indexOf(a);
    const ib = ATTRIBUTE_ORDER.indexOf(b);
    if (ia !== ib) return (ia < 0 ? Infinity : ia) - (ib < 0 ? Infinity : ib) || compareIds(a, b);
    return compareIds(a, b);
  });
  const width = Math.max(...keys.map((k) => k.length));
  const lines = keys.map((key) => {
    const value = item[key];
    const when = key === Attr.ExpiresAt && typeof value === 'number' ? `  (${isoSeconds(value)})` : '';
    return `${key.padEnd(width)}  ${JSON.stringify(value) ?? 'undefined'}${when}`;
  });
  const extra = [portalAccess(item), powerSettings(item)].filter((line) => line !== undefined);
  return `${lines.join('\n')}\n\n${verdict(item, nowMs)}${extra.map((line) => `\n${line}`).join('')}`;
}

/** Whether and how the resolver answers for this item. */
export function verdict(item: RawItem, nowMs: number): string {
  const parsed = parseSessionRecord(item);
  if (!parsed.ok) return `malformed: the resolver skips this item (answers 404): ${parsed.reason}`;
  const r = parsed.record;
  if (!r.enabled) return 'does not resolve: disabled (Enabled = false)';
  if (isExpired(r, nowMs)) return `does not resolve: expired at ${isoSeconds(r.expiresAt!)}`;
  if (isHostDown(r)) return `does not resolve: the host is not running (InstanceState = ${JSON.stringify(r.instanceState)})`;
  const as = r.targetSessionId === r.sessionId ? '' : ` as session '${r.targetSessionId}'`;
  const quic = r.quicPort === undefined ? 'QUIC not offered' : `QUIC → ${r.dcvServerEndpoint}:${r.quicPort}${r.webUrlPath}`;
  const cidrs = item[Attr.AllowedClientCidrs] as string[] | undefined;
  const who =
    cidrs === undefined
      ? ''
      : cidrs.length === 0
        ? '; admits no client (AllowedClientCidrs is empty)'
        : `; only for clients in ${cidrs.join(', ')}`;
  const until = r.expiresAt === undefined ? '' : `; until ${isoSeconds(r.expiresAt)}`;
  // Only when set: without it the verifier answers with the token's user, as it always did.
  const dcvUser = r.dcvUser === undefined ? '' : `; the verifier answers DCV as '${r.dcvUser}' (DcvUser)`;
  return `resolves: HTTP → ${r.dcvServerEndpoint}:${r.httpPort}${r.webUrlPath}${as}; ${quic}${who}${until}${dcvUser}`;
}

/** A sessions file `serve --sessions` reads: a JSON array sorted by SessionId, 2-space indented. */
export function sessionsFileText(items: readonly RawItem[]): string {
  return `${JSON.stringify(sortById(items), null, 2)}\n`;
}
