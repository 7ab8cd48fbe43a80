import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { Log } from '../core/log';
import type { ResolverHandler } from '../handlers/resolver-handler';
import { readBoundedBody } from './bounded-body';
import { splitTarget } from './request-target';

/** Bodies are not part of the contract; anything bigger than this is refused unread. */
export const MAX_BODY_BYTES = 64 * 1024;

function stripMappedV4(address: string | undefined): string | undefined {
  return address?.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function headerMap(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return headers;
}

/** Function URLs join repeated keys with commas; do the same so the event looks like Lambda's. */
function queryMap(rawQueryString: string): Record<string, string> | undefined {
  if (rawQueryString === '') return undefined;
  const out: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(rawQueryString)) {
    out[key] = key in out ? `${out[key]},${value}` : value;
  }
  return out;
}

/** Builds the Function URL event (payload 2.0) that Lambda would have delivered for this request. */
export function eventFromRequest(req: IncomingMessage, body: string): APIGatewayProxyEventV2 {
  const { path: rawPath, query: rawQueryString } = splitTarget(req.url);
  const now = Date.now();
  const requestId = randomUUID();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers: headerMap(req),
    queryStringParameters: queryMap(rawQueryString),
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName: req.headers.host ?? 'localhost',
      domainPrefix: 'local',
      http: {
        method: req.method ?? 'GET',
        path: rawPath,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: stripMappedV4(req.socket.remoteAddress) ?? '',
        userAgent: req.headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: '$default',
      stage: '$default',
      time: new Date(now).toISOString(),
      timeEpoch: now,
    },
    body: body === '' ? undefined : body,
    isBase64Encoded: false,
  };
}

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string, head: boolean): void {
  if (res.headersSent) return;
  res.writeHead(status, { ...headers, 'Content-Length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

function sendJsonError(res: ServerResponse, status: number, error: string, message: string): void {
  send(res, status, { 'Content-Type': 'application/json', Connection: 'close' }, JSON.stringify({ error, message }), false);
}

export interface LocalServerOptions {
  readonly handler: ResolverHandler;
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

/** A plain node:http adapter: request in, Function URL event to the shared handler, result out. */
export function createLocalServer(options: LocalServerOptions): Server {
  const { handler, log } = options;

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      sendJsonError(res, 413, 'PayloadTooLargeError', `request body must be at most ${MAX_BODY_BYTES} bytes`);
      req.resume();
      return;
    }
    const respond = (body: string): void => {
      const event = eventFromRequest(req, body);
      // No Lambda context here: the handler then logs the event's request id and invents nothing.
      handler(event).then(
        (result) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(result.headers ?? {})) headers[k] = String(v);
          send(res, result.statusCode ?? 200, headers, result.body ?? '', req.method === 'HEAD');
        },
        (error: unknown) => {
          log.error('handler failed', { message: (error as Error)?.message });
          sendJsonError(res, 500, 'InternalError', 'internal error');
        },
      );
    };
    // HTTP/1.1: without Content-Length or Transfer-Encoding a request has no body. The gateway's
    // lookups are such requests: answer at once instead of waiting a tick for the stream's 'end'.
    if (req.headers['transfer-encoding'] === undefined && declared === 0) {
      req.resume();
      respond('');
      return;
    }
    readBoundedBody(req, MAX_BODY_BYTES, {
      onBody: (body) => respond(body.length === 0 ? '' : body.toString('utf8')),
      onTooLarge: () => sendJsonError(res, 413, 'PayloadTooLargeError', `request body must be at most ${MAX_BODY_BYTES} bytes`),
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
