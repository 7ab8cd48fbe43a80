import { readFileSync } from 'node:fs';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';

/**
 * Function URL events (payload 2.0) for handler tests. Recorded-shape fixtures live as JSON in
 * test/fixtures/function-url/; `functionUrlEvent` derives variants from the gateway's request fixture.
 */
const FIXTURES = new URL('../fixtures/function-url/', import.meta.url);

/** A fresh copy of test/fixtures/function-url/<name>.json. */
export function loadFunctionUrlEvent(name: string): APIGatewayProxyEventV2 {
  return JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8')) as APIGatewayProxyEventV2;
}

export interface EventOptions {
  readonly method?: string;
  /** rawPath, without the query string. */
  readonly path?: string;
  /** The raw query string, exactly as sent (no leading '?'). */
  readonly rawQueryString?: string;
  readonly sourceIp?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** The body is base64 (Function URLs deliver non-text bodies, forms among them, this way). */
  readonly isBase64Encoded?: boolean;
}

/** Lambda joins repeated query keys with commas in queryStringParameters; mirror that. */
function queryParameters(rawQueryString: string): Record<string, string> | undefined {
  if (rawQueryString === '') return undefined;
  const out: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(rawQueryString)) {
    out[key] = key in out ? `${out[key]},${value}` : value;
  }
  return out;
}

/** The gateway's request fixture with the given parts replaced, kept self-consistent. */
export function functionUrlEvent(options: EventOptions = {}): APIGatewayProxyEventV2 {
  const event = loadFunctionUrlEvent('resolve-session-http');
  const path = options.path ?? event.rawPath;
  const rawQueryString = options.rawQueryString ?? event.rawQueryString;
  const http = event.requestContext.http;
  http.method = options.method ?? http.method;
  http.path = path;
  http.sourceIp = options.sourceIp ?? http.sourceIp;
  const result: APIGatewayProxyEventV2 = {
    ...event,
    rawPath: path,
    rawQueryString,
    queryStringParameters: queryParameters(rawQueryString),
    headers: { ...event.headers, ...options.headers },
  };
  if (options.body !== undefined) result.body = options.body;
  if (options.isBase64Encoded !== undefined) result.isBase64Encoded = options.isBase64Encoded;
  return result;
}

/**
 * A Lambda context good enough for middy and Powertools' injectLambdaContext. `remainingMs`: the invocation
 * ends that long after this call (getRemainingTimeInMillis counts down); without it, always 5,000.
 */
export function lambdaContext(requestId = 'c0ffee00-0000-4000-8000-000000000001', options: { remainingMs?: number } = {}): Context {
  const end = options.remainingMs === undefined ? undefined : Date.now() + options.remainingMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'DcvSessionResolver-Resolver',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:DcvSessionResolver-Resolver',
    memoryLimitInMB: '256',
    awsRequestId: requestId,
    logGroupName: '/aws/lambda/DcvSessionResolver-Resolver',
    logStreamName: '2025/02/03/[$LATEST]0123456789abcdef',
    getRemainingTimeInMillis: () => (end === undefined ? 5000 : Math.max(0, end - Date.now())),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
