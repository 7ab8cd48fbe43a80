import middy from '@middy/core';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import type { CidrSet } from '../core/ip';
import { createRouter, type HttpRequest } from '../core/http-router';
import { SessionResolver } from '../core/resolve';
import type { SessionStore } from '../core/session-store';

export interface ResolverHandlerDeps {
  readonly store: SessionStore;
  readonly logger: Logger;
  readonly allowedSources?: CidrSet;
  readonly pathPrefix?: string;
  readonly now?: () => number;
}

export type ResolverHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyStructuredResultV2>;

/** Reads a Function URL event (payload 2.0) defensively: a malformed event is a 4xx, never a crash. */
export function requestFromEvent(event: Partial<APIGatewayProxyEventV2> | undefined): HttpRequest {
  const http = event?.requestContext?.http;
  return {
    method: typeof http?.method === 'string' ? http.method.toUpperCase() : 'GET',
    path: typeof event?.rawPath === 'string' ? event.rawPath : '/',
    rawQueryString: typeof event?.rawQueryString === 'string' ? event.rawQueryString : '',
    sourceIp: typeof http?.sourceIp === 'string' ? http.sourceIp : undefined,
  };
}

/**
 * The resolver as a Lambda handler. The Lambda entry and the local HTTP server both call this same
 * function; only the store and the source of the event differ.
 */
export function createResolverHandler(deps: ResolverHandlerDeps): ResolverHandler {
  const resolver = new SessionResolver({ store: deps.store, log: deps.logger, now: deps.now });
  const route = createRouter({
    resolver,
    log: deps.logger,
    allowedSources: deps.allowedSources,
    pathPrefix: deps.pathPrefix,
  });
  const handle = async function resolveSessionHandler(
    event: APIGatewayProxyEventV2,
  ): Promise<APIGatewayProxyStructuredResultV2> {
    const response = await route(requestFromEvent(event));
    return { statusCode: response.statusCode, headers: response.headers, body: response.body };
  };
  return middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>(handle).use(
    injectLambdaContext(deps.logger, { resetKeys: true }),
  ) as unknown as ResolverHandler;
}
