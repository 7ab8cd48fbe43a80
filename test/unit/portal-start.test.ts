import { describe, expect, it } from 'vitest';
import { CliError } from '../../lambda/cli/cli-error';
import { parseServeArgs } from '../../lambda/cli/serve-command';
import type { HttpRequest, HttpResponse, Router } from '../../lambda/core/http-router';
import type { DcvAnswer, DesktopStartPort, StartAnchor } from '../../lambda/core/portal/desktop-start';
import { createPortal } from '../../lambda/core/portal/portal-app';
import type { AuthorizationRequest, OidcClient, SignIn, SignInChecks } from '../../lambda/core/portal/oidc';
import type { PowerWrite } from '../../lambda/core/power/power-plan';
import type { PowerOutcome } from '../../lambda/core/power/power-ports';
import type { RawItem } from '../../lambda/core/session-record';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { hashToken } from '../../lambda/core/tokens/token';
import { MemoryTokenStore } from '../../lambda/core/tokens/token-store';
import { createResolverRouter } from '../../lambda/handlers/resolver-handler';
import { RecordingLog } from '../helpers/recording-log';

/** Start and open through the whole router, with an in-memory stand-in for EC2, the table's claim and the host. */
const KEY = 'k'.repeat(40);
const GATEWAY = 'https://gw.example.com:8443';
const HOST = 'portal.example.com';
const ORIGIN = `https://${HOST}`;
const T0 = Date.parse('2026-12-07T10:00:00Z');
const I1 = 'i-00000000000000001';
const I2 = 'i-00000000000000002';
const I3 = 'i-00000000000000003';

const SESSIONS: RawItem[] = [
  { SessionId: 'desk-a', DcvServerEndpoint: '10.0.0.1', TargetSessionId: 'console', Source: 'ec2', InstanceId: I1, InstanceState: 'stopped', StartOnConnect: true, AllowedUsers: ['alice@example.com'] },
  { SessionId: 'desk-plain', DcvServerEndpoint: '10.0.0.2', Source: 'ec2', InstanceId: I2, InstanceState: 'stopped', AllowedUsers: ['alice@example.com'] },
  { SessionId: 'desk-up', DcvServerEndpoint: '10.0.0.3', Source: 'ec2', InstanceId: I3, InstanceState: 'running', AutoStopMinutes: 30, IdleSince: '2026-12-07T09:45:00Z', AllowedUsers: ['alice@example.com'] },
];

const USERS: Record<string, Record<string, unknown>> = {
  alice: { sub: 'sub-alice', email: 'alice@example.com', email_verified: true, groups: [] },
  bob: { sub: 'sub-bob', email: 'bob@example.com', email_verified: true, groups: [] },
};

class FakeOidc implements OidcClient {
  async authorizationUrl(request: AuthorizationRequest): Promise<string> {
    const url = new URL('https://idp.example.com/authorize');
    url.search = new URLSearchParams({ state: request.state }).toString();
    return url.toString();
  }
  async signIn(callbackUrl: URL, checks: SignInChecks): Promise<SignIn> {
    const name = (callbackUrl.searchParams.get('code') ?? '').split('.')[0]!;
    return { idTokenClaims: { ...USERS[name], nonce: checks.nonce } };
  }
}

