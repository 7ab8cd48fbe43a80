import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { SignatureV4 } from '@smithy/signature-v4';
import {
  checkResolverAnswer,
  GATEWAY_HEADERS,
  gatewayRequestUrl,
  type ContractViolation,
  type GatewayQuery,
} from '../core/resolver-contract.js';
import { canonicalQuery, signFunctionUrlRequest } from './sigv4-proxy.js';

/**
 * Sends exactly the gateway's request (POST `<url>/resolveSession?…`, `accept: application/json`, no body)
 * and judges the answer with the pure contract checker. No redirect is followed (the gateway follows none),
 * and the body read is bounded.
 */
export const MAX_ANSWER_BYTES = 64 * 1024;
export const DEFAULT_PROBE_TIMEOUT_MS = 10_000;

export interface ProbeOptions {
  /** Exactly as it stands (or would stand) in `[resolver] url`. */
  readonly resolverUrl: string;
  readonly query: GatewayQuery;
  /** @default 10000 */
  readonly timeoutMs?: number;
  /** Signs the request with SigV4 like `dcv-resolver proxy` (an accessMode=iam Function URL). */
  readonly signer?: SignatureV4;
  /** https: trust these CA certificates (the gateway's `ca-file`). */
  readonly ca?: Buffer;
  /** https: present this client certificate (the gateway's `cert-file` / `cert-key-file`). */
  readonly clientCert?: { readonly cert: Buffer; readonly key: Buffer };
  /** https: accept any certificate (the gateway's `tls-strict = false`). @default true */
  readonly tlsStrict?: boolean;
}

export interface ProbeRequest {
  readonly method: 'POST';
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
}

export type ProbeResult =
  | {
      readonly answered: true;
      readonly request: ProbeRequest;
      readonly status: number;
      readonly headers: IncomingHttpHeaders;
      readonly body: string;
      readonly latencyMs: number;
      readonly violations: readonly ContractViolation[];
      readonly answer?: Readonly<Record<string, unknown>>;
    }
  | {
      readonly answered: false;
      readonly request: ProbeRequest;
      readonly error: string;
      readonly latencyMs: number;
    };

class ProbeTimeout extends Error {
  override readonly name = 'ProbeTimeout';
}

/** A URL the probe can send to: http(s), nothing after the path. Throws an Error naming what is wrong. */
export function parseProbeUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`'${text}' is not a URL (expected e.g. http://127.0.0.1:9000 or https://<id>.lambda-url.<region>.on.aws)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`must be http:// or https://, not '${url.protocol}'`);
  if (url.search || url.hash || url.username || url.password) throw new Error('must not carry a query string, fragment or credentials');
  return url;
}

export async function probeResolver(options: ProbeOptions): Promise<ProbeResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const target = new URL(gatewayRequestUrl(options.resolverUrl, options.query));
  const canonical = canonicalQuery(target.search.slice(1));
  // The path exactly as the gateway builds it (URL normalisation would hide a '//resolveSession').
  const path = target.pathname;
  const url = `${target.origin}${path}?${canonical.text}`;
  let headers: Record<string, string> = { ...GATEWAY_HEADERS };
  if (options.signer) {
    try {
      const signed = await signFunctionUrlRequest(options.signer, target, { method: 'POST', path, query: canonical.signed, headers, body: Buffer.alloc(0) });
      headers = signed.headers;
    } catch (error) {
      // Usually credentials that expired or cannot be refreshed: nothing was sent.
      const request: ProbeRequest = { method: 'POST', url, headers: { ...headers } };
      return { answered: false, request, error: `cannot sign the request: ${(error as Error).message}`, latencyMs: 0 };
    }
  }
  const request: ProbeRequest = { method: 'POST', url, headers: { ...headers } };
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;

  return new Promise<ProbeResult>((resolve) => {
    const secure = target.protocol === 'https:';
    const send = secure ? httpsRequest : httpRequest;
    const req = send({
      protocol: target.protocol,
      hostname: target.hostname.replace(/^\[|\]$/g, ''),
      port: target.port || undefined,
      method: 'POST',
      path: `${path}?${canonical.text}`,
      headers,
      agent: false,
      ...(secure
        ? { ca: options.ca, cert: options.clientCert?.cert, key: options.clientCert?.key, rejectUnauthorized: options.tlsStrict ?? true }
        : {}),
    });
    const timer = setTimeout(() => req.destroy(new ProbeTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      const code = (error as NodeJS.ErrnoException).code;
      resolve({ answered: false, request, error: code && !error.message.includes(code) ? `${error.message} (${code})` : error.message, latencyMs: elapsed() });
    };
    req.on('error', fail);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          req.destroy(new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', fail);
      res.on('end', () => {
        clearTimeout(timer);
        const latencyMs = elapsed();
        const status = res.statusCode ?? 0;
        const body = Buffer.concat(chunks).toString('utf8');
        const verdict = checkResolverAnswer(options.query, { status, headers: res.headers, body });
        resolve({ answered: true, request, status, headers: res.headers, body, latencyMs, violations: verdict.violations, answer: verdict.answer });
      });
    });
    req.end();
  });
}
