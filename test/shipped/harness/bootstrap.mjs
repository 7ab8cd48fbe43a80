// A minimal Lambda runtime for Node.js, for the shipped-bundle tests when aws-lambda-ric is not installed:
// it loads the handler the way Lambda's Node.js runtime does (`_HANDLER` = "<module path>.<export>", the
// module resolved in LAMBDA_TASK_ROOT as .mjs, .js or .cjs) and speaks the Lambda Runtime API at
// AWS_LAMBDA_RUNTIME_API (next / response / error / init error). Plain JavaScript, no test imports: the
// child process runs exactly the bundle and this.
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const root = process.env.LAMBDA_TASK_ROOT;
const handlerSpec = process.env._HANDLER;

function call(method, route, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = request(
      `http://${api}/2018-06-01/runtime/${route}`,
      { method, headers: { ...headers, ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

function errorBody(error) {
  const e = error instanceof Error ? error : new Error(String(error));
  return { errorType: e.name, errorMessage: e.message, stackTrace: String(e.stack ?? '').split('\n') };
}

async function loadHandler() {
  const dot = handlerSpec.lastIndexOf('.');
  const modulePath = handlerSpec.slice(0, dot);
  const exportName = handlerSpec.slice(dot + 1);
  const base = path.resolve(root, modulePath);
  const file = ['.mjs', '.js', '.cjs'].map((ext) => base + ext).find((f) => existsSync(f));
  if (!file) throw Object.assign(new Error(`Cannot find module '${modulePath}'`), { name: 'Runtime.ImportModuleError' });
  const mod = await import(pathToFileURL(file).href);
  const fn = mod[exportName];
  if (typeof fn !== 'function') throw Object.assign(new Error(`${handlerSpec} is undefined or not exported`), { name: 'Runtime.HandlerNotFound' });
  return fn;
}

let handler;
try {
  handler = await loadHandler();
} catch (error) {
  await call('POST', 'init/error', errorBody(error), { 'lambda-runtime-function-error-type': error?.name ?? 'Runtime.Unknown' });
  process.exit(1);
}

for (;;) {
  const next = await call('GET', 'invocation/next');
  if (next.status !== 200) process.exit(0);
  const requestId = next.headers['lambda-runtime-aws-request-id'];
  const deadline = Number(next.headers['lambda-runtime-deadline-ms']);
  const context = {
    awsRequestId: requestId,
    invokedFunctionArn: next.headers['lambda-runtime-invoked-function-arn'],
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => deadline - Date.now(),
  };
  try {
    const result = await handler(JSON.parse(next.body), context);
    await call('POST', `invocation/${requestId}/response`, result === undefined ? 'null' : JSON.stringify(result));
  } catch (error) {
    await call('POST', `invocation/${requestId}/error`, errorBody(error), { 'lambda-runtime-function-error-type': 'Runtime.UnhandledError' });
  }
}
