import { parseCidr } from '../ip.js';
import { parseSchedule } from '../power/schedule.js';
import {
  Attr,
  DEFAULT_HTTP_PORT,
  DEFAULT_WEB_URL_PATH,
  LEASE_PREFIX,
  MAX_AUTO_STOP_MINUTES,
  MAX_PRINCIPALS,
  MIN_AUTO_STOP_MINUTES,
  parseSessionRecord,
  poolNameProblem,
  principalProblem,
  RUNNING_STATE,
  type RawItem,
} from '../session-record.js';
import { withFingerprint } from './fingerprint.js';

/**
 * EC2 tags → the session items discovery wants in the table. Pure: the EC2 adapter maps the SDK's
 * Instance to `InstanceInfo`, so this module (and its tests) never see AWS types.
 */
export const DEFAULT_TAG_PREFIX = 'dcv:';

/** The tag names under the prefix; anything else under the prefix is reported (it is usually a typo). */
export const TagName = {
  sessionId: 'session-id',
  port: 'port',
  quicPort: 'quic-port',
  webUrlPath: 'web-url-path',
  address: 'address',
  allowedClientCidrs: 'allowed-client-cidrs',
  /** Portal: who may open the instance's sessions (comma-separated). */
  allowedUsers: 'allowed-users',
  allowedGroups: 'allowed-groups',
  /** Portal: the instance is a member of this pool. */
  pool: 'pool',
  /** The name the verifier gives the DCV server (DcvUser), e.g. the console session's owner. */
  dcvUser: 'user',
  /** Desktops on demand: stop after this many minutes with nobody connected. */
  autoStop: 'auto-stop',
  /** Desktops on demand: the portal may start the stopped instance. */
  startOnConnect: 'start-on-connect',
  /** Desktops on demand: weekly windows in which the instance runs. */
  schedule: 'schedule',
} as const;

/** Any of these makes an instance power-managed: its items are kept (with its state) while it is not running. */
export const POWER_TAGS = [TagName.autoStop, TagName.startOnConnect, TagName.schedule] as const;

/** States in which a power-managed instance keeps its items; shutting-down and terminated remove them as before. */
export const KEPT_STATES: ReadonlySet<string> = new Set(['pending', 'stopping', 'stopped']);

export const ADDRESS_KINDS = ['private-ip', 'private-dns', 'public-ip', 'public-dns', 'ipv6'] as const;
export type AddressKind = (typeof ADDRESS_KINDS)[number];

/** What discovery needs to know about one instance. */
export interface InstanceInfo {
  readonly instanceId: string;
  /** EC2 state name: pending, running, stopping, stopped, shutting-down, terminated. */
  readonly state: string;
  /** Epoch milliseconds; breaks ties between instances claiming one session id. Absent sorts last. */
  readonly launchTime?: number;
  readonly privateIp?: string;
  readonly privateDns?: string;
  readonly publicIp?: string;
  readonly publicDns?: string;
  readonly ipv6?: string;
  /** EC2's Platform, lower case (`windows`); absent for Linux. */
  readonly platform?: string;
  readonly tags: Readonly<Record<string, string>>;
}

/**
 * One session item an instance asks for, with its `DiscoveredHash` (no UpdatedAt: that is stamped when written).
 */
export interface DesiredRecord {
  readonly sessionId: string;
  readonly instanceId: string;
  readonly item: RawItem;
}

export type InstanceClaims =
  | { readonly ok: true; readonly instance: InstanceInfo; readonly records: readonly DesiredRecord[] }
  | { readonly ok: false; readonly instance: InstanceInfo; readonly reason: string };

const INSTANCE_ID_TEMPLATE = '{instanceId}';
const MAX_TAG_KEY_LENGTH = 128;
const LONGEST_TAG_NAME = Math.max(...Object.values(TagName).map((name) => name.length));

/**
 * A prefix must leave room for the longest tag name within EC2's 128-character key limit, and may not
 * use the reserved `aws:` namespace. Returns the prefix or throws with the reason.
 */
