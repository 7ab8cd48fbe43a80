import { Agent, request } from 'node:http';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalServer, type RunningServer } from '../../lambda/adapters/local-server';
import { CidrSet } from '../../lambda/core/ip';
import { SessionResolver } from '../../lambda/core/resolve';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { issueToken } from '../../lambda/core/tokens/issue-token';
import { hashToken } from '../../lambda/core/tokens/token';
import { MemoryTokenStore, type TokenStore } from '../../lambda/core/tokens/token-store';
import { createResolverHandler, createResolverRouter } from '../../lambda/handlers/resolver-handler';
import { RecordingLog } from '../helpers/recording-log';
import { parseAuthXml } from '../helpers/verify-http';

/**
 * Hostile verification requests (contract section 2) against the real handler and the real local
 * server, with a token store holding valid, revoked, expired, client-bound and used-up tokens.
 * Invariants: never a 5xx (a failing store may give 503, never yes); every POST on a verify path is
 * text/xml with exactly one of the two documented shapes, well escaped; yes only for a token that is
 * valid for that server session and that server (checked against a model written here, not by the
 * code under test), and exactly one use taken per yes and none per no; no token text in any log line
 * or response.
 */
const RUNS = { hostile: 1000, wellFormed: 300, local: 300 } as const;
let generated = 0;
/** Answers seen, so the report (and a check) shows the runs reached yes, no and the failing store. */
const seen = { yes: 0, no: 0, unavailable: 0 };

afterAll(() => {
  process.stdout.write(`verifier fuzz: ${generated} generated cases; answers: ${seen.yes} yes, ${seen.no} no, ${seen.unavailable} 503\n`);
});

const NOW_MS = Date.UTC(2030, 0, 1);
const ALLOWED = ['203.0.113.0/24', '127.0.0.0/8', '2001:db8::/32'];

/** Sessions the tokens are for: two servers that both run 'console' (the cross-server replay case). */
const SESSIONS = [
  { SessionId: 'agent1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console' },
  { SessionId: 'agent2', DcvServerEndpoint: '10.0.2.20', TargetSessionId: 'console' },
  { SessionId: 'desk', DcvServerEndpoint: 'host-a.internal', TargetSessionId: 'desk-7' },
  { SessionId: 'v6', DcvServerEndpoint: '2001:db8::15', TargetSessionId: 'console' },
  { SessionId: 'off', DcvServerEndpoint: '10.0.3.1', TargetSessionId: 'console', Enabled: false },
] as const;
type SessionName = (typeof SESSIONS)[number]['SessionId'];
const SESSION_BY_NAME = new Map(SESSIONS.map((s) => [s.SessionId as SessionName, s]));

/** User names that must come back XML-escaped and intact. */
const USERS = ['alice', 'a<b>&"\'c', 'Zoë 山田', 'x]]>y', 'emoji 😀', 'tab\tand\nnewline?'.replace(/[\t\n]/g, ' ')];

interface TokenSpec {
  readonly session: SessionName;
  readonly user: string;
  readonly maxUses: number;
  readonly revoked: boolean;
  readonly expired: boolean;
  readonly cidrs?: string[];
}

/** A generated store: each token's bindings, and what the model says is left of it. */
interface ModelToken extends TokenSpec {
  readonly token: string;
  usesLeft: number;
}

const tokenSpec: fc.Arbitrary<TokenSpec> = fc.record({
  session: fc.constantFrom<SessionName>(...SESSIONS.map((s) => s.SessionId)),
  user: fc.constantFrom(...USERS),
  maxUses: fc.integer({ min: 1, max: 3 }),
  revoked: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
  expired: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
  cidrs: fc.option(fc.constantFrom(['203.0.113.0/24'], ['2001:db8:77::/48', '198.51.100.7/32']), { nil: undefined }),
});
const tokenSpecs = fc.array(tokenSpec, { minLength: 1, maxLength: 4 });