/** EC2 states, the anchors' PowerStartAt (with DynamoDB's condition), StartInstances calls, discovery and DCV. */
class FakeStart implements DesktopStartPort {
  readonly states = new Map<string, string>([[I1, 'stopped'], [I2, 'stopped'], [I3, 'running']]);
  readonly claims = new Map<string, string>();
  readonly starts: string[] = [];
  readonly refreshes: string[] = [];
  readonly dcv = new Map<string, DcvAnswer>();
  refuse?: PowerOutcome['outcome'];
  constructor(private readonly store: MemorySessionStore) {}
  async instanceState(id: string) {
    return this.states.get(id);
  }
  async anchor(id: string): Promise<StartAnchor | undefined> {
    const item = SESSIONS.find((s) => s.InstanceId === id);
    if (!item) return undefined;
    const claim = this.claims.get(String(item.SessionId));
    return { sessionId: String(item.SessionId), ...(claim ? { powerStartAt: claim } : {}) };
  }
  async writeClaim(write: PowerWrite): Promise<'written' | 'conflict'> {
    // Yield first, as a network call would: two requests interleave here.
    await new Promise((resolve) => setImmediate(resolve));
    const current = this.claims.get(write.sessionId);
    if (write.read === undefined ? current !== undefined : current !== write.read) return 'conflict';
    if (write.value === undefined) this.claims.delete(write.sessionId);
    else this.claims.set(write.sessionId, write.value);
    return 'written';
  }
  async start(id: string): Promise<PowerOutcome> {
    this.starts.push(id);
    if (this.refuse === 'insufficient-capacity') return { instanceId: id, outcome: 'insufficient-capacity', message: 'no g5 capacity' };
    const previousState = this.states.get(id)!;
    if (previousState === 'stopped') this.states.set(id, 'pending');
    return { instanceId: id, outcome: 'accepted', previousState, currentState: this.states.get(id)! };
  }
  async refresh(id: string) {
    this.refreshes.push(id);
    for (const s of SESSIONS.filter((x) => x.InstanceId === id)) this.store.put({ ...(await this.store.get(String(s.SessionId)))!, InstanceState: this.states.get(id) });
  }
  async dcvSessions(id: string): Promise<DcvAnswer> {
    return this.dcv.get(id) ?? { ok: false, reason: 'no answer before the deadline' };
  }
}

function setup(options: { withStart?: boolean } = {}) {
  const clock = { now: T0 };
  const store = new MemorySessionStore(SESSIONS);
  const tokens = new MemoryTokenStore();
  const log = new RecordingLog();
  const start = new FakeStart(store);
  const route: Router = createResolverRouter({
    store,
    logger: log,
    tokens,
    now: () => clock.now,
    portal: (shared) =>
      createPortal({ ...shared, oidc: new FakeOidc(), cookieKey: KEY, gatewayUrl: GATEWAY, catalog: store, leases: store, ...(options.withStart === false ? {} : { desktopStart: start }) }),
  });
  const send = (method: string, path: string, init: { cookie?: string; body?: string; query?: string } = {}) =>
    route({
      method,
      path,
      rawQueryString: init.query ?? '',
      sourceIp: '127.0.0.1',
      body: init.body,
      contentType: init.body === undefined ? undefined : 'application/x-www-form-urlencoded',
      headers: { host: HOST, ...(init.cookie ? { cookie: init.cookie } : {}), ...(init.body !== undefined ? { origin: ORIGIN, 'sec-fetch-site': 'same-origin' } : {}) },
      scheme: 'https',
    } satisfies HttpRequest);
  let n = 0;
  async function signIn(user: string) {
    const login = await send('GET', '/portal/login');
    const state = new URL(login.headers.Location!).searchParams.get('state')!;
    const callback = await send('GET', '/portal/callback', { cookie: cookiePair(login, 'dcv_portal_login'), query: `code=${user}.${++n}&state=${state}` });
    const cookie = cookiePair(callback, 'dcv_portal');
    const list = await send('GET', '/portal', { cookie });
    const csrf = /name="csrf" value="([^"]+)"/.exec(list.body)![1]!;
    return { cookie, csrf, list };
  }
  return { clock, store, tokens, start, send, signIn, log };
}

function cookiePair(response: HttpResponse, name: string): string {
  const line = (response.cookies ?? []).find((c) => c.startsWith(`${name}=`));
  if (!line) throw new Error(`no cookie ${name}`);
  return line.split(';')[0]!;
}

function startCookie(response: HttpResponse): string {
  const line = (response.cookies ?? []).find((c) => c.startsWith('dcv_portal_start_'));
  if (!line) throw new Error('no start ticket');
  return line.split(';')[0]!;
}

