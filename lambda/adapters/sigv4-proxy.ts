import { randomUUID } from 'node:crypto';
import {
  Agent as HttpAgent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, HttpRequest } from '@smithy/types';
import type { Log } from '../core/log.js';
import { describeError } from '../core/resolve.js';
import { readBoundedBody } from './bounded-body.js';
import { splitTarget } from './request-target.js';

/**
 * A forwarder for `accessMode=iam`: the gateway cannot sign requests (contract section 3), so it talks
 * plain HTTP to this proxy on 127.0.0.1, which signs each request with SigV4 (service `lambda`) using the
 * host's standard AWS credentials and forwards it to the Function URL. The answer comes back unchanged.
 */
export const SIGNING_SERVICE = 'lambda';
export const MAX_REQUEST_BODY_BYTES = 64 * 1024;

const FUNCTION_URL_HOST = /^[a-z0-9]+\.lambda-url\.([a-z0-9-]+)\.on\.aws$/;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** The region a Function URL host names (`<id>.lambda-url.<region>.on.aws`), if it is one. */
export function regionFromFunctionUrl(url: URL): string | undefined {
  return FUNCTION_URL_HOST.exec(url.hostname)?.[1];
}

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/**
 * Parses --target: https anywhere, http only to a loopback host (tests, a local resolver), no query
 * or fragment. Throws an Error whose message says what is wrong.
 */
export function parseTargetUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`'${text}' is not a URL (expected https://<id>.lambda-url.<region>.on.aws/)`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw new Error(`must be an https:// URL (http:// is allowed only for 127.0.0.1, ::1 or localhost), not '${text}'`);
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new Error('must not carry a query string, fragment or credentials');
  }
  return url;
}