async function buildStore(specs: readonly TokenSpec[], tokens: TokenStore = new MemoryTokenStore()): Promise<{ tokens: TokenStore; model: ModelToken[] }> {
  const sessions = new SessionResolver({ store: new MemorySessionStore(SESSIONS.map((s) => ({ ...s, Enabled: s.SessionId !== 'off' }))), log: new RecordingLog() });
  const model: ModelToken[] = [];
  for (const spec of specs) {
    // Issued while its session was usable ('off' is issued without the session check).
    const issued = await issueToken(
      { tokens, sessions: spec.session === 'off' ? undefined : sessions, now: () => (spec.expired ? NOW_MS - 3600_000 : NOW_MS - 1000) },
      { sessionId: spec.session, user: spec.user, maxUses: spec.maxUses, ttlSeconds: spec.expired ? 60 : 600, clientCidrs: spec.cidrs },
    );
    if (spec.revoked) await tokens.revoke(hashToken(issued.token), new Date(NOW_MS - 500));
    model.push({ ...spec, token: issued.token, usesLeft: spec.maxUses });
  }
  return { tokens, model };
}

/** Values that stand for a generated token, resolved at run time (tokens are random). */
type Value = string | { readonly tokenRef: number; readonly suffix?: string };

function resolveValue(value: Value, model: readonly ModelToken[]): string {
  if (typeof value === 'string') return value;
  const t = model[value.tokenRef % model.length]!;
  return t.token + (value.suffix ?? '');
}

const junkText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: fc.constantFrom('\u0000', '\u0007', '\ud800', '\udfff', '\ufffe', '\ufffd', '<', '&', '%', '+', '=', '\n'), maxLength: 8 }),
  fc.integer({ min: 100, max: 10_000 }).map((n) => 'A'.repeat(n)),
);
const tokenValue: fc.Arbitrary<Value> = fc.oneof(
  { weight: 6, arbitrary: fc.nat(7).map((i) => ({ tokenRef: i })) },
  { weight: 1, arbitrary: fc.tuple(fc.nat(7), fc.constantFrom('x', '=', '%00', ' ', '\u0000', '\ufffd')).map(([i, suffix]) => ({ tokenRef: i, suffix })) },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{22,60}$/) },
  { weight: 2, arbitrary: junkText },
);
const sessionValue: fc.Arbitrary<Value> = fc.oneof(
  { weight: 6, arbitrary: fc.constant('console') },
  { weight: 3, arbitrary: fc.constantFrom('desk-7', 'Console', 'agent1', '') },
  { weight: 1, arbitrary: junkText },
);
const addressValue: fc.Arbitrary<Value> = fc.oneof(
  fc.constantFrom('203.0.113.9', '198.51.100.7', '2001:db8:77::1', '[2001:db8:77::1]:4443', '203.0.113.9:51234', '::ffff:203.0.113.9', '10.1.1.1', ''),
  fc.ipV4(),
  fc.ipV6(),
  junkText,
);
const fieldName = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('sessionId', 'authenticationToken', 'clientAddress') },
  { weight: 1, arbitrary: fc.constantFrom('SessionId', 'authenticationtoken', 'token', 'authToken', '') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 10 }) },
);

type Pair = readonly [string, Value];
const pairs: fc.Arbitrary<Pair[]> = fc.oneof(
  // What a DCV server sends (sometimes without clientAddress), in any order.
  {
    weight: 5,
    arbitrary: fc
      .tuple(sessionValue, tokenValue, fc.option(addressValue, { nil: undefined }))
      .chain(([s, t, a]) => {
        const all: Pair[] = [['sessionId', s], ['authenticationToken', t], ...(a === undefined ? [] : [['clientAddress', a] as Pair])];
        return fc.oneof({ weight: 3, arbitrary: fc.constant(all) }, { weight: 1, arbitrary: fc.shuffledSubarray(all, { minLength: 1 }) });
      }),
  },
  {
    weight: 3,
    arbitrary: fc.array(
      fieldName.chain((name) =>
        fc.tuple(fc.constant(name), name === 'authenticationToken' ? tokenValue : name === 'clientAddress' ? addressValue : fc.oneof(sessionValue, junkText)),
      ),
      { maxLength: 6 },
    ),
  },
);

