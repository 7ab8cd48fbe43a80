import type { APIGatewayProxyEvent } from 'aws-lambda';

/**
 * REST API proxy events (payload format 1.0) as a PRIVATE API's Lambda proxy integration delivers them
 * through an execute-api VPC endpoint: `path` is the resource path without the stage, query parameters
 * arrive decoded (single and multi-value), header names keep the caller's case, and the caller's VPC
 * address is `requestContext.identity.sourceIp` next to the endpoint's `vpceId`.
 */
export interface RestEventOptions {
  readonly method?: string;
  /** The path after the stage, e.g. '/resolveSession' for …/prod/resolveSession. */
  readonly path?: string;
  /** The raw query string as sent; API Gateway decodes it into the parameter maps. */
  readonly rawQueryString?: string;
  readonly sourceIp?: string;
  /** Header names as the caller sent them (case kept); a repeated header as an array. */
  readonly headers?: Record<string, string | readonly string[]>;
  readonly body?: string;
  readonly isBase64Encoded?: boolean;
  readonly stage?: string;
  readonly apiId?: string;
  readonly vpceId?: string;
  readonly requestId?: string;
}

/** API Gateway keeps the last value of a repeated parameter in the single-value map, all of them in the multi-value one. */
function queryMaps(rawQueryString: string): Pick<APIGatewayProxyEvent, 'queryStringParameters' | 'multiValueQueryStringParameters'> {
  if (rawQueryString === '') return { queryStringParameters: null, multiValueQueryStringParameters: null };
  // Maps first: a parameter may be called `constructor` or `__proto__`.
  const multi = new Map<string, string[]>();
  for (const [key, value] of new URLSearchParams(rawQueryString)) multi.set(key, [...(multi.get(key) ?? []), value]);
  return {
    queryStringParameters: Object.fromEntries([...multi].map(([key, values]) => [key, values[values.length - 1]!])),
    multiValueQueryStringParameters: Object.fromEntries(multi),
  };
}

function headerMaps(headers: Record<string, string | readonly string[]>): Pick<APIGatewayProxyEvent, 'headers' | 'multiValueHeaders'> {
  const entries = Object.entries(headers)
    .map(([name, value]) => [name, typeof value === 'string' ? [value] : [...value]] as const)
    .filter(([, values]) => values.length > 0);
  // fromEntries, not assignment: a header may be called `__proto__`.
  return {
    headers: Object.fromEntries(entries.map(([name, values]) => [name, values[values.length - 1]!])),
    multiValueHeaders: Object.fromEntries(entries),
  };
}

export function restApiEvent(options: RestEventOptions = {}): APIGatewayProxyEvent {
  const stage = options.stage ?? 'prod';
  const apiId = options.apiId ?? 'a1b2c3d4e5';
  const vpceId = options.vpceId ?? 'vpce-0123456789abcdef0';
  const path = options.path ?? '/resolveSession';
  const method = options.method ?? 'POST';
  const host = `${apiId}-${vpceId}.execute-api.us-east-1.amazonaws.com`;
  const headers = options.headers ?? { Host: host, 'User-Agent': 'dcv-connection-gateway', 'Content-Length': '0' };
  return {
    resource: '/{proxy+}',
    path,
    httpMethod: method,
    ...headerMaps(headers),
    ...queryMaps(options.rawQueryString ?? 'sessionId=console&transport=HTTP'),
    pathParameters: { proxy: path.replace(/^\//, '') },
    stageVariables: null,
    requestContext: {
      accountId: '123456789012',
      apiId,
      authorizer: undefined,
      domainName: host,
      domainPrefix: `${apiId}-${vpceId}`,
      extendedRequestId: 'Qh9zkFqVoAMEb0w=',
      httpMethod: method,
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: options.sourceIp as string,
        user: null,
        userAgent: 'dcv-connection-gateway',
        userArn: null,
        vpcId: 'vpc-0a1b2c3d4e5f60718',
        vpceId,
      },
      path: `/${stage}${path}`,
      protocol: 'HTTP/1.1',
      requestId: options.requestId ?? 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      requestTimeEpoch: 1767225600000,
      resourceId: 'abc123',
      resourcePath: '/{proxy+}',
      stage,
    },
    body: options.body ?? null,
    isBase64Encoded: options.isBase64Encoded ?? false,
  } as APIGatewayProxyEvent;
}
