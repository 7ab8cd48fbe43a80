import { BadRequestError } from '../errors.js';

/**
 * The links a user opens (contract section 2): the gateway's address with the token in the query and
 * the client-facing session id in the fragment. The browser keeps the fragment to itself; the DCV web
 * client reads it to know which session to ask the gateway for.
 */
export interface ConnectLinks {
  /** For browsers: `https://gw:8443/?authToken=T#session`. */
  readonly url: string;
  /** For the native DCV client: `dcv://gw:8443/?authToken=T#session`. */
  readonly nativeUrl: string;
}

/** Validates a gateway address as operators write it; returns its origin plus path, without a trailing '/'. */
export function parseGatewayUrl(text: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text.trim())) {
    throw new BadRequestError(`gateway URL '${text}' must start with https:// (e.g. https://gw.example.com:8443)`);
  }
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new BadRequestError(`gateway URL '${text}' is not a URL (expected https://HOST[:PORT])`);
  }
  if (url.protocol !== 'https:') {
    throw new BadRequestError(`gateway URL must start with https:// (the gateway serves TLS), not ${url.protocol}//`);
  }
  if (url.username || url.password) throw new BadRequestError('gateway URL must not contain a user name or password');
  if (url.search || url.hash) throw new BadRequestError('gateway URL must not have a query or a fragment');
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/** Characters a fragment may carry as they are (RFC 3986 pchar, '/' and '?'). */
const FRAGMENT_SAFE = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*$/;

export function connectLinks(gatewayUrl: string, token: string, sessionId: string): ConnectLinks {
  const base = parseGatewayUrl(gatewayUrl);
  const fragment = FRAGMENT_SAFE.test(sessionId) ? sessionId : encodeURIComponent(sessionId);
  const url = `${base}/?authToken=${token}#${fragment}`;
  return { url, nativeUrl: url.replace(/^https?:/, 'dcv:') };
}