/** How the form is put on the wire. */
type Encoding = 'form' | 'raw-junk' | 'binary';
const encoding = fc.constantFrom<Encoding>('form', 'form', 'form', 'raw-junk', 'binary');
const rawJunk = fc.constantFrom('', '%', '%zz', '%E0%A4', '%FF', '+', '%00', '&&', '=', '#', '%C3%28');

/** Percent-encodes the UTF-8 bytes of any string (lone surrogates included, as U+FFFD's bytes). */
function percentEncode(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((b) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

/** A body as bytes: its form pairs serialised, or hand-rolled with odd escapes, or invalid UTF-8. */
function bodyBytes(ps: readonly Pair[], enc: Encoding, junk: readonly string[], model: readonly ModelToken[]): Buffer {
  const resolved = ps.map(([k, v]) => [k, resolveValue(v, model)] as [string, string]);
  if (enc === 'form') return Buffer.from(new URLSearchParams(resolved).toString(), 'utf8');
  if (enc === 'raw-junk') {
    return Buffer.from(resolved.map(([k, v], i) => `${percentEncode(k)}=${percentEncode(v).slice(0, 20_000)}${junk[i % Math.max(1, junk.length)] ?? ''}`).join('&'), 'utf8');
  }
  // Invalid UTF-8 bytes spliced into an otherwise good form.
  return Buffer.concat([Buffer.from(new URLSearchParams(resolved).toString(), 'utf8'), Buffer.from([0x26, 0xc3, 0x28, 0xff, 0xfe, 0x80])]);
}

const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/x-www-form-urlencoded') },
  { weight: 2, arbitrary: fc.constantFrom('application/x-www-form-urlencoded; charset=UTF-8', 'Application/X-WWW-Form-Urlencoded', 'application/json', 'text/plain', 'multipart/form-data; boundary=x', '', ';', 'application/x-www-form-urlencoded;;') },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

/** The server segment of the path (the oracle reads what it names from SPELLINGS). */
interface Segment {
  readonly text?: string;
}
const segment: fc.Arbitrary<Segment> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Segment>({}) },
  {
    weight: 6,
    arbitrary: fc.constantFrom<Segment>(
      { text: '10.0.1.15' },
      { text: '10.0.2.20' },
      { text: 'host-a.internal' },
      { text: 'HOST-A.internal' },
      { text: '%5B2001:db8::15%5D' },
      { text: '2001:db8:0:0:0:0:0:15' },
      { text: '10.0.3.1' },
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom<Segment>({ text: '%ZZ' }, { text: '%E0%A4' }, { text: '%00' }, { text: '.' }, { text: 'a'.repeat(300) }, { text: '%0A' }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }).map((s) => ({ text: percentEncode(s) })) },
);

interface PathSpec {
  readonly path: string;
}

/** Spellings of a server segment the generators use, and the endpoint each one names. */
const SPELLINGS = new Map<string, string>([
  ['10.0.1.15', '10.0.1.15'],
  ['10.0.2.20', '10.0.2.20'],
  ['host-a.internal', 'host-a.internal'],
  ['HOST-A.internal', 'host-a.internal'],
  ['%5B2001:db8::15%5D', '2001:db8::15'],
  ['2001:db8:0:0:0:0:0:15', '2001:db8::15'],
  ['10.0.3.1', '10.0.3.1'],
]);

/**
 * The documented routing rule, written here: without a prefix, any path ending in /verifyToken or
 * /verifyToken/<one segment> is the verifier; with the secret prefix configured, exactly
 * /<prefix>/verifyToken[/<one segment>]. The segment names the server.
 */