describe('the list with Start and open', () => {
  it('a stopped StartOnConnect desktop shows its state and a Start and open form (POST /portal/start, csrf, session); others do not', async () => {
    const { signIn } = setup();
    const { list, csrf } = await signIn('alice');
    const item = (id: string) => new RegExp(`<h2>${id}</h2>[\\s\\S]*?</li>`).exec(list.body)![0];
    expect(item('desk-a')).toContain('<p class="state">Stopped</p>');
    expect(item('desk-a')).toContain('action="/portal/start"');
    expect(item('desk-a')).toContain(`name="csrf" value="${csrf}"`);
    expect(item('desk-a')).toContain('name="session" value="desk-a"');
    expect(item('desk-a')).toContain('>Start and open</button>');
    expect(item('desk-plain')).not.toContain('Start and open');
    expect(item('desk-plain')).toContain('Stopped');
    // Running with AutoStopMinutes and IdleSince: when it stops.
    expect(item('desk-up')).toContain('Stops at 10:15 UTC if nobody connects');
  });

  it('without the start port (serve --sessions) there is no button, and /portal/start is a 404', async () => {
    const { signIn, send, start } = setup({ withStart: false });
    const { list, cookie, csrf } = await signIn('alice');
    expect(list.body).not.toContain('Start and open');
    const answer = await send('POST', '/portal/start', { cookie, body: `csrf=${csrf}&session=desk-a` });
    expect(answer.statusCode).toBe(404);
    expect(start.starts).toEqual([]);
  });
});

describe('POST /portal/start', () => {
  it('claims PowerStartAt on the anchor, starts the instance once, sets a ticket and sends the browser to the progress page', async () => {
    const { signIn, send, start } = setup();
    const { cookie, csrf } = await signIn('alice');
    const answer = await send('POST', '/portal/start', { cookie, body: `csrf=${csrf}&session=desk-a` });
    expect(answer.statusCode).toBe(303);
    expect(answer.headers.Location).toBe('/portal/starting/desk-a');
    expect(start.starts).toEqual([I1]);
    expect(start.claims.get('desk-a')).toBe(new Date(T0).toISOString());
    expect((answer.cookies ?? []).find((c) => c.startsWith('dcv_portal_start_'))).toMatch(/HttpOnly.*Secure|Secure.*HttpOnly/);
  });

  it('double click and a second tab at once: exactly one StartInstances, all land on the progress page', async () => {
    const { signIn, send, start } = setup();
    const { cookie, csrf } = await signIn('alice');
    const answers = await Promise.all([1, 2, 3].map(() => send('POST', '/portal/start', { cookie, body: `csrf=${csrf}&session=desk-a` })));
    expect(answers.map((a) => a.statusCode)).toEqual([303, 303, 303]);
    expect(start.starts).toEqual([I1]);
    // Later clicks join the claim: still one start.
    await send('POST', '/portal/start', { cookie, body: `csrf=${csrf}&session=desk-a` });
    expect(start.starts).toEqual([I1]);
  });

  it('a user not allowed, a desktop without StartOnConnect, an unknown one: the same 404 as Connect, and no start', async () => {
    const { signIn, send, start } = setup();
    const bob = await signIn('bob');
    const notBob = await send('POST', '/portal/start', { cookie: bob.cookie, body: `csrf=${bob.csrf}&session=desk-a` });
    expect(notBob.statusCode).toBe(404);
    expect(notBob.body).toContain('There is no desktop &#39;desk-a&#39; you can open right now.');
    const bobConnect = await send('POST', '/portal/connect', { cookie: bob.cookie, body: `csrf=${bob.csrf}&session=desk-a&client=web` });
    expect(bobConnect.body).toBe(notBob.body);
    const alice = await signIn('alice');
    const plain = await send('POST', '/portal/start', { cookie: alice.cookie, body: `csrf=${alice.csrf}&session=desk-plain` });
    expect(plain.statusCode).toBe(404);
    expect((await send('POST', '/portal/start', { cookie: alice.cookie, body: `csrf=${alice.csrf}&session=nope` })).statusCode).toBe(404);
    expect(start.starts).toEqual([]);
    expect(start.claims.size).toBe(0);
  });

  it('without the CSRF value (or from another origin): 403, no start', async () => {
    const { signIn, send, start } = setup();
    const { cookie } = await signIn('alice');
    expect((await send('POST', '/portal/start', { cookie, body: 'session=desk-a' })).statusCode).toBe(403);
    expect((await send('POST', '/portal/start', { cookie, body: 'csrf=wrong&session=desk-a' })).statusCode).toBe(403);
    expect(start.starts).toEqual([]);
  });

  it('EC2 refuses (insufficient capacity): a page that says so, and the claim is given back', async () => {
    const { signIn, send, start } = setup();
    start.refuse = 'insufficient-capacity';
    const { cookie, csrf } = await signIn('alice');
    const answer = await send('POST', '/portal/start', { cookie, body: `csrf=${csrf}&session=desk-a` });
    expect(answer.statusCode).toBe(503);
    expect(answer.body).toContain('Desktop not started');
    expect(answer.body).toContain('no capacity');
    expect(start.claims.has('desk-a')).toBe(false);
  });
});

