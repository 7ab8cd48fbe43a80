import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, offLoopback, openContext, signInAtTestIdp } from '../helpers/browser';
import { createDiscoveryTable } from '../helpers/discovery-table';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { FakeFleet, fleetInstance, instanceIdOf } from '../helpers/ec2-fleet';
import { Ec2PowerModel } from '../helpers/ec2-power';
import { startEc2QueryServer, type Ec2QueryServer } from '../helpers/ec2-query-server';
import { dcvSessions, writeFakeDcvHost, type FakeDcvHostFiles } from '../helpers/fake-dcv-host';
import { startOidcProvider, type TestOidcProvider } from '../helpers/oidc-provider';
import { cliBaseEnv, runCli } from '../helpers/run-cli';
import { startSsmServer, type SsmServer } from '../helpers/ssm-server';
import { makeTestCerts, type TestCerts } from '../helpers/test-certs';
import { createTokensTable } from '../helpers/token-tables';
import { httpSend, parseAuthXml, startServeProcess, verifyForm, type ServeProcess } from '../helpers/verify-http';

/**
 * Start and open end to end: `dcv-resolver serve --table` as a child process with the portal, configured
 * only through the standard SDK endpoint variables, against dynalite (sessions and tokens), a loopback EC2
 * with real state transitions (held `pending` until the test completes the start), a loopback SSM running
 * the shipped host script under /bin/sh against the host's fake `dcv`, a real OpenID provider, and an
 * https stub for the gateway that records the link the browser lands on. Debian's chromium clicks.
 */
const TABLE = 'portal-start';
const COOKIE_KEY = 'portal-start-cookie-key-0123456789abcdef';
const id = {
  alice: instanceIdOf(1),
  plain: instanceIdOf(2),
  bob: instanceIdOf(3),
  twoTabs: instanceIdOf(4),
  noCapacity: instanceIdOf(5),
};

let browser: Browser;
let idp: TestOidcProvider;
let dynamo: LocalDynamo;
let ec2: Ec2QueryServer;
let ssm: SsmServer;
let serve: ServeProcess;
let certs: TestCerts;
let root: string;
let portal: string;
let gatewayOrigin: string;
let aliceHost: FakeDcvHostFiles;
let alice: { context: BrowserContext; page: Page };
const fleet = new FakeFleet();
// Starts stay `pending` until the test says the host has booted (complete()).
const power = new Ec2PowerModel(fleet, { pendingMs: Infinity });
const gatewayHits: { path: string; authToken: string | null; at: number }[] = [];
const closers: (() => Promise<unknown> | unknown)[] = [];

const startsOf = (instanceId: string) => power.calls.filter((c) => c.action === 'StartInstances' && c.instanceIds.includes(instanceId)).length;

function awsEnv(): Record<string, string> {
  return {
    ...cliBaseEnv(),
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
    AWS_ENDPOINT_URL_SSM: ssm.endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_MAX_ATTEMPTS: '1',
  };
}

async function item(sessionId: string): Promise<Record<string, string | boolean | undefined>> {
  const { Item } = await dynamo.client().send(new GetItemCommand({ TableName: TABLE, Key: { SessionId: { S: sessionId } }, ConsistentRead: true }));
  return Object.fromEntries(Object.entries(Item ?? {}).map(([k, v]) => [k, v.S ?? v.N ?? v.BOOL]));
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'portal-start-'));
  [browser, idp, dynamo, ssm] = await Promise.all([launchChromium(), startOidcProvider({ claims: 'userinfo' }), startDynalite(), startSsmServer()]);
  ec2 = await startEc2QueryServer(fleet, power);
  await createDiscoveryTable(dynamo.client(), TABLE);
  await createTokensTable(dynamo, `${TABLE}-tokens`);
  const put = (n: number, tags: Record<string, string>) => fleet.put(fleetInstance(n, { state: 'stopped', tags }));
  put(1, { 'dcv:session-id': 'alice-desk=console', 'dcv:start-on-connect': 'true', 'dcv:allowed-users': 'alice@example.com' });
  // Auto-stop keeps its item while stopped, but nobody may start it from the portal.
  put(2, { 'dcv:session-id': 'alice-plain', 'dcv:auto-stop': '30', 'dcv:allowed-users': 'alice@example.com' });
  put(3, { 'dcv:session-id': 'bob-desk', 'dcv:start-on-connect': 'true', 'dcv:allowed-users': 'bob@example.com' });
  put(4, { 'dcv:session-id': 'alice-second', 'dcv:start-on-connect': 'true', 'dcv:allowed-users': 'alice@example.com' });
  put(5, { 'dcv:session-id': 'alice-gpu', 'dcv:start-on-connect': 'true', 'dcv:allowed-users': 'alice@example.com' });
  power.insufficientCapacity.add(id.noCapacity);
  // Alice's host: DCV runs but lists no session yet (the console session is created later in the boot).
  aliceHost = writeFakeDcvHost(join(root, 'alice'), dcvSessions([]));
  ssm.ssm.hosts.set(id.alice, { binDir: aliceHost.bin });
  ssm.ssm.hosts.set(id.twoTabs, { binDir: writeFakeDcvHost(join(root, 'second'), dcvSessions([])).bin });

  const discovered = await runCli(['discover', '--table', TABLE], awsEnv());
  expect(discovered.code, discovered.stderr).toBe(0);
  expect(await item('alice-desk')).toMatchObject({ InstanceState: 'stopped', StartOnConnect: true, InstanceId: id.alice });

  certs = makeTestCerts();
  const gateway: Server = createHttpsServer({ cert: readFileSync(certs.files.serverCert), key: readFileSync(certs.files.serverKey) }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    gatewayHits.push({ path: url.pathname, authToken: url.searchParams.get('authToken'), at: Date.now() });
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>Gateway stub</title><h1>Gateway stub</h1>');
  });
  await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', () => resolve()));
  closers.push(() => new Promise((resolve) => gateway.close(resolve)));
  gatewayOrigin = `https://127.0.0.1:${(gateway.address() as AddressInfo).port}`;

  serve = await startServeProcess(
    ['--table', TABLE, '--oidc-issuer', idp.issuer, '--oidc-client-id', idp.clientId, '--gateway', gatewayOrigin],
    { ...awsEnv(), DCV_PORTAL_COOKIE_KEY: COOKIE_KEY },
  );
  closers.push(() => serve.stop());
  portal = `${serve.url}/portal`;
  await idp.setRedirectUris([`${portal}/callback`]);
  alice = await openContext(browser);
  closers.push(() => alice.context.close());
}, 90_000);

