import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * Loopback servers that stand in front of (or instead of) dynalite, so the contract can see what a store
 * sends and make DynamoDB misbehave on cue. Only 127.0.0.1.
 */
export interface SeenRequest {
  readonly headers: IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
}

/**
 * A scripted answer: throttle / fail, or pass the request on to dynalite. 'late': pass it on (dynalite
 * applies it) but hold the answer until the client gives up and closes the connection, so the client
 * never sees it: a write that was applied while its answer came too late. `{ waitFor }`: pass it on once
 * the promise settles (to order something else before this request).
 */
export type Step = 'forward' | 'late' | { waitFor: Promise<unknown> } | { status: number; type: string; message?: string };

export const THROTTLING: Step = { status: 400, type: 'com.amazon.coral.availability#ThrottlingException', message: 'Rate of requests exceeds the allowed throughput.' };
export const PROVISIONED: Step = {
  status: 400,
  type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
  message: 'The level of configured provisioned throughput for the table was exceeded.',
};
export const INTERNAL: Step = { status: 500, type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: 'Internal server error' };

export interface LoopbackDynamo {
  readonly endpoint: string;
  readonly seen: SeenRequest[];
  /** How many 'late' requests dynalite has applied (and whose answers were withheld). */
  late(): number;
  /** Resolves once the next 'late' request has been applied by dynalite (its answer still withheld). */
  whenLate(): Promise<void>;
  /** Steps for the next requests, in order; 'forward' once they run out. */
  script(steps: Step[]): void;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A recording proxy in front of dynalite that can also answer a scripted error instead of forwarding. */
export async function startLoopbackDynamo(upstream: string): Promise<LoopbackDynamo> {
  const seen: SeenRequest[] = [];
  let steps: Step[] = [];
  let late = 0;
  const lateWaiters: (() => void)[] = [];
  const target = new URL(upstream);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      seen.push({ headers: req.headers, body: JSON.parse(raw.toString('utf8') || '{}') as Record<string, unknown> });
      const step = steps.shift() ?? 'forward';
      if (typeof step === 'object' && 'status' in step) {
        res.writeHead(step.status, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify({ __type: step.type, message: step.message ?? step.type }));
        return;
      }
      const forward = (): void => {
        const upstreamReq = request(
          { hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
          (upstreamRes) => {
            if (step === 'late') {
              // Applied upstream; the answer is read and dropped, and the client's connection stays silent
              // until the client times out and closes it (no clock here: the client's own timeout decides).
              upstreamRes.resume();
              upstreamRes.on('end', () => {
                late++;
                for (const wake of lateWaiters.splice(0)) wake();
              });
              return;
            }
            res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
            upstreamRes.pipe(res);
          },
        );
        upstreamReq.on('error', () => res.destroy());
        upstreamReq.end(raw);
      };
      // Forwarded as it is, or once the step's promise settles (whichever way).
      if (typeof step === 'object') void step.waitFor.then(forward, forward);
      else forward();
    });
  });
  const endpoint = await listen(server);
  return {
    endpoint,
    seen,
    late: () => late,
    whenLate: () => new Promise<void>((resolve) => lateWaiters.push(resolve)),
    script(next) {
      steps = [...next];
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** Accepts connections and never answers: a store that hangs. */
export async function startBlackHole(): Promise<{ endpoint: string; connections(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer();
  server.on('connection', (socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  // Requests arrive and are never answered.
  server.on('request', () => undefined);
  const endpoint = await listen(server);
  return {
    endpoint,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}
