import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { startSecretsManager } from '../helpers/secrets-manager';
import { cachedPortalSecret, loadPortalSecret, parsePortalSecret, PortalSecretError } from '../../lambda/adapters/portal-secret';

const KEY = 'k'.repeat(64);
const ID = 'DcvSessionResolver-dcv-portal-keys';

describe('parsePortalSecret', () => {
  it('accepts the cookie key alone (oidc) and with the client id (cognito)', () => {
    expect(parsePortalSecret(JSON.stringify({ cookieKey: KEY }), ID)).toEqual({ cookieKey: KEY });
    expect(parsePortalSecret(JSON.stringify({ cookieKey: KEY, clientId: '3n4b5c' }), ID)).toEqual({ cookieKey: KEY, clientId: '3n4b5c' });
    // Exactly the minimum is enough.
    expect(parsePortalSecret(JSON.stringify({ cookieKey: 'x'.repeat(32) }), ID).cookieKey).toHaveLength(32);
  });

  it.each<[string, string, RegExp]>([
    ['not JSON', 'cookieKey=abc', /portal secret 'DcvSessionResolver-dcv-portal-keys' is not JSON/],
    ['an array', '[1]', /must be a JSON object/],
    ['null', 'null', /must be a JSON object/],
    ['no cookieKey', '{"clientId":"c"}', /cookieKey must be a string of at least 32 characters \(it is missing\)/],
    ['a short cookieKey', JSON.stringify({ cookieKey: 'x'.repeat(31) }), /cookieKey must be a string of at least 32 characters \(it has 31\)/],
    ['a numeric cookieKey', '{"cookieKey":12345}', /cookieKey must be .* \(it is a number\)/],
    ['an empty clientId', JSON.stringify({ cookieKey: KEY, clientId: ' ' }), /clientId must be a non-empty string when present/],
    ['a numeric clientId', JSON.stringify({ cookieKey: KEY, clientId: 7 }), /clientId must be a non-empty string/],
  ])('refuses %s with a PortalSecretError naming the secret and field', (_name, text, message) => {
    expect(() => parsePortalSecret(text, ID)).toThrow(PortalSecretError);
    expect(() => parsePortalSecret(text, ID)).toThrow(message);
  });

  it('never puts the key material in the message', () => {
    const shortKey = 'S3CRET-short-key';
    for (const text of [JSON.stringify({ cookieKey: shortKey }), `{"cookieKey":"${shortKey}"`]) {
      try {
        parsePortalSecret(text, ID);
        expect.unreachable();
      } catch (error) {
        expect((error as Error).message).not.toContain(shortKey);
      }
    }
  });
});

describe('loadPortalSecret (Secrets Manager through aws-sdk-client-mock)', () => {
  const sm = mockClient(SecretsManagerClient);
  afterEach(() => sm.reset());
  // The stub is on the class's prototype: every client, in every later test of this file, until restored.
  afterAll(() => sm.restore());

  it('reads the secret by the name it is given and validates it', async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ cookieKey: KEY, clientId: 'abc' }) });
    await expect(loadPortalSecret(ID)).resolves.toEqual({ cookieKey: KEY, clientId: 'abc' });
    expect(sm.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input)).toEqual([{ SecretId: ID }]);
  });

  it('turns a service error into a PortalSecretError naming the secret and the AWS error', async () => {
    sm.on(GetSecretValueCommand).rejects(Object.assign(new Error("User is not authorized to perform: secretsmanager:GetSecretValue"), { name: 'AccessDeniedException' }));
    const read = loadPortalSecret(ID);
    await expect(read).rejects.toThrow(PortalSecretError);
    await expect(loadPortalSecret(ID)).rejects.toThrow(/portal secret 'DcvSessionResolver-dcv-portal-keys' could not be read: AccessDeniedException: User is not authorized/);
  });

  it('refuses a binary secret and a malformed one', async () => {
    sm.on(GetSecretValueCommand).resolvesOnce({ SecretBinary: new Uint8Array([1, 2]) }).resolvesOnce({ SecretString: '{"cookieKey":"short"}' });
    await expect(loadPortalSecret(ID)).rejects.toThrow(/has no SecretString \(a binary secret is not supported\)/);
    await expect(loadPortalSecret(ID)).rejects.toThrow(/cookieKey must be a string of at least 32 characters \(it has 5\)/);
  });
});

describe('loadPortalSecret with a given client (two loopback Secrets Managers)', () => {
  it('reads through the client it is given, not one of its own', async () => {
    // The client loadPortalSecret would make itself goes to `other` (the endpoint variable), which holds
    // another key; only the given client reaches `given`: ignoring it reads the wrong secret.
    const [given, other] = await Promise.all([startSecretsManager(), startSecretsManager()]);
    given.secrets.set(ID, JSON.stringify({ cookieKey: KEY }));
    other.secrets.set(ID, JSON.stringify({ cookieKey: 'o'.repeat(40) }));
    vi.stubEnv('AWS_ENDPOINT_URL_SECRETS_MANAGER', other.endpoint);
    const client = new SecretsManagerClient({ endpoint: given.endpoint, maxAttempts: 1 });
    try {
      await expect(loadPortalSecret(ID, client)).resolves.toEqual({ cookieKey: KEY });
      expect([given.calls(), other.calls()]).toEqual([1, 0]);
    } finally {
      vi.unstubAllEnvs();
      client.destroy();
      await Promise.all([given.close(), other.close()]);
    }
  });
});

describe('cachedPortalSecret', () => {
  it('reads once for many callers, and reads again after a failure', async () => {
    const load = vi
      .fn<(id: string) => Promise<{ cookieKey: string }>>()
      .mockRejectedValueOnce(new PortalSecretError('throttled'))
      .mockResolvedValue({ cookieKey: KEY });
    const secret = cachedPortalSecret(ID, load);
    await expect(secret()).rejects.toThrow('throttled');
    const [a, b] = await Promise.all([secret(), secret()]);
    expect(a).toEqual({ cookieKey: KEY });
    expect(b).toBe(a);
    await secret();
    expect(load).toHaveBeenCalledTimes(2);
    expect(load).toHaveBeenCalledWith(ID);
  });
});