afterAll(async () => {
  await Promise.allSettled(closers.splice(0).reverse().map((close) => close()));
  await Promise.allSettled([browser?.close(), idp?.close(), ssm?.close(), ec2?.close(), dynamo?.stop()]);
  certs?.remove();
  if (root) rmSync(root, { recursive: true, force: true });
  expect(offLoopback).toEqual([]);
});

async function signIn(page: Page, user: string): Promise<void> {
  await page.goto(portal);
  await page.getByRole('link', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.href.startsWith(idp.issuer));
  await signInAtTestIdp(page, user);
  await page.waitForURL(portal);
}

const stateOf = (page: Page, sessionId: string) => page.locator('li', { has: page.getByRole('heading', { name: sessionId, exact: true }) }).locator('.state').textContent();

/** A form POST from inside the signed-in browser context (its cookies), as a crafted page would send it. */
async function post(page: Page, path: string, form: Record<string, string>): Promise<number> {
  const answer = await page.request.post(`${serve.url}${path}`, { form, maxRedirects: 0, headers: { origin: serve.url } });
  return answer.status();
}

describe('Start and open in chromium against serve --table (dynalite, loopback EC2 and SSM)', () => {
  it('Alice starts her stopped desktop: starting, then waiting for DCV with no link, then the gateway link once DCV lists the session', async () => {
    const { page } = alice;
    // Every gateway link the portal answers this browser with, whether or not it is followed.
    const links: string[] = [];
    page.on('response', (response) => {
      const location = response.headers()['location'];
      if (location?.startsWith(gatewayOrigin)) links.push(location);
    });
    await signIn(page, 'alice');
    expect(await page.locator('main li h2').allTextContents()).toEqual(['alice-desk', 'alice-gpu', 'alice-plain', 'alice-second']);
    await expect(stateOf(page, 'alice-desk')).resolves.toBe('Stopped');
    await expect(page.getByRole('button', { name: 'Start and open alice-desk' }).count()).resolves.toBe(1);
    // No StartOnConnect: Stopped, no Start button.
    await expect(page.getByRole('button', { name: 'Start and open alice-plain' }).count()).resolves.toBe(0);

    await page.getByRole('button', { name: 'Start and open alice-desk' }).click();
    await page.waitForURL(`${portal}/starting/alice-desk`);
    await expect(page.getByRole('status').textContent()).resolves.toContain('Starting the instance');
    expect(startsOf(id.alice)).toBe(1);
    expect(power.state(id.alice)).toBe('pending');
    expect((await item('alice-desk')).PowerStartAt).toMatch(/^\d{4}-\d\d-\d\dT/);

    // The host boots: running, but DCV has no session yet.
    power.complete(id.alice);
    // A locator, not waitForFunction: the page's CSP allows no script, not even the test's.
    await page.locator('[role=status]', { hasText: 'waiting for the DCV server' }).waitFor({ timeout: 20_000 });
    // The page called discovery for the instance: the item resolves (running) without any EventBridge.
    expect(await item('alice-desk')).toMatchObject({ InstanceState: 'running' });
    await expect(page.getByRole('status').textContent()).resolves.toContain('DCV lists no session yet');
    // Several refreshes later: still no link, and the gateway never saw the browser.
    await page.waitForTimeout(4_500);
    expect(new URL(page.url()).pathname).toBe('/portal/starting/alice-desk');
    expect(gatewayHits).toEqual([]);
    expect(links).toEqual([]);
    expect(serve.stdout()).not.toContain('"portal connect"');

    // DCV creates the console session: the next refresh hands out the link.
    const created = new Date().toISOString().replace(/\.\d{3}Z$/, '.123456Z');
    aliceHost.update(dcvSessions([['console', 0, created, '']]));
    const reported = Date.now();
    await page.waitForURL((url) => url.origin === gatewayOrigin, { timeout: 20_000 });
    const hit = gatewayHits.at(-1)!;
    const elapsed = hit.at - reported;
    console.log(`Start and open: fake DCV reported the session → browser at the gateway link in ${elapsed} ms (target < 5000 ms)`);
    expect(elapsed).toBeLessThan(5_000);
    const landed = new URL(page.url());
    expect(landed.hash).toBe('#alice-desk');
    const token = landed.searchParams.get('authToken')!;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(hit).toMatchObject({ path: '/', authToken: token });
    expect(links).toHaveLength(1);
    // The token is a real one: the DCV server's verifier call through serve accepts it for Alice.
    const verdict = await httpSend(serve.url, `/verifyToken/${(await item('alice-desk')).DcvServerEndpoint}`, {
      body: verifyForm({ sessionId: 'console', authenticationToken: token, clientAddress: '203.0.113.9' }),
    });
    expect(parseAuthXml(verdict.body)).toEqual({ result: 'yes', username: 'alice@example.com' });
    // Usable: the claim has served and is gone; still exactly one StartInstances.
    expect((await item('alice-desk')).PowerStartAt).toBeUndefined();
    expect(startsOf(id.alice)).toBe(1);
  }, 120_000);

  it('a double click and a second tab on another stopped desktop: exactly one StartInstances', async () => {
    const { context, page } = alice;
    const second = await context.newPage();
    try {
      await Promise.all([page.goto(portal), second.goto(portal)]);
      const button = (p: Page) => p.getByRole('button', { name: 'Start and open alice-second' });
      await Promise.all([button(page).dblclick({ noWaitAfter: true }), button(second).click({ noWaitAfter: true })]);
      await Promise.all([page.waitForURL(`${portal}/starting/alice-second`), second.waitForURL(`${portal}/starting/alice-second`)]);
      // Both tabs keep refreshing; none starts it again.
      await page.waitForTimeout(3_000);
      expect(startsOf(id.twoTabs)).toBe(1);
      await expect(second.getByRole('status').textContent()).resolves.toContain('Starting the instance');
      await page.goto(portal);
      await expect(stateOf(page, 'alice-second')).resolves.toBe('Starting');
    } finally {
      await second.close();
    }
  }, 60_000);

  it('EC2 has no capacity: the page says so plainly, and the claim is given back', async () => {
    const { page } = alice;
    await page.goto(portal);
    await page.getByRole('button', { name: 'Start and open alice-gpu' }).click();
    await page.getByRole('heading', { name: 'Desktop not started' }).waitFor();
    await expect(page.getByRole('alert').textContent()).resolves.toContain('AWS has no capacity for this desktop’s instance type in its zone right now');
    // EC2 answers this refusal with HTTP 500, which the SDK retries (the power client's maxAttempts 3): one
    // click's request, up to three calls, all before the page answered; nothing after.
    const calls = startsOf(id.noCapacity);
    expect(calls).toBeGreaterThanOrEqual(1);
    expect(calls).toBeLessThanOrEqual(3);
    await page.waitForTimeout(2_500);
    expect(startsOf(id.noCapacity)).toBe(calls);
    expect(power.state(id.noCapacity)).toBe('stopped');
    expect((await item('alice-gpu')).PowerStartAt).toBeUndefined();
  }, 60_000);

  it('a desktop Alice is not allowed on, one without StartOnConnect, no CSRF value: 404, 404, 403, and nothing is started', async () => {
    const { page } = alice;
    await page.goto(portal);
    const csrf = await page.locator('input[name=csrf]').first().getAttribute('value');
    const before = power.calls.length;
    expect(await post(page, '/portal/start', { csrf: csrf!, session: 'bob-desk' })).toBe(404);
    expect(await post(page, '/portal/start', { csrf: csrf!, session: 'alice-plain' })).toBe(404);
    expect(await post(page, '/portal/start', { session: 'alice-desk' })).toBe(403);
    expect(await post(page, '/portal/start', { csrf: 'x'.repeat(43), session: 'alice-second' })).toBe(403);
    expect(power.calls.length).toBe(before);
    expect(startsOf(id.bob)).toBe(0);
    expect(startsOf(id.plain)).toBe(0);
    expect((await item('bob-desk')).PowerStartAt).toBeUndefined();
    // The progress page without a ticket for that desktop: back to the list.
    await page.goto(`${portal}/starting/bob-desk`);
    expect(page.url()).toBe(portal);
  }, 60_000);
});