describe('GET /portal/starting/<id>', () => {
  async function started() {
    const env = setup();
    const alice = await env.signIn('alice');
    const post = await env.send('POST', '/portal/start', { cookie: alice.cookie, body: `csrf=${alice.csrf}&session=desk-a` });
    const cookie = `${alice.cookie}; ${startCookie(post)}`;
    const progress = () => env.send('GET', '/portal/starting/desk-a', { cookie });
    return { ...env, alice, cookie, progress };
  }

  it('without a ticket, or with another user’s: back to the list', async () => {
    const { send, signIn, progress, cookie } = await started();
    expect((await progress()).statusCode).toBe(200);
    const alice2 = await signIn('alice');
    expect((await send('GET', '/portal/starting/desk-a', { cookie: alice2.cookie })).headers.Location).toBe('/portal');
    const bob = await signIn('bob');
    const ticket = cookie.split('; ')[1]!;
    expect((await send('GET', '/portal/starting/desk-a', { cookie: `${bob.cookie}; ${ticket}` })).headers.Location).toBe('/portal');
    expect((await send('GET', '/portal/starting/desk-a')).headers.Location).toBe('/portal');
  });

  it('pending → running (item refreshed by discovery) → waits for DCV without a link → DCV lists the session → 303 to the gateway with a token; the claim is removed', async () => {
    const { progress, start, tokens, store } = await started();
    const pending = await progress();
    expect(pending.statusCode).toBe(200);
    expect(pending.body).toContain('<meta http-equiv="refresh" content="2">');
    expect(pending.body).toContain('Starting the instance (EC2: pending)');
    expect(pending.headers['Content-Security-Policy']).toContain("default-src 'none'");

    start.states.set(I1, 'running');
    const waiting = await progress();
    expect(start.refreshes).toEqual([I1]);
    expect((await store.get('desk-a'))!.InstanceState).toBe('running');
    expect(waiting.statusCode).toBe(200);
    expect(waiting.body).toContain('Instance running, waiting for the DCV server');
    expect(waiting.body).not.toContain(GATEWAY);
    expect(waiting.headers.Location).toBeUndefined();

    start.dcv.set(I1, { ok: true, sessionIds: [] });
    expect((await progress()).body).toContain('DCV lists no session yet');
    start.dcv.set(I1, { ok: true, sessionIds: ['console'] });
    const ready = await progress();
    expect(ready.statusCode).toBe(303);
    const link = new URL(ready.headers.Location!);
    expect(link.origin).toBe(GATEWAY);
    expect(link.hash).toBe('#desk-a');
    const token = link.searchParams.get('authToken')!;
    const stored = await tokens.get(hashToken(token));
    expect(stored).toMatchObject({ sessionId: 'desk-a', user: 'alice@example.com' });
    expect(start.claims.has('desk-a')).toBe(false);
    expect(start.starts).toEqual([I1]);
    // The ticket is cleared: the page does not mint again.
    expect((ready.cookies ?? []).some((c) => c.startsWith('dcv_portal_start_') && /Max-Age=0/i.test(c))).toBe(true);
  });

  it('stopping when clicked: claimed only; once stopped (and the claim is past its in-flight window) the page starts it, once', async () => {
    const env = setup();
    env.start.states.set(I1, 'stopping');
    const alice = await env.signIn('alice');
    const post = await env.send('POST', '/portal/start', { cookie: alice.cookie, body: `csrf=${alice.csrf}&session=desk-a` });
    expect(post.statusCode).toBe(303);
    expect(env.start.starts).toEqual([]);
    expect(env.start.claims.has('desk-a')).toBe(true);
    const cookie = `${alice.cookie}; ${startCookie(post)}`;
    expect((await env.send('GET', '/portal/starting/desk-a', { cookie })).body).toContain('stopping');
    env.start.states.set(I1, 'stopped');
    env.clock.now += 5_000;
    // Seconds after the claim: its writer may be calling StartInstances now; no second start.
    expect((await env.send('GET', '/portal/starting/desk-a', { cookie })).body).toContain('Starting the instance');
    expect(env.start.starts).toEqual([]);
    env.clock.now += 20_000;
    await Promise.all([1, 2].map(() => env.send('GET', '/portal/starting/desk-a', { cookie })));
    expect(env.start.starts).toEqual([I1]);
    expect(env.start.states.get(I1)).toBe('pending');
  });

  it('after 10 minutes without success: a page saying the desktop did not become ready, with the last reason', async () => {
    const { progress, start, clock } = await started();
    start.states.set(I1, 'running');
    clock.now += 10 * 60_000 + 1000;
    const late = await progress();
    expect(late.statusCode).toBe(504);
    expect(late.body).toContain('did not become ready');
    expect(late.body).toContain('no answer before the deadline');
    expect(late.body).not.toContain(GATEWAY);
  });

  it('access is checked again at every refresh: a user removed from the desktop gets the 404', async () => {
    const { progress, store } = await started();
    store.put({ ...(await store.get('desk-a'))!, AllowedUsers: ['someone@example.com'] });
    expect((await progress()).statusCode).toBe(404);
  });
});

