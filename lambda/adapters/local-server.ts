import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { sourceCheck, type HttpRequest, type Router } from '../core/http-router.js';
import type { CidrSet } from '../core/ip.js';
import type { Log } from '../core/log.js';
import { readBoundedBody } from './bounded-body.js';
import { splitTarget } from './request-target.js';

/** Bodies are not part of the resolver's contract and the verifier's form is tiny; bigger is refused unread. */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * Open connections at most (`serve --max-connections`); more are closed on arrival. The gateway and the DCV
 * servers each keep a few; the cap bounds what a flood can hold: each connection may buffer up to a
 * 64 KiB body plus its headers, so 1024 connections is at most about 100 MiB, and stays under the usual
 * 1024 open-files soft limit once node has raised it (node raises it to the hard limit at start).
 */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/** How long a caller may take to send its request. The gateway's and the DCV servers' requests take milliseconds. */
export interface RequestTimeouts {
  /** Headers complete within this, counted from the connection (or the previous request). @default 5000 */
  readonly headersMs?: number;
  /** The whole request, body included (this bounds a stalled or trickled body), within this. @default 10000 */
  readonly requestMs?: number;
  /** How often node checks the two above; a timeout fires up to this late. @default 1000 */
  readonly checkIntervalMs?: number;
}

