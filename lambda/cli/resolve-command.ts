import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import { DEFAULT_PROBE_TIMEOUT_MS, parseProbeUrl, probeResolver, type ProbeOptions, type ProbeResult } from '../adapters/gateway-probe.js';
import { createFunctionUrlSigner } from '../adapters/sigv4-proxy.js';
import { parseClientAddress } from '../core/ip.js';
import { GATEWAY_TRANSPORTS, type GatewayTransport } from '../core/resolver-contract.js';
import { CliError } from './cli-error.js';
import { signingRegion } from './proxy-command.js';

export const RESOLVE_USAGE = `Usage: dcv-resolver resolve --url URL --session ID [options]

Sends exactly the DCV Connection Gateway's request to a resolver (POST <URL>/resolveSession?sessionId=…
&transport=…, header accept: application/json, no body), shows the answer and its latency, and checks it
against the gateway's contract. Exit status 1 on a contract violation or no answer, 2 on bad usage.

  --url URL              the resolver, exactly as in [resolver] url (the gateway appends /resolveSession)
  --session ID           the session id a user would put after '#' in the link
  --transport T          HTTP (default) or QUIC
  --client-ip IP         the clientIpAddress to send (the gateway sends the client's address when it knows it)
  --sign                 sign with SigV4 like 'dcv-resolver proxy' (an accessMode=iam Function URL),
                         with this host's AWS credentials
  --region REGION        signing region (default: from the Function URL, else AWS_REGION / the profile)
  --ca-file FILE         https: trust this PEM CA (the gateway's [resolver] ca-file)
  --cert-file FILE       https: client certificate (the gateway's [resolver] cert-file) ...
  --cert-key-file FILE   ... and its key (mutual TLS)
  --insecure             https: accept any certificate (what tls-strict = false does; testing only)
  --timeout MS           give up after this many milliseconds (default ${DEFAULT_PROBE_TIMEOUT_MS})
  --json                 print one JSON object instead of text
`;

export interface ResolveOptions {
  readonly url: string;
  readonly sessionId: string;
  readonly transport: GatewayTransport;
  readonly clientIpAddress?: string;
  readonly sign: boolean;
  readonly region?: string;
  readonly caFile?: string;
  readonly certFile?: string;
  readonly certKeyFile?: string;
  readonly insecure: boolean;
  readonly timeoutMs: number;
  readonly json: boolean;
}

const usageError = (message: string) => new CliError(`${message}\n\n${RESOLVE_USAGE}`, 2);

/** The command's options as parseArgs takes them (test/docs checks every documented command against them). */
export const RESOLVE_OPTIONS = {
  url: { type: 'string' },
  session: { type: 'string' },
  transport: { type: 'string', default: 'HTTP' },
  'client-ip': { type: 'string' },
  sign: { type: 'boolean', default: false },
  region: { type: 'string' },
  'ca-file': { type: 'string' },
  'cert-file': { type: 'string' },
  'cert-key-file': { type: 'string' },
  insecure: { type: 'boolean', default: false },
  timeout: { type: 'string', default: String(DEFAULT_PROBE_TIMEOUT_MS) },
  json: { type: 'boolean', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export function parseResolveArgs(argv: string[]): ResolveOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: RESOLVE_OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw usageError((error as Error).message);
  }
  if (!values.url) throw usageError('--url URL is required');
  try {
    parseProbeUrl(values.url);
  } catch (error) {
    throw new CliError(`--url ${(error as Error).message}`, 2);
  }
  if (values.session === undefined || values.session === '') throw usageError('--session ID is required');
  const transport = values.transport.toUpperCase();
  if (!(GATEWAY_TRANSPORTS as readonly string[]).includes(transport)) {
    throw new CliError(`--transport must be HTTP or QUIC, not '${values.transport}'`, 2);
  }
  const clientIp = values['client-ip'];
  if (clientIp !== undefined && !parseClientAddress(clientIp)) {
    throw new CliError(`--client-ip must be an IPv4 or IPv6 address, not '${clientIp}'`, 2);
  }
  const region = values.region?.trim();
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/.test(region)) {
    throw new CliError(`--region must look like us-east-1, not '${values.region}'`, 2);
  }
  if (region !== undefined && !values.sign) throw new CliError('--region only matters with --sign', 2);
  if (Boolean(values['cert-file']) !== Boolean(values['cert-key-file'])) {
    throw new CliError('--cert-file and --cert-key-file go together', 2);
  }
  const timeoutMs = Number(values.timeout);
  if (!/^\d+$/.test(values.timeout) || timeoutMs < 1 || timeoutMs > 120_000) {
    throw new CliError(`--timeout must be 1–120000 milliseconds, not '${values.timeout}'`, 2);
  }
  return {
    url: values.url,
    sessionId: values.session,
    transport: transport as GatewayTransport,
    clientIpAddress: clientIp,
    sign: values.sign,
    region,
    caFile: values['ca-file'],
    certFile: values['cert-file'],
    certKeyFile: values['cert-key-file'],
    insecure: values.insecure,
    timeoutMs,
    json: values.json,
  };
}