export function validateTagPrefix(prefix: string): string {
  if (prefix.length === 0) throw new Error('tag prefix must not be empty');
  if (prefix.length + LONGEST_TAG_NAME > MAX_TAG_KEY_LENGTH) {
    throw new Error(`tag prefix must be at most ${MAX_TAG_KEY_LENGTH - LONGEST_TAG_NAME} characters`);
  }
  if (!/^[\p{L}\p{Z}\p{N}_.:/=+\-@]+$/u.test(prefix)) {
    throw new Error("tag prefix may contain only letters, digits, spaces and _ . : / = + - @");
  }
  if (prefix.toLowerCase().startsWith('aws:')) throw new Error("tag prefix must not start with 'aws:' (reserved by AWS)");
  return prefix;
}

class TagError extends Error {}

function parsePort(key: string, value: string): number {
  const text = value.trim();
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new TagError(`${key} '${value}' must be a port number 1–65535`);
  return port;
}

function parseAddressKind(key: string, value: string): AddressKind {
  const kind = value.trim() as AddressKind;
  if (!ADDRESS_KINDS.includes(kind)) {
    throw new TagError(`${key} '${value}' must be one of ${ADDRESS_KINDS.join(', ')}`);
  }
  return kind;
}

function endpointFor(instance: InstanceInfo, kind: AddressKind, key: string): string {
  const address = {
    'private-ip': instance.privateIp,
    'private-dns': instance.privateDns,
    'public-ip': instance.publicIp,
    'public-dns': instance.publicDns,
    ipv6: instance.ipv6,
  }[kind];
  if (!address) throw new TagError(`${key} is '${kind}' but the instance has no ${kind.replace('-', ' ')}`);
  return address;
}

function parseCidrs(key: string, value: string): string[] {
  const entries = value.split(',').map((entry) => entry.trim());
  if (entries.every((entry) => entry === '')) throw new TagError(`${key} lists no CIDR`);
  return entries.map((entry) => {
    const cidr = entry === '' ? undefined : parseCidr(entry);
    if (!cidr) throw new TagError(`${key} entry '${entry}' is not an IPv4 or IPv6 CIDR`);
    return entry;
  });
}

/** A comma-separated list of user or group names: trimmed, empty entries dropped, each a valid name. */
function parseNames(key: string, value: string): string[] {
  const names = value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (names.length === 0) throw new TagError(`${key} lists no name`);
  if (names.length > MAX_PRINCIPALS) throw new TagError(`${key} lists ${names.length} names; at most ${MAX_PRINCIPALS}`);
  for (const name of names) {
    const problem = principalProblem(name);
    if (problem) throw new TagError(`${key} entry '${name.slice(0, 64)}' ${problem}`);
  }
  return names;
}

function parsePool(key: string, value: string): string {
  const pool = value.trim();
  const problem = poolNameProblem(pool);
  if (problem) throw new TagError(`${key} '${value.slice(0, 80)}' ${problem}`);
  return pool;
}

function parseAutoStop(key: string, value: string): number {
  const text = value.trim();
  const minutes = /^\d{1,4}$/.test(text) ? Number(text) : NaN;
  if (!(minutes >= MIN_AUTO_STOP_MINUTES && minutes <= MAX_AUTO_STOP_MINUTES)) {
    throw new TagError(`${key} '${value.slice(0, 80)}' must be whole minutes ${MIN_AUTO_STOP_MINUTES}–${MAX_AUTO_STOP_MINUTES}`);
  }
  return minutes;
}

function parseFlag(key: string, value: string): boolean {
  const text = value.trim().toLowerCase();
  if (text !== 'true' && text !== 'false') throw new TagError(`${key} '${value.slice(0, 80)}' must be true or false`);
  return text === 'true';
}

function parseScheduleTag(key: string, value: string): string {
  const text = value.trim();
  const parsed = parseSchedule(text);
  if (!parsed.ok) throw new TagError(`${key} ${parsed.reason}`);
  return text;
}

/**
 * Where a power-managed instance that is not running is reached: its tagged address when it has one, else
 * its private IP (then private DNS, IPv6). A stopped instance loses its public IP and DNS, but the resolver
 * never sends anyone to a host that is not running, and discovery writes the real address once it runs.
 */
