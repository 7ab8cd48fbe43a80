import { describe, expect, it } from 'vitest';
import { BadRequestError, HttpError, NotFoundError, ServiceUnavailableError } from '../../lambda/core/errors';
import { describeError, parseResolveQuery, SessionResolver, type ResolveAnswer } from '../../lambda/core/resolve';
import type { RawItem } from '../../lambda/core/session-record';
import { MemorySessionStore, type SessionStore } from '../../lambda/core/session-store';
import { RecordingLog } from '../helpers/recording-log';

/** Epoch seconds at which the 'expiring' session stops resolving. */
const EXPIRES_AT = 1_800_000_000;
/** Well before any expiry in the table. */
const NOW_MS = (EXPIRES_AT - 3600) * 1000;

const ITEMS: RawItem[] = [
  { SessionId: 'console', DcvServerEndpoint: '10.0.1.15', HttpPort: 8443, QuicPort: 4443, WebUrlPath: '/' },
  { SessionId: 'desktop', DcvServerEndpoint: '10.0.1.16' },
  { SessionId: 'alice', DcvServerEndpoint: 'dcv-alice.example.internal', TargetSessionId: 'console', WebUrlPath: '/dcv' },
  { SessionId: 'string-ports', DcvServerEndpoint: '10.0.1.18', HttpPort: '9443', QuicPort: ' 9444 ' },
  { SessionId: 'v6-host', DcvServerEndpoint: '2001:db8:10::15', HttpPort: 8443, QuicPort: 8443 },
  { SessionId: 'disabled', DcvServerEndpoint: '10.0.1.19', Enabled: false },
  { SessionId: 'explicitly-enabled', DcvServerEndpoint: '10.0.1.20', Enabled: true },
  { SessionId: 'expiring', DcvServerEndpoint: '10.0.1.21', ExpiresAt: EXPIRES_AT },
  { SessionId: 'expiring-string', DcvServerEndpoint: '10.0.1.22', ExpiresAt: String(EXPIRES_AT) },
  { SessionId: 'office', DcvServerEndpoint: '10.0.1.23', AllowedClientCidrs: ['203.0.113.0/24', '2001:db8:1::/48'] },
  { SessionId: 'nobody', DcvServerEndpoint: '10.0.1.24', AllowedClientCidrs: [] },
  { SessionId: 'bad-port', DcvServerEndpoint: '10.0.1.25', HttpPort: 70000 },
  { SessionId: 'no-endpoint', HttpPort: 8443 },
  { SessionId: 'bad-path', DcvServerEndpoint: '10.0.1.26', WebUrlPath: 'dcv' },
  { SessionId: 'bad-quic', DcvServerEndpoint: '10.0.1.27', QuicPort: 'udp' },
  { SessionId: 'bad-enabled', DcvServerEndpoint: '10.0.1.28', Enabled: 'true' },
  { SessionId: 'bad-cidr', DcvServerEndpoint: '10.0.1.29', AllowedClientCidrs: ['office'] },
  { SessionId: 's'.repeat(256), DcvServerEndpoint: '10.0.1.30' },
  { SessionId: 'ünïcödé sessión', DcvServerEndpoint: '10.0.1.31' },
];

/** A memory store that counts lookups, to prove what does (not) reach it. */
class CountingStore implements SessionStore {
  readonly calls: string[] = [];
  constructor(readonly inner: SessionStore) {}
  async get(sessionId: string): Promise<RawItem | undefined> {
    this.calls.push(sessionId);
    return this.inner.get(sessionId);
  }
}

interface Outcome {
  readonly status: number;
  readonly answer?: ResolveAnswer;
  readonly message?: string;
}

function setup(nowMs = NOW_MS, items: RawItem[] = ITEMS) {
  const log = new RecordingLog();
  const store = new CountingStore(new MemorySessionStore(items));
  const resolver = new SessionResolver({ store, log, now: () => nowMs });
  async function ask(rawQueryString: string): Promise<Outcome> {
    try {
      const answer = await resolver.resolve(parseResolveQuery(new URLSearchParams(rawQueryString)));
      return { status: 200, answer };
    } catch (error) {
      if (error instanceof HttpError) return { status: error.statusCode, message: error.message };
      throw error;
    }
  }
  return { log, store, resolver, ask };
}

