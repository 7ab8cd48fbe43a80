import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseProbeUrl, probeResolver, type ProbeOptions } from '../adapters/gateway-probe.js';
import { FileSessionAdminStore } from '../adapters/session-admin-file.js';
import type { RawItem } from '../core/session-record.js';
import { connectHelp, connectLinks } from '../core/doctor/connect-links.js';
import { diagnose } from '../core/doctor/diagnose.js';
import { countBySeverity, sortFindings, type Finding } from '../core/doctor/finding.js';
import { probeFindings } from '../core/doctor/probe-findings.js';
import { renderFindings } from '../core/doctor/render.js';
import { compareBases, resolverBase } from '../core/doctor/resolver-url.js';
import { CliError } from './cli-error.js';

export const DOCTOR_USAGE = `Usage: dcv-resolver doctor --gateway-config FILE [--dcv-config FILE]… [options]

Reads the gateway's dcv-connection-gateway.conf (and DCV servers' dcv.conf files) and reports what stops
users from connecting, each finding with its severity and a one-line fix; with --resolver-url it also sends
the resolver the gateway's exact request. Ends with the connect-link format. Exit status 1 when any finding
is an error, 2 on bad usage.

  --gateway-config FILE  the gateway's configuration (/etc/dcv-connection-gateway/dcv-connection-gateway.conf)
  --dcv-config FILE      a DCV server's /etc/dcv/dcv.conf (repeatable, one per server)
  --resolver-url URL     this resolver, as the gateway should reach it: compared with [resolver] url and the
                         verifiers, and probed
  --sessions FILE        the session records (a sessions file), or
  --table NAME           the session table (AWS_REGION, credentials, AWS_ENDPOINT_URL_DYNAMODB): with either,
                         each --dcv-config is checked for the sessions on its server (the last segment of its
                         auth-token-verifier URL): would DCV let in the name the verifier answers with?
  --session ID           the session id to probe with (default console)
  --timeout MS           probe timeout in milliseconds (default 5000)
  --json                 print one JSON object instead of text
`;

export interface DoctorOptions {
  readonly gatewayConfig: string;
  readonly dcvConfigs: readonly string[];
  readonly resolverUrl?: string;
  readonly sessions?: { readonly kind: 'file'; readonly file: string } | { readonly kind: 'table'; readonly table: string };
  readonly sessionId: string;
  readonly timeoutMs: number;
  readonly json: boolean;
}

/** The command's options as parseArgs takes them (test/docs checks every documented command against them). */
export const DOCTOR_OPTIONS = {
  'gateway-config': { type: 'string' },
  'dcv-config': { type: 'string', multiple: true, default: [] },
  'resolver-url': { type: 'string' },
  sessions: { type: 'string' },
  table: { type: 'string' },
  session: { type: 'string', default: 'console' },
  timeout: { type: 'string', default: '5000' },
  json: { type: 'boolean', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export function parseDoctorArgs(argv: string[]): DoctorOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: DOCTOR_OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${DOCTOR_USAGE}`, 2);
  }
  if (!values['gateway-config']) throw new CliError(`--gateway-config FILE is required\n\n${DOCTOR_USAGE}`, 2);
  const resolverUrl = values['resolver-url'];
  if (resolverUrl !== undefined) {
    try {
      parseProbeUrl(resolverUrl);
    } catch (error) {
      throw new CliError(`--resolver-url ${(error as Error).message}`, 2);
    }
  }
  if (values.session === '') throw new CliError('--session must not be empty', 2);
  if (values.sessions !== undefined && values.table !== undefined) throw new CliError('give --sessions FILE or --table NAME, not both', 2);
  if (values.sessions === '' || values.table === '') throw new CliError('--sessions and --table need a value', 2);
  const sessions =
    values.sessions !== undefined
      ? ({ kind: 'file', file: values.sessions } as const)
      : values.table !== undefined
        ? ({ kind: 'table', table: values.table } as const)
        : undefined;
  const timeoutMs = Number(values.timeout);
  if (!/^\d+$/.test(values.timeout) || timeoutMs < 1 || timeoutMs > 120_000) {
    throw new CliError(`--timeout must be 1–120000 milliseconds, not '${values.timeout}'`, 2);
  }
  return {
    gatewayConfig: values['gateway-config'],
    dcvConfigs: values['dcv-config'],
    resolverUrl,
    ...(sessions ? { sessions } : {}),
    sessionId: values.session,
    timeoutMs,
    json: values.json,
  };
}

function readText(option: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`${option}: cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 2);
  }
}

/**
 * Probe the way the gateway would: when --resolver-url is the gateway's own resolver, with its [resolver]
 * ca-file, client certificate and tls-strict (files readable from here only when run on the gateway host).
 */