function routeInfo(path: string, guarded: boolean): { verify: boolean; server?: string; segment?: string } {
  let rest = path;
  if (guarded) {
    if (!path.startsWith(`/${PREFIX}/`)) return { verify: false };
    rest = path.slice(PREFIX.length + 1);
  }
  const match = (guarded ? /^\/verifyToken(?:\/([^/]+))?$/ : /\/verifyToken(?:\/([^/]+))?$/).exec(rest);
  if (!match) return { verify: false };
  return { verify: true, segment: match[1], server: match[1] === undefined ? undefined : SPELLINGS.get(match[1]) };
}
const PREFIX = 'pfx-Vq9';
const pathSpec: fc.Arbitrary<PathSpec> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.tuple(fc.constantFrom('', `/${PREFIX}`, `/${PREFIX}/stage`, '/other'), segment).map(([base, seg]) => ({
      path: `${base}/verifyToken${seg.text === undefined ? '' : `/${seg.text}`}`,
    })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('/verifyToken/', '/verifyToken/a/b', '/verifytoken', '/verifyTokenX', `/${PREFIX}/verifyToken//`, '/resolveSession', '/health', '/')
      .map((path) => ({ path })),
  },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }).map(percentEncode), fc.constantFrom('verifyToken', PREFIX, '..', '%ff')), { maxLength: 4 })
      .map((segs) => ({ path: `/${segs.join('/')}` })),
  },
);
const method = fc.oneof({ weight: 8, arbitrary: fc.constant('POST') }, { weight: 2, arbitrary: fc.constantFrom('GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'post') });

interface RequestSpec {
  readonly method: string;
  readonly path: PathSpec;
  readonly pairs: Pair[];
  readonly encoding: Encoding;
  readonly junk: string[];
  readonly contentType?: string;
  readonly base64: boolean;
  readonly sourceIp: string;
}
const requestSpec: fc.Arbitrary<RequestSpec> = fc.record({
  method,
  path: pathSpec,
  pairs,
  encoding,
  junk: fc.array(rawJunk, { maxLength: 3 }),
  contentType,
  base64: fc.boolean(),
  sourceIp: fc.constantFrom('203.0.113.5', '203.0.113.77', '198.51.100.1', '2001:db8::9'),
});

function event(spec: RequestSpec, body: Buffer): APIGatewayProxyEventV2 {
  // Invalid UTF-8 can only travel base64-encoded in a Function URL event; text bodies may go either way.
  const base64 = spec.base64 || spec.encoding === 'binary';
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: spec.path.path,
    rawQueryString: '',
    headers: spec.contentType === undefined ? {} : { 'content-type': spec.contentType },
    requestContext: {
      accountId: 'anonymous',
      apiId: 'fuzz',
      domainName: 'fuzz.lambda-url.us-east-1.on.aws',
      domainPrefix: 'fuzz',
      http: { method: spec.method, path: spec.path.path, protocol: 'HTTP/1.1', sourceIp: spec.sourceIp, userAgent: 'fuzz' },
      requestId: 'fuzz-request',
      routeKey: '$default',
      stage: '$default',
      time: '01/Jan/2030:00:00:00 +0000',
      timeEpoch: NOW_MS,
    },
    body: base64 ? body.toString('base64') : body.toString('utf8'),
    isBase64Encoded: base64,
  };
}

/** The model's verdict on a yes: which token it must have been, or why none could be. */
function legitimateYes(spec: RequestSpec, body: Buffer, model: ModelToken[], opts: CheckOptions): ModelToken | string {
  if (!opts.allowedSource) return 'source not allowed';
  if (spec.method.toUpperCase() !== 'POST') return 'not POST';
  const route = routeInfo(spec.path.path, opts.guarded);
  if (!route.verify) return 'not a verify path';
  const text = body.toString('utf8');
  if (text.includes('\ufffd')) return 'body not valid UTF-8';
  const form = new URLSearchParams(text);
  const tokens = form.getAll('authenticationToken');
  const sessions = form.getAll('sessionId');
  if (tokens.length !== 1 || sessions.length !== 1) return 'not exactly one token and one session id';
  const t = model.find((m) => m.token === tokens[0]);
  if (!t) return 'no such token';
  const session = SESSION_BY_NAME.get(t.session)!;
  if (t.revoked || t.expired || t.session === 'off') return 'token or its session not usable';
  if (t.usesLeft <= 0) return 'used up';
  if (sessions[0] !== session.TargetSessionId) return 'wrong server session';
  if (route.segment !== undefined && route.server !== session.DcvServerEndpoint) return 'wrong server';
  if (t.cidrs) {
    const address = form.get('clientAddress') ?? '';
    const inside = t.cidrs.includes('203.0.113.0/24') ? /^(::ffff:)?203\.0\.113\.\d+(:\d+)?$/.test(address) : ['198.51.100.7', '2001:db8:77::1', '[2001:db8:77::1]:4443'].includes(address);
    if (!inside) return 'client not allowed';
  }
  return t;
}

interface Reply {
  readonly status: number;
  readonly contentType?: string;
  readonly body: string;
}

interface CheckOptions {
  readonly allowedSource: boolean;
  readonly storeFails: boolean;
  readonly guarded: boolean;
}

/** The invariants of one answer; updates the model for a yes. */
function checkReply(reply: Reply, spec: RequestSpec, body: Buffer, model: ModelToken[], opts: CheckOptions): void {
  const context = `${spec.method} ${spec.path.path} -> ${reply.status} ${reply.body.slice(0, 300)}`;
  if (opts.storeFails && reply.status === 503) {
    expect(parseAuthXml(reply.body), context).toMatchObject({ result: 'no' });
  } else {
    expect(reply.status, context).toBeLessThan(500);
  }
  for (const t of model) expect(reply.body, context).not.toContain(t.token);
  const onVerify = opts.allowedSource && routeInfo(spec.path.path, opts.guarded).verify;
  const post = spec.method.toUpperCase() === 'POST';
  if (onVerify && !post) expect(reply.status, context).toBe(405);
  if (onVerify && post) {
    expect(reply.contentType, context).toMatch(/^text\/xml\b/);
    const parsed = parseAuthXml(reply.body);
    expect(parsed, context).toBeDefined();
    if (reply.status !== 200) expect(parsed!.result, context).toBe('no');
  }
  const parsed = reply.contentType?.startsWith('text/xml') ? parseAuthXml(reply.body) : undefined;
  if (reply.status === 503) seen.unavailable += 1;
  else if (parsed?.result === 'no') seen.no += 1;
  if (parsed?.result === 'yes') {
    seen.yes += 1;
    expect(opts.storeFails, context).toBe(false);
    expect(reply.status, context).toBe(200);
    const legit = legitimateYes(spec, body, model, opts);
    expect(typeof legit === 'string' ? legit : 'legitimate', context).toBe('legitimate');
    const t = legit as ModelToken;
    expect(parsed.username, context).toBe(t.user);
    t.usesLeft -= 1;
  }
}

/** The store's own count matches the model: a yes took exactly one use, a no took none. */
async function checkUses(tokens: TokenStore, model: readonly ModelToken[]): Promise<void> {
  for (const t of model) expect((await tokens.get(hashToken(t.token)))?.usesLeft).toBe(t.usesLeft);
}

function checkLogs(log: RecordingLog, model: readonly ModelToken[]): void {
  const text = JSON.stringify(log.entries);
  for (const t of model) expect(text).not.toContain(t.token);
}

/** A store that cannot answer: reads (or only the atomic take) throw. */
class FailingTokenStore extends MemoryTokenStore {
  constructor(private readonly failOn: 'get' | 'consume') {
    super();
  }
  override async get(hash: string) {
    if (this.failOn === 'get' && this.armed) throw new Error('store down');
    return super.get(hash);
  }
  override async consume(hash: string, nowSeconds: number) {
    if (this.armed) throw new Error('store down');
    return super.consume(hash, nowSeconds);
  }
  armed = false;
}

describe('the verifier through the Function URL handler under hostile input', () => {
  it(`keeps every invariant (${RUNS.hostile} cases)`, async () => {
    const before = { ...seen };
    await fc.assert(
      fc.asyncProperty(
        tokenSpecs,
        fc.array(requestSpec, { minLength: 1, maxLength: 4 }),
        fc.constantFrom<'ok' | 'get' | 'consume'>('ok', 'ok', 'ok', 'ok', 'get', 'consume'),
        fc.boolean(),
        async (specs, requests, failure, guarded) => {
          generated += 1;
          const store = failure === 'ok' ? new MemoryTokenStore() : new FailingTokenStore(failure);
          const { tokens, model } = await buildStore(specs, store);
          if (store instanceof FailingTokenStore) store.armed = true;
          const log = new RecordingLog();
          const handler = createResolverHandler({
            store: new MemorySessionStore(SESSIONS.map((s) => ({ ...s }))),
            logger: log,
            tokens,
            now: () => NOW_MS,
            allowedSources: guarded ? CidrSet.parse(ALLOWED) : undefined,
            pathPrefix: guarded ? PREFIX : undefined,
          });
          for (const spec of requests) {
            const body = bodyBytes(spec.pairs, spec.encoding, spec.junk, model);
            const result = await handler(event(spec, body));
            // The allow-list's oracle: of the generated sources only 198.51.100.1 is outside it.
            const allowedSource = !guarded || spec.sourceIp !== '198.51.100.1';
            checkReply(
              { status: result.statusCode!, contentType: (result.headers as Record<string, string>)?.['Content-Type'], body: result.body ?? '' },
              spec,
              body,
              model,
              { allowedSource, storeFails: failure !== 'ok', guarded },
            );
          }
          if (store instanceof FailingTokenStore) store.armed = false;
          await checkUses(tokens, model);
          checkLogs(log, model);
        },
      ),
      { numRuns: RUNS.hostile },
    );
    // The hostile runs reached refusals and store failures, or the invariants above proved little. (A yes
    // among hostile input is rare by design; the well-formed property below must reach it.)
    expect(seen.no).toBeGreaterThan(before.no);
    expect(seen.unavailable).toBeGreaterThan(before.unavailable);
  });

  it(`says yes to every genuine request exactly as often as the token allows, then no (${RUNS.wellFormed} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(
        tokenSpecs,
        fc.array(fc.tuple(fc.nat(7), fc.boolean(), fc.constantFrom('application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=utf-8', undefined), fc.boolean()), {
          minLength: 1,
          maxLength: 8,
        }),
        async (specs, asks) => {
          generated += 1;
          const { tokens, model } = await buildStore(specs);
          const log = new RecordingLog();
          const handler = createResolverHandler({ store: new MemorySessionStore(SESSIONS.map((s) => ({ ...s }))), logger: log, tokens, now: () => NOW_MS });
          for (const [ref, withServer, type, base64] of asks) {
            const t = model[ref % model.length]!;
            const session = SESSION_BY_NAME.get(t.session)!;
            const address = t.cidrs?.includes('203.0.113.0/24') ? '203.0.113.44' : t.cidrs ? '198.51.100.7' : '192.0.2.1';
            const body = Buffer.from(new URLSearchParams({ sessionId: session.TargetSessionId, authenticationToken: t.token, clientAddress: address }).toString());
            const server = session.DcvServerEndpoint.includes(':') ? `%5B${session.DcvServerEndpoint}%5D` : session.DcvServerEndpoint;
            const spec: RequestSpec = {
              method: 'POST',
              path: { path: withServer ? `/verifyToken/${server}` : '/verifyToken' },
              pairs: [],
              encoding: 'form',
              junk: [],
              contentType: type,
              base64,
              sourceIp: '203.0.113.5',
            };
            const expectYes = !t.revoked && !t.expired && t.session !== 'off' && t.usesLeft > 0;
            const result = await handler(event(spec, body));
            const reply = { status: result.statusCode!, contentType: (result.headers as Record<string, string>)['Content-Type'], body: result.body ?? '' };
            expect(parseAuthXml(reply.body)?.result, reply.body).toBe(expectYes ? 'yes' : 'no');
            checkReply(reply, spec, body, model, { allowedSource: true, storeFails: false, guarded: false });
          }
          await checkUses(tokens, model);
          checkLogs(log, model);
        },
      ),
      { numRuns: RUNS.wellFormed },
    );
  });
});

describe('the verifier through the local server over loopback HTTP', () => {
  let server: RunningServer;
  let model: ModelToken[];
  let tokens: TokenStore;
  const log = new RecordingLog();
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });

  beforeAll(async () => {
    // A fixed store for the whole run (one server, sequential requests): the model tracks every use.
    const specs: TokenSpec[] = SESSIONS.flatMap((s, i) => [
      { session: s.SessionId, user: USERS[i % USERS.length]!, maxUses: 3, revoked: false, expired: false },
      { session: s.SessionId, user: USERS[(i + 1) % USERS.length]!, maxUses: 2, revoked: i % 2 === 0, expired: i % 2 === 1, cidrs: ['203.0.113.0/24'] },
    ]);
    ({ tokens, model } = await buildStore(specs));
    const route = createResolverRouter({ store: new MemorySessionStore(SESSIONS.map((s) => ({ ...s }))), logger: log, tokens, now: () => NOW_MS });
    server = await startLocalServer({ route, log, host: '127.0.0.1', port: 0 });
  });

  afterAll(async () => {
    agent.destroy();
    await server.close();
  });

  function send(spec: RequestSpec, body: Buffer): Promise<Reply> {
    const url = new URL(server.url);
    const headers: Record<string, string> = { 'content-length': String(body.length) };
    if (spec.contentType !== undefined) headers['content-type'] = spec.contentType;
    // Node's client refuses some bytes in a request target: such paths are sent percent-encoded.
    const path = spec.path.path.replace(/[^\x21-\x7e]/gu, (c) => encodeURIComponent(c));
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: url.port, method: spec.method, path, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, contentType: res.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.end(spec.method === 'HEAD' ? undefined : body);
    });
  }

  it(`keeps every invariant over real HTTP (${RUNS.local} requests)`, async () => {
    await fc.assert(
      fc.asyncProperty(requestSpec, async (spec) => {
        generated += 1;
        // HEAD answers carry no body; the checks below are about bodies.
        const s: RequestSpec = spec.method === 'HEAD' ? { ...spec, method: 'GET' } : spec;
        const body = bodyBytes(s.pairs, s.encoding, s.junk, model);
        const reply = await send(s, body);
        if (body.length > 64 * 1024) {
          expect(reply.status).toBe(413);
          return;
        }
        checkReply(reply, s, body, model, { allowedSource: true, storeFails: false, guarded: false });
      }),
      { numRuns: RUNS.local },
    );
    // Random requests rarely carry a genuine token for the right server: end with one that does, so the
    // yes path over real HTTP is always exercised (and counted in the model) whatever the seed.
    const genuine = model.find((t) => !t.revoked && !t.expired && t.usesLeft > 0 && !t.cidrs && t.session !== 'off')!;
    const session = SESSION_BY_NAME.get(genuine.session)!;
    const form = `sessionId=${encodeURIComponent(session.TargetSessionId)}&authenticationToken=${genuine.token}&clientAddress=203.0.113.25`;
    const yes = await new Promise<Reply>((resolve, reject) => {
      const url = new URL(server.url);
      const path = `/verifyToken/${encodeURIComponent(session.DcvServerEndpoint)}`;
      const headers = { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(form)) };
      const req = request({ host: '127.0.0.1', port: url.port, method: 'POST', path, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, contentType: res.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.end(form);
    });
    expect(parseAuthXml(yes.body)).toEqual({ result: 'yes', username: genuine.user });
    genuine.usesLeft -= 1;
    await checkUses(tokens, model);
    checkLogs(log, model);
  });
});