function endpointWhileDown(instance: InstanceInfo, kind: AddressKind, key: string): string {
  const fallback = instance.privateIp ?? instance.privateDns ?? instance.ipv6;
  try {
    return endpointFor(instance, kind, key);
  } catch (error) {
    if (fallback === undefined) throw error;
    return fallback;
  }
}

function parseDcvUser(key: string, value: string): string {
  const user = value.trim();
  const problem = principalProblem(user);
  if (problem) throw new TagError(`${key} '${value.slice(0, 80)}' ${problem}`);
  return user;
}

interface SessionEntry {
  readonly sessionId: string;
  readonly targetSessionId?: string;
}

function parseSessionEntries(key: string, value: string, instanceId: string): SessionEntry[] {
  const seen = new Set<string>();
  return value.split(',').map((raw) => {
    const entry = raw.trim().replaceAll(INSTANCE_ID_TEMPLATE, instanceId);
    const equals = entry.indexOf('=');
    const sessionId = (equals === -1 ? entry : entry.slice(0, equals)).trim();
    const target = equals === -1 ? undefined : entry.slice(equals + 1).trim();
    if (sessionId === '') throw new TagError(`${key} has an empty session id in '${value}'`);
    // An instance may not claim a lease's id.
    if (sessionId.startsWith(LEASE_PREFIX)) {
      throw new TagError(`${key} entry '${sessionId}': ids starting with '${LEASE_PREFIX}' are reserved for the portal's pool leases`);
    }
    if (target !== undefined && target === '') throw new TagError(`${key} entry '${entry}' has an empty target after '='`);
    if (target !== undefined && target.includes('=')) throw new TagError(`${key} entry '${entry}' has more than one '='`);
    if (seen.has(sessionId)) throw new TagError(`${key} lists session id '${sessionId}' more than once`);
    seen.add(sessionId);
    return target === undefined ? { sessionId } : { sessionId, targetSessionId: target };
  });
}

/** Reads one optional tag: absent → undefined; present but empty → an error (remove the tag for the default). */
function optionalTag(tags: Readonly<Record<string, string>>, key: string): string | undefined {
  const value = tags[key];
  if (value === undefined) return undefined;
  if (value.trim() === '') throw new TagError(`${key} is empty; remove the tag to use the default`);
  return value;
}

/** True when the instance carries any desktops-on-demand tag (whatever its value). */
export function isPowerManaged(tags: Readonly<Record<string, string>>, prefix: string = DEFAULT_TAG_PREFIX): boolean {
  return POWER_TAGS.some((name) => tags[`${prefix}${name}`] !== undefined);
}

/**
 * The records one instance asks for. Running instances ask for their items; so does a pending, stopping
 * or stopped instance carrying a desktops-on-demand tag (its items record the state, and the resolver
 * answers 404 for them until it runs). Any other instance asks for nothing. An instance whose tags do not
 * parse asks for nothing and gets a reason naming the tag, so the operator can fix it.
 */
