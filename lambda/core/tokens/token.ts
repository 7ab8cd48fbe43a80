import { createHash, randomBytes } from 'node:crypto';

/**
 * Connect tokens: 256 bits from the operating system's CSPRNG, base64url (URL-safe, no padding), so a
 * token goes into `?authToken=` unescaped. Stores keep only the SHA-256 of a token: a token has far too
 * much entropy to guess from its hash, so a fast hash is enough and keeps the verifier cheap.
 */
export const TOKEN_BYTES = 32;

/** What a token looks like on the wire; anything else is refused before any store is asked. */
const TOKEN_FORMAT = /^[A-Za-z0-9_-]{22,256}$/;

/** Characters of the hash shown as a token's id (in `token list`, logs, `token revoke ID`). */
export const TOKEN_ID_LENGTH = 12;

export function mintToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

export function isTokenFormat(value: string): boolean {
  return TOKEN_FORMAT.test(value);
}

/** Lower-case hex SHA-256 of the token: the key it is stored under. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A short, non-secret handle for a token: the start of its hash. */
export function tokenIdOf(hash: string): string {
  return hash.slice(0, TOKEN_ID_LENGTH);
}

export function isTokenHash(value: string): boolean {
  return /^[0-9a-f]{64}$/.test(value);
}
