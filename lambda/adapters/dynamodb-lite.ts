import { createHash, createHmac } from 'node:crypto';
import type { Agent, ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import type { DynamoApi, DynamoOperation } from './dynamodb-api.js';

/**
 * A lean DynamoDB client for cold start: any DynamoDB operation as one SigV4-signed JSON POST over
 * node:http(s) with keep-alive, nothing else loaded. Behaviour the resolve path relies on:
 * - every attempt has a timeout, and the whole call a deadline (a hanging store fails in about 2 s);
 * - throttling (ThrottlingException, ProvisionedThroughputExceededException, RequestLimitExceeded),
 *   5xx answers and dropped connections are retried after a short jittered backoff, then fail;
 * - errors carry the service's error type as `name` (the part of `__type` after '#', e.g.
 *   'ConditionalCheckFailedException') and the HTTP status as `statusCode`, like the SDK's;
 * - credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (what Lambda sets),
 *   region from AWS_REGION, endpoint from AWS_ENDPOINT_URL_DYNAMODB, then AWS_ENDPOINT_URL.
 * The AWS SDK stays the client for discovery and the CLI (profiles, SSO, IMDS …).
 */
export interface LiteCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface DynamoLiteOptions {
  /** @default AWS_REGION, then AWS_DEFAULT_REGION */
  readonly region?: string;
  /** @default AWS_ENDPOINT_URL_DYNAMODB, then AWS_ENDPOINT_URL, then https://dynamodb.<region>.amazonaws.com */
  readonly endpoint?: string;
  /** @default read from the environment on every call (Lambda's variables) */
  readonly credentials?: LiteCredentials | (() => LiteCredentials);
  /** Milliseconds one attempt may take, connecting included. @default 1000 */
  readonly attemptTimeoutMs?: number;
  /** Milliseconds the whole call may take, retries included. @default 2000 */
  readonly deadlineMs?: number;
  /** @default 3 */
  readonly maxAttempts?: number;
  /** First backoff in ms; doubled each retry, with full jitter. @default 25 */
  readonly backoffBaseMs?: number;
  readonly env?: Record<string, string | undefined>;
  /** The signing clock (tests). @default () => new Date() */
  readonly now?: () => Date;
}

/** An error answered by DynamoDB (or a transport failure), shaped like the SDK's service exceptions. */
export class DynamoLiteError extends Error {
  readonly statusCode?: number;
  readonly $metadata: { httpStatusCode?: number; attempts: number };
  readonly $retryable: boolean;

  constructor(name: string, message: string, details: { statusCode?: number; attempts?: number; retryable?: boolean; code?: string } = {}) {
    super(message);
    this.name = name;
    this.statusCode = details.statusCode;
    this.$metadata = { httpStatusCode: details.statusCode, attempts: details.attempts ?? 1 };
    this.$retryable = details.retryable ?? false;
    if (details.code) (this as { code?: string }).code = details.code;
  }
}

const RETRYABLE_TYPES = new Set(['ThrottlingException', 'ProvisionedThroughputExceededException', 'RequestLimitExceeded', 'InternalServerError', 'ServiceUnavailable']);
/** Transport failures worth one more attempt: a reused keep-alive socket the server closed, a refused connect. */
const RETRYABLE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ETIMEDOUT', 'EAI_AGAIN']);

interface Transport {
  readonly request: (options: RequestOptions, callback: (res: IncomingMessage) => void) => ClientRequest;
  readonly agent: Agent;
}

interface Target {
  readonly url: URL;
  readonly region: string;
}

export class DynamoLiteClient implements DynamoApi {
  private transport?: Promise<Transport>;
  private target?: Target;
  private signingKey?: { cacheKey: string; key: Buffer };
  private readonly env: Record<string, string | undefined>;

  constructor(private readonly options: DynamoLiteOptions = {}) {
    this.env = options.env ?? process.env;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async call<T = Record<string, any>>(operation: DynamoOperation, input: Record<string, unknown>): Promise<T> {
    const target = this.resolveTarget();
    const transport = await this.loadTransport(target.url);
    const body = JSON.stringify(input);
    const deadline = Date.now() + (this.options.deadlineMs ?? 2000);
    const maxAttempts = this.options.maxAttempts ?? 3;
    for (let attempt = 1; ; attempt++) {
      const remaining = deadline - Date.now();
      try {
        const timeout = Math.min(this.options.attemptTimeoutMs ?? 1000, remaining);
        return (await this.send(transport, target, operation, body, timeout, attempt)) as T;
      } catch (error) {
        const retryable = error instanceof DynamoLiteError ? error.$retryable : RETRYABLE_CODES.has((error as { code?: string }).code ?? '');
        const backoff = Math.random() * (this.options.backoffBaseMs ?? 25) * 2 ** (attempt - 1);
        // Past the deadline (or nearly), another attempt could not finish in time: fail now.
        if (!retryable || attempt >= maxAttempts || deadline - Date.now() - backoff < 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, backoff));
      }
    }
  }

  /**
   * Init-phase work, for a Lambda entry to call at module load (Lambda runs init with a CPU burst, the
   * first invocation with the function's share): read the configuration and load node:http(s) (with
   * TLS, for a real endpoint). Never throws: a bad configuration is reported by the first call.
   */
  warm(): void {
    try {
      void this.loadTransport(this.resolveTarget().url).catch(() => undefined);
    } catch {
      // resolveTarget's error is thrown again, to the caller, by the first call.
    }
  }

  close(): void {
    void this.transport?.then((t) => t.agent.destroy());
  }

  private resolveTarget(): Target {
    if (this.target) return this.target;
    const env = this.env;
    const region = this.options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
    if (!region) throw new DynamoLiteError('ConfigError', 'no AWS region: set AWS_REGION');
    const endpoint =
      this.options.endpoint ??
      env.AWS_ENDPOINT_URL_DYNAMODB ??
      env.AWS_ENDPOINT_URL ??
      `https://dynamodb.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new DynamoLiteError('ConfigError', `DynamoDB endpoint is not a URL: ${endpoint}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new DynamoLiteError('ConfigError', `DynamoDB endpoint must be http(s): ${endpoint}`);
    }
    return (this.target = { url, region });
  }

  private credentials(): LiteCredentials {
    const given = this.options.credentials;
    if (given) return typeof given === 'function' ? given() : given;
    const accessKeyId = this.env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = this.env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) {
      throw new DynamoLiteError('CredentialsError', 'no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set');
    }
    return { accessKeyId, secretAccessKey, sessionToken: this.env.AWS_SESSION_TOKEN || undefined };
  }

  /**
   * node:https (and TLS) is loaded only for an https endpoint: a loopback test endpoint needs node:http
   * alone. process.getBuiltinModule, not an ES import: on Node 22 an ES import of node:http(s) builds its
   * whole namespace, whose WebSocket getters load undici (~45 ms of a cold start, for nothing used here).
   */
  private loadTransport(url: URL): Promise<Transport> {
    return (this.transport ??= (async () => {
      const https = url.protocol === 'https:';
      const mod = (process.getBuiltinModule?.(https ? 'node:https' : 'node:http') ??
        (await (https ? import('node:https') : import('node:http')))) as typeof import('node:http');
      // Keep-alive: the warm path reuses one TLS connection instead of a handshake per lookup.
      const agent = new mod.Agent({ keepAlive: true, maxSockets: 50 });
      return { request: mod.request as Transport['request'], agent };
    })());
  }

  private send(transport: Transport, target: Target, operation: DynamoOperation, body: string, timeoutMs: number, attempt: number): Promise<unknown> {
    const headers = this.sign(target, operation, body);
    return new Promise((resolve, reject) => {
      const req = transport.request(
        {
          protocol: target.url.protocol,
          hostname: target.url.hostname.replace(/^\[|\]$/g, ''),
          port: target.url.port || undefined,
          method: 'POST',
          path: target.url.pathname || '/',
          headers,
          agent: transport.agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            let parsed: Record<string, unknown> | undefined;
            try {
              parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
            } catch {
              parsed = undefined;
            }
            if (status === 200 && parsed) return resolve(parsed);
            reject(serviceError(status, parsed, text, attempt));
          });
        },
      );
      const timer = setTimeout(() => {
        req.destroy(new DynamoLiteError('TimeoutError', `DynamoDB ${operation} did not answer within ${timeoutMs} ms`, { attempts: attempt, retryable: true, code: 'ETIMEDOUT' }));
      }, timeoutMs);
      req.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      req.end(body);
    });
  }

  /** SigV4 for one POST to '/' with a JSON body (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html). */
  private sign(target: Target, operation: DynamoOperation, body: string): Record<string, string> {
    const credentials = this.credentials();
    const amzDate = (this.options.now?.() ?? new Date()).toISOString().replace(/[-:]|\.\d{3}/g, '');
    const day = amzDate.slice(0, 8);
    const headers: Record<string, string> = {
      'content-type': 'application/x-amz-json-1.0',
      host: target.url.host,
      'x-amz-date': amzDate,
      'x-amz-target': `DynamoDB_20120810.${operation}`,
    };
    if (credentials.sessionToken) headers['x-amz-security-token'] = credentials.sessionToken;
    const names = Object.keys(headers).sort();
    const signedHeaders = names.join(';');
    const canonical = [
      'POST',
      target.url.pathname || '/',
      '',
      ...names.map((name) => `${name}:${headers[name]}`),
      '',
      signedHeaders,
      sha256Hex(body),
    ].join('\n');
    const scope = `${day}/${target.region}/dynamodb/aws4_request`;
    const stringToSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${sha256Hex(canonical)}`;
    const signature = createHmac('sha256', this.key(credentials.secretAccessKey, day, target.region)).update(stringToSign).digest('hex');
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    headers['content-length'] = String(Buffer.byteLength(body));
    return headers;
  }

  /** The derived signing key changes once a day (and with the secret): derive it once, not per request. */
  private key(secret: string, day: string, region: string): Buffer {
    const cacheKey = `${secret}\n${day}\n${region}`;
    if (this.signingKey?.cacheKey === cacheKey) return this.signingKey.key;
    let key = hmac(`AWS4${secret}`, day);
    for (const part of [region, 'dynamodb', 'aws4_request']) key = hmac(key, part);
    this.signingKey = { cacheKey, key };
    return key;
  }
}

function sha256Hex(data: string): string {
  return createHash('sha256').update(data, 'utf8').digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

function serviceError(status: number, parsed: Record<string, unknown> | undefined, text: string, attempts: number): DynamoLiteError {
  const type = typeof parsed?.__type === 'string' ? parsed.__type : '';
  const name = type ? type.slice(type.lastIndexOf('#') + 1) : status >= 500 ? 'InternalServerError' : status === 200 ? 'SerializationError' : `Http${status}Error`;
  const message = (parsed?.message ?? parsed?.Message ?? (parsed ? `DynamoDB answered ${status}` : `DynamoDB answered ${status} with a body that is not JSON: ${text.slice(0, 200)}`)) as string;
  return new DynamoLiteError(name, String(message), { statusCode: status, attempts, retryable: status >= 500 || RETRYABLE_TYPES.has(name) });
}

/** The resolve path's client: Lambda's environment, ~2 s worst case, keep-alive. */
export function createLiteDynamoApi(options: DynamoLiteOptions = {}): DynamoLiteClient {
  return new DynamoLiteClient(options);
}
