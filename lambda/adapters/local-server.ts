import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { HttpRequest, Router } from '../core/http-router.js';
import type { Log } from '../core/log.js';
import { readBoundedBody } from './bounded-body.js';
import { splitTarget } from './request-target.js';

/** Bodies are not part of the resolver's contract and the verifier's form is tiny; bigger is refused unread. */
export const MAX_BODY_BYTES = 64 * 1024;

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
}

export interface RunningServer {
  readonly server: Server;
  readonly url: string;
  close(): Promise<void>;
}

/** A plain node:http adapter: request in, the shared router's answer out. */
export function createLocalServer(options: LocalServerOptions): Server {
  const { route, log } = options;

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const declared = Number(req.headers['content-length'] ?? 0);
    // Too large: the router still answers (403 for a refused source, 413 in the route's own format),
    // without the body, and the connection closes since the rest of the body is never read.
    const respond = (body: string, tooLarge = false): void => {
      route(requestFromIncoming(req, body, tooLarge)).then(
        (result) =>
          send(
            res,
            result.statusCode,
            tooLarge ? { ...result.headers, Connection: 'close' } : result.headers,
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
    req.on('error', () => res.destroy());
  }

  // Host is not needed to answer; without this node itself sends a bodiless 400 to Host-less HTTP/1.1.
  const serverOptions = { requireHostHeader: false };
  const server = options.tls
    ? createHttpsServer({ ...options.tls, ...serverOptions }, onRequest)
    : createHttpServer(serverOptions, onRequest);
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
    const body = JSON.stringify({ error: 'BadRequestError', message: 'malformed HTTP request' });
    // An answer to HEAD never carries a body (e.g. a HEAD whose head was too large), or the client desyncs.
    const head = (error as { rawPacket?: Buffer }).rawPacket?.subarray(0, 5).toString('latin1') === 'HEAD ';
    socket.end(
      `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${head ? '' : body}`,
    );
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
