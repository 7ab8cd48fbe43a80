/**
 * What a resolver (or verifier) URL says about where it points: loopback or not, a Function URL host, the
 * origin + path prefix the gateway and the DCV servers must share. Pure (WHATWG URL only).
 */

const FUNCTION_URL_HOST = /^[a-z0-9]+\.lambda-url\.[a-z0-9-]+\.on\.aws$/;
/** `{api-id}.execute-api.{region}.amazonaws.com` or, through a VPC endpoint, `{api-id}-{vpce-id}.execute-api…`. */
const EXECUTE_API_HOST = /^[a-z0-9]{10}(-vpce-[0-9a-f]{8,17})?\.execute-api\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/;
/** The endpoint's own DNS name: API Gateway finds the API only from a Host or x-apigw-api-id header. */
const VPC_ENDPOINT_HOST = /^vpce-[0-9a-f]{8,17}-[a-z0-9]+(-[a-z0-9-]+)?\.execute-api\.[a-z0-9-]+\.vpce\.amazonaws\.com(\.cn)?$/;

/** `localhost`, 127.0.0.0/8 or ::1, as URL hostnames spell them. */
export function isLoopbackHostname(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

export function isFunctionUrlHostname(hostname: string): boolean {
  return FUNCTION_URL_HOST.test(hostname.toLowerCase());
}

/**
 * What is wrong with an API Gateway (`accessMode: 'private'`) URL as the gateway's or a DCV server's, given
 * the path under the stage the caller appends (`/resolveSession`, `/verifyToken/…`): an execute-api URL must
 * start with its stage, and the endpoint's own DNS name cannot be used at all (neither caller can send the
 * API id header). Undefined for any other host, or a URL that is right.
 */
export function executeApiUrlProblem(url: URL, pathUnderStage: string): { message: string; fix: string } | undefined {
  const host = url.hostname.toLowerCase();
  if (VPC_ENDPOINT_HOST.test(host)) {
    return {
      message: `${host} is the VPC endpoint's own name: API Gateway picks the API from a Host or x-apigw-api-id header, which the gateway and DCV servers cannot send, so every call gets 403`,
      fix: "use the endpoint-specific name <api-id>-<vpce-id>.execute-api.<region>.amazonaws.com/<stage> (the stack's GatewayResolverUrl output)",
    };
  }
  if (!EXECUTE_API_HOST.test(host)) return undefined;
  const stagePath = url.pathname.replace(/\/+$/, '');
  const beforeCall = stagePath.endsWith(pathUnderStage) ? stagePath.slice(0, stagePath.length - pathUnderStage.length) : stagePath;
  if (beforeCall !== '') return undefined;
  return {
    message: 'an API Gateway URL without its stage: API Gateway answers 403 (Missing Authentication Token) before the resolver sees the request',
    fix: "add the stage after the host (…amazonaws.com/prod[/prefix]): use the stack's GatewayResolverUrl output",
  };
}

/** Parses an http(s) URL; undefined for anything else. */
export function parseHttpUrl(text: string): URL | undefined {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

/** Origin and path prefix without a trailing slash: what `/resolveSession` and `/verifyToken` are appended to. */
export interface ResolverBase {
  readonly protocol: string;
  readonly hostname: string;
  /** The port, the scheme's default filled in. */
  readonly port: string;
  readonly prefix: string;
  readonly loopback: boolean;
}

export function resolverBase(url: URL): ResolverBase {
  return {
    protocol: url.protocol,
    hostname: url.hostname.toLowerCase(),
    port: url.port || (url.protocol === 'https:' ? '443' : '80'),
    prefix: url.pathname.replace(/\/+$/, ''),
    loopback: isLoopbackHostname(url.hostname),
  };
}

/** The base as a URL text, the scheme's default port left out. */
export function describeBase(base: ResolverBase): string {
  const defaultPort = base.protocol === 'https:' ? '443' : '80';
  return `${base.protocol}//${base.hostname}${base.port === defaultPort ? '' : `:${base.port}`}${base.prefix}`;
}

/**
 * Whether two bases name the same resolver. Loopback against loopback is never called different: that is
 * the `iam` layout, where the gateway and each DCV server talk to a signing proxy on their own host. When
 * only one side is loopback the hosts cannot be compared (the gateway's `localhost` is some address).
 */
export function compareBases(a: ResolverBase, b: ResolverBase): 'same' | 'different' | 'unknown' {
  if (a.loopback && b.loopback) return 'same';
  if (a.loopback || b.loopback) return a.prefix === b.prefix ? 'unknown' : 'different';
  const same = a.protocol === b.protocol && a.hostname === b.hostname && a.port === b.port && a.prefix === b.prefix;
  return same ? 'same' : 'different';
}

/**
 * `--url` for gateway-config: an http(s) URL, without the trailing slash and `/resolveSession` suffix the
 * gateway would otherwise double. Returns the URL to write and what was changed; throws on anything else.
 */
export function normalizeResolverUrl(text: string): { url: string; notes: string[] } {
  const url = parseHttpUrl(text.trim());
  if (!url) throw new Error(`'${text}' is not an http:// or https:// URL`);
  if (url.search || url.hash || url.username || url.password) throw new Error('must not carry a query string, fragment or credentials');
  const notes: string[] = [];
  let path = url.pathname;
  if (/\/resolveSession\/*$/.test(path)) {
    path = path.replace(/\/resolveSession\/*$/, '');
    notes.push("dropped '/resolveSession': the gateway appends it itself");
  }
  if (/\/+$/.test(path)) {
    path = path.replace(/\/+$/, '');
    if (url.pathname !== '/') notes.push('dropped the trailing slash: the gateway would ask for …//resolveSession');
  }
  if (url.protocol === 'http:' && !isLoopbackHostname(url.hostname)) {
    notes.push(`warning: plain http:// to ${url.hostname}: session lookups and answers cross the network unprotected; use https://`);
  }
  return { url: `${url.origin}${path}`, notes };
}
