import { request } from 'node:http';

/** An answer as the DCV server would see it. */
export interface HttpReply {
  readonly status: number;
  readonly type?: string;
  readonly body: string;
}

const FORM = 'application/x-www-form-urlencoded';

/** A form body as a DCV server sends it (field values percent-encoded). */
export function verifyForm(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

/** One HTTP request to a loopback server, with an explicit Content-Length; no keep-alive. */
export function httpSend(baseUrl: string, path: string, options: { method?: string; body?: string | Buffer; contentType?: string | null } = {}): Promise<HttpReply> {
  const url = new URL(baseUrl);
  const body = options.body === undefined ? undefined : Buffer.isBuffer(options.body) ? options.body : Buffer.from(options.body, 'utf8');
  const headers: Record<string, string> = {};
  const contentType = options.contentType === undefined ? FORM : options.contentType;
  if (contentType !== null && body !== undefined) headers['content-type'] = contentType;
  if (body !== undefined) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method: options.method ?? 'POST', path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('request timed out')));
    req.end(body);
  });
}

/** What a verifier answer must look like: one of the two documented XML shapes; returns its parts. */
export function parseAuthXml(body: string): { result: 'yes'; username: string } | { result: 'no'; message: string } | undefined {
  const yes = /^<auth result="yes"><username>([^<]*)<\/username><\/auth>$/.exec(body);
  if (yes && wellEscaped(yes[1]!)) return { result: 'yes', username: unescapeXml(yes[1]!) };
  const no = /^<auth result="no"><message>([^<]*)<\/message><\/auth>$/.exec(body);
  if (no && wellEscaped(no[1]!)) return { result: 'no', message: unescapeXml(no[1]!) };
  return undefined;
}

/** Text content as XML 1.0 allows it: every '&' starts one of the five entities, no '>' or quote left raw, no forbidden characters. */
function wellEscaped(text: string): boolean {
  if (/[>"']/.test(text)) return false;
  if (/&(?!(lt|gt|amp|quot|apos);)/.test(text)) return false;
  // eslint-disable-next-line no-control-regex
  return !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

function unescapeXml(text: string): string {
  return text.replace(/&(lt|gt|amp|quot|apos);/g, (_, e: string) => ({ lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" })[e]!);
}

// startServeProcess and ServeProcess live with the other CLI helpers; re-exported for the token tests.
export { startServeProcess, type ServeProcess } from './run-cli';