export function parseInstanceTags(instance: InstanceInfo, prefix: string = DEFAULT_TAG_PREFIX): InstanceClaims {
  const tags = instance.tags;
  const key = (name: string) => `${prefix}${name}`;
  const running = instance.state === RUNNING_STATE;
  const kept = !running && KEPT_STATES.has(instance.state) && isPowerManaged(tags, prefix);
  if ((!running && !kept) || tags[key(TagName.sessionId)] === undefined) {
    return { ok: true, instance, records: [] };
  }
  try {
    const known = new Set(Object.values(TagName).map(key));
    const unknown = Object.keys(tags).filter((k) => k.startsWith(prefix) && !known.has(k));
    if (unknown.length > 0) {
      throw new TagError(`unknown tag ${unknown.map((k) => `'${k}'`).join(', ')} (known: ${[...known].join(', ')})`);
    }
    const entries = parseSessionEntries(key(TagName.sessionId), tags[key(TagName.sessionId)]!, instance.instanceId);
    const portText = optionalTag(tags, key(TagName.port));
    const quicText = optionalTag(tags, key(TagName.quicPort));
    const pathText = optionalTag(tags, key(TagName.webUrlPath));
    const addressText = optionalTag(tags, key(TagName.address));
    const cidrsText = optionalTag(tags, key(TagName.allowedClientCidrs));
    const usersText = optionalTag(tags, key(TagName.allowedUsers));
    const groupsText = optionalTag(tags, key(TagName.allowedGroups));
    const poolText = optionalTag(tags, key(TagName.pool));
    const dcvUserText = optionalTag(tags, key(TagName.dcvUser));
    const autoStopText = optionalTag(tags, key(TagName.autoStop));
    const startOnConnectText = optionalTag(tags, key(TagName.startOnConnect));
    const scheduleText = optionalTag(tags, key(TagName.schedule));

    const httpPort = portText === undefined ? DEFAULT_HTTP_PORT : parsePort(key(TagName.port), portText);
    const quicPort = quicText === undefined ? undefined : parsePort(key(TagName.quicPort), quicText);
    const webUrlPath = pathText === undefined ? DEFAULT_WEB_URL_PATH : pathText.trim();
    const kind = addressText === undefined ? 'private-ip' : parseAddressKind(key(TagName.address), addressText);
    const endpoint = running ? endpointFor(instance, kind, key(TagName.address)) : endpointWhileDown(instance, kind, key(TagName.address));
    const cidrs = cidrsText === undefined ? undefined : parseCidrs(key(TagName.allowedClientCidrs), cidrsText);
    const users = usersText === undefined ? undefined : parseNames(key(TagName.allowedUsers), usersText);
    const groups = groupsText === undefined ? undefined : parseNames(key(TagName.allowedGroups), groupsText);
    const pool = poolText === undefined ? undefined : parsePool(key(TagName.pool), poolText);
    const dcvUser = dcvUserText === undefined ? undefined : parseDcvUser(key(TagName.dcvUser), dcvUserText);
    const autoStop = autoStopText === undefined ? undefined : parseAutoStop(key(TagName.autoStop), autoStopText);
    const startOnConnect = startOnConnectText === undefined ? undefined : parseFlag(key(TagName.startOnConnect), startOnConnectText);
    const schedule = scheduleText === undefined ? undefined : parseScheduleTag(key(TagName.schedule), scheduleText);

    const records = entries.map((entry): DesiredRecord => {
      const item: RawItem = withFingerprint({
        [Attr.SessionId]: entry.sessionId,
        [Attr.DcvServerEndpoint]: endpoint,
        [Attr.HttpPort]: httpPort,
        ...(quicPort === undefined ? {} : { [Attr.QuicPort]: quicPort }),
        [Attr.WebUrlPath]: webUrlPath,
        ...(entry.targetSessionId === undefined ? {} : { [Attr.TargetSessionId]: entry.targetSessionId }),
        ...(cidrs === undefined ? {} : { [Attr.AllowedClientCidrs]: cidrs }),
        ...(users === undefined ? {} : { [Attr.AllowedUsers]: users }),
        ...(groups === undefined ? {} : { [Attr.AllowedGroups]: groups }),
        ...(pool === undefined ? {} : { [Attr.Pool]: pool }),
        // Only when tagged: an item without it keeps the DiscoveredHash it had before DcvUser existed.
        ...(dcvUser === undefined ? {} : { [Attr.DcvUser]: dcvUser }),
        // The same rule for the desktops-on-demand attributes: untagged items keep their hash.
        ...(autoStop === undefined ? {} : { [Attr.AutoStopMinutes]: autoStop }),
        ...(startOnConnect === undefined ? {} : { [Attr.StartOnConnect]: startOnConnect }),
        ...(schedule === undefined ? {} : { [Attr.Schedule]: schedule }),
        [Attr.Source]: 'ec2',
        [Attr.InstanceId]: instance.instanceId,
        [Attr.InstanceState]: instance.state,
      });
      // Discovery never writes an item the resolver would reject.
      const checked = parseSessionRecord(item);
      if (!checked.ok) throw new TagError(`session '${entry.sessionId}': ${checked.reason}`);
      return { sessionId: entry.sessionId, instanceId: instance.instanceId, item };
    });
    return { ok: true, instance, records };
  } catch (error) {
    if (error instanceof TagError) return { ok: false, instance, reason: error.message };
    throw error;
  }
}