function answer(SessionId: string, TransportProtocol: 'HTTP' | 'QUIC', DcvServerEndpoint: string, Port: number, WebUrlPath = '/') {
  return { SessionId, TransportProtocol, DcvServerEndpoint, Port, WebUrlPath };
}

describe('hits: 200 with exactly the gateway’s answer', () => {
  it.each([
    ['HTTP lookup', 'sessionId=console&transport=HTTP', answer('console', 'HTTP', '10.0.1.15', 8443)],
    ['QUIC lookup with QuicPort', 'sessionId=console&transport=QUIC', answer('console', 'QUIC', '10.0.1.15', 4443)],
    ['with an IPv4 client', 'sessionId=console&transport=HTTP&clientIpAddress=198.51.100.4', answer('console', 'HTTP', '10.0.1.15', 8443)],
    ['with an IPv6 client', 'sessionId=console&transport=HTTP&clientIpAddress=2001%3Adb8%3A%3A4', answer('console', 'HTTP', '10.0.1.15', 8443)],
    ['with an empty clientIpAddress (absent)', 'sessionId=console&transport=HTTP&clientIpAddress=', answer('console', 'HTTP', '10.0.1.15', 8443)],
    ['defaults: HttpPort 8443, WebUrlPath /', 'sessionId=desktop&transport=HTTP', answer('desktop', 'HTTP', '10.0.1.16', 8443)],
    ['remapped TargetSessionId, host name endpoint, WebUrlPath', 'sessionId=alice&transport=HTTP', answer('console', 'HTTP', 'dcv-alice.example.internal', 8443, '/dcv')],
    ['numeric-string HttpPort', 'sessionId=string-ports&transport=HTTP', answer('string-ports', 'HTTP', '10.0.1.18', 9443)],
    ['numeric-string QuicPort', 'sessionId=string-ports&transport=QUIC', answer('string-ports', 'QUIC', '10.0.1.18', 9444)],
    ['IPv6 DCV server endpoint', 'sessionId=v6-host&transport=QUIC', answer('v6-host', 'QUIC', '2001:db8:10::15', 8443)],
    ['Enabled true', 'sessionId=explicitly-enabled&transport=HTTP', answer('explicitly-enabled', 'HTTP', '10.0.1.20', 8443)],
    ['before ExpiresAt', 'sessionId=expiring&transport=HTTP', answer('expiring', 'HTTP', '10.0.1.21', 8443)],
    ['client inside an IPv4 allow-list CIDR', 'sessionId=office&transport=HTTP&clientIpAddress=203.0.113.99', answer('office', 'HTTP', '10.0.1.23', 8443)],
    ['client inside an IPv6 allow-list CIDR', 'sessionId=office&transport=HTTP&clientIpAddress=2001%3Adb8%3A1%3A%3A99', answer('office', 'HTTP', '10.0.1.23', 8443)],
    ['client as IPv4-mapped IPv6 inside an IPv4 CIDR', 'sessionId=office&transport=HTTP&clientIpAddress=%3A%3Affff%3A203.0.113.5', answer('office', 'HTTP', '10.0.1.23', 8443)],
    ['client with a port inside the allow-list', 'sessionId=office&transport=HTTP&clientIpAddress=203.0.113.5%3A50123', answer('office', 'HTTP', '10.0.1.23', 8443)],
    ['unknown query parameters are ignored', 'sessionId=console&transport=HTTP&foo=bar&foo=baz&clientIp=x&SESSIONID=y', answer('console', 'HTTP', '10.0.1.15', 8443)],
    ['parameters in any order', 'clientIpAddress=198.51.100.4&transport=QUIC&sessionId=console', answer('console', 'QUIC', '10.0.1.15', 4443)],
    ['a 256-character session id', `sessionId=${'s'.repeat(256)}&transport=HTTP`, answer('s'.repeat(256), 'HTTP', '10.0.1.30', 8443)],
    ['a percent-encoded unicode session id', `sessionId=${encodeURIComponent('ünïcödé sessión')}&transport=HTTP`, answer('ünïcödé sessión', 'HTTP', '10.0.1.31', 8443)],
  ])('%s', async (_name, query, expected) => {
    const { ask, log } = setup();
    const outcome = await ask(query);
    expect(outcome).toEqual({ status: 200, answer: expected });
    // Key order is part of the wire format the gateway documents.
    expect(Object.keys(outcome.answer!)).toEqual(['SessionId', 'TransportProtocol', 'DcvServerEndpoint', 'Port', 'WebUrlPath']);
    expect(log.atLevel('warn')).toEqual([]);
  });
});