describe('serve --signals-document', () => {
  const PORTAL = ['--oidc-issuer', 'https://login.example.com', '--oidc-client-id', 'dcv-portal', '--gateway', 'https://gw.example.com'];
  it('is taken with --table and the portal; absent by default (the shipped script with AWS-RunShellScript)', () => {
    expect(parseServeArgs(['--table', 'Desks', ...PORTAL, '--signals-document', 'Stack-HostSignals']).signalsDocument).toBe('Stack-HostSignals');
    expect(parseServeArgs(['--table', 'Desks', ...PORTAL])).not.toHaveProperty('signalsDocument');
  });
  it('is refused without --table or without the portal, and when empty (exit status 2)', () => {
    for (const argv of [
      ['--sessions', 'sessions.example.json', '--tokens-dir', '/tmp/t', ...PORTAL, '--signals-document', 'D'],
      ['--table', 'Desks', '--signals-document', 'D'],
      ['--table', 'Desks', ...PORTAL, '--signals-document', ' '],
    ]) {
      expect(() => parseServeArgs(argv), argv.join(' ')).toThrow(CliError);
      try {
        parseServeArgs(argv);
      } catch (error) {
        expect((error as CliError).exitCode).toBe(2);
        expect((error as Error).message).toMatch(/--signals-document/);
      }
    }
  });
});