function stripMappedV4(address: string | undefined): string | undefined {
  return address?.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * The router's request straight from node:http: the same fields the Lambda adapter reads from a
 * Function URL event (sourceIp from the socket, never X-Forwarded-For), without building the event.
 */
export function requestFromIncoming(req: IncomingMessage, body: string, bodyTooLarge = false): HttpRequest {
  const { path, query } = splitTarget(req.url);
  const contentType = req.headers['content-type'];
  return {
    // node lower-cases names and already joins repeated Cookie headers with '; '.
    headers: req.headers as Record<string, string | undefined>,
    scheme: (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
    method: req.method ?? 'GET',
    path,
    rawQueryString: query,
    sourceIp: stripMappedV4(req.socket.remoteAddress),
    requestId: randomUUID(),
    body,
    ...(contentType === undefined ? {} : { contentType }),
    ...(bodyTooLarge ? { bodyTooLarge: MAX_BODY_BYTES } : {}),
  };
}

function send(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: string,
  head: boolean,
  cookies?: readonly string[],
): void {
  if (res.headersSent) return;
  if (cookies && cookies.length > 0) res.setHeader('Set-Cookie', cookies as string[]);
  res.writeHead(status, { ...headers, 'Content-Length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

function sendJsonError(res: ServerResponse, status: number, error: string, message: string): void {
  send(res, status, { 'Content-Type': 'application/json', Connection: 'close' }, JSON.stringify({ error, message }), false);
}

export interface LocalServerOptions {
  /** The shared router (lambda/core/http-router.ts), as the Lambda handler uses it. */
  readonly route: Router;
  readonly log: Log;
  readonly host?: string;
  readonly port?: number;
  /** When given, serve HTTPS (optionally requiring client certificates) instead of HTTP. */
  readonly tls?: HttpsOptions;
  /**
   * The router's own allow-list, checked here first from the peer's address alone: a refused caller gets
   * the router's 403 without a byte of its body being read, and the connection closes.
   */
  readonly allowedSources?: CidrSet;
  /** With the portal on: its paths (/portal…) are checked against its own list instead (absent: anyone). */
  readonly portal?: { readonly allowedSources?: CidrSet };
  /** @default DEFAULT_MAX_CONNECTIONS */
  readonly maxConnections?: number;
  readonly timeouts?: RequestTimeouts;
}

export interface RunningServer {
  readonly server: Server;
  readonly url: string;
  close(): Promise<void>;
}

/** A plain node:http adapter: request in, the shared router's answer out. */
export function createLocalServer(options: LocalServerOptions): Server {
  const { route, log } = options;
  // The router's own rule (which list applies to which path), so the early refusal never disagrees with it.
  const allowed = sourceCheck({
    allowedSources: options.allowedSources,
    portalAllowedSources: options.portal?.allowedSources,
    portal: options.portal !== undefined,
  });

  function refused(req: IncomingMessage): boolean {
    return !allowed(splitTarget(req.url).path, req.socket.remoteAddress);
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const declared = Number(req.headers['content-length'] ?? 0);
    // Too large or refused: the router still answers (403 for a refused source, 413 in the route's own
    // format), without the body, and the connection closes since the rest of the body is never read.
    const respond = (body: string, tooLarge = false, close = tooLarge): void => {
      route(requestFromIncoming(req, body, tooLarge)).then(
        (result) =>
          send(
            res,
            result.statusCode,
            close ? { ...result.headers, Connection: 'close' } : result.headers,
            result.body,
            req.method === 'HEAD',
            result.cookies,
          ),
        (error: unknown) => {
          log.error('handler failed', { message: (error as Error)?.message });
          sendJsonError(res, 500, 'InternalError', 'internal error');
        },
      );
    };
    req.on('error', () => res.destroy());
    if (refused(req)) {
      // Nothing is read: a refused caller holds no buffer and, once answered, no socket.
      respond('', false, true);
      return;
    }
    if (declared > MAX_BODY_BYTES) {
      req.resume();
      respond('', true);
      return;
    }
    // HTTP/1.1: without Content-Length or Transfer-Encoding a request has no body. The gateway's
    // lookups are such requests: answer at once instead of waiting a tick for the stream's 'end'.
    if (req.headers['transfer-encoding'] === undefined && declared === 0) {
      req.resume();
      respond('');
      return;
    }
    readBoundedBody(req, MAX_BODY_BYTES, {
      onBody: (body) => respond(body.length === 0 ? '' : body.toString('utf8')),
      onTooLarge: () => respond('', true),
    });
  }

  const timeouts = options.timeouts ?? {};
  const headersTimeout = timeouts.headersMs ?? 5000;
  const serverOptions = {
    // Host is not needed to answer; without this node itself sends a bodiless 400 to Host-less HTTP/1.1.
    requireHostHeader: false,
    headersTimeout,
    requestTimeout: Math.max(timeouts.requestMs ?? 10_000, headersTimeout),
    connectionsCheckingInterval: timeouts.checkIntervalMs ?? 1000,
  };
  const server = options.tls
    ? // A TLS handshake that stalls is bounded like the headers that would follow it.
      createHttpsServer({ ...options.tls, ...serverOptions, handshakeTimeout: headersTimeout }, onRequest)
    : createHttpServer(serverOptions, onRequest);
  server.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  let lastDropLog = 0;
  let dropped = 0;
  server.on('drop', () => {
    dropped += 1;
    // A flood drops many: one line per 10 s, with the count since the last.
    if (Date.now() - lastDropLog < 10_000) return;
    log.warn('connection limit reached', { maxConnections: server.maxConnections, dropped });
    lastDropLog = Date.now();
    dropped = 0;
  });
  // Expect: 100-continue from a refused caller: answer without inviting the body.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (!refused(req)) res.writeContinue();
    onRequest(req, res);
  });
  // An `Expect` other than 100-continue: node would answer a bodiless 417; keep every 4xx JSON.
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    sendJsonError(res, 417, 'ExpectationFailedError', 'only Expect: 100-continue is supported');
  });
  // Malformed HTTP never reaches the handler: answer 400 with a JSON body and close.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || error.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    // The headers or the whole request did not arrive within the timeouts (a stalled or trickling caller).
    const timedOut = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const body = timedOut
      ? JSON.stringify({ error: 'RequestTimeoutError', message: 'the request did not arrive in time' })
      : JSON.stringify({ error: 'BadRequestError', message: 'malformed HTTP request' });
    // An answer to HEAD never carries a body (e.g. a HEAD whose head was too large), or the client desyncs.
    const head = (error as { rawPacket?: Buffer }).rawPacket?.subarray(0, 5).toString('latin1') === 'HEAD ';
    socket.end(
      `HTTP/1.1 ${timedOut ? '408 Request Timeout' : '400 Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${head ? '' : body}`,
    );
    // Don't wait for a stalled caller to read the answer or close its side.
    (socket as Socket).destroySoon();
  });
  return server;
}

/** Starts listening; rejects with the listen error (EADDRINUSE, EACCES, …) instead of crashing. */
export function startLocalServer(options: LocalServerOptions): Promise<RunningServer> {
  const server = createLocalServer(options);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 9000, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      const scheme = options.tls ? 'https' : 'http';
      resolve({
        server,
        url: `${scheme}://${host}:${address.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeIdleConnections();
            // Give in-flight requests a moment, then drop whatever is left.
            setTimeout(() => server.closeAllConnections(), 2000).unref();
          }),
      });
    });
  });
}