describe('404: no destination, with the cause in the message', () => {
  it.each([
    ['unknown session', 'sessionId=ghost&transport=HTTP', "no session 'ghost'"],
    ['session ids are case-sensitive', 'sessionId=Console&transport=HTTP', "no session 'Console'"],
    ['disabled session', 'sessionId=disabled&transport=HTTP', "session 'disabled' is disabled"],
    ['disabled session, QUIC', 'sessionId=disabled&transport=QUIC', "session 'disabled' is disabled"],
    ['client outside the IPv4 allow-list', 'sessionId=office&transport=HTTP&clientIpAddress=198.51.100.4', "session 'office' is not available to this client address"],
    ['client outside the IPv6 allow-list', 'sessionId=office&transport=HTTP&clientIpAddress=2001%3Adb8%3A2%3A%3A1', "session 'office' is not available to this client address"],
    ['no clientIpAddress with an allow-list', 'sessionId=office&transport=HTTP', "session 'office' requires a clientIpAddress"],
    ['empty clientIpAddress with an allow-list', 'sessionId=office&transport=HTTP&clientIpAddress=', "session 'office' requires a clientIpAddress"],
    ['an empty allow-list admits nobody', 'sessionId=nobody&transport=HTTP&clientIpAddress=203.0.113.5', "session 'nobody' is not available to this client address"],
    ['QUIC without QuicPort', 'sessionId=desktop&transport=QUIC', "session 'desktop' does not offer QUIC"],
    ['QUIC without QuicPort on a remapped session', 'sessionId=alice&transport=QUIC', "session 'alice' does not offer QUIC"],
    ['malformed item: port out of range', 'sessionId=bad-port&transport=HTTP', "no session 'bad-port'"],
    ['malformed item: no endpoint', 'sessionId=no-endpoint&transport=HTTP', "no session 'no-endpoint'"],
    ['malformed item: path without /', 'sessionId=bad-path&transport=HTTP', "no session 'bad-path'"],
    ['malformed item: bad QuicPort, even for HTTP', 'sessionId=bad-quic&transport=HTTP', "no session 'bad-quic'"],
    ['malformed item: Enabled as a string', 'sessionId=bad-enabled&transport=HTTP', "no session 'bad-enabled'"],
    ['malformed item: bad CIDR', 'sessionId=bad-cidr&transport=HTTP&clientIpAddress=203.0.113.5', "no session 'bad-cidr'"],
  ])('%s', async (_name, query, message) => {
    const { ask, store } = setup();
    expect(await ask(query)).toEqual({ status: 404, message });
    expect(store.calls).toHaveLength(1);
  });

  it('returns a NotFoundError (the typed error carries 404)', async () => {
    const { resolver } = setup();
    const error = await resolver.resolve({ sessionId: 'ghost', transport: 'HTTP' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error).toMatchObject({ statusCode: 404, name: 'NotFoundError' });
  });
});

describe('desktops on demand: an item whose host is not running is 404, whatever the transport or client', () => {
  const host = { DcvServerEndpoint: '10.0.2.1', QuicPort: 8443, Source: 'ec2', InstanceId: 'i-0abc' };
  const items: RawItem[] = [
    { ...host, SessionId: 'up', InstanceState: 'running' },
    { ...host, SessionId: 'down', InstanceState: 'stopped' },
    { ...host, SessionId: 'stopping', InstanceState: 'stopping' },
    { ...host, SessionId: 'starting', InstanceState: 'pending' },
    // A manual item without InstanceState is a host nobody tracks: it resolves as always.
    { SessionId: 'manual', DcvServerEndpoint: '10.0.2.2' },
  ];

  it.each([
    ['sessionId=down&transport=HTTP', "session 'down': the host is stopped (InstanceState stopped)"],
    ['sessionId=down&transport=QUIC&clientIpAddress=203.0.113.5', "session 'down': the host is stopped (InstanceState stopped)"],
    ['sessionId=stopping&transport=HTTP', "session 'stopping': the host is stopped (InstanceState stopping)"],
    ['sessionId=starting&transport=HTTP', "session 'starting': the host is stopped (InstanceState pending)"],
  ])('%s → 404', async (query, message) => {
    const { ask } = setup(NOW_MS, items);
    expect(await ask(query)).toEqual({ status: 404, message });
  });

  it('running, or no InstanceState at all: resolves', async () => {
    const { ask } = setup(NOW_MS, items);
    expect(await ask('sessionId=up&transport=QUIC')).toEqual({ status: 200, answer: answer('up', 'QUIC', '10.0.2.1', 8443) });
    expect(await ask('sessionId=manual&transport=HTTP')).toEqual({ status: 200, answer: answer('manual', 'HTTP', '10.0.2.2', 8443) });
  });

  it('findUsable (tokens, portal) refuses it with the metrics code host-stopped', async () => {
    const { resolver } = setup(NOW_MS, items);
    await expect(resolver.findUsable('down')).rejects.toMatchObject({ statusCode: 404, code: 'host-stopped' });
  });
});

describe('pool leases follow their member host: a lease whose host is gone, down or moved is 404', () => {
  // A lease copies its member's destination when it is taken; the member's own item says whether that still holds.
  const member = { DcvServerEndpoint: '10.0.2.1', HttpPort: 8443, QuicPort: 8443, TargetSessionId: 'console', Pool: 'cad', Source: 'ec2', InstanceId: 'i-0abc' };
  const lease = (memberId: string, extra: RawItem = {}): RawItem => ({
    SessionId: `lease:${memberId}`,
    DcvServerEndpoint: '10.0.2.1',
    HttpPort: 8443,
    QuicPort: 8443,
    TargetSessionId: 'console',
    Source: 'lease',
    Pool: 'cad',
    LeaseUser: 'alice',
    AllowedUsers: ['alice'],
    ExpiresAt: EXPIRES_AT,
    ...extra,
  });
  const items: RawItem[] = [
    { ...member, SessionId: 'h-up', InstanceState: 'running' },
    lease('h-up'),
    { ...member, SessionId: 'h-stopped', InstanceState: 'stopped' },
    lease('h-stopped'),
    // Terminated: discovery deleted the member's item (its private IP may now be another machine's).
    lease('h-gone'),
    { ...member, SessionId: 'h-off', InstanceState: 'running', Enabled: false },
    lease('h-off'),
    { ...member, SessionId: 'h-old', InstanceState: 'running', ExpiresAt: EXPIRES_AT - 7200 },
    lease('h-old'),
    // Replaced: the member id now points at another address than the one the lease copied.
    { ...member, SessionId: 'h-moved', DcvServerEndpoint: '10.0.2.99', InstanceState: 'running' },
    lease('h-moved'),
    // A manual member (no InstanceState) is a host nobody tracks: its lease resolves as it does.
    { SessionId: 'h-manual', DcvServerEndpoint: '10.0.2.1', Pool: 'cad' },
    lease('h-manual', { QuicPort: undefined }),
  ].map((item) => Object.fromEntries(Object.entries(item).filter(([, v]) => v !== undefined)));

  const gone = (memberId: string, why: string) => `session 'lease:${memberId}': its pool host is no longer available (${why})`;

  it.each([
    ['h-stopped', gone('h-stopped', "session 'h-stopped': the host is stopped (InstanceState stopped)")],
    ['h-gone', gone('h-gone', "no session 'h-gone'")],
    ['h-off', gone('h-off', "session 'h-off' is disabled")],
    ['h-old', gone('h-old', "session 'h-old' has expired")],
    ['h-moved', gone('h-moved', "session 'h-moved' is now on 10.0.2.99, not 10.0.2.1")],
  ])('lease:%s → 404, whatever the transport', async (memberId, message) => {
    const { ask } = setup(NOW_MS, items);
    expect(await ask(`sessionId=lease:${memberId}&transport=HTTP`)).toEqual({ status: 404, message });
    expect(await ask(`sessionId=lease:${memberId}&transport=QUIC&clientIpAddress=203.0.113.5`)).toEqual({ status: 404, message });
  });

  it('findUsable (tokens, portal) refuses it with the metrics code lease-member-gone', async () => {
    const { resolver } = setup(NOW_MS, items);
    for (const memberId of ['h-stopped', 'h-gone', 'h-off', 'h-old', 'h-moved']) {
      await expect(resolver.findUsable(`lease:${memberId}`)).rejects.toMatchObject({ statusCode: 404, code: 'lease-member-gone' });
    }
  });

  it('a healthy lease resolves to its member, at the cost of one more read (the member), and only for leases', async () => {
    const { ask, store } = setup(NOW_MS, items);
    expect(await ask('sessionId=lease:h-up&transport=QUIC')).toEqual({ status: 200, answer: answer('console', 'QUIC', '10.0.2.1', 8443) });
    expect(await ask('sessionId=lease:h-manual&transport=HTTP')).toEqual({ status: 200, answer: answer('console', 'HTTP', '10.0.2.1', 8443) });
    expect(store.calls).toEqual(['lease:h-up', 'h-up', 'lease:h-manual', 'h-manual']);
    store.calls.length = 0;
    expect((await ask('sessionId=h-up&transport=HTTP')).status).toBe(200);
    expect(store.calls).toEqual(['h-up']);
  });

  it('the lease\'s own refusals come first, without reading the member', async () => {
    const { ask, store } = setup(EXPIRES_AT * 1000, items);
    expect(await ask('sessionId=lease:h-up&transport=HTTP')).toEqual({ status: 404, message: "session 'lease:h-up' has expired" });
    expect(store.calls).toEqual(['lease:h-up']);
  });

  it('a store failure reading the member is a 503, logged with the member id', async () => {
    const log = new RecordingLog();
    const inner = new MemorySessionStore(items);
    const store: SessionStore = {
      get: async (id) => {
        if (id === 'h-up') throw Object.assign(new Error('throttled'), { name: 'ProvisionedThroughputExceededException' });
        return inner.get(id);
      },
    };
    const resolver = new SessionResolver({ store, log, now: () => NOW_MS });
    const error = await resolver.resolve({ sessionId: 'lease:h-up', transport: 'HTTP' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceUnavailableError);
    expect(log.find('session store failed', 'error').map((e) => e.fields.sessionId)).toEqual(['h-up']);
  });

  it('an item that only looks like a lease (another Source) is not checked against a member', async () => {
    const { ask, store } = setup(NOW_MS, [{ SessionId: 'lease:x', DcvServerEndpoint: '10.0.2.5' }]);
    expect((await ask('sessionId=lease:x&transport=HTTP')).status).toBe(200);
    expect(store.calls).toEqual(['lease:x']);
  });
});

describe('expiry at the boundary (injected clock)', () => {
  it.each([
    ['one second before ExpiresAt', (EXPIRES_AT - 1) * 1000, 200],
    ['one millisecond before ExpiresAt', EXPIRES_AT * 1000 - 1, 200],
    ['exactly at ExpiresAt', EXPIRES_AT * 1000, 404],
    ['one second after ExpiresAt', (EXPIRES_AT + 1) * 1000, 404],
    ['a day after (TTL deletes lazily, the item is still readable)', (EXPIRES_AT + 86_400) * 1000, 404],
  ])('%s -> %s', async (_name, nowMs, status) => {
    const { ask } = setup(nowMs);
    for (const id of ['expiring', 'expiring-string']) {
      const outcome = await ask(`sessionId=${id}&transport=HTTP`);
      expect(outcome.status).toBe(status);
      if (status === 404) expect(outcome.message).toBe(`session '${id}' has expired`);
    }
  });

  it('defaults to the real clock', async () => {
    const log = new RecordingLog();
    const past = Math.floor(Date.now() / 1000) - 10;
    const future = Math.floor(Date.now() / 1000) + 3600;
    const store = new MemorySessionStore([
      { SessionId: 'past', DcvServerEndpoint: '10.0.0.1', ExpiresAt: past },
      { SessionId: 'future', DcvServerEndpoint: '10.0.0.1', ExpiresAt: future },
    ]);
    const resolver = new SessionResolver({ store, log });
    await expect(resolver.resolve({ sessionId: 'past', transport: 'HTTP' })).rejects.toThrow("session 'past' has expired");
    await expect(resolver.resolve({ sessionId: 'future', transport: 'HTTP' })).resolves.toMatchObject({ SessionId: 'future' });
  });
});

describe('400: invalid queries never reach the store', () => {
  it.each([
    ['no sessionId', 'transport=HTTP', 'sessionId is required'],
    ['empty sessionId', 'sessionId=&transport=HTTP', 'sessionId is required'],
    ['sessionId of 257 characters', `sessionId=${'s'.repeat(257)}&transport=HTTP`, 'sessionId must be at most 256 characters'],
    ['sessionId with NUL', 'sessionId=con%00sole&transport=HTTP', 'sessionId must not contain control characters'],
    ['sessionId with a newline', 'sessionId=console%0A&transport=HTTP', 'sessionId must not contain control characters'],
    ['sessionId with ESC', 'sessionId=%1B%5B31mconsole&transport=HTTP', 'sessionId must not contain control characters'],
    ['sessionId with DEL', 'sessionId=console%7F&transport=HTTP', 'sessionId must not contain control characters'],
    ['sessionId with a C1 control', 'sessionId=console%C2%85&transport=HTTP', 'sessionId must not contain control characters'],
    ['no transport', 'sessionId=console', 'transport is required (HTTP or QUIC)'],
    ['empty transport', 'sessionId=console&transport=', 'transport must be HTTP or QUIC'],
    ['lowercase transport', 'sessionId=console&transport=http', 'transport must be HTTP or QUIC'],
    ['mixed-case transport', 'sessionId=console&transport=Quic', 'transport must be HTTP or QUIC'],
    ['unknown transport', 'sessionId=console&transport=WEBSOCKET', 'transport must be HTTP or QUIC'],
    ['transport with a space', 'sessionId=console&transport=HTTP%20', 'transport must be HTTP or QUIC'],
    ['clientIpAddress not an address', 'sessionId=console&transport=HTTP&clientIpAddress=client.example.com', 'clientIpAddress must be an IPv4 or IPv6 address'],
    ['clientIpAddress octet out of range', 'sessionId=console&transport=HTTP&clientIpAddress=203.0.113.256', 'clientIpAddress must be an IPv4 or IPv6 address'],
    ['clientIpAddress as a list', 'sessionId=console&transport=HTTP&clientIpAddress=203.0.113.5,198.51.100.4', 'clientIpAddress must be an IPv4 or IPv6 address'],
    ['repeated sessionId', 'sessionId=console&sessionId=desktop&transport=HTTP', 'sessionId must be given once, not 2 times'],
    ['repeated identical sessionId', 'sessionId=console&sessionId=console&transport=HTTP', 'sessionId must be given once, not 2 times'],
    ['repeated transport', 'sessionId=console&transport=HTTP&transport=QUIC', 'transport must be given once, not 2 times'],
    ['repeated clientIpAddress', 'sessionId=console&transport=HTTP&clientIpAddress=203.0.113.5&clientIpAddress=203.0.113.6', 'clientIpAddress must be given once, not 2 times'],
    ['sessionId given three times', 'sessionId=a&sessionId=b&sessionId=c&transport=HTTP', 'sessionId must be given once, not 3 times'],
  ])('%s', async (_name, query, message) => {
    const { ask, store } = setup();
    expect(await ask(query)).toEqual({ status: 400, message });
    expect(store.calls).toEqual([]);
  });

  it('throws a BadRequestError (the typed error carries 400)', () => {
    expect(() => parseResolveQuery(new URLSearchParams('transport=HTTP'))).toThrow(BadRequestError);
  });

  it('parses a valid query into its typed form', () => {
    expect(parseResolveQuery(new URLSearchParams('sessionId=console&transport=QUIC&clientIpAddress=%5B2001%3ADB8%3A%3A1%5D%3A5555'))).toEqual({
      sessionId: 'console',
      transport: 'QUIC',
      clientIp: { address: '2001:db8::1', family: 'ipv6' },
    });
    expect(parseResolveQuery(new URLSearchParams('sessionId=console&transport=HTTP'))).toEqual({ sessionId: 'console', transport: 'HTTP' });
  });
});

describe('malformed items are skipped and logged once per key and reason', () => {
  it('logs a warning with the key and the reason, once, however often the item is asked for', async () => {
    const { ask, log } = setup();
    for (let i = 0; i < 3; i++) {
      expect((await ask('sessionId=bad-port&transport=HTTP')).status).toBe(404);
      expect((await ask('sessionId=bad-port&transport=QUIC')).status).toBe(404);
    }
    expect(log.atLevel('warn')).toEqual([
      { level: 'warn', message: 'malformed session item skipped', fields: { sessionId: 'bad-port', reason: 'HttpPort must be 1–65535' } },
    ]);
  });

  it.each([
    ['no-endpoint', 'DcvServerEndpoint is required'],
    ['bad-path', "WebUrlPath must start with '/'"],
    ['bad-quic', 'QuicPort must be an integer 1–65535'],
    ['bad-enabled', 'Enabled must be a boolean (BOOL)'],
    ['bad-cidr', "AllowedClientCidrs 'office' is not a CIDR"],
  ])('%s is reported as: %s', async (id, reason) => {
    const { ask, log } = setup();
    await ask(`sessionId=${id}&transport=HTTP`);
    await ask(`sessionId=${id}&transport=HTTP`);
    expect(log.find('malformed session item skipped', 'warn').map((e) => e.fields)).toEqual([{ sessionId: id, reason }]);
  });

  it('logs again for a different key, and for the same key with a new reason', async () => {
    const log = new RecordingLog();
    const store = new MemorySessionStore([
      { SessionId: 'a', DcvServerEndpoint: '10.0.0.1', HttpPort: 0 },
      { SessionId: 'b', DcvServerEndpoint: '10.0.0.2', HttpPort: 0 },
    ]);
    const resolver = new SessionResolver({ store, log, now: () => NOW_MS });
    const ask = (sessionId: string) => resolver.resolve({ sessionId, transport: 'HTTP' }).catch((e: HttpError) => e.statusCode);

    expect(await ask('a')).toBe(404);
    expect(await ask('b')).toBe(404);
    store.put({ SessionId: 'a', DcvServerEndpoint: '10.0.0.1', WebUrlPath: 'nope' });
    expect(await ask('a')).toBe(404);
    expect(await ask('a')).toBe(404);
    // Fixed by the operator: served again, and nothing new is logged.
    store.put({ SessionId: 'a', DcvServerEndpoint: '10.0.0.1' });
    expect(await ask('a')).toMatchObject({ SessionId: 'a', Port: 8443 });
    // Broken again the same way as before: already reported.
    store.put({ SessionId: 'a', DcvServerEndpoint: '10.0.0.1', HttpPort: 0 });
    expect(await ask('a')).toBe(404);

    expect(log.find('malformed session item skipped').map((e) => e.fields)).toEqual([
      { sessionId: 'a', reason: 'HttpPort must be 1–65535' },
      { sessionId: 'b', reason: 'HttpPort must be 1–65535' },
      { sessionId: 'a', reason: "WebUrlPath must start with '/'" },
    ]);
  });

  it('remembers a bounded number of reports (keys are untrusted), then starts over', async () => {
    const log = new RecordingLog();
    // Every id resolves to the same malformed item, the way a hostile caller could make a store answer.
    const store: SessionStore = { get: async (sessionId) => ({ SessionId: sessionId, DcvServerEndpoint: '10.0.0.1', HttpPort: 0 }) };
    const resolver = new SessionResolver({ store, log, now: () => NOW_MS });
    const ask = (sessionId: string) => resolver.resolve({ sessionId, transport: 'HTTP' }).catch(() => undefined);
    await ask('first');
    await ask('first');
    expect(log.atLevel('warn')).toHaveLength(1);
    for (let i = 0; i < 10_000; i++) await ask(`id-${i}`);
    expect(log.atLevel('warn')).toHaveLength(10_001);
    // 'first' was forgotten when the memory filled up, so it is reported again (once).
    await ask('first');
    await ask('first');
    expect(log.atLevel('warn')).toHaveLength(10_002);
    expect(log.entries.at(-1)?.fields).toEqual({ sessionId: 'first', reason: 'HttpPort must be 1–65535' });
  });

  it('does not let a store answer for a different id', async () => {
    const log = new RecordingLog();
    const store: SessionStore = { get: async () => ({ SessionId: 'someone-else', DcvServerEndpoint: '10.0.0.1' }) };
    const resolver = new SessionResolver({ store, log, now: () => NOW_MS });
    await expect(resolver.resolve({ sessionId: 'mine', transport: 'HTTP' })).rejects.toThrow("no session 'mine'");
  });
});

describe('store failures: 503 without leaking the cause', () => {
  it.each([
    ['an AWS-style error', Object.assign(new Error('Rate of requests exceeds the allowed throughput at arn:aws:dynamodb:us-east-1:123456789012:table/Secret'), { name: 'ProvisionedThroughputExceededException', code: 'ThrottlingException' }), { name: 'ProvisionedThroughputExceededException', message: 'Rate of requests exceeds the allowed throughput at arn:aws:dynamodb:us-east-1:123456789012:table/Secret', code: 'ThrottlingException' }],
    ['a timeout', Object.assign(new Error('connect ETIMEDOUT 10.9.9.9:443'), { code: 'ETIMEDOUT' }), { name: 'Error', message: 'connect ETIMEDOUT 10.9.9.9:443', code: 'ETIMEDOUT' }],
    ['a non-Error rejection', 'socket hang up', { message: 'socket hang up' }],
  ])('%s', async (_name, cause, described) => {
    const log = new RecordingLog();
    const store: SessionStore = { get: () => Promise.reject(cause) };
    const resolver = new SessionResolver({ store, log, now: () => NOW_MS });
    const error = await resolver.resolve({ sessionId: 'console', transport: 'HTTP' }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ServiceUnavailableError);
    const typed = error as ServiceUnavailableError;
    expect(typed.statusCode).toBe(503);
    expect(typed.headers).toEqual({ 'Retry-After': '1' });
    expect(typed.toJSON()).toEqual({ error: 'ServiceUnavailableError', message: 'session store unavailable; try again' });
    const text = JSON.stringify(typed.toJSON()) + typed.message;
    for (const secret of ['arn:', '10.9.9.9', 'ETIMEDOUT', 'hang up', 'Throttl', 'Provisioned']) expect(text).not.toContain(secret);
    // The operator still learns what happened, from the log.
    expect(log.find('session store failed', 'error').map((e) => e.fields)).toEqual([{ sessionId: 'console', cause: described }]);
  });

  it('also fails a synchronous throw from the store as 503', async () => {
    const log = new RecordingLog();
    const store: SessionStore = {
      get: () => {
        throw new TypeError('boom');
      },
    };
    const resolver = new SessionResolver({ store, log, now: () => NOW_MS });
    await expect(resolver.resolve({ sessionId: 'console', transport: 'HTTP' })).rejects.toBeInstanceOf(ServiceUnavailableError);
  });
});

describe('describeError', () => {
  it('keeps name, message and code but never the stack', () => {
    const error = Object.assign(new RangeError('bad'), { code: 'E_BAD' });
    expect(describeError(error)).toEqual({ name: 'RangeError', message: 'bad', code: 'E_BAD' });
    expect(describeError(new Error('plain'))).toEqual({ name: 'Error', message: 'plain' });
    expect(describeError(42)).toEqual({ message: '42' });
  });
});
