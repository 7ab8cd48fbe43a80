import type { Logger } from '@aws-lambda-powertools/logger';
import type {
  APIGatewayProxyEvent,
  APIGatewayProxyEventV2,
  APIGatewayProxyResult,
  APIGatewayProxyStructuredResultV2,
  Context,
} from 'aws-lambda';
import type { CidrSet } from '../core/ip.js';
import type { Log } from '../core/log.js';
import { timedStore, type Metrics } from '../core/metrics.js';
import { createRouter, type HttpRequest, type Router } from '../core/http-router.js';
import { SessionResolver } from '../core/resolve.js';
import type { SessionStore } from '../core/session-store.js';
import type { TokenStore } from '../core/tokens/token-store.js';
import { TokenVerifier, type VerificationMarker } from '../core/tokens/verify-token.js';
import type { PortalHandler } from '../core/portal/portal-app.js';
import { isRestApiEvent, requestFromRestEvent, restApiResult } from './rest-api-event.js';

/** What the portal shares with the router: the same resolver (and its cache), token store and log. */
export interface PortalShared {
  readonly resolver: SessionResolver;
  readonly tokens: TokenStore;
  readonly log: Log;
  readonly now?: () => number;
}

export interface ResolverHandlerDeps {
  readonly store: SessionStore;
  /** Powertools' Logger in Lambda (it then also gets the invocation's context); any Log elsewhere. */
  readonly logger: Logger | Log;
  /** The gateway's and DCV servers' callers (every route but the portal's); absent: anyone. */
  readonly allowedSources?: CidrSet;
  /** The secret first path segment of every route but the portal's. */
  readonly pathPrefix?: string;
  /** The portal's callers (users' browsers); absent: anyone. */
  readonly portalAllowedSources?: CidrSet;
  /**
   * Serve the gateway's and DCV servers' routes (POST …/resolveSession, …/verifyToken). `false` in the
   * portal's own function: it uses the store and tokens for the portal only, and those paths are a 404.
   * @default true
   */
  readonly gatewayRoutes?: boolean;
  /** Turns on POST …/verifyToken for the DCV servers (and is what the portal mints tokens into). */
  readonly tokens?: TokenStore;
  readonly now?: () => number;
  /** Resolutions, verifications, latencies (EMF in Lambda and `serve --metrics`). @default none */
  readonly metrics?: Metrics;
  /** Turns on the portal (GET /portal …); it needs `tokens`. */
  readonly portal?: (shared: PortalShared) => PortalHandler;
}

/**
 * With a Lambda context (the Lambda entry), logs carry the invocation's fields (function_request_id, …)
 * through the logger's addContext (Powertools' Logger or LambdaLog). Without one (the local server), nothing is invented: logs carry only
 * the event's own requestContext.requestId.
 *
 * A Function URL event (payload 2.0) gets a Function URL result; a REST API proxy event (payload 1.0, the
 * `private` access mode) gets a REST API result. Both go through the same router.
 */
export interface ResolverHandler {
  (event: APIGatewayProxyEvent, context?: Context): Promise<APIGatewayProxyResult>;
  // Last, so ReturnType<ResolverHandler> is the Function URL result.
  (event: APIGatewayProxyEventV2, context?: Context): Promise<APIGatewayProxyStructuredResultV2>;
}
type AnyProxyEvent = APIGatewayProxyEventV2 | APIGatewayProxyEvent;
type AnyProxyResult = APIGatewayProxyStructuredResultV2 | APIGatewayProxyResult;

/**
 * Kept from a Lambda invocation's remaining time for what follows the portal's calls: rendering the page,
 * returning the answer, and the timers' own lateness on a busy instance.
 */
export const DEADLINE_MARGIN_MS = 500;

/** When an invocation's answer must be ready: its remaining time less DEADLINE_MARGIN_MS (epoch ms). */
export function invocationDeadline(context: Pick<Context, 'getRemainingTimeInMillis'>, now: number = Date.now()): number {
  return now + context.getRemainingTimeInMillis() - DEADLINE_MARGIN_MS;
}

/** Reads a Function URL event (payload 2.0) defensively: a malformed event is a 4xx, never a crash. */
export function requestFromEvent(event: Partial<APIGatewayProxyEventV2> | undefined, deadline?: number): HttpRequest {
  const http = event?.requestContext?.http;
  const contentType = event?.headers?.['content-type'];
  return {
    headers: headersOf(event),
    scheme: 'https',
    method: typeof http?.method === 'string' ? http.method.toUpperCase() : 'GET',
    path: typeof event?.rawPath === 'string' ? event.rawPath : '/',
    rawQueryString: typeof event?.rawQueryString === 'string' ? event.rawQueryString : '',
    sourceIp: typeof http?.sourceIp === 'string' ? http.sourceIp : undefined,
    requestId: requestIdOf(event),
    body: bodyOf(event),
    ...(typeof contentType === 'string' ? { contentType } : {}),
    ...(deadline === undefined ? {} : { deadline }),
  };
}