function readPem(option: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new CliError(`${option}: cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 2);
  }
}

/** The probe's options from the command line: files read, credentials checked, before anything is sent. */
export async function probeOptions(options: ResolveOptions): Promise<ProbeOptions> {
  const probe: { -readonly [K in keyof ProbeOptions]: ProbeOptions[K] } = {
    resolverUrl: options.url,
    query: { sessionId: options.sessionId, transport: options.transport, clientIpAddress: options.clientIpAddress },
    timeoutMs: options.timeoutMs,
    tlsStrict: !options.insecure,
  };
  if (options.caFile) probe.ca = readPem('--ca-file', options.caFile);
  if (options.certFile && options.certKeyFile) {
    probe.clientCert = { cert: readPem('--cert-file', options.certFile), key: readPem('--cert-key-file', options.certKeyFile) };
  }
  if (options.sign) {
    const region = await signingRegion({ target: parseProbeUrl(options.url), region: options.region, host: '127.0.0.1', port: 0 });
    const credentials = fromNodeProviderChain();
    try {
      await credentials();
    } catch (error) {
      throw new CliError(`--sign: no AWS credentials found (instance role, AWS_* variables or a profile): ${(error as Error).message}`);
    }
    probe.signer = createFunctionUrlSigner(credentials, region);
  }
  return probe;
}

/** What may be shown of the request: a signature is fine, a session token is not. */
function shownHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  const shown: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    shown[name] = name.toLowerCase() === 'x-amz-security-token' ? '(redacted)' : value;
  }
  return shown;
}

export function renderProbeText(result: ProbeResult, signed: boolean): string {
  const lines = [`POST ${result.request.url}`, '  accept: application/json'];
  if (signed) lines.push('  (signed with SigV4, service lambda)');
  if (!result.answered) {
    lines.push('', `no answer after ${result.latencyMs} ms: ${result.error}`);
    return `${lines.join('\n')}\n`;
  }
  lines.push('', `${result.status} in ${result.latencyMs} ms`);
  for (const name of ['content-type', 'location']) {
    const value = result.headers[name];
    if (value !== undefined) lines.push(`  ${name}: ${Array.isArray(value) ? value.join(', ') : value}`);
  }
  if (result.body !== '') lines.push(result.body);
  lines.push('');
  if (result.violations.length > 0) {
    const count = result.violations.length;
    lines.push(`contract: ${count} violation${count === 1 ? '' : 's'}`);
    for (const violation of result.violations) lines.push(`  ✗ ${violation.message}`);
  } else if (result.status === 200 && result.answer) {
    const a = result.answer;
    lines.push(
      'contract: honoured',
      `  the gateway connects this client to ${String(a.DcvServerEndpoint)}:${String(a.Port)} (${String(a.TransportProtocol)}), ` +
        `server session '${String(a.SessionId)}', web-url-path '${String(a.WebUrlPath)}'`,
    );
  } else if (result.status === 404) {
    lines.push('contract: honoured', '  404: the resolver has no destination for this session; the gateway refuses the connection');
  } else {
    lines.push('contract: honoured', '  400: the resolver calls the request malformed; the gateway refuses the connection');
  }
  return `${lines.join('\n')}\n`;
}

export function probeJson(result: ProbeResult): Record<string, unknown> {
  const request = { ...result.request, headers: shownHeaders(result.request.headers) };
  if (!result.answered) return { ok: false, answered: false, request, error: result.error, latencyMs: result.latencyMs };
  let json: unknown = null;
  try {
    json = JSON.parse(result.body);
  } catch {
    // not JSON: 'body' has it as text, and a 200 lists the violation
  }
  return {
    ok: result.violations.length === 0,
    answered: true,
    request,
    status: result.status,
    headers: result.headers,
    body: result.body,
    json,
    latencyMs: result.latencyMs,
    violations: result.violations,
  };
}

export async function runResolve(argv: string[]): Promise<void> {
  const options = parseResolveArgs(argv);
  const result = await probeResolver(await probeOptions(options));
  process.stdout.write(options.json ? `${JSON.stringify(probeJson(result), null, 2)}\n` : renderProbeText(result, options.sign));
  if (!result.answered) throw new CliError(`no answer from ${options.url}: ${result.error}`);
  if (result.violations.length > 0) {
    throw new CliError(`the answer breaks the gateway's contract (${result.violations.map((v) => v.rule).join(', ')})`);
  }
}
