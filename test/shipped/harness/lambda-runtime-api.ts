import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * One Lambda execution environment on this machine: a loopback Lambda Runtime API (the interface Lambda's
 * own runtime client polls) and a child `node` process running the function's bundle through a runtime
 * client: aws-lambda-ric when it is installed (AWS's own handler loading), else test/shipped/harness/bootstrap.mjs.
 * The child's environment is exactly what it is given (the template's variables, Lambda's reserved ones),
 * never the test process's. Invocations are served one at a time, as in one Lambda sandbox.
 */
export interface FunctionEnvironment {
  /** The asset folder: LAMBDA_TASK_ROOT and the working directory. */
  readonly taskRoot: string;
  /** The template's Handler, e.g. 'index.handler'. */
  readonly handler: string;
  /** Every variable the process gets (nothing is inherited). */
  readonly env: Readonly<Record<string, string>>;
  /** The Node.js binary. @default process.execPath */
  readonly node?: string;
  /** Invocation deadline. @default 30 s */
  readonly timeoutMs?: number;
}

export interface InvokeResult {
  /** The handler's answer (parsed JSON), when it returned. */
  readonly result?: unknown;
  /** The error the runtime reported, when the handler threw (or init failed). */
  readonly error?: { readonly errorType: string; readonly errorMessage: string };
  /** What the function printed on stdout and stderr during this invocation. */
  readonly logs: string;
}

export interface RunningFunction {
  invoke(event: unknown): Promise<InvokeResult>;
  /** Everything printed since start. */
  readonly output: () => string;
  /** Which runtime client loads the handler. */
  readonly runtimeClient: 'aws-lambda-ric' | 'bootstrap.mjs';
  stop(): Promise<void>;
}

const HARNESS = fileURLToPath(new URL('.', import.meta.url));
const BOOTSTRAP = `${HARNESS}bootstrap.mjs`;
const SDK_HOOK = `${HARNESS}runtime-sdk-hook.mjs`;
/** aws-lambda-ric, when .ci/run (or a developer) installed it into .lambda-ric/ (it builds native code). */
export const RIC_ENTRY = fileURLToPath(new URL('../../../.lambda-ric/node_modules/aws-lambda-ric/bin/index.mjs', import.meta.url));

interface Pending {
  readonly event: unknown;
  readonly requestId: string;
  readonly resolve: (r: InvokeResult) => void;
  readonly logStart: number;
}

export async function startFunction(fn: FunctionEnvironment): Promise<RunningFunction> {
  const queue: Pending[] = [];
  const inflight = new Map<string, Pending>();
  let waiting: ServerResponse | undefined;
  let initError: InvokeResult['error'];
  let output = '';
  let sequence = 0;

  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });

  const deliver = () => {
    if (!waiting || queue.length === 0) return;
    const next = queue.shift()!;
    inflight.set(next.requestId, next);
    const res = waiting;
    waiting = undefined;
    res.writeHead(200, {
      'content-type': 'application/json',
      'lambda-runtime-aws-request-id': next.requestId,
      'lambda-runtime-deadline-ms': String(Date.now() + (fn.timeoutMs ?? 30_000)),
      'lambda-runtime-invoked-function-arn': `arn:aws:lambda:${fn.env.AWS_REGION}:123456789012:function:${fn.env.AWS_LAMBDA_FUNCTION_NAME}`,
      'lambda-runtime-trace-id': `Root=1-00000000-${next.requestId.replaceAll('-', '').slice(0, 24)};Sampled=0`,
    });
    res.end(JSON.stringify(next.event));
  };

  const finish = (requestId: string, outcome: Omit<InvokeResult, 'logs'>) => {
    const pending = inflight.get(requestId);
    if (!pending) return false;
    inflight.delete(requestId);
    // Give the child's last log lines a moment to arrive before the invocation's logs are cut.
    setTimeout(() => pending.resolve({ ...outcome, logs: output.slice(pending.logStart) }), 20);
    return true;
  };

  const failAll = (error: NonNullable<InvokeResult['error']>) => {
    for (const p of [...queue, ...inflight.values()]) p.resolve({ error, logs: output.slice(p.logStart) });
    queue.length = 0;
    inflight.clear();
  };

  const server: Server = createServer(async (req, res) => {
    const url = req.url ?? '';
    const body = await readBody(req);
    const route = /^\/2018-06-01\/runtime\/(?:invocation\/(next|([^/]+)\/(response|error))|init\/error)$/.exec(url);
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    if (route[1] === 'next') {
      waiting = res;
      deliver();
      return;
    }
    if (route[2]) {
      const parsed = body === '' ? undefined : JSON.parse(body);
      const ok = finish(route[2], route[3] === 'response' ? { result: parsed } : { error: parsed });
      res.writeHead(ok ? 202 : 400, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    initError = JSON.parse(body);
    res.writeHead(202).end('{}');
    failAll(initError!);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  const useRic = existsSync(RIC_ENTRY);
  const nodeOptions = [fn.env.NODE_OPTIONS, `--import=${SDK_HOOK}`].filter(Boolean).join(' ');
  const child: ChildProcess = spawn(fn.node ?? process.execPath, useRic ? [RIC_ENTRY, fn.handler] : [BOOTSTRAP], {
    cwd: fn.taskRoot,
    env: { ...fn.env, NODE_OPTIONS: nodeOptions, AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}`, _HANDLER: fn.handler, LAMBDA_TASK_ROOT: fn.taskRoot },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString('utf8')));
  let exited = false;
  child.on('exit', (code, signal) => {
    exited = true;
    failAll(initError ?? { errorType: 'Runtime.ExitError', errorMessage: `process exited (code ${code}, signal ${signal})` });
  });

  return {
    runtimeClient: useRic ? 'aws-lambda-ric' : 'bootstrap.mjs',
    output: () => output,
    invoke(event) {
      if (initError || exited) {
        return Promise.resolve({ error: initError ?? { errorType: 'Runtime.ExitError', errorMessage: 'process has exited' }, logs: '' });
      }
      return new Promise<InvokeResult>((resolve) => {
        const requestId = `00000000-0000-4000-8000-${String(++sequence).padStart(12, '0')}`;
        queue.push({ event, requestId, resolve, logStart: output.length });
        deliver();
      });
    },
    async stop() {
      if (!exited) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await gone;
      }
      waiting?.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Invokes and returns the handler's answer; an error (thrown, or at init) fails with the function's logs. */
export async function invokeOk<T = unknown>(fn: RunningFunction, event: unknown): Promise<T> {
  const answer = await fn.invoke(event);
  if (answer.error) throw new Error(`${answer.error.errorType}: ${answer.error.errorMessage}\n${answer.logs}`);
  return answer.result as T;
}
