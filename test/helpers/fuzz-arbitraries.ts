import { BlockList } from 'node:net';
import fc from 'fast-check';
import type { RawItem } from '../../lambda/core/session-record';
import type { SessionStore } from '../../lambda/core/session-store';

/**
 * Generators for hostile input shared by the fuzz tests, and independent oracles: what a well-formed item
 * must resolve to is computed from the generator's own values, never by the code under test.
 */

/** Ids the request generator also uses, so generated lookups actually hit generated items. */
export const SESSION_IDS = ['console', 's-1', 'dev desk', 'ünï', 'x'.repeat(256)] as const;

export interface WellFormedItem {
  readonly kind: 'ok';
  readonly item: RawItem;
  /** What a lookup of this id may answer (null: must be 404 for the given transport). */
  readonly answer: (transport: 'HTTP' | 'QUIC', nowMs: number) => Record<string, unknown> | null;
}

export interface MalformedItem {
  readonly kind: 'malformed';
  readonly item: RawItem;
}

export type GeneratedItem = WellFormedItem | MalformedItem;

const port = fc.integer({ min: 1, max: 65535 });
const label = fc.stringMatching(/^[a-z0-9]{1,12}$/);
const host = fc.oneof(fc.ipV4(), fc.tuple(label, label).map(([a, b]) => `${a}.${b}.internal`));
const idText = fc.stringMatching(/^[A-Za-z0-9._-]{1,24}$/);

export function wellFormedItem(sessionId: string): fc.Arbitrary<WellFormedItem> {
  return fc
    .record(
      {
        DcvServerEndpoint: host,
        HttpPort: fc.oneof(port, port.map(String)),
        QuicPort: fc.oneof(port, port.map(String)),
        WebUrlPath: fc.stringMatching(/^\/[A-Za-z0-9/_-]{0,20}$/),
        TargetSessionId: idText,
        Enabled: fc.boolean(),
        // Far past or far future: never near "now", so the oracle needs no clock.
        ExpiresAt: fc.oneof(fc.integer({ min: 1, max: 1_000_000_000 }), fc.integer({ min: 4_000_000_000, max: 9_000_000_000 })),
      },
      { requiredKeys: ['DcvServerEndpoint'] },
    )
    .map((fields) => {
      const item: RawItem = { SessionId: sessionId, ...fields };
      return {
        kind: 'ok' as const,
        item,
        answer: (transport: 'HTTP' | 'QUIC', nowMs: number) => {
          if (fields.Enabled === false) return null;
          if (fields.ExpiresAt !== undefined && nowMs >= fields.ExpiresAt * 1000) return null;
          if (transport === 'QUIC' && fields.QuicPort === undefined) return null;
          const chosen = transport === 'QUIC' ? fields.QuicPort : (fields.HttpPort ?? 8443);
          return {
            SessionId: fields.TargetSessionId ?? sessionId,
            TransportProtocol: transport,
            DcvServerEndpoint: fields.DcvServerEndpoint,
            Port: Number(chosen),
            WebUrlPath: fields.WebUrlPath ?? '/',
          };
        },
      };
    });
}

/** One attribute broken in a way an operator could type in the console (or garbage). */
const breakage: fc.Arbitrary<[string, unknown]> = fc.oneof(
  fc.tuple(fc.constant('HttpPort'), fc.constantFrom(0, -1, 65536, 1.5, 'http', '', ' 80x', true, {}, [], 1e20, Number.NaN)),
  fc.tuple(fc.constant('QuicPort'), fc.constantFrom(0, 70000, 'udp', false, [4443])),
  fc.tuple(fc.constant('DcvServerEndpoint'), fc.constantFrom('', '   ', 'bad host!', 'a..b', 42, true, ['10.0.0.1'], 'x'.repeat(300), 'ok\u0000host')),
  fc.tuple(fc.constant('Enabled'), fc.constantFrom('true', 'false', 1, 0, 'yes')),
  fc.tuple(fc.constant('WebUrlPath'), fc.constantFrom('no-slash', '/has space', '/ctl\u0007', 7, '/' + 'p'.repeat(1100))),
  fc.tuple(fc.constant('AllowedClientCidrs'), fc.constantFrom(['nope'], ['10.0.0.0/33'], 'not-a-list', [7], [''])),
  fc.tuple(fc.constant('ExpiresAt'), fc.constantFrom('soon', -5, 'Infinity', true, [])),
  fc.tuple(fc.constant('TargetSessionId'), fc.constantFrom('', 'x'.repeat(300), 'a\nb', 12)),
  fc.tuple(fc.constant('Source'), fc.constantFrom('robot', 1, '')),
);

export function malformedItem(sessionId: string): fc.Arbitrary<MalformedItem> {
  return fc
    .tuple(wellFormedItem(sessionId), fc.array(breakage, { minLength: 1, maxLength: 3 }))
    .map(([base, breaks]) => ({ kind: 'malformed' as const, item: { ...base.item, ...Object.fromEntries(breaks) } }));
}

/** A random table: for each pool id, nothing, a well-formed item, a malformed one, or random junk. */
export const table: fc.Arbitrary<Map<string, GeneratedItem>> = fc
  .tuple(
    ...SESSION_IDS.map((id) =>
      fc.oneof(
        fc.constant(undefined),
        wellFormedItem(id),
        malformedItem(id),
        // Junk keyed by the id but missing or mistyping everything else.
        fc.object({ maxDepth: 1, maxKeys: 4 }).map((junk) => ({ kind: 'malformed' as const, item: { ...junk, SessionId: id } })),
      ),
    ),
  )
  .map((entries) => {
    const map = new Map<string, GeneratedItem>();
    entries.forEach((entry, i) => {
      if (entry) map.set(SESSION_IDS[i]!, entry);
    });
    return map;
  });