/** RFC 3986 encoding, exactly as the SigV4 signer encodes query keys and values. */
function rfc3986(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Re-encodes a raw query canonically, keeping its meaning and order. Keys and values are decoded the way
 * the resolver reads them (URLSearchParams), so the forwarded string is exactly what gets signed and the
 * target sees the same parameters the gateway sent.
 */
export function canonicalQuery(rawQuery: string): { text: string; signed: Record<string, string | string[]> } {
  const pairs = [...new URLSearchParams(rawQuery)];
  const signed: Record<string, string | string[]> = {};
  for (const [key, value] of pairs) {
    const seen = signed[key];
    signed[key] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return { text: pairs.map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`).join('&'), signed };
}

// Hop-by-hop headers (RFC 9110 7.6.1) never cross a proxy; content-length is recomputed.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
]);

/** The caller's headers that are forwarded (and signed); everything else stays on this hop. */
const FORWARDED_REQUEST_HEADERS = ['accept', 'content-type', 'user-agent'];

function responseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

/** A SigV4 signer for Function URLs (service `lambda`), shared by the proxy and `resolve --sign`. */
export function createFunctionUrlSigner(
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider,
  region: string,
): SignatureV4 {
  return new SignatureV4({ credentials, region, service: SIGNING_SERVICE, sha256: Sha256 });
}

/** Signs one request to `target` (its host header included); the result carries the headers to send. */
export function signFunctionUrlRequest(
  signer: SignatureV4,
  target: URL,
  request: { method: string; path: string; query: Record<string, string | string[]>; headers: Record<string, string>; body: Buffer },
): Promise<HttpRequest> {
  return signer.sign({
    method: request.method,
    protocol: target.protocol,
    hostname: target.hostname,
    port: target.port ? Number(target.port) : undefined,
    path: request.path,
    query: request.query,
    headers: { ...request.headers, host: target.host },
    body: request.body,
  });
}

export interface SigV4ProxyOptions {
  readonly target: URL;
  readonly region: string;
  /** Default provider chain in production; fixed credentials in tests. */
  readonly credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  readonly log: Log;
  /** Milliseconds to connect to the target. @default 3000 */
  readonly connectTimeoutMs?: number;
  /** Milliseconds for the whole upstream exchange (Function URL cold start included). @default 10000 */
  readonly requestTimeoutMs?: number;
  /**
   * Host names (`NAME` or `NAME:PORT`, lower case; IPv6 in brackets) besides the proxy's own loopback
   * addresses that a request may be addressed to (`--allow-host`). A name without a port means the listening port.
   */
  readonly allowedHosts?: readonly string[];
}

/** Names every request to the proxy itself may carry as its Host, with the listening port. */
const OWN_HOSTS = ['127.0.0.1', 'localhost', '[::1]'];

/**
 * The Host values a request must carry to be signed: the loopback names and the listening address, with
 * the listening port, plus `--allow-host` names. A web page that reaches the proxy through DNS rebinding
 * carries its own name as Host, so it is refused before anything is signed.
 */
export function allowedAuthorities(listen: AddressInfo, extra: readonly string[] = []): Set<string> {
  const names = [...OWN_HOSTS];
  // A wildcard listener has no name of its own; a specific one answers to its address.
  if (listen.address !== '0.0.0.0' && listen.address !== '::') {
    names.push(listen.family === 'IPv6' ? `[${listen.address.toLowerCase()}]` : listen.address);
  }
  const out = new Set<string>();
  const add = (authority: string) => {
    out.add(authority);
    // A browser or client omits the default port from Host.
    if (authority.endsWith(':80')) out.add(authority.slice(0, -3));
  };
  for (const name of names) add(`${name}:${listen.port}`);
  for (const entry of extra) add(/:\d+$/.test(entry) ? entry.toLowerCase() : `${entry.toLowerCase()}:${listen.port}`);
  return out;
}

/** Fetch metadata that means the request came from this very origin, or from no page at all. */
const SAME_ORIGIN_FETCH = new Set(['same-origin', 'none']);

/**
 * Why a request must not be signed, or undefined. 421: not addressed to this proxy. 403: sent by a web page
 * of another origin (a gateway sends neither Origin nor Sec-Fetch-Site; a browser does, cross-site).
 */
export function refusal(
  headers: IncomingHttpHeaders,
  authorities: ReadonlySet<string>,
): { status: 421 | 403; error: string; message: string } | undefined {
  const host = headers.host?.toLowerCase();
  if (host === undefined || !authorities.has(host)) {
    return { status: 421, error: 'MisdirectedRequest', message: 'this proxy signs only requests addressed to it (Host); see --allow-host' };
  }
  const origin = headers.origin;
  if (origin !== undefined && !sameOrigin(origin, host)) {
    return { status: 403, error: 'ForbiddenError', message: 'requests from another origin are not signed' };
  }
  const site = headers['sec-fetch-site'];
  if (site !== undefined && !SAME_ORIGIN_FETCH.has(site.toLowerCase())) {
    return { status: 403, error: 'ForbiddenError', message: 'requests from another site are not signed' };
  }
  return undefined;
}

function sameOrigin(origin: string, host: string): boolean {
  try {
    const url = new URL(origin);
    // URL drops the default port, as a browser's Origin does.
    return url.protocol === 'http:' && url.origin === origin.toLowerCase() && (url.host === host || `${url.host}:80` === host);
  } catch {
    return false; // `null` (opaque origins) and anything unparsable
  }
}

function clipHeader(value: string | undefined): string | undefined {
  return value === undefined || value.length <= 100 ? value : `${value.slice(0, 100)}…`;
}

function sendJson(res: ServerResponse, status: number, error: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error, message });
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

class UpstreamTimeout extends Error {
  override readonly name = 'UpstreamTimeout';
}

export function createSigV4Proxy(options: SigV4ProxyOptions): Server {
  const { target, log } = options;
  const secure = target.protocol === 'https:';
  const basePath = target.pathname.replace(/\/+$/, '');
  const connectTimeoutMs = options.connectTimeoutMs ?? 3000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const agent = secure ? new HttpsAgent({ keepAlive: true, maxSockets: 64 }) : new HttpAgent({ keepAlive: true, maxSockets: 64 });
  const signer = createFunctionUrlSigner(options.credentials, options.region);

  function forward(req: IncomingMessage, res: ServerResponse, body: Buffer, requestId: string, started: number): void {
    const method = req.method ?? 'GET';
    const { path, query } = splitTarget(req.url);
    const canonical = canonicalQuery(query);
    const headers: Record<string, string> = {};
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    if (body.length > 0) headers['content-length'] = String(body.length);
    const fullPath = basePath + path;
    const done = (fields: Record<string, unknown>) =>
      // Never the path or query: they carry the secret prefix and the gateway's parameters.
      log.info('proxied', { requestId, method, ms: Math.round(performance.now() - started), ...fields });

    signFunctionUrlRequest(signer, target, { method, path: fullPath, query: canonical.signed, headers, body }).then(
      (signed) => {
        const send = secure ? httpsRequest : httpRequest;
        const upstream = send({
          protocol: target.protocol,
          hostname: target.hostname.replace(/^\[|\]$/g, ''),
          port: target.port || undefined,
          method,
          path: canonical.text ? `${fullPath}?${canonical.text}` : fullPath,
          headers: signed.headers,
          agent,
          signal: AbortSignal.timeout(requestTimeoutMs),
        });
        upstream.on('socket', (socket) => {
          // Kept-alive sockets are already connected; only a new connection gets the connect bound.
          if (!socket.connecting) return;
          const timer = setTimeout(() => upstream.destroy(new UpstreamTimeout('connect timed out')), connectTimeoutMs);
          socket.once('connect', () => clearTimeout(timer));
          socket.once('close', () => clearTimeout(timer));
        });
        upstream.on('response', (answer) => {
          res.writeHead(answer.statusCode ?? 502, responseHeaders(answer.headers));
          answer.pipe(res);
          answer.on('error', () => res.destroy());
          answer.on('end', () => done({ status: answer.statusCode, upstreamRequestId: answer.headers['x-amzn-requestid'] }));
        });
        upstream.on('error', (error) => {
          const timedOut = error instanceof UpstreamTimeout || error.name === 'AbortError' || error.name === 'TimeoutError';
          if (error instanceof UpstreamTimeout) {
            sendJson(res, 504, 'GatewayTimeout', `the resolver at ${target.host} did not accept a connection within ${connectTimeoutMs} ms`);
          } else if (timedOut) {
            sendJson(res, 504, 'GatewayTimeout', `the resolver at ${target.host} did not answer within ${requestTimeoutMs} ms`);
          } else {
            sendJson(res, 502, 'BadGateway', `cannot reach the resolver at ${target.host}: ${error.message}`);
          }
          done({ status: timedOut ? 504 : 502, cause: describeError(error) });
        });
        upstream.end(body);
      },
      (error: unknown) => {
        // Usually: no credentials on this host, or an expired/invalid profile.
        sendJson(res, 502, 'BadGateway', `cannot sign the request with this host's AWS credentials: ${(error as Error).message}`);
        done({ status: 502, cause: describeError(error) });
      },
    );
  }

  let authorities: Set<string> | undefined;
  const server = createServer((req, res) => {
    const started = performance.now();
    const requestId = randomUUID();
    authorities ??= allowedAuthorities(server.address() as AddressInfo, options.allowedHosts);
    const refused = refusal(req.headers, authorities);
    if (refused) {
      // Nothing is read, signed or forwarded; the connection closes, so an unread body does not matter.
      log.warn('refused', {
        requestId,
        status: refused.status,
        reason: refused.message,
        host: clipHeader(req.headers.host),
        origin: clipHeader(req.headers.origin),
        secFetchSite: clipHeader(req.headers['sec-fetch-site']),
      });
      res.setHeader('Connection', 'close');
      sendJson(res, refused.status, refused.error, refused.message);
      return;
    }
    readBoundedBody(req, MAX_REQUEST_BODY_BYTES, {
      onBody: (body) => forward(req, res, body, requestId, started),
      onTooLarge: () => sendJson(res, 413, 'PayloadTooLargeError', `request body must be at most ${MAX_REQUEST_BODY_BYTES} bytes`),
    });
    req.on('error', () => res.destroy());
  });
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  server.on('close', () => agent.destroy());
  return server;
}

export interface RunningProxy {
  readonly server: Server;
  readonly url: string;
  close(): Promise<void>;
}

export function startSigV4Proxy(options: SigV4ProxyOptions & { host: string; port: number }): Promise<RunningProxy> {
  const server = createSigV4Proxy(options);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolve({
        server,
        url: `http://${host}:${address.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeIdleConnections();
            setTimeout(() => server.closeAllConnections(), 2000).unref();
          }),
      });
    });
  });
}
