import { describe, expect, it } from 'vitest';
import { ServiceUnavailableError } from '../../lambda/core/errors';
import { SessionResolver } from '../../lambda/core/resolve';
import type { RawItem } from '../../lambda/core/session-record';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { DEFAULT_MAX_USES, DEFAULT_TTL_SECONDS, issueToken } from '../../lambda/core/tokens/issue-token';
import { hashToken } from '../../lambda/core/tokens/token';
import { MemoryTokenStore, type TokenStore } from '../../lambda/core/tokens/token-store';
import { sameEndpoint, TokenVerifier, type VerifyRefusal, type VerifyRequest } from '../../lambda/core/tokens/verify-token';
import { VERIFY_OUTCOMES, verifyOutcome } from '../../lambda/core/metrics';
import { RecordingLog } from '../helpers/recording-log';

/** Two hosts whose DCV servers both name their session `console`: the cross-server replay setting. */
const SESSIONS: RawItem[] = [
  { SessionId: 'agent1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console' },
  { SessionId: 'agent2', DcvServerEndpoint: '10.0.2.20', TargetSessionId: 'console' },
  { SessionId: 'v6', DcvServerEndpoint: '2001:db8::15', TargetSessionId: 'console' },
  { SessionId: 'named', DcvServerEndpoint: 'Desk-1.Example.internal' },
  // Portal sessions: who may open them is named.
  { SessionId: 'alices', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console', AllowedUsers: ['alice@example.com', 'alice'] },
  { SessionId: 'ops-desk', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console', AllowedUsers: ['carol'], AllowedGroups: ['ops'] },
  // DCV authorizes the console's owner: the verifier answers with DcvUser.
  { SessionId: 'ubuntu-desk', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console', DcvUser: 'ubuntu', AllowedUsers: ['alice'] },
];
const T0 = Date.parse('2026-11-26T12:00:00Z');

function setup(options: { items?: RawItem[]; tokens?: TokenStore } = {}) {
  let now = T0;
  const sessions = new MemorySessionStore(options.items ?? SESSIONS);
  const tokens = options.tokens ?? new MemoryTokenStore();
  const log = new RecordingLog();
  const resolver = new SessionResolver({ store: sessions, log, now: () => now });
  const verifier = new TokenVerifier({ tokens, sessions: resolver, log, now: () => now });
  return {
    sessions,
    tokens,
    log,
    verifier,
    advance: (ms: number) => (now += ms),
    issue: (request: Partial<Parameters<typeof issueToken>[1]> = {}) =>
      issueToken({ tokens, sessions: resolver, now: () => now }, { sessionId: 'agent1', user: 'alice', ...request }),
  };
}

const asks = (token: string, extra: Partial<VerifyRequest> = {}): VerifyRequest => ({
  serverSessionId: 'console',
  token,
  clientAddress: '203.0.113.25',
  server: '10.0.1.15',
  ...extra,
});

describe('issuing', () => {
  it('stores only the hash, with the bindings and the defaults (10 minutes, 3 uses)', async () => {
    const { issue, tokens } = setup();
    const issued = await issue({ gatewayUrl: 'https://gw.example.com:8443' });
    expect(issued).toMatchObject({
      url: `https://gw.example.com:8443/?authToken=${issued.token}#agent1`,
      nativeUrl: `dcv://gw.example.com:8443/?authToken=${issued.token}#agent1`,
      sessionId: 'agent1',
      user: 'alice',
      expiresAt: new Date(T0 + DEFAULT_TTL_SECONDS * 1000).toISOString(),
      maxUses: DEFAULT_MAX_USES,
      dcvServerEndpoint: '10.0.1.15',
    });
    expect([DEFAULT_TTL_SECONDS, DEFAULT_MAX_USES]).toEqual([600, 3]);
    const stored = [];
    for await (const state of tokens.list()) stored.push(state);
    expect(stored).toEqual([
      {
        hash: hashToken(issued.token),
        sessionId: 'agent1',
        user: 'alice',
        expiresAt: T0 / 1000 + 600,
        maxUses: 3,
        usesLeft: 3,
        createdAt: new Date(T0).toISOString(),
      },
    ]);
    expect(JSON.stringify(stored)).not.toContain(issued.token);
  });

  it.each([
    ['an unknown session', [], 'agent1', "no session 'agent1'"],
    ['a disabled session', [{ ...SESSIONS[0], Enabled: false }], 'agent1', "session 'agent1' is disabled"],
    ['an expired session', [{ ...SESSIONS[0], ExpiresAt: T0 / 1000 }], 'agent1', "session 'agent1' has expired"],
    ['a malformed session item', [{ ...SESSIONS[0], HttpPort: 0 }], 'agent1', "no session 'agent1'"],
  ])('refuses %s with a 404 and stores nothing', async (_name, items, sessionId, message) => {
    const { issue, tokens } = setup({ items: items as RawItem[] });
    await expect(issue({ sessionId })).rejects.toMatchObject({ statusCode: 404, message });
    const stored = [];
    for await (const state of tokens.list()) stored.push(state);
    expect(stored).toEqual([]);
  });

  it.each([
    ['an empty user', { user: '' }, 'user must not be empty'],
    ['a user with a newline', { user: 'alice\nroot' }, 'user must not contain control characters'],
    ['a zero ttl', { ttlSeconds: 0 }, 'ttl must be 1 second to 7 days'],
    ['a ttl over 7 days', { ttlSeconds: 7 * 86400 + 1 }, 'ttl must be 1 second to 7 days'],
    ['zero uses', { maxUses: 0 }, 'max uses must be an integer from 1 to 100'],
    ['101 uses', { maxUses: 101 }, 'max uses must be an integer from 1 to 100'],
    ['a bad CIDR', { clientCidrs: ['10.0.0.0/33'] }, "client CIDR '10.0.0.0/33' is not an IPv4 or IPv6 CIDR"],
    ['a gateway URL without https://', { gatewayUrl: 'gw:8443' }, "gateway URL 'gw:8443' must start with https://"],
    ['an empty session id', { sessionId: '' }, 'session id must not be empty'],
  ])('refuses %s with a 400', async (_name, change, message) => {
    const { issue } = setup();
    await expect(issue(change)).rejects.toMatchObject({ statusCode: 400, message: expect.stringContaining(message) });
  });

  it('refuses groups that are not group names with a 400', async () => {
    const { issue } = setup();
    await expect(issue({ groups: ['ops', ''] })).rejects.toMatchObject({ statusCode: 400, message: "groups entry '' must not be empty" });
    await expect(issue({ groups: Array.from({ length: 101 }, (_, i) => `g${i}`) })).rejects.toMatchObject({
      statusCode: 400,
      message: 'groups must have at most 100 entries',
    });
  });

  it('stores the groups with the grant (deduplicated) and returns them', async () => {
    const { issue, tokens } = setup();
    const issued = await issue({ sessionId: 'ops-desk', user: 'dave', groups: ['ops', 'gpu', 'ops'] });
    expect(issued.groups).toEqual(['ops', 'gpu']);
    expect((await tokens.get(hashToken(issued.token)))?.groups).toEqual(['ops', 'gpu']);
    // No groups: no attribute at all, as before.
    expect(await tokens.get(hashToken((await issue({ groups: [] })).token))).not.toHaveProperty('groups');
  });

  it.each([
    ['the user by name', 'alices', 'alice', undefined],
    ['the user by e-mail, in another case', 'alices', 'Alice@Example.com', undefined],
    ['a user on the list of a session that also lists groups', 'ops-desk', 'carol', undefined],
    ['a user through a group', 'ops-desk', 'dave', ['staff', 'ops']],
    ['anyone on a session without AllowedUsers or AllowedGroups (operator tokens, as before)', 'agent1', 'mallory', undefined],
  ])('issues for %s', async (_name, sessionId, user, groups) => {
    const { issue } = setup();
    await expect(issue({ sessionId, user, ...(groups ? { groups } : {}) })).resolves.toMatchObject({ sessionId, user });
  });

  it.each([
    ['a user not on AllowedUsers', 'alices', 'bob', undefined, "user 'bob' is not allowed on session 'alices' (not in its AllowedUsers, and no group in its AllowedGroups)"],
    ['a user whose groups are not on AllowedGroups', 'ops-desk', 'dave', ['staff'], "user 'dave' (groups staff) is not allowed on session 'ops-desk' (not in its AllowedUsers, and no group in its AllowedGroups)"],
    ['a group name passed as the user', 'ops-desk', 'ops', undefined, "user 'ops' is not allowed on session 'ops-desk'"],
    ['a user name that differs in case (not an e-mail)', 'alices', 'Alice', undefined, "user 'Alice' is not allowed on session 'alices'"],
  ])('refuses %s with a 403 naming session and user, and stores nothing', async (_name, sessionId, user, groups, message) => {
    const { issue, tokens } = setup();
    await expect(issue({ sessionId, user, ...(groups ? { groups } : {}) })).rejects.toMatchObject({ statusCode: 403, message: expect.stringContaining(message) });
    const stored = [];
    for await (const state of tokens.list()) stored.push(state);
    expect(stored).toEqual([]);
  });

  it('issues without a session check or links when neither is asked for', async () => {
    const tokens = new MemoryTokenStore();
    const issued = await issueToken({ tokens }, { sessionId: 'anything', user: 'bob', ttlSeconds: 60, maxUses: 1 });
    expect(issued.url).toBeUndefined();
    expect(issued.dcvServerEndpoint).toBeUndefined();
    expect((await tokens.get(hashToken(issued.token)))?.usesLeft).toBe(1);
  });
});

describe('verifying', () => {
  it('says yes with the user, counting uses down to the maximum, then no', async () => {
    const { issue, verifier } = setup();
    const { token } = await issue({ maxUses: 3 });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await verifier.verify(asks(token)));
    expect(answers.map((a) => a.result)).toEqual(['yes', 'yes', 'yes', 'no']);
    expect(answers[0]).toMatchObject({ user: 'alice', sessionId: 'agent1', usesLeft: 2 });
    expect(answers[3]).toMatchObject({ reason: 'used-up', message: 'authentication token has been used 3 time(s), its maximum; issue a new link' });
  });

  it('refuses at the expiry instant, accepts a millisecond before', async () => {
    const { issue, verifier, advance } = setup();
    const { token } = await issue({ ttlSeconds: 60, maxUses: 5 });
    advance(60_000 - 1);
    expect((await verifier.verify(asks(token))).result).toBe('yes');
    advance(1);
    expect(await verifier.verify(asks(token))).toMatchObject({
      result: 'no',
      reason: 'expired',
      message: 'authentication token expired at 2026-11-26T12:01:00.000Z; issue a new link',
    });
  });

  it('refuses a revoked token', async () => {
    const { issue, verifier, tokens } = setup();
    const { token } = await issue();
    expect(await tokens.revoke(hashToken(token), new Date(T0))).toBe(true);
    expect(await verifier.verify(asks(token))).toMatchObject({ result: 'no', reason: 'revoked', message: 'authentication token was revoked; issue a new link' });
  });

  it('refuses an unknown and a malformed token without naming it', async () => {
    const { verifier } = setup();
    const unknown = 'A'.repeat(43);
    const answer = await verifier.verify(asks(unknown));
    expect(answer).toMatchObject({ result: 'no', reason: 'unknown' });
    expect(JSON.stringify(answer)).not.toContain(unknown);
    expect(await verifier.verify(asks('not a token!'))).toEqual({ result: 'no', reason: 'malformed', message: 'authentication token is not in the issued format' });
  });

  it('cross-server replay: a token for agent1 (host A, console) is refused by host B (also console), and keeps its use', async () => {
    const { issue, verifier, tokens } = setup();
    const { token } = await issue({ maxUses: 1 });
    expect(await verifier.verify(asks(token, { server: '10.0.2.20' }))).toMatchObject({
      result: 'no',
      reason: 'wrong-server',
      message: "token is for session 'agent1' on server 10.0.1.15, not on 10.0.2.20",
    });
    expect((await tokens.get(hashToken(token)))?.usesLeft).toBe(1);
    expect((await verifier.verify(asks(token))).result).toBe('yes');
  });

  it('refuses a token presented for another server session id', async () => {
    const { issue, verifier } = setup();
    const { token } = await issue();
    expect(await verifier.verify(asks(token, { serverSessionId: 'other' }))).toMatchObject({
      result: 'no',
      reason: 'wrong-session',
      message: "token is for session 'agent1' (server session 'console'), not server session 'other'",
    });
  });

  it('the plain single-server URL (no server segment) checks the session but not the server', async () => {
    const { issue, verifier } = setup();
    const { token } = await issue();
    expect((await verifier.verify(asks(token, { server: undefined }))).result).toBe('yes');
  });

  it('follows the session: a host moved by discovery is the one that may ask; a disabled session refuses', async () => {
    const { issue, verifier, sessions } = setup();
    const { token } = await issue({ maxUses: 5 });
    sessions.put({ ...SESSIONS[0], DcvServerEndpoint: '10.0.9.9' });
    expect(await verifier.verify(asks(token))).toMatchObject({ reason: 'wrong-server' });
    expect((await verifier.verify(asks(token, { server: '10.0.9.9' }))).result).toBe('yes');
    sessions.put({ ...SESSIONS[0], Enabled: false });
    expect(await verifier.verify(asks(token, { server: '10.0.9.9' }))).toMatchObject({
      result: 'no',
      reason: 'session-unavailable',
      message: "the token's session is not available: session 'agent1' is disabled",
    });
  });

  it('never admits a token on a pool lease whose member host is stopped, gone or moved, and takes no use', async () => {
    const member = { SessionId: 'pool-h1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console', Pool: 'cad', Source: 'ec2', InstanceId: 'i-0abc', InstanceState: 'running' };
    const lease = { SessionId: 'lease:pool-h1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console', Source: 'lease', Pool: 'cad', LeaseUser: 'alice', AllowedUsers: ['alice'] };
    const { issue, verifier, sessions, tokens } = setup({ items: [member, lease] });
    const { token } = await issue({ sessionId: 'lease:pool-h1', maxUses: 5 });
    const unavailable = (why: string) => ({
      result: 'no',
      reason: 'session-unavailable',
      message: `the token's session is not available: session 'lease:pool-h1': its pool host is no longer available (${why})`,
    });
    sessions.put({ ...member, InstanceState: 'stopped' });
    expect(await verifier.verify(asks(token))).toMatchObject(unavailable("session 'pool-h1': the host is stopped (InstanceState stopped)"));
    sessions.put({ ...member, DcvServerEndpoint: '10.0.1.99' });
    expect(await verifier.verify(asks(token))).toMatchObject(unavailable("session 'pool-h1' is now on 10.0.1.99, not 10.0.1.15"));
    sessions.delete('pool-h1');
    expect(await verifier.verify(asks(token))).toMatchObject(unavailable("no session 'pool-h1'"));
    expect((await tokens.get(hashToken(token)))?.usesLeft).toBe(5);
    sessions.put(member);
    expect(await verifier.verify(asks(token))).toMatchObject({ result: 'yes', sessionId: 'lease:pool-h1', usesLeft: 4 });
  });

  it('never admits a token for a session whose host is not running (desktops on demand), and does once it runs', async () => {
    const { issue, verifier, sessions } = setup();
    const { token } = await issue({ maxUses: 5 });
    for (const state of ['stopped', 'stopping', 'pending']) {
      sessions.put({ ...SESSIONS[0], Source: 'ec2', InstanceId: 'i-0abc', InstanceState: state });
      expect(await verifier.verify(asks(token))).toMatchObject({
        result: 'no',
        reason: 'session-unavailable',
        message: `the token's session is not available: session 'agent1': the host is stopped (InstanceState ${state})`,
      });
    }
    sessions.put({ ...SESSIONS[0], Source: 'ec2', InstanceId: 'i-0abc', InstanceState: 'running' });
    expect((await verifier.verify(asks(token))).result).toBe('yes');
  });

  it.each([
    ['inside the CIDR', '203.0.113.25', 'yes'],
    ['inside, with a port', '203.0.113.25:51234', 'yes'],
    ['outside the CIDR', '198.51.100.7', 'no'],
    ['absent', undefined, 'no'],
    ['garbage', 'not-an-ip', 'no'],
  ])('a token bound to 203.0.113.0/24, client address %s → %s', async (_name, clientAddress, result) => {
    const { issue, verifier } = setup();
    const { token } = await issue({ clientCidrs: ['203.0.113.0/24'] });
    const answer = await verifier.verify(asks(token, { clientAddress }));
    expect(answer.result).toBe(result);
    if (result === 'no') expect(answer).toMatchObject({ reason: 'wrong-client' });
  });

  it('a failing token store is a 503, never a yes; a failing session store too', async () => {
    const failing: TokenStore = {
      get: () => Promise.reject(new Error('ECONNRESET')),
      consume: () => Promise.reject(new Error('ECONNRESET')),
      put: () => Promise.resolve(),
      revoke: () => Promise.resolve(false),
      list: async function* () {},
    };
    const { verifier, log } = setup({ tokens: failing });
    await expect(verifier.verify(asks('A'.repeat(43)))).rejects.toBeInstanceOf(ServiceUnavailableError);
    expect(log.find('token store failed', 'error')).toHaveLength(1);

    // The grant reads fine but taking the use fails.
    const memory = new MemoryTokenStore();
    const half: TokenStore = { ...memory, get: (h) => memory.get(h), put: (g) => memory.put(g), list: () => memory.list(), revoke: (h, a) => memory.revoke(h, a), consume: () => Promise.reject(new Error('timeout')) };
    const second = setup({ tokens: half });
    const { token } = await second.issue();
    await expect(second.verifier.verify(asks(token))).rejects.toMatchObject({ statusCode: 503 });

    const third = setup();
    const issued = await third.issue();
    third.sessions.get = () => Promise.reject(new Error('throttled'));
    await expect(third.verifier.verify(asks(issued.token))).rejects.toMatchObject({ statusCode: 503 });
  });

  it('refuses with user-not-allowed when the session names who may open it and the grant’s user is not among them; the use is kept', async () => {
    const { verifier, tokens } = setup();
    // A token issued without a session check (or before AllowedUsers changed) for someone else.
    const { token } = await issueToken({ tokens }, { sessionId: 'alices', user: 'bob', maxUses: 1 });
    expect(await verifier.verify(asks(token))).toEqual({
      result: 'no',
      reason: 'user-not-allowed',
      message: "token's user 'bob' is not allowed on session 'alices' (AllowedUsers / AllowedGroups)",
      tokenId: expect.any(String),
    });
    expect((await tokens.get(hashToken(token)))?.usesLeft).toBe(1);
  });

  it('checks the grant’s groups against AllowedGroups', async () => {
    const { verifier, tokens } = setup();
    const withGroup = await issueToken({ tokens }, { sessionId: 'ops-desk', user: 'dave', groups: ['ops'] });
    const withoutGroup = await issueToken({ tokens }, { sessionId: 'ops-desk', user: 'dave', groups: ['staff'] });
    expect(await verifier.verify(asks(withGroup.token))).toMatchObject({ result: 'yes', user: 'dave' });
    expect(await verifier.verify(asks(withoutGroup.token))).toMatchObject({ result: 'no', reason: 'user-not-allowed' });
  });

  it('follows the session: AllowedUsers set after issue refuses an outstanding token; removed again, it is accepted', async () => {
    const { issue, verifier, sessions } = setup();
    const { token } = await issue({ maxUses: 5 });
    expect((await verifier.verify(asks(token))).result).toBe('yes');
    sessions.put({ ...SESSIONS[0], AllowedUsers: ['carol'] });
    expect(await verifier.verify(asks(token))).toMatchObject({ result: 'no', reason: 'user-not-allowed' });
    sessions.put({ ...SESSIONS[0], AllowedUsers: ['carol', 'alice'] });
    expect((await verifier.verify(asks(token))).result).toBe('yes');
    sessions.put({ ...SESSIONS[0] });
    expect((await verifier.verify(asks(token))).result).toBe('yes');
  });

  it("answers with the session's DcvUser, keeping the token's user beside it; who may connect is still decided on the token's user", async () => {
    const { issue, verifier, tokens } = setup();
    const { token } = await issue({ sessionId: 'ubuntu-desk', maxUses: 5 });
    expect(await verifier.verify(asks(token))).toMatchObject({ result: 'yes', user: 'alice', dcvUser: 'ubuntu', sessionId: 'ubuntu-desk' });
    // Without DcvUser: the token's user, as before.
    const plain = await issue({ maxUses: 1 });
    expect(await verifier.verify(asks(plain.token))).toMatchObject({ result: 'yes', user: 'alice', dcvUser: 'alice' });
    // Issued without a session check for someone AllowedUsers does not name: refused, DcvUser or not
    // (DcvUser says as whom DCV sees a user, not who may connect).
    const mallory = await issueToken({ tokens }, { sessionId: 'ubuntu-desk', user: 'mallory' });
    expect(await verifier.verify(asks(mallory.token))).toMatchObject({ result: 'no', reason: 'user-not-allowed' });
  });

  it('follows the session: DcvUser changed after issue is what the next use answers with', async () => {
    const { issue, verifier, sessions } = setup();
    const { token } = await issue({ sessionId: 'agent1', maxUses: 5 });
    expect(await verifier.verify(asks(token))).toMatchObject({ dcvUser: 'alice' });
    sessions.put({ ...SESSIONS[0], DcvUser: 'Administrator' });
    expect(await verifier.verify(asks(token))).toMatchObject({ result: 'yes', user: 'alice', dcvUser: 'Administrator' });
  });

  it('of 50 concurrent verifications of a one-use token, exactly one is yes', async () => {
    const { issue, verifier } = setup();
    const { token } = await issue({ maxUses: 1 });
    const answers = await Promise.all(Array.from({ length: 50 }, () => verifier.verify(asks(token))));
    expect(answers.filter((a) => a.result === 'yes')).toHaveLength(1);
    expect(new Set(answers.map((a) => (a.result === 'no' ? a.reason : 'yes')))).toEqual(new Set(['yes', 'used-up']));
  });
});

describe('sameEndpoint', () => {
  it.each([
    ['10.0.1.15', '10.0.1.15', true],
    ['10.0.1.15', '10.0.1.16', false],
    ['Desk-1.Example.internal', 'desk-1.example.internal', true],
    ['desk-1.example.internal.', 'desk-1.example.internal', true],
    ['2001:db8::15', '2001:0db8:0:0:0:0:0:15', true],
    ['[2001:db8::15]', '2001:db8::15', true],
    ['2001:db8::15', '2001:db8::16', false],
    ['::ffff:10.0.1.15', '10.0.1.15', true],
    ['10.0.1.15', 'desk-1', false],
  ])('%s vs %s → %s', (a, b, same) => {
    expect(sameEndpoint(a, b)).toBe(same);
    expect(sameEndpoint(b, a)).toBe(same);
  });
});

describe('metrics', () => {
  it('every refusal reason, user-not-allowed included, is a verification outcome the dashboard graphs', () => {
    const reasons: VerifyRefusal[] = ['malformed', 'unknown', 'expired', 'used-up', 'revoked', 'wrong-client', 'session-unavailable', 'wrong-session', 'wrong-server', 'user-not-allowed'];
    for (const reason of reasons) {
      expect(VERIFY_OUTCOMES).toContain(reason);
      expect(verifyOutcome(200, 'no', reason)).toBe(reason);
    }
  });
});

describe('LastVerifiedAt: a yes on a desktop on demand is recorded, at most once a minute, never at the cost of the yes', () => {
  const ON_DEMAND: RawItem[] = [
    { SessionId: 'gpu-1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console', AutoStopMinutes: 30 },
    { SessionId: 'plain', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console' },
  ];

  function withMarker(fail = false) {
    let now = T0;
    const marks: [string, string, string][] = [];
    const tokens = new MemoryTokenStore();
    const log = new RecordingLog();
    const resolver = new SessionResolver({ store: new MemorySessionStore(ON_DEMAND), log, now: () => now });
    const marker = {
      async markVerified(sessionId: string, at: string, notBefore: string) {
        marks.push([sessionId, at, notBefore]);
        if (fail) throw Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
      },
    };
    const verifier = new TokenVerifier({ tokens, sessions: resolver, log, now: () => now, marker });
    const issue = (sessionId: string) => issueToken({ tokens, sessions: resolver, now: () => now }, { sessionId, user: 'alice', maxUses: 10 });
    return { marks, log, verifier, issue, advance: (ms: number) => (now += ms) };
  }

  it('marks the session on a yes, then not again within a minute, then again', async () => {
    const { marks, verifier, issue, advance } = withMarker();
    const { token } = await issue('gpu-1');
    expect((await verifier.verify(asks(token))).result).toBe('yes');
    expect(marks).toEqual([['gpu-1', new Date(T0).toISOString(), new Date(T0 - 60_000).toISOString()]]);
    advance(30_000);
    expect((await verifier.verify(asks(token))).result).toBe('yes');
    expect(marks).toHaveLength(1);
    advance(31_000);
    await verifier.verify(asks(token));
    expect(marks.map((m) => m[1])).toEqual([new Date(T0).toISOString(), new Date(T0 + 61_000).toISOString()]);
  });

  it('never marks a session that is not on demand, nor on a refusal', async () => {
    const { marks, verifier, issue } = withMarker();
    const plain = await issue('plain');
    expect((await verifier.verify(asks(plain.token))).result).toBe('yes');
    const onDemand = await issue('gpu-1');
    expect((await verifier.verify(asks(onDemand.token, { serverSessionId: 'other' }))).result).toBe('no');
    expect(marks).toEqual([]);
  });

  it('a failing marker is a warning; the answer is still yes', async () => {
    const { verifier, issue, log } = withMarker(true);
    const { token } = await issue('gpu-1');
    expect((await verifier.verify(asks(token))).result).toBe('yes');
    expect(log.entries).toContainEqual(expect.objectContaining({ level: 'warn', message: 'LastVerifiedAt not recorded', fields: expect.objectContaining({ sessionId: 'gpu-1' }) }));
  });
});