function gatewayTls(resolver: Readonly<Record<string, unknown>> | undefined, notes: Finding[]): Partial<ProbeOptions> {
  if (!resolver) return {};
  const read = (key: string): Buffer | undefined => {
    const file = resolver[key];
    if (typeof file !== 'string') return undefined;
    try {
      return readFileSync(file);
    } catch {
      notes.push({ rule: 'probe.tls-file-unreadable', severity: 'info', file: 'resolver', key: `[resolver] ${key}`, message: `cannot read ${file} from here; probing without it`, fix: 'run the doctor on the gateway host to probe with the gateway’s certificates' });
      return undefined;
    }
  };
  const ca = read('ca-file');
  const cert = read('cert-file');
  const key = read('cert-key-file');
  return { ca, clientCert: cert && key ? { cert, key } : undefined, tlsStrict: resolver['tls-strict'] !== false };
}

/** Every session record, as stored (the doctor judges each with the resolver's own parser). */
async function readSessions(choice: NonNullable<DoctorOptions['sessions']>): Promise<{ items: RawItem[]; where: string }> {
  if (choice.kind === 'file') {
    const store = new FileSessionAdminStore(choice.file);
    try {
      return { items: (await store.list()).map((s) => s.item), where: store.description };
    } catch (error) {
      throw new CliError(`--sessions: ${(error as Error).message}`);
    } finally {
      store.close();
    }
  }
  // Loaded only for --table: the doctor reads files without the AWS SDK.
  const [{ DynamoDBClient }, { sdkDynamoApi }, { TableSessionAdminStore }] = await Promise.all([
    import('@aws-sdk/client-dynamodb'),
    import('../adapters/dynamodb-api.js'),
    import('../adapters/session-admin-table.js'),
  ]);
  const client = new DynamoDBClient({});
  const store = new TableSessionAdminStore(sdkDynamoApi(client), choice.table);
  try {
    return { items: (await store.list()).map((s) => s.item), where: store.description };
  } catch (error) {
    throw new CliError(`--table: ${(error as Error).message}`);
  } finally {
    store.close();
    client.destroy();
  }
}

export async function runDoctor(argv: string[]): Promise<void> {
  const options = parseDoctorArgs(argv);
  const gateway = { file: options.gatewayConfig, text: readText('--gateway-config', options.gatewayConfig) };
  const dcv = options.dcvConfigs.map((file) => ({ file, text: readText('--dcv-config', file) }));
  const resolverUrl = options.resolverUrl === undefined ? undefined : parseProbeUrl(options.resolverUrl);
  const sessions = options.sessions ? await readSessions(options.sessions) : undefined;
  const diagnosis = diagnose({ gateway, dcv, resolverUrl, ...(sessions ? { sessions: sessions.items } : {}) });
  let findings = diagnosis.findings;

  if (resolverUrl && options.resolverUrl !== undefined) {
    const notes: Finding[] = [];
    const sameAsGateway =
      diagnosis.gatewayResolverUrl !== undefined && compareBases(resolverBase(resolverUrl), resolverBase(diagnosis.gatewayResolverUrl)) === 'same';
    const result = await probeResolver({
      resolverUrl: options.resolverUrl,
      query: { sessionId: options.sessionId, transport: 'HTTP' },
      timeoutMs: options.timeoutMs,
      ...(sameAsGateway ? gatewayTls(diagnosis.gatewayResolver, notes) : {}),
    });
    findings = sortFindings([...findings, ...notes, ...probeFindings(options.resolverUrl, options.sessionId, result)]);
  }

  const counts = countBySeverity(findings);
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ ok: counts.error === 0, counts, findings, connectLinks: connectLinks(diagnosis.port) }, null, 2)}\n`);
  } else {
    const dcvList = dcv.length === 0 ? 'none given' : dcv.map((d) => d.file).join(', ');
    process.stdout.write(
      `dcv-resolver doctor\n  gateway config:     ${gateway.file}\n  DCV server configs: ${dcvList}\n` +
        `${sessions ? `  sessions:           ${sessions.where} (${sessions.items.length} items)\n` : ''}` +
        `${options.resolverUrl ? `  resolver probed:    ${options.resolverUrl} (session '${options.sessionId}')\n` : ''}\n` +
        `${renderFindings(findings)}\n${connectHelp(diagnosis.port)}`,
    );
  }
  if (counts.error > 0) {
    throw new CliError(`${counts.error} error${counts.error === 1 ? '' : 's'}: users cannot connect (or not safely) until ${counts.error === 1 ? 'it is' : 'they are'} fixed`);
  }
}
