import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';
import { restApiEvent } from '../test/helpers/rest-api-event';

/** Function URL events (payload 2.0) shaped as Lambda delivers them, and the answers they must get. */

export const SESSION = {
  SessionId: 'console',
  DcvServerEndpoint: '10.150.248.180',
  HttpPort: 8443,
  QuicPort: 8443,
  WebUrlPath: '/',
};

/** The gateway's request, byte for byte (clientIpAddress is documentation space, data only). */
export const GATEWAY_QUERY = 'sessionId=console&transport=HTTP&clientIpAddress=203.0.113.10';
export const GATEWAY_PATH = `/resolveSession?${GATEWAY_QUERY}`;

export const HIT_BODY = JSON.stringify({
  SessionId: 'console',
  TransportProtocol: 'HTTP',
  DcvServerEndpoint: '10.150.248.180',
  Port: 8443,
  WebUrlPath: '/',
});

export function functionUrlEvent(method: string, rawPath: string, rawQueryString = ''): APIGatewayProxyEventV2 {
  const now = Date.now();
  const queryStringParameters = rawQueryString
    ? Object.fromEntries(new URLSearchParams(rawQueryString))
    : undefined;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers: { accept: 'application/json', host: 'abc.lambda-url.us-east-1.on.aws', 'content-length': '0' },
    queryStringParameters,
    requestContext: {
      accountId: 'anonymous',
      apiId: 'abc',
      domainName: 'abc.lambda-url.us-east-1.on.aws',
      domainPrefix: 'abc',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '198.51.100.7', userAgent: 'dcv-gateway' },
      requestId: 'bench-request',
      routeKey: '$default',
      stage: '$default',
      time: new Date(now).toISOString(),
      timeEpoch: now,
    },
    isBase64Encoded: false,
  };
}

// The same Lambda context the handler tests use, so bench and tests exercise one shape.
export { lambdaContext } from '../test/helpers/function-url-event';

export interface Case {
  readonly name: string;
  /** A Function URL event, or (accessMode 'private') a REST API proxy event. */
  readonly event: APIGatewayProxyEventV2 | APIGatewayProxyEvent;
  readonly status: number;
  /** Exact body expected, when it matters. */
  readonly body?: string;
}

export const CASES: readonly Case[] = [
  { name: 'hit', event: functionUrlEvent('POST', '/resolveSession', GATEWAY_QUERY), status: 200, body: HIT_BODY },
  {
    name: 'miss',
    event: functionUrlEvent('POST', '/resolveSession', 'sessionId=nobody&transport=HTTP&clientIpAddress=203.0.113.10'),
    status: 404,
  },
  {
    name: 'bad request',
    event: functionUrlEvent('POST', '/resolveSession', 'sessionId=console&transport=TCP'),
    status: 400,
  },
  { name: 'health', event: functionUrlEvent('GET', '/health'), status: 200, body: '{"status":"ok"}' },
  // The same gateway request through accessMode 'private' (REST API, payload 1.0): the event adapter's cost.
  { name: 'hit (REST API event)', event: restApiEvent({ rawQueryString: GATEWAY_QUERY, sourceIp: '10.20.0.5' }), status: 200, body: HIT_BODY },
];
