import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../../lambda/cli/cli-error';
import { parseServeArgs } from '../../lambda/cli/serve-command';
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

  it('prints where the portal is and the redirect URI to register', async () => {
    const tokens = mkdtempSync(join(tmpdir(), 'serve-portal-'));
    dirs.push(tokens);
    const serve = await startServeProcess(['--sessions', SESSIONS, '--tokens-dir', tokens, ...PORTAL], cliBaseEnv());
    try {
      // Written right after the "serving on" line; it may arrive in the next chunk.
      for (let i = 0; i < 50 && !serve.stderr().includes('redirect URI'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(serve.stderr()).toContain(`portal at ${serve.url}/portal (the identity provider's redirect URI: ${serve.url}/portal/callback)`);
    } finally {
      await serve.stop();
    }
  });
});
