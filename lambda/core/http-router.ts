import { createHash, timingSafeEqual } from 'node:crypto';
import { ForbiddenError, HttpError, MethodNotAllowedError, NotFoundError, PayloadTooLargeError } from './errors.js';
import { parseIp, type CidrSet } from './ip.js';
import type { Log } from './log.js';
import { MetricName, NO_METRICS, resolveOutcome, verifyOutcome, type Metrics } from './metrics.js';
import { describeError, parseResolveQuery, type SessionResolver } from './resolve.js';
import { handleVerifyToken } from './tokens/verify-route.js';
import type { TokenVerifier } from './tokens/verify-token.js';
import type { PortalHandler } from './portal/portal-app.js';

/**
 * The HTTP surface of the resolver, independent of how the request arrived (Function URL event or
 * node:http). Decides routing, 403/404/405, and the shape of every answer.
 */
export interface HttpRequest {
  readonly method: string;
  /** Path without the query string, as received (percent-encoding intact). */
  readonly path: string;
  readonly rawQueryString: string;
  /** The TCP peer (Function URL: requestContext.http.sourceIp). Never X-Forwarded-For. */
  readonly sourceIp?: string;
  /** Carried into every log line about this request. */
  readonly requestId?: string;
  /** The body as text (UTF-8); absent or '' when there is none. Only the verifier reads it. */
  readonly body?: string;
  /** The Content-Type header, as received. */
  readonly contentType?: string;
  /** The adapter refused to read a body over this many bytes; the route answers 413 in its own format. */
  readonly bodyTooLarge?: number;
  /**
   * Request headers, lower-case names, repeated ones joined (`cookie` with '; '). Only the portal reads
   * them (cookie, host, origin, sec-fetch-site).
   */
  readonly headers?: Readonly<Record<string, string | undefined>>;
  /** How the request reached us: the portal builds its own absolute URLs from it. @default 'https' */
  readonly scheme?: 'http' | 'https';
  /**
   * When the answer must be ready (epoch ms, Date.now()'s clock): on Lambda the invocation's end less a
   * margin. Only the portal reads it (its calls to the identity provider and Secrets Manager get what
   * is left); absent: the portal's own budget.
   */
  readonly deadline?: number;
}

export interface HttpResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly body: string;
  /** `Set-Cookie` values (a header map can hold only one); Function URLs take them as `cookies`. */
  readonly cookies?: readonly string[];
}

export interface RouterOptions {
  /** The gateway's resolver (POST …/resolveSession); absent (the portal's own function): that path is a 404. */
  readonly resolver?: SessionResolver;
  readonly log: Log;
  /**
   * Callers allowed by source address on every route but the portal's (the gateway's and the DCV servers'
   * routes, /health, and any unknown path); absent means any caller.
   */
  readonly allowedSources?: CidrSet;
  /** A secret first path segment of those same routes (never the portal's); wrong or missing is an ordinary 404. */
  readonly pathPrefix?: string;
  /**
   * Callers allowed on the portal's routes (/portal, /portal/…, without any prefix): users' browsers, not
   * the gateway. Absent means any caller.
   */
  readonly portalAllowedSources?: CidrSet;
  /** The DCV servers' token verifier (POST …/verifyToken[/<server>]); absent: that path is a 404. */
  readonly verifier?: TokenVerifier;
  /** Resolutions and verifications by outcome, resolve latency, 5xx answers. @default NO_METRICS */
  readonly metrics?: Metrics;
  /** The self-service portal (GET /portal …); absent: those paths are a 404. */
  readonly portal?: PortalHandler;
}

export type Router = (request: HttpRequest) => Promise<HttpResponse>;

const JSON_HEADERS = { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' } as const;
const RESOLVE_SUFFIX = '/resolveSession';
const RESOLVE_METHODS = ['POST'] as const;
const HEALTH_METHODS = ['GET', 'HEAD'] as const;

export function jsonResponse(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResponse {
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) };
}

