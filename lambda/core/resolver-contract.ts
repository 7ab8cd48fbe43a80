/**
 * The gateway → resolver contract (../shared/reference/dcv-contract.md section 1), as a checker: what the
 * gateway sends, and whether an answer is one the gateway can use. Pure: `resolve` and `doctor` build the
 * request here and judge what came back here; the network part is lambda/adapters/gateway-probe.ts.
 */

export const GATEWAY_TRANSPORTS = ['HTTP', 'QUIC'] as const;
export type GatewayTransport = (typeof GATEWAY_TRANSPORTS)[number];

/** The only statuses the gateway's contract knows: an answer, a bad request, no destination. */
export const CONTRACT_STATUSES = [200, 400, 404] as const;

/** The exact field names of a 200 answer, in the documented order. */
export const ANSWER_FIELDS = ['SessionId', 'TransportProtocol', 'DcvServerEndpoint', 'Port', 'WebUrlPath'] as const;

export interface GatewayQuery {
  readonly sessionId: string;
  readonly transport: GatewayTransport;
  readonly clientIpAddress?: string;
}

/** The one header the gateway sends; it sends no body. */
export const GATEWAY_HEADERS: Readonly<Record<string, string>> = { accept: 'application/json' };

/**
 * The gateway's request line for `[resolver] url = '<resolverUrl>'`: it appends `/resolveSession` to the url
 * exactly as written (so a trailing slash shows up as `//resolveSession`, which is the point of probing).
 */
export function gatewayRequestUrl(resolverUrl: string, query: GatewayQuery): string {
  const params = new URLSearchParams({ sessionId: query.sessionId, transport: query.transport });
  if (query.clientIpAddress !== undefined) params.set('clientIpAddress', query.clientIpAddress);
  // %20 rather than '+': what percent-encoding URL builders (and the SigV4 canonical form) produce.
  return `${resolverUrl}/resolveSession?${params.toString().replace(/\+/g, '%20')}`;
}

export interface ResolverAnswer {
  readonly status: number;
  /** Lower-case header names, as node:http gives them. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

export type ContractRule =
  | 'status'
  | 'redirect'
  | 'content-type'
  | 'json'
  | 'missing-field'
  | 'extra-field'
  | 'field-type'
  | 'port'
  | 'transport-echo'
  | 'web-url-path';

export interface ContractViolation {
  readonly rule: ContractRule;
  readonly message: string;
}

export interface ContractVerdict {
  readonly violations: readonly ContractViolation[];
  /** The 200 answer's fields when the body is a JSON object (whatever else is wrong with it). */
  readonly answer?: Readonly<Record<string, unknown>>;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  return `${typeof value === 'object' ? 'an object' : `a ${typeof value}`}`;
}

function header(answer: ResolverAnswer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function statusHint(status: number): string {
  if (status === 401 || status === 403) {
    return ': an access layer refused the request (source allow-list, path prefix, or an accessMode=iam URL that needs signing: --sign, or the proxy)';
  }
  if (status === 405) return ': the resolver does not take POST on this path';
  if (status >= 500) return ': the resolver failed; the gateway cannot connect anyone while it does';
  return '';
}

/** Checks one answer against the contract for the request that produced it. */
export function checkResolverAnswer(query: GatewayQuery, answer: ResolverAnswer): ContractVerdict {
  const { status } = answer;
  if (status >= 300 && status < 400) {
    const location = header(answer, 'location');
    return {
      violations: [
        {
          rule: 'redirect',
          message: `answered ${status} redirect${location ? ` to ${location}` : ''}: the gateway does not follow redirects; give it the final URL`,
        },
      ],
    };
  }
  if (!(CONTRACT_STATUSES as readonly number[]).includes(status)) {
    return { violations: [{ rule: 'status', message: `answered ${status}, not 200, 400 or 404${statusHint(status)}` }] };
  }
  // 400 and 404 carry no fields the gateway reads; only a 200 has a shape to honour.
  if (status !== 200) return { violations: [] };

  const violations: ContractViolation[] = [];
  const type = header(answer, 'content-type');
  if (!type || !/^application\/json\s*(;|$)/i.test(type)) {
    violations.push({ rule: 'content-type', message: `Content-Type is ${type ? `'${type}'` : 'missing'}, not application/json` });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body);
  } catch {
    const excerpt = answer.body.length > 80 ? `${answer.body.slice(0, 80)}…` : answer.body;
    violations.push({ rule: 'json', message: `the body is not JSON: ${JSON.stringify(excerpt)}` });
    return { violations };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    violations.push({ rule: 'json', message: `the body is ${describe(parsed)}, not a JSON object` });
    return { violations };
  }
  const fields = parsed as Record<string, unknown>;
  for (const name of ANSWER_FIELDS) {
    if (!Object.hasOwn(fields, name)) {
      const near = Object.keys(fields).find((key) => key.toLowerCase() === name.toLowerCase());
      violations.push({ rule: 'missing-field', message: `no ${name} field${near ? ` (there is '${near}': names are case-sensitive)` : ''}` });
    }
  }
  for (const name of Object.keys(fields)) {
    if (!(ANSWER_FIELDS as readonly string[]).includes(name)) {
      violations.push({ rule: 'extra-field', message: `extra field '${name}': the answer has exactly ${ANSWER_FIELDS.join(', ')}` });
    }
  }
  for (const name of ['SessionId', 'DcvServerEndpoint'] as const) {
    const value = fields[name];
    if (Object.hasOwn(fields, name) && (typeof value !== 'string' || value.trim() === '')) {
      violations.push({ rule: 'field-type', message: `${name} must be a non-empty string, got ${describe(value)}` });
    }
  }
  if (Object.hasOwn(fields, 'Port')) {
    const port = fields.Port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      violations.push({ rule: 'port', message: `Port must be a JSON integer 1–65535, got ${describe(port)}` });
    }
  }
  if (Object.hasOwn(fields, 'TransportProtocol')) {
    const transport = fields.TransportProtocol;
    if (transport !== query.transport) {
      violations.push({ rule: 'transport-echo', message: `TransportProtocol must echo the request's '${query.transport}', got ${describe(transport)}` });
    }
  }
  if (Object.hasOwn(fields, 'WebUrlPath')) {
    const path = fields.WebUrlPath;
    if (typeof path !== 'string') {
      violations.push({ rule: 'field-type', message: `WebUrlPath must be a string, got ${describe(path)}` });
    } else if (!path.startsWith('/')) {
      violations.push({ rule: 'web-url-path', message: `WebUrlPath must start with '/', got ${JSON.stringify(path)}` });
    }
  }
  return { violations, answer: fields };
}
