import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../../lambda/cli/cli-error';
import { parseServeArgs } from '../../lambda/cli/serve-command';
import { parseIp } from '../../lambda/core/ip';
import { cliBaseEnv, REPO_ROOT, runCli, startServeProcess } from '../helpers/run-cli';

/** `serve`'s portal options: all or none, a token store, valid URLs; refusals are exit status 2 with one clear line. */
const SESSIONS = join(REPO_ROOT, 'sessions.example.json');
const PORTAL = ['--oidc-issuer', 'https://login.example.com/tenant/v2.0', '--oidc-client-id', 'dcv-portal', '--gateway', 'https://gw.example.com:8443'];
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function refusal(argv: string[]): string {
  try {
    parseServeArgs(argv);
  } catch (error) {
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(2);
    return (error as Error).message;
  }
  throw new Error(`accepted: ${argv.join(' ')}`);
}

describe('serve: portal options', () => {
  it('takes the three together, with a token store', () => {
    const options = parseServeArgs(['--sessions', SESSIONS, '--tokens-dir', '/tmp/t', ...PORTAL, '--oidc-groups-claim', 'roles', '--oidc-scopes', 'openid email groups']);
    expect(options.portal).toEqual({
      issuer: 'https://login.example.com/tenant/v2.0',
      clientId: 'dcv-portal',
      gatewayUrl: 'https://gw.example.com:8443',
      groupsClaim: 'roles',
      scopes: 'openid email groups',
      publicUrl: undefined,
    });
    expect(parseServeArgs(['--sessions', SESSIONS]).portal).toBeUndefined();
  });

  it('--oidc-user-claims: comma-separated and repeatable, in order; absent by default', () => {
    const base = ['--sessions', SESSIONS, '--tokens-dir', '/tmp/t', ...PORTAL];
    expect(parseServeArgs([...base, '--oidc-user-claims', 'upn, oid', '--oidc-user-claims', 'employee_id']).portal?.userClaims).toEqual(['upn', 'oid', 'employee_id']);
    expect(parseServeArgs(base).portal).not.toHaveProperty('userClaims');
  });

  it('with --table, tokens default to NAME-tokens (as token create does); an explicit store wins', () => {
    expect(parseServeArgs(['--table', 'Desks', ...PORTAL]).tokensTable).toBe('Desks-tokens');
    expect(parseServeArgs(['--table', 'Desks', '--tokens-table', 'T', ...PORTAL]).tokensTable).toBe('T');
    expect(parseServeArgs(['--table', 'Desks', '--tokens-dir', '/tmp/t', ...PORTAL]).tokensTable).toBeUndefined();
    // Without the portal nothing changes: no verifier unless asked for.
    expect(parseServeArgs(['--table', 'Desks']).tokensTable).toBeUndefined();
  });

  it.each([
    ['one of the three missing', ['--sessions', SESSIONS, '--tokens-dir', '/tmp/t', ...PORTAL.slice(0, 4)], /needs all three of --oidc-issuer URL, --oidc-client-id ID and --gateway URL/],
    ['no token store', ['--sessions', SESSIONS, ...PORTAL], /give --tokens-dir DIR or --tokens-table NAME too/],
    ['a portal option alone', ['--sessions', SESSIONS, '--portal-url', 'https://p.example.com'], /--portal-url is a portal option/],
    ['an http gateway', ['--sessions', SESSIONS, '--tokens-dir', '/tmp/t', ...PORTAL.slice(0, 5), 'http://gw.example.com'], /--gateway: gateway URL must start with https:\/\//],
    ['a user claim alone', ['--sessions', SESSIONS, '--oidc-user-claims', 'upn'], /--oidc-user-claims is a portal option/],
    ['the groups claim as a user claim', ['--sessions', SESSIONS, '--tokens-dir', '/tmp/t', ...PORTAL, '--oidc-groups-claim', 'roles', '--oidc-user-claims', 'upn,roles'], /--oidc-user-claims 'roles' is the groups claim/],
    ['a user claim about the token', ['--sessions', SESSIONS, '--tokens-dir', '/tmp/t', ...PORTAL, '--oidc-user-claims', 'aud'], /--oidc-user-claims 'aud' describes the token/],
    ['--portal-allow-source without the portal', ['--sessions', SESSIONS, '--portal-allow-source', '192.0.2.0/24'], /--portal-allow-source is a portal option/],
    ['a portal CIDR that is not one', ['--sessions', SESSIONS, '--tokens-dir', '/tmp/t', ...PORTAL, '--portal-allow-source', '192.0.2.0/33'], /--portal-allow-source: /],
    ["the path prefix 'portal' (it would hide the gateway's routes behind the portal's)", ['--sessions', SESSIONS, '--tokens-dir', '/tmp/t', ...PORTAL, '--path-prefix', 'portal'], /--path-prefix cannot be 'portal' with the portal on/],
    ['an issuer that is not a URL', ['--sessions', SESSIONS, '--tokens-dir', '/tmp/t', '--oidc-issuer', 'login', ...PORTAL.slice(2)], /--oidc-issuer must be a URL/],
  ])('refuses %s', (_name, argv, message) => {
    expect(refusal(argv as string[])).toMatch(message);
  });

  it('a plain-http issuer off this machine is refused at start with exit status 2, before anything listens', async () => {
    const tokens = mkdtempSync(join(tmpdir(), 'serve-portal-'));
    dirs.push(tokens);
    const run = await runCli(['serve', '--sessions', SESSIONS, '--tokens-dir', tokens, '--port', '0', ...PORTAL.slice(2), '--oidc-issuer', 'http://login.example.com']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("OIDC issuer must be an https:// URL, not 'http://login.example.com'");
    expect(run.stderr).not.toContain('serving on');
  });

  it('--portal-allow-source is repeatable and comma-separated; --allow-source stays the gateway list', () => {
    const options = parseServeArgs([
      '--sessions', SESSIONS, '--tokens-dir', '/tmp/t', ...PORTAL,
      '--allow-source', '198.51.100.0/24', '--portal-allow-source', '192.0.2.0/24,2001:db8::/48', '--portal-allow-source', '203.0.113.7',
    ]);
    const has = (set: typeof options.portalAllowSources, ip: string) => set!.contains(parseIp(ip)!);
    expect(['192.0.2.9', '2001:db8::1', '203.0.113.7'].map((ip) => has(options.portalAllowSources, ip))).toEqual([true, true, true]);
    expect(has(options.portalAllowSources, '198.51.100.1')).toBe(false);
    expect(has(options.allowSources, '192.0.2.9')).toBe(false);
    expect(parseServeArgs(['--sessions', SESSIONS, '--tokens-dir', '/tmp/t', ...PORTAL]).portalAllowSources).toBeUndefined();
  });

  it('prints where the portal is and the redirect URI to register: never under the path prefix', async () => {
    const tokens = mkdtempSync(join(tmpdir(), 'serve-portal-'));
    dirs.push(tokens);
    const serve = await startServeProcess(['--sessions', SESSIONS, '--tokens-dir', tokens, ...PORTAL, '--path-prefix', 's3cret'], cliBaseEnv());
    try {
      // Written right after the "serving on" line; it may arrive in the next chunk.
      for (let i = 0; i < 50 && !serve.stderr().includes('redirect URI'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(serve.stderr()).toContain(`portal at ${serve.url}/portal (the identity provider's redirect URI: ${serve.url}/portal/callback)`);
    } finally {
      await serve.stop();
    }
  });
});

describe("serve: the portal's callers apart from the gateway's (real HTTP on loopback)", () => {
  const ask = async (url: string, method = 'GET', body?: string) => {
    const answer = await fetch(url, { method, redirect: 'manual', body, headers: method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded' } : {} });
    return { status: answer.status, body: await answer.text() };
  };

  it('a caller outside --allow-source gets 403 from /resolveSession and /verifyToken (under the prefix or not) while the portal answers it', async () => {
    const tokens = mkdtempSync(join(tmpdir(), 'serve-portal-'));
    dirs.push(tokens);
    // 127.0.0.1 (this test) is outside the gateway's list; the portal has none (anyone).
    const serve = await startServeProcess(['--sessions', SESSIONS, '--tokens-dir', tokens, ...PORTAL, '--allow-source', '192.0.2.0/24', '--path-prefix', 's3cret'], cliBaseEnv());
    try {
      expect((await ask(`${serve.url}/s3cret/resolveSession?sessionId=console&transport=HTTP`, 'POST')).status).toBe(403);
      expect((await ask(`${serve.url}/resolveSession?sessionId=console&transport=HTTP`, 'POST')).status).toBe(403);
      expect((await ask(`${serve.url}/s3cret/verifyToken/10.150.248.180`, 'POST', 'sessionId=console&authenticationToken=nope')).status).toBe(403);
      expect((await ask(`${serve.url}/s3cret/portal`)).status).toBe(403);
      const portal = await ask(`${serve.url}/portal`);
      expect(portal.status).toBe(200);
      expect(portal.body).toContain('href="/portal/login"');
    } finally {
      await serve.stop();
    }
  });

  it('--portal-allow-source refuses browsers outside it with 403 while the gateway inside --allow-source is answered', async () => {
    const tokens = mkdtempSync(join(tmpdir(), 'serve-portal-'));
    dirs.push(tokens);
    const serve = await startServeProcess(
      ['--sessions', SESSIONS, '--tokens-dir', tokens, ...PORTAL, '--allow-source', '127.0.0.1/32', '--portal-allow-source', '192.0.2.0/24', '--path-prefix', 's3cret'],
      cliBaseEnv(),
    );
    try {
      expect((await ask(`${serve.url}/portal`)).status).toBe(403);
      expect((await ask(`${serve.url}/portal/login`)).status).toBe(403);
      const resolved = await ask(`${serve.url}/s3cret/resolveSession?sessionId=console&transport=HTTP`, 'POST');
      expect(resolved.status).toBe(200);
      expect(JSON.parse(resolved.body)).toMatchObject({ DcvServerEndpoint: '10.150.248.180' });
      const verdict = await ask(`${serve.url}/s3cret/verifyToken/10.150.248.180`, 'POST', 'sessionId=console&authenticationToken=nope');
      expect(verdict.status).toBe(200);
      expect(verdict.body).toContain('result="no"');
    } finally {
      await serve.stop();
    }
  });
});
