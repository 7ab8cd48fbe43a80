import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { HttpRequest, HttpResponse } from '../core/http-router.js';

/**
 * API Gateway REST API proxy events (payload format 1.0), the `private` access mode's way in: the same
 * HttpRequest the Function URL adapter builds, so the router gives the same answers, limits and logs.
 *
 * What differs from payload 2.0, and how it is undone here:
 * - `path` is the resource path without the stage (`/prod/resolveSession` arrives as `/resolveSession`),
 *   so a path prefix works exactly as behind a Function URL.
 * - The query string arrives parsed (`multiValueQueryStringParameters`, values decoded); it is re-encoded with
 *   every repetition kept, so a repeated parameter is still the 400 it is elsewhere.
 * - Header names keep the caller's case; repeated headers arrive in `multiValueHeaders`.
 * - The caller is `requestContext.identity.sourceIp` (through a VPC endpoint: the caller's VPC address).
 */
export function isRestApiEvent(event: unknown): event is APIGatewayProxyEvent {
  if (typeof event !== 'object' || event === null) return false;
  const e = event as { httpMethod?: unknown; version?: unknown };
  return typeof e.httpMethod === 'string' && e.version !== '2.0';
}

export function requestFromRestEvent(event: Partial<APIGatewayProxyEvent>): HttpRequest {
  const headers = headersOf(event);
  const contentType = headers['content-type'];
  const identity = isObject(event.requestContext) && isObject(event.requestContext.identity) ? event.requestContext.identity : undefined;
  const requestId = event.requestContext?.requestId;
  return {
    headers,
    scheme: 'https',
    method: typeof event.httpMethod === 'string' ? event.httpMethod.toUpperCase() : 'GET',
    path: typeof event.path === 'string' ? event.path : '/',
    rawQueryString: queryStringOf(event),
    sourceIp: typeof identity?.sourceIp === 'string' ? identity.sourceIp : undefined,
    requestId: typeof requestId === 'string' && requestId.length <= 128 ? requestId : undefined,
    body: bodyOf(event),
    ...(typeof contentType === 'string' ? { contentType } : {}),
  };
}

/** A REST API proxy result: `Set-Cookie` values go in multiValueHeaders (a header map holds one). */
export function restApiResult(response: HttpResponse): APIGatewayProxyResult {
  return {
    statusCode: response.statusCode,
    headers: response.headers,
    body: response.body,
    ...(response.cookies && response.cookies.length > 0 ? { multiValueHeaders: { 'Set-Cookie': [...response.cookies] } } : {}),
  };
}

function isObject(value: unknown): value is Record<string, unknown> & object {
  return typeof value === 'object' && value !== null;
}

/** Lower-case names; repeats joined as one header would carry them (`cookie` with '; '). */
function headersOf(event: Partial<APIGatewayProxyEvent>): Record<string, string | undefined> {
  // Names are the caller's: a header called `constructor` or `__proto__` must be just a header.
  const joined = new Map<string, string>();
  const multi = isObject(event.multiValueHeaders) ? event.multiValueHeaders : {};
  for (const [name, values] of Object.entries(multi)) {
    if (!Array.isArray(values)) continue;
    const strings = values.filter((v): v is string => typeof v === 'string');
    if (strings.length === 0) continue;
    const key = name.toLowerCase();
    const before = joined.get(key);
    joined.set(key, [...(before === undefined ? [] : [before]), ...strings].join(key === 'cookie' ? '; ' : ', '));
  }
  const single = isObject(event.headers) ? event.headers : {};
  for (const [name, value] of Object.entries(single)) {
    const key = name.toLowerCase();
    if (typeof value === 'string' && !joined.has(key)) joined.set(key, value);
  }
  return Object.fromEntries(joined);
}

/** Every value of every parameter, in order, so repeats stay visible to the route's own checks. */
function queryStringOf(event: Partial<APIGatewayProxyEvent>): string {
  const params = new URLSearchParams();
  if (isObject(event.multiValueQueryStringParameters)) {
    for (const [key, values] of Object.entries(event.multiValueQueryStringParameters)) {
      if (!Array.isArray(values)) continue;
      for (const value of values) if (typeof value === 'string') params.append(key, value);
    }
  } else if (isObject(event.queryStringParameters)) {
    for (const [key, value] of Object.entries(event.queryStringParameters)) {
      if (typeof value === 'string') params.append(key, value);
    }
  }
  return params.toString();
}

function bodyOf(event: Partial<APIGatewayProxyEvent>): string | undefined {
  if (typeof event.body !== 'string') return undefined;
  return event.isBase64Encoded === true ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
}
