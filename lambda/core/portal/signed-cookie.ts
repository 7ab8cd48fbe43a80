import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Cookies the portal can trust because it signed them: `base64url(JSON).base64url(HMAC-SHA256)`.
 * The purpose is part of what is signed, so a value sealed for one cookie (the sign-in transaction)
 * can never be replayed as another (the session). Every payload carries its own expiry (`exp`, epoch
 * seconds), checked on open: an old cookie a browser kept, or one copied elsewhere, stops working.
 */
export const MIN_KEY_LENGTH = 32;
/** Browsers keep at most ~4 KB per cookie, name and attributes included. */
export const MAX_COOKIE_VALUE = 3800;

export class CookieTooLargeError extends Error {}

export class CookieSealer {
  private readonly key: Buffer;

  constructor(key: string | Buffer) {
    this.key = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
    if (this.key.length < MIN_KEY_LENGTH) throw new Error(`the cookie key must be at least ${MIN_KEY_LENGTH} bytes`);
  }

  seal(purpose: string, payload: Record<string, unknown>, expiresAt: number): string {
    const body = Buffer.from(JSON.stringify({ ...payload, exp: Math.floor(expiresAt) }), 'utf8').toString('base64url');
    const value = `${body}.${this.mac(purpose, body)}`;
    if (value.length > MAX_COOKIE_VALUE) throw new CookieTooLargeError(`cookie would be ${value.length} bytes`);
    return value;
  }

  /** The payload, or undefined for anything not sealed by this key for this purpose, or expired. */
  open(purpose: string, value: string | undefined, nowSeconds: number): Record<string, unknown> | undefined {
    if (!value || value.length > MAX_COOKIE_VALUE) return undefined;
    const dot = value.indexOf('.');
    if (dot <= 0) return undefined;
    const body = value.slice(0, dot);
    const given = Buffer.from(value.slice(dot + 1), 'base64url');
    const expected = Buffer.from(this.mac(purpose, body), 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    let payload: unknown;
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return undefined;
    const exp = (payload as { exp?: unknown }).exp;
    if (typeof exp !== 'number' || !(nowSeconds < exp)) return undefined;
    return payload as Record<string, unknown>;
  }

  private mac(purpose: string, body: string): string {
    return createHmac('sha256', this.key).update(`${purpose}\n${body}`).digest('base64url');
  }
}

export interface CookieOptions {
  /** Epoch-relative lifetime in seconds; 0 deletes the cookie. */
  readonly maxAge: number;
  readonly path: string;
}

/**
 * One `Set-Cookie` value: HttpOnly, Secure and SameSite=Lax always (a cross-site POST never carries it).
 * Browsers accept Secure cookies from http://localhost and http://127.0.0.1, so local use needs no TLS.
 */
export function setCookie(name: string, value: string, options: CookieOptions): string {
  return [`${name}=${value}`, `Path=${options.path}`, `Max-Age=${Math.max(0, Math.floor(options.maxAge))}`, 'HttpOnly', 'Secure', 'SameSite=Lax'].join('; ');
}

/** The value of one cookie from a `Cookie` header; the first wins when a name repeats. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
