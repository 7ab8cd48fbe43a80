// A namespace import lets esbuild drop what is unused (zod's locales alone are ~260 KB of the bundle).
import * as z from 'zod';
import { parseCidr, parseIp, CidrSet } from './ip';

// zod compiles object schemas with `new Function` on first use: 10–50 ms of a cold start, and no faster
// afterwards for one small object. Interpreted parsing gives the same results.
z.config({ jitless: true });

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
} as const;

export type RecordSource = 'manual' | 'ec2';

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

/** Ports are typed as strings in the console as often as numbers: accept both, integers 1–65535 only. */
const port = z
  .union([z.number(), z.string().trim().regex(/^\d{1,5}$/).transform(Number)], 'must be an integer 1–65535')
  .pipe(z.number().int('must be an integer').min(1, 'must be 1–65535').max(65535, 'must be 1–65535'));

const epochSeconds = z
  .union([z.number(), z.string().trim().regex(/^\d+(\.\d+)?$/).transform(Number)], 'must be epoch seconds')
  .pipe(z.number().finite().nonnegative());

const idText = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_SESSION_ID_LENGTH, `must be at most ${MAX_SESSION_ID_LENGTH} characters`)
  .refine((v) => !hasControlChars(v), 'must not contain control characters');

const cidrList = z
  .array(z.string())
  .transform((entries, ctx) => {
    const cidrs = [];
    for (const entry of entries) {
      const cidr = parseCidr(entry);
      if (!cidr) {
        ctx.addIssue({ code: 'custom', message: `'${entry.slice(0, 64)}' is not a CIDR` });
        return z.NEVER;
      }
      cidrs.push(cidr);
    }
    return new CidrSet(cidrs);
  });

const itemSchema = z.object({
  SessionId: idText,
  DcvServerEndpoint: z.string().trim().refine(isHostOrIp, 'must be a host name or an IP address'),
  HttpPort: port.default(DEFAULT_HTTP_PORT),
  QuicPort: port.optional(),
  WebUrlPath: z
    .string()
    .startsWith('/', "must start with '/'")
    .max(1024, 'must be at most 1024 characters')
    .refine((v) => !hasControlChars(v) && !/\s/.test(v), 'must not contain spaces or control characters')
    .default(DEFAULT_WEB_URL_PATH),
  TargetSessionId: idText.optional(),
  Enabled: z.boolean('must be a boolean (BOOL)').default(true),
  AllowedClientCidrs: cidrList.optional(),
  ExpiresAt: epochSeconds.optional(),
  Source: z.enum(['manual', 'ec2'], "must be 'manual' or 'ec2'").default('manual'),
  InstanceId: z.string().optional(),
  InstanceState: z.string().optional(),
  UpdatedAt: z.string().optional(),
  DiscoveredHash: z.string().optional(),
});

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
  const parsed = itemSchema.safeParse(dropNulls(item));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const attribute = issue.path.length > 0 ? String(issue.path[0]) : 'item';
    const missing = issue.path.length > 0 && item[attribute] == null;
    return { ok: false, reason: missing ? `${attribute} is required` : `${attribute} ${issue.message}` };
  }
  const v = parsed.data;
  return {
    ok: true,
    record: {
      sessionId: v.SessionId,
      dcvServerEndpoint: v.DcvServerEndpoint,
      httpPort: v.HttpPort,
      quicPort: v.QuicPort,
      webUrlPath: v.WebUrlPath,
      targetSessionId: v.TargetSessionId ?? v.SessionId,
      enabled: v.Enabled,
      allowedClientCidrs: v.AllowedClientCidrs,
      expiresAt: v.ExpiresAt,
      source: v.Source,
      instanceId: v.InstanceId,
      instanceState: v.InstanceState,
      updatedAt: v.UpdatedAt,
    },
  };
}