/** Function URL headers are lower-case already; cookies arrive apart, in `cookies` (payload 2.0). */
function headersOf(event: Partial<APIGatewayProxyEventV2> | undefined): Record<string, string | undefined> {
  const headers = typeof event?.headers === 'object' && event.headers !== null ? { ...event.headers } : {};
  const cookies = Array.isArray(event?.cookies) ? event.cookies.filter((c) => typeof c === 'string') : [];
  if (cookies.length > 0) headers.cookie = cookies.join('; ');
  return headers;
}

/** Function URLs base64-encode bodies they don't consider text (form bodies among them). */
function bodyOf(event: Partial<APIGatewayProxyEventV2> | undefined): string | undefined {
  if (typeof event?.body !== 'string') return undefined;
  return event.isBase64Encoded === true ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
}

/**
 * The shared router over a store (and, optionally, a token store): what the Lambda handler wraps and
 * the local server calls directly.
 */
export function createResolverRouter(deps: ResolverHandlerDeps): Router {
  const log = deps.logger;
  const store = deps.metrics ? timedStore(deps.store, deps.metrics) : deps.store;
  const resolver = new SessionResolver({ store, log, now: deps.now });
  const gateway = deps.gatewayRoutes ?? true;
  // A store that can record LastVerifiedAt (DynamoDB) gets a yes recorded for desktops on demand.
  const marker = 'markVerified' in deps.store ? (deps.store as SessionStore & VerificationMarker) : undefined;
  const verifier = deps.tokens && gateway ? new TokenVerifier({ tokens: deps.tokens, sessions: resolver, log, now: deps.now, marker }) : undefined;
  if (deps.portal && !deps.tokens) throw new Error('the portal needs a token store (it issues the connect tokens)');
  const portal = deps.portal && deps.tokens ? deps.portal({ resolver, tokens: deps.tokens, log, now: deps.now }) : undefined;
  return createRouter({
    portal,
    resolver: gateway ? resolver : undefined,
    log,
    allowedSources: deps.allowedSources,
    pathPrefix: deps.pathPrefix,
    portalAllowedSources: deps.portalAllowedSources,
    verifier,
    metrics: deps.metrics,
  });
}

/**
 * The resolver as a Lambda handler. The Lambda entry and the local HTTP server both call this same
 * function; only the store and the source of the event differ.
 */
export function createResolverHandler(deps: ResolverHandlerDeps): ResolverHandler {
  const route = createResolverRouter(deps);
  const handle = async function resolveSessionHandler(event: AnyProxyEvent, deadline?: number): Promise<AnyProxyResult> {
    if (isRestApiEvent(event)) {
      const request = requestFromRestEvent(event);
      return restApiResult(await route(deadline === undefined ? request : { ...request, deadline }));
    }
    const response = await route(requestFromEvent(event as APIGatewayProxyEventV2, deadline));
    return {
      statusCode: response.statusCode,
      headers: response.headers,
      body: response.body,
      ...(response.cookies ? { cookies: [...response.cookies] } : {}),
    };
  };
  // The invocation's fields on every log line: Powertools' Logger and LambdaLog both have addContext.
  // Powertools' temporary keys are cleared after each invocation, as its middleware's resetKeys did.
  // No middy and no Powertools import here: together 20–28 ms of the resolver's cold start.
  const log = deps.logger as Log & { addContext?(context: Context): void; resetKeys?(): void };
  const handler = async (event: AnyProxyEvent, context?: Context): Promise<AnyProxyResult> => {
    if (!context) return handle(event);
    log.addContext?.(context);
    try {
      // The portal bounds its calls by this, so a slow identity provider is its 503 page, not a timeout.
      return await handle(event, typeof context.getRemainingTimeInMillis === 'function' ? invocationDeadline(context) : undefined);
    } finally {
      log.resetKeys?.();
    }
  };
  return handler as ResolverHandler;
}

/** The event's own request id (Function URL, or the local server's), bounded: events can be hand-made. */
function requestIdOf(event: Partial<APIGatewayProxyEventV2> | undefined): string | undefined {
  const id = event?.requestContext?.requestId;
  return typeof id === 'string' && id.length <= 128 ? id : undefined;
}