function errorResponse(error: HttpError): HttpResponse {
  return jsonResponse(error.statusCode, error.toJSON(), error.headers);
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Strips and checks the secret prefix in constant time; returns the rest of the path, or undefined. */
function makePrefixStripper(prefix: string | undefined): (path: string) => string | undefined {
  if (!prefix) return (path) => path;
  const expected = digest(prefix);
  return (path) => {
    const end = path.indexOf('/', 1);
    const segment = end === -1 ? path.slice(1) : path.slice(1, end);
    // Hashing first makes the comparison independent of the guess's length as well as its content.
    const ok = timingSafeEqual(digest(segment), expected);
    return ok && end !== -1 ? path.slice(end) : undefined;
  };
}

type Route = 'resolveSession' | 'verifyToken' | 'health' | 'portal' | 'unknown';

/** `…/verifyToken` or `…/verifyToken/<server>` (one segment: the asking DCV server's endpoint). */
const VERIFY_PATH = /\/verifyToken(?:\/([^/]+))?$/;
/** Under a secret prefix, exactly `/verifyToken` or `/verifyToken/<server>` after it. */
const VERIFY_PATH_STRICT = /^\/verifyToken(?:\/([^/]+))?$/;

/**
 * Without a prefix, any path ending in /resolveSession or /verifyToken[/<server>] (the gateway's url may carry
 * a path of its own). With one (`strict`), what follows the prefix must be exactly the route: the prefix is the
 * first segment and nothing else may sit between it and the route.
 */
function routeOf(path: string | undefined, strict = false): Route {
  if (path === undefined) return 'unknown';
  if (strict ? path === RESOLVE_SUFFIX : path.endsWith(RESOLVE_SUFFIX)) return 'resolveSession';
  if ((strict ? VERIFY_PATH_STRICT : VERIFY_PATH).test(path)) return 'verifyToken';
  if (path === '/health') return 'health';
  return 'unknown';
}

/** The portal's paths, as received: never under the secret prefix (its users would all hold it). */
export function isPortalPath(path: string): boolean {
  return path === '/portal' || path.startsWith('/portal/');
}

/**
 * Which allow-list a request answers to, from its path alone (so an adapter can refuse a caller before it
 * reads the body): the portal's for the portal's paths when a portal is served, the gateway's for the rest.
 * Deciding before the prefix is checked means a refused caller gets 403 whatever it guesses, and learns
 * nothing about the prefix.
 */
export function sourceCheck(
  options: Pick<RouterOptions, 'allowedSources' | 'portalAllowedSources'> & { readonly portal: boolean },
): (path: string, sourceIp: string | undefined) => boolean {
  const within = (list: CidrSet | undefined, sourceIp: string | undefined) => {
    if (!list) return true;
    const ip = sourceIp === undefined ? undefined : parseIp(sourceIp);
    return ip !== undefined && list.contains(ip);
  };
  return (path, sourceIp) =>
    options.portal && isPortalPath(path) ? within(options.portalAllowedSources, sourceIp) : within(options.allowedSources, sourceIp);
}

function clip(value: string | undefined, max = 64): string | undefined {
  return value === undefined || value.length <= max ? value : `${value.slice(0, max)}…`;
}

export function createRouter(options: RouterOptions): Router {
  const { resolver, log, verifier, portal } = options;
  const metrics = options.metrics ?? NO_METRICS;
  const stripPrefix = makePrefixStripper(options.pathPrefix);
  const sourceAllowed = sourceCheck({ ...options, portal: portal !== undefined });
  const strict = Boolean(options.pathPrefix);
  const verifyPath = strict ? VERIFY_PATH_STRICT : VERIFY_PATH;

  async function handleResolve(resolver: SessionResolver, request: HttpRequest, fields: Record<string, unknown>): Promise<HttpResponse> {
    if (request.method !== 'POST') throw new MethodNotAllowedError(RESOLVE_METHODS);
    if (request.bodyTooLarge) throw new PayloadTooLargeError(`request body must be at most ${request.bodyTooLarge} bytes`);
    const params = new URLSearchParams(request.rawQueryString);
    fields.sessionId = clip(params.get('sessionId') ?? undefined);
    fields.transport = clip(params.get('transport') ?? undefined, 8);
    const answer = await resolver.resolve(parseResolveQuery(params), { requestId: request.requestId });
    fields.endpoint = answer.DcvServerEndpoint;
    return jsonResponse(200, answer);
  }

  return async function route(request: HttpRequest): Promise<HttpResponse> {
    const started = performance.now();
    const fields: Record<string, unknown> = {
      requestId: request.requestId,
      route: 'unknown',
      sourceIp: request.sourceIp,
    };
    let response: HttpResponse;
    let notFoundCode: string | undefined;
    try {
      if (!sourceAllowed(request.path, request.sourceIp)) throw new ForbiddenError('caller address is not allowed');
      const portalPath = portal !== undefined && isPortalPath(request.path);
      const path = portalPath ? request.path : stripPrefix(request.path);
      const route: Route = portalPath ? 'portal' : routeOf(path, strict);
      fields.route = route;
      if (route === 'resolveSession' && resolver) {
        response = await handleResolve(resolver, request, fields);
      } else if (route === 'verifyToken') {
        // Every answer on this path is the DCV server's XML, refusals included.
        response = await handleVerifyToken(verifier, request, verifyPath.exec(path!)![1], fields);
      } else if (route === 'portal' && portal) {
        // Pages and redirects: every answer, refusals included, is the portal's own HTML.
        response = await portal({ request, basePath: '', path: request.path, fields });
      } else if (request.bodyTooLarge) {
        throw new PayloadTooLargeError(`request body must be at most ${request.bodyTooLarge} bytes`);
      } else if (route === 'health') {
        if (!(HEALTH_METHODS as readonly string[]).includes(request.method)) {
          throw new MethodNotAllowedError(HEALTH_METHODS);
        }
        response = jsonResponse(200, { status: 'ok' });
      } else {
        throw new NotFoundError('unknown path; the resolver answers POST …/resolveSession and POST …/verifyToken');
      }
    } catch (error) {
      if (error instanceof HttpError) {
        response = errorResponse(error);
        fields.reason = error.message;
        if (error instanceof NotFoundError) notFoundCode = error.code;
      } else {
        log.error('unexpected error', { requestId: request.requestId, error: describeError(error) });
        response = jsonResponse(500, { error: 'InternalError', message: 'internal error' });
      }
    }
    fields.status = response.statusCode;
    const ms = performance.now() - started;
    fields.ms = Math.round(ms * 1000) / 1000;
    log.info('request', fields);
    recordMetrics(metrics, request, fields, response.statusCode, notFoundCode, ms);
    return response;
  };
}

/** One request's metrics, from what the log line already says (a refused caller never got a route: its path tells). */
function recordMetrics(
  metrics: Metrics,
  request: HttpRequest,
  fields: Record<string, unknown>,
  status: number,
  notFoundCode: string | undefined,
  ms: number,
): void {
  const route = fields.route === 'unknown' && status === 403 ? routeOf(request.path) : fields.route;
  if (route === 'resolveSession') {
    metrics.count(MetricName.resolutions, { Outcome: resolveOutcome(status, notFoundCode) });
    metrics.time(MetricName.resolveLatency, ms);
  } else if (route === 'verifyToken') {
    metrics.count(MetricName.verifications, { Outcome: verifyOutcome(status, fields.result, fields.reason) });
  }
  if (status >= 500) metrics.count(MetricName.serverErrors);
}