/** A store over generated items that counts calls, so "never reached the store" is observable. */
export class SpyStore implements SessionStore {
  calls = 0;
  items = new Map<string, GeneratedItem>();

  async get(sessionId: string): Promise<RawItem | undefined> {
    this.calls += 1;
    return this.items.get(sessionId)?.item;
  }
}

const unicode = fc.string({ unit: 'binary', maxLength: 40 });
const huge = fc.integer({ min: 1000, max: 20_000 }).map((n) => 'A'.repeat(n));
const value = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<string>(...SESSION_IDS) },
  { weight: 3, arbitrary: fc.constantFrom('HTTP', 'QUIC', 'http', 'UDP', '') },
  { weight: 2, arbitrary: fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4Extended(), fc.constant('[2001:db8::1]:443'), fc.constant('1.2.3.4:5')) },
  { weight: 2, arbitrary: unicode },
  { weight: 1, arbitrary: huge },
);
const key = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('sessionId', 'transport', 'clientIpAddress') },
  { weight: 1, arbitrary: fc.constantFrom('SessionId', 'session%49d', 'sessionId[]', '', 'authToken') },
  { weight: 1, arbitrary: unicode },
);

/** Raw query strings: well-encoded, hand-rolled with odd escapes, or plain garbage. */
export const rawQuery: fc.Arbitrary<string> = fc.oneof(
  {
    // What a gateway sends, so lookups reach the store and the table's items get served or refused.
    weight: 5,
    arbitrary: fc
      .record(
        { sessionId: fc.constantFrom<string>(...SESSION_IDS), transport: fc.constantFrom('HTTP', 'QUIC'), clientIpAddress: fc.oneof(fc.ipV4(), fc.ipV6()) },
        { requiredKeys: ['sessionId', 'transport'] },
      )
      .map((params) => new URLSearchParams(params).toString()),
  },
  { weight: 4, arbitrary: fc.array(fc.tuple(key, value), { maxLength: 6 }).map((pairs) => new URLSearchParams(pairs).toString()) },
  {
    weight: 2,
    arbitrary: fc
      .array(fc.tuple(key, value, fc.constantFrom('', '%', '%zz', '%E0%A4', '+', '%00', '&&', '=', '#')), { maxLength: 5 })
      .map((parts) => parts.map(([k, v, junk]) => `${encodeURIComponent(k)}=${encodeURI(v)}${junk}`).join('&')),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 1, arbitrary: fc.constant('sessionId=console&transport=HTTP') },
);

export const PREFIX = 'pfx-7Qz';

export const rawPath: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('/resolveSession', `/${PREFIX}/resolveSession`, `/${PREFIX}/stage/resolveSession`, '/health', `/${PREFIX}/health`) },
  { weight: 1, arbitrary: fc.constantFrom('', '/', '//resolveSession', `/${PREFIX}`, `/${PREFIX}x/resolveSession`, '/resolvesession', '/resolveSession/', '/%2e%2e/resolveSession') },
  {
    weight: 2,
    arbitrary: fc
      .array(fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }).map(encodeURIComponent), fc.constantFrom(PREFIX, 'resolveSession', '..', '.', '%', '%ff')), { maxLength: 5 })
      .map((segments) => `/${segments.join('/')}`),
  },
  { weight: 1, arbitrary: huge.map((a) => `/${a}/resolveSession`) },
);

export const method = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('POST', 'GET', 'HEAD') },
  { weight: 2, arbitrary: fc.constantFrom('PUT', 'DELETE', 'OPTIONS', 'PATCH', 'post', 'TRACE') },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Z]{1,10}$/) },
);

/** Allow-list used by the fuzz tests, and an oracle written without the code under test's parser. */
export const ALLOWED_CIDRS = ['203.0.113.0/24', '127.0.0.1/32', '127.0.1.0/24', '2001:db8::/32'];

export function sourceAllowedOracle(source: string | undefined): boolean {
  if (source === undefined) return false;
  // ::ffff:cb00:7101 is the IPv4 address 203.0.113.1 written in hex: the same caller.
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(source);
  if (hexMapped) {
    const [hi, lo] = [parseInt(hexMapped[1]!, 16), parseInt(hexMapped[2]!, 16)];
    return sourceAllowedOracle(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`);
  }
  const v4 = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i.exec(source);
  if (v4) {
    const o = v4.slice(1).map(Number);
    if (o.some((n, i) => n > 255 || String(n) !== v4[i + 1])) return false;
    return (o[0] === 203 && o[1] === 0 && o[2] === 113) || (o[0] === 127 && o[1] === 0 && o[2] === 0 && o[3] === 1) || (o[0] === 127 && o[1] === 0 && o[2] === 1);
  }
  const list = new BlockList();
  list.addSubnet('2001:db8::', 32, 'ipv6');
  try {
    return source.includes(':') && list.check(source, 'ipv6');
  } catch {
    return false;
  }
}

export const sourceIp: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.ipV4() },
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 255 }).map((n) => `203.0.113.${n}`) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }).map((n) => `::ffff:203.0.113.${n}`) },
  { weight: 1, arbitrary: fc.ipV6() },
  { weight: 2, arbitrary: fc.stringMatching(/^[0-9a-f]{1,4}$/).map((h) => `2001:db8::${h}`) },
  { weight: 1, arbitrary: fc.constantFrom('', 'localhost', '203.0.113.256', '0203.0.113.1', '2001:db8::1%eth0', '203.0.113.1:80', '::ffff:cb00:7101') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
);
