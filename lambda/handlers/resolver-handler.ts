import middy from '@middy/core';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import type { CidrSet } from '../core/ip';
import type { Log } from '../core/log';
import { createRouter, type HttpRequest } from '../core/http-router';
import { SessionResolver } from '../core/resolve';
import type { SessionStore } from '../core/session-store';

export interface ResolverHandlerDeps {
  readonly store: SessionStore;
  /** Powertools' Logger in Lambda (it then also gets the invocation's context); any Log elsewhere. */
  readonly logger: Logger | Log;
  readonly allowedSources?: CidrSet;
  readonly pathPrefix?: string;
  readonly now?: () => number;
}

/**
 * With a Lambda context (the Lambda entry), logs carry the invocation's fields (function_request_id, …)
 * through Powertools' middleware. Without one (the local server), nothing is invented: logs carry only
 * the event's own requestContext.requestId.
 */
export type ResolverHandler = (
  event: APIGatewayProxyEventV2,
  context?: Context,
) => Promise<APIGatewayProxyStructuredResultV2>;

/** Reads a Function URL event (payload 2.0) defensively: a malformed event is a 4xx, never a crash. */
export function requestFromEvent(event: Partial<APIGatewayProxyEventV2> | undefined): HttpRequest {
  const http = event?.requestContext?.http;
  return {
    method: typeof http?.method === 'string' ? http.method.toUpperCase() : 'GET',
    path: typeof event?.rawPath === 'string' ? event.rawPath : '/',
    rawQueryString: typeof event?.rawQueryString === 'string' ? event.rawQueryString : '',
    sourceIp: typeof http?.sourceIp === 'string' ? http.sourceIp : undefined,
    requestId: requestIdOf(event),
  };
}

/**
 * The resolver as a Lambda handler. The Lambda entry and the local HTTP server both call this same
 * function; only the store and the source of the event differ.
 */
export function createResolverHandler(deps: ResolverHandlerDeps): ResolverHandler {
  const log = deps.logger;
  const resolver = new SessionResolver({ store: deps.store, log, now: deps.now });
  const route = createRouter({
    resolver,
    log,
    allowedSources: deps.allowedSources,
    pathPrefix: deps.pathPrefix,
  });
  const handle = async function resolveSessionHandler(
    event: APIGatewayProxyEventV2,
  ): Promise<APIGatewayProxyStructuredResultV2> {
    const response = await route(requestFromEvent(event));
    return { statusCode: response.statusCode, headers: response.headers, body: response.body };
  };
  const wrapped = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>(handle);
  if (deps.logger instanceof Logger) wrapped.use(injectLambdaContext(deps.logger, { resetKeys: true }));
  const lambdaHandler = wrapped as unknown as (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;
  return (event, context) => (context ? lambdaHandler(event, context) : handle(event));
}

/** The event's own request id (Function URL, or the local server's), bounded: events can be hand-made. */
function requestIdOf(event: Partial<APIGatewayProxyEventV2> | undefined): string | undefined {
  const id = event?.requestContext?.requestId;
  return typeof id === 'string' && id.length <= 128 ? id : undefined;
}
