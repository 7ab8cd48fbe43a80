import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, offLoopback, signInAtTestIdp, withContext } from '../helpers/browser';
import { startOidcProvider, type TestOidcProvider } from '../helpers/oidc-provider';

/**
 * The portal in a real browser: Debian's chromium (playwright-core) against `serve` as a child process and
 * a real OpenID provider (oidc-provider) on loopback. One browser for the file, a fresh context per person.
 */
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));

let browser: Browser;
let idp: TestOidcProvider;
const closers: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  [browser, idp] = await Promise.all([launchChromium(), startOidcProvider()]);
});

afterAll(async () => {
  await Promise.allSettled(closers.splice(0).reverse().map((close) => close()));
  await Promise.allSettled([browser?.close(), idp?.close()]);
  // Whatever happened, nothing in the browser tried to leave the machine.
  expect(offLoopback).toEqual([]);
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('the test identity provider (the fixture the portal tests rely on)', () => {
  /** A relying party by hand: the authorization request, the browser sign-in, the code exchange. */
  async function signIn(user: string, options: { pkce?: boolean } = {}): Promise<{ landed: URL; claims?: Record<string, unknown> }> {
    const relyingParty = createServer((_req, res) => res.end('relying party'));
    const redirectUri = `http://${await listen(relyingParty)}/cb`;
    await idp.setRedirectUris([redirectUri]);
    const verifier = randomBytes(32).toString('base64url');
    const auth = new URL(`${idp.issuer}/auth`);
    auth.search = new URLSearchParams({
      client_id: idp.clientId,
      redirect_uri: redirectUri,
      response_type: 'code',
      scope: 'openid email profile groups',
      state: 'state-1',
      nonce: 'nonce-1',
      ...(options.pkce === false ? {} : { code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' }),
    }).toString();
    const landed = await withContext(browser, async (_context, page) => {
      await page.goto(auth.href);
      if (options.pkce !== false) await signInAtTestIdp(page, user);
      await page.waitForURL((url) => url.href.startsWith(redirectUri));
      return new URL(page.url());
    });
    const code = landed.searchParams.get('code');
    if (code === null) return { landed };
    const exchange = () =>
      fetch(`${idp.issuer}/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: idp.clientId, code_verifier: verifier }),
      });
    const first = await exchange();
    expect(first.status).toBe(200);
    const { id_token: idToken } = (await first.json()) as { id_token: string };
    // A code is good once.
    expect((await exchange()).status).toBe(400);
    return { landed, claims: JSON.parse(Buffer.from(idToken.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown> };
  }

  it('signs a named person in with PKCE; the ID token carries email, preferred_username and groups; no PKCE is refused', async () => {
    const alice = await signIn('alice');
    expect(alice.landed.searchParams.get('state')).toBe('state-1');
    expect(alice.claims).toMatchObject({ iss: idp.issuer, aud: idp.clientId, sub: 'alice', email: 'alice@example.com', preferred_username: 'alice', groups: ['engineers'], nonce: 'nonce-1' });
    const carol = await signIn('carol');
    expect(carol.claims).toMatchObject({ sub: 'carol', preferred_username: 'carol' });
    expect(carol.claims).not.toHaveProperty('groups');
    expect(carol.claims).not.toHaveProperty('email');
    const noPkce = await signIn('alice', { pkce: false });
    expect(noPkce.landed.searchParams.get('error')).toBe('invalid_request');
    expect(noPkce.landed.searchParams.get('error_description')).toMatch(/requires PKCE/);
  });
});
