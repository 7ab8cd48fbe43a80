import { isAbsolute } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { normalizeResolverUrl } from '../core/doctor/resolver-url.js';
import { renderGatewayConfig, type GatewayConfigOptions } from '../core/gateway-config.js';
import { CliError } from './cli-error.js';

export const GATEWAY_CONFIG_USAGE = `Usage: dcv-resolver gateway-config --url URL [options] > dcv-connection-gateway.conf

Prints a complete, commented /etc/dcv-connection-gateway/dcv-connection-gateway.conf for a gateway that
uses this resolver. Values that need your decision are marked "# DECIDE:".

  --url URL              the resolver as the gateway reaches it (serve, the proxy, or the Function URL
                         with its path prefix: the GatewayResolverUrl output)
  --ca-file FILE         the CA that signed the resolver's certificate, as a path on the gateway host
  --cert-file FILE       the gateway's client certificate for a mutual-TLS resolver (serve --client-ca) ...
  --cert-key-file FILE   ... and its key (paths on the gateway host)
`;

/** The command's options as parseArgs takes them (test/docs checks every documented command against them). */
export const GATEWAY_CONFIG_OPTIONS = {
  url: { type: 'string' },
  'ca-file': { type: 'string' },
  'cert-file': { type: 'string' },
  'cert-key-file': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export function parseGatewayConfigArgs(argv: string[]): { options: GatewayConfigOptions; notes: string[] } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: GATEWAY_CONFIG_OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${GATEWAY_CONFIG_USAGE}`, 2);
  }
  if (!values.url) throw new CliError(`--url URL is required\n\n${GATEWAY_CONFIG_USAGE}`, 2);
  let normalized;
  try {
    normalized = normalizeResolverUrl(values.url);
  } catch (error) {
    throw new CliError(`--url ${(error as Error).message}`, 2);
  }
  if (Boolean(values['cert-file']) !== Boolean(values['cert-key-file'])) throw new CliError('--cert-file and --cert-key-file go together', 2);
  for (const option of ['ca-file', 'cert-file', 'cert-key-file'] as const) {
    const file = values[option];
    // The gateway runs as a service: a relative path would be relative to wherever systemd starts it.
    if (file !== undefined && !isAbsolute(file)) throw new CliError(`--${option} must be an absolute path on the gateway host, not '${file}'`, 2);
  }
  if (normalized.url.startsWith('http:') && values['ca-file']) throw new CliError('--ca-file needs an https:// --url', 2);
  return {
    options: { resolverUrl: normalized.url, caFile: values['ca-file'], certFile: values['cert-file'], certKeyFile: values['cert-key-file'] },
    notes: normalized.notes,
  };
}

export async function runGatewayConfig(argv: string[]): Promise<void> {
  const { options, notes } = parseGatewayConfigArgs(argv);
  for (const note of notes) process.stderr.write(`dcv-resolver gateway-config: ${note}\n`);
  process.stdout.write(renderGatewayConfig(options));
}
