import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { callSignal, OutOfTimeError } from '../core/deadline.js';
import { boundedHttpHandler } from './sdk-http-handler.js';

/**
 * The portal's secret (PORTAL_SECRET_ID, made by lib/resolver-portal.ts):
 * `{"cookieKey": "<≥32 chars>", "clientId"?: "<Cognito app client id>"}`.
 */
export interface PortalSecret {
  /** HMAC-SHA256 key of the portal's cookies. */
  readonly cookieKey: string;
  /** The OpenID client id, in `cognito` mode (the stack cannot put it in the environment). */
  readonly clientId?: string;
}

export const MIN_COOKIE_KEY_LENGTH = 32;

/** The secret is missing, unreadable or malformed. Messages name the secret and the field, never a value. */
export class PortalSecretError extends Error {
  override readonly name = 'PortalSecretError';
}

/** Validates the secret's JSON text. Never echoes the text: it is key material. */
export function parsePortalSecret(text: string, secretId: string): PortalSecret {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new PortalSecretError(`portal secret '${secretId}' is not JSON (expected {"cookieKey": "…"})`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new PortalSecretError(`portal secret '${secretId}' must be a JSON object (expected {"cookieKey": "…"})`);
  }
  const { cookieKey, clientId } = value as Record<string, unknown>;
  if (typeof cookieKey !== 'string' || cookieKey.length < MIN_COOKIE_KEY_LENGTH) {
    throw new PortalSecretError(
      `portal secret '${secretId}': cookieKey must be a string of at least ${MIN_COOKIE_KEY_LENGTH} characters` +
        (typeof cookieKey === 'string' ? ` (it has ${cookieKey.length})` : cookieKey === undefined ? ' (it is missing)' : ` (it is a ${typeof cookieKey})`),
    );
  }
  if (clientId !== undefined && (typeof clientId !== 'string' || clientId.trim() === '')) {
    throw new PortalSecretError(`portal secret '${secretId}': clientId must be a non-empty string when present`);
  }
  return clientId === undefined ? { cookieKey } : { cookieKey, clientId };
}

/** How a slow read is named in OutOfTimeError and the log. */
export const SECRET_READ_CALL = 'Secrets Manager GetSecretValue';

/**
 * Reads and validates the portal secret. The SDK client is imported here, on the first portal request,
 * so the resolve path's cold start never loads it. With `deadline` (epoch ms), the read (both attempts)
 * is abandoned when it passes: OutOfTimeError, not a PortalSecretError.
 */
export async function loadPortalSecret(secretId: string, client?: SecretsManagerClient, options: { deadline?: number } = {}): Promise<PortalSecret> {
  const sdk = await import('@aws-sdk/client-secrets-manager');
  const sm =
    client ??
    new sdk.SecretsManagerClient({
      // Well inside the resolver's 5 s timeout, so a slow read ends as a clear error, not a Lambda timeout.
      requestHandler: boundedHttpHandler({ connectionTimeoutMs: 1000, requestTimeoutMs: 2000 }),
      maxAttempts: 2,
    });
  let answer;
  let budget: ReturnType<typeof callSignal> | undefined;
  try {
    // The client's own limits (2 attempts of at most 2 s) are the cap when the deadline is further off.
    budget = options.deadline === undefined ? undefined : callSignal(options.deadline, 5000, SECRET_READ_CALL);
    answer = await sm.send(new sdk.GetSecretValueCommand({ SecretId: secretId }), budget ? { abortSignal: budget.signal } : {});
  } catch (error) {
    if (error instanceof OutOfTimeError) throw error;
    if (budget?.signal.aborted) throw new OutOfTimeError(SECRET_READ_CALL, budget.allowedMs);
    const e = error as { name?: string; message?: string };
    throw new PortalSecretError(`portal secret '${secretId}' could not be read: ${e.name ?? 'Error'}: ${e.message ?? String(error)}`);
  } finally {
    if (!client) sm.destroy();
  }
  if (typeof answer.SecretString !== 'string') {
    throw new PortalSecretError(`portal secret '${secretId}' has no SecretString (a binary secret is not supported)`);
  }
  return parsePortalSecret(answer.SecretString, secretId);
}

/**
 * `loadPortalSecret` once per container: later calls share the first read; a failed read is forgotten,
 * so the next request tries again instead of failing until the container is recycled.
 */
export function cachedPortalSecret(secretId: string, load: (id: string) => Promise<PortalSecret> = loadPortalSecret): () => Promise<PortalSecret> {
  let pending: Promise<PortalSecret> | undefined;
  return () => {
    pending ??= load(secretId).catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    return pending;
  };
}
