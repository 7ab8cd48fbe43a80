import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { functionUrlEvent } from './function-url-event';
import { signInWithoutBrowser } from './oidc-provider';

/**
 * A scripted browser for the portal behind a Function URL: it sends Function URL events for `host` to any
 * invoker (the Lambda entry in-process, or a shipped bundle), keeps the portal's cookies as a browser would,
 * and signs in at the test OpenID provider (signInWithoutBrowser).
 */
export type Invoke = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;

export interface PortalUserAgent {
  readonly cookies: Record<string, string>;
  call(method: string, path: string, init?: { query?: string; form?: Record<string, string> }): Promise<APIGatewayProxyStructuredResultV2>;
  /** /portal/login → the provider → /portal/callback; returns the callback's answer. */
  signIn(login: string): Promise<APIGatewayProxyStructuredResultV2>;
}

export function portalUserAgent(invoke: Invoke, host: string, options: { sourceIp?: string; prefix?: string; ca?: Buffer } = {}): PortalUserAgent {
  const cookies: Record<string, string> = {};
  const prefix = options.prefix ?? '';

  async function call(method: string, path: string, init: { query?: string; form?: Record<string, string> } = {}) {
    const event = functionUrlEvent({ method, path, rawQueryString: init.query ?? '', sourceIp: options.sourceIp ?? '198.51.100.20', headers: { host } });
    const withCookies: APIGatewayProxyEventV2 = {
      ...event,
      cookies: Object.entries(cookies).map(([k, v]) => `${k}=${v}`),
      ...(init.form
        ? {
            body: Buffer.from(new URLSearchParams(init.form).toString()).toString('base64'),
            isBase64Encoded: true,
            headers: { ...event.headers, host, origin: `https://${host}`, 'sec-fetch-site': 'same-origin', 'content-type': 'application/x-www-form-urlencoded' },
          }
        : {}),
    };
    const answer = await invoke(withCookies);
    for (const c of answer.cookies ?? []) {
      const [pair] = c.split(';');
      const [name, value] = [pair!.slice(0, pair!.indexOf('=')), pair!.slice(pair!.indexOf('=') + 1)];
      if (value === '') delete cookies[name];
      else cookies[name] = value;
    }
    return answer;
  }

  async function signIn(login: string) {
    const start = await call('GET', `${prefix}/portal/login`);
    if (start.statusCode !== 302) throw new Error(`login answered ${start.statusCode}: ${String(start.body).slice(0, 200)}`);
    const back = await signInWithoutBrowser(String(start.headers!.Location), login, host, { ca: options.ca });
    return call('GET', back.pathname, { query: back.search.slice(1) });
  }

  return { cookies, call, signIn };
}
