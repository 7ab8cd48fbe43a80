import { isIP } from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { fromNodeProviderChain } from '@aws-sdk/credential-providers';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { JsonLineLog } from '../adapters/json-line-log.js';
import { SERVICE_NAME } from '../adapters/logger.js';
import { parseTargetUrl, regionFromFunctionUrl, startSigV4Proxy, type RunningProxy } from '../adapters/sigv4-proxy.js';
import { CliError } from './cli-error.js';
import { stopOnSignal } from './stop-on-signal.js';

export const PROXY_USAGE = `Usage: dcv-resolver proxy --target URL [options]

Forwards the gateway's requests to a resolver Function URL deployed with accessMode=iam, signing each
one with SigV4 using this host's AWS credentials (instance role, environment, profile). Point the
gateway at the proxy: [resolver] url = 'http://127.0.0.1:9000' (plus '/<pathPrefix>' if one is set).

  --target URL           the Function URL (https://<id>.lambda-url.<region>.on.aws/)
  --listen HOST:PORT     where to listen (default 127.0.0.1:9000; keep it on loopback)
  --region REGION        signing region (default: from the URL, else AWS_REGION / the profile)
  --allow-host NAME      also sign requests addressed to NAME or NAME:PORT (repeatable); by default
                         only Host 127.0.0.1:PORT, localhost:PORT, [::1]:PORT and the --listen
                         address are signed: anything else is refused with 421, and requests a web
                         page sends from another origin (Origin, Sec-Fetch-Site) with 403
  --log-level LEVEL      DEBUG, INFO (default), WARN, ERROR
`;

export interface ProxyOptions {
  readonly target: URL;
  readonly host: string;
  readonly port: number;
  readonly region?: string;
  readonly logLevel?: string;
  /** --allow-host values, lower case: NAME, NAME:PORT, [v6] or [v6]:PORT. */
  readonly allowedHosts?: readonly string[];
}

const HOST_NAME = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** `NAME`, `NAME:PORT`, `[v6]` or `[v6]:PORT`, as it appears in a Host header. */
export function parseAllowHost(text: string): string {
  const match = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(text.trim().toLowerCase());
  const name = match?.[1];
  const ok =
    name !== undefined &&
    (name.startsWith('[') ? isIP(name.slice(1, -1)) === 6 : HOST_NAME.test(name)) &&
    (match![2] === undefined || Number(match![2]) <= 65535);
  if (!ok) throw new CliError(`--allow-host must be a host name, NAME:PORT or [IPv6]:PORT, not '${text}'`, 2);
  return text.trim().toLowerCase();
}

/** `HOST:PORT`, `[v6]:PORT` or just `PORT` (loopback). */
export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):)?(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new CliError(`--listen must be HOST:PORT (e.g. 127.0.0.1:9000), not '${text}'`, 2);
  return { host: match[1] ?? match[2] ?? '127.0.0.1', port };
}

/** The command's options as parseArgs takes them (test/docs checks every documented command against them). */
export const PROXY_OPTIONS = {
  target: { type: 'string' },
  listen: { type: 'string', default: '127.0.0.1:9000' },
  region: { type: 'string' },
  'allow-host': { type: 'string', multiple: true },
  'log-level': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export function parseProxyArgs(argv: string[]): ProxyOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: PROXY_OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${PROXY_USAGE}`, 2);
  }
  if (!values.target) throw new CliError(`--target URL is required\n\n${PROXY_USAGE}`, 2);
  let target: URL;
  try {
    target = parseTargetUrl(values.target);
  } catch (error) {
    throw new CliError(`--target ${(error as Error).message}`, 2);
  }
  const region = values.region?.trim();
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/.test(region)) {
    throw new CliError(`--region must look like us-east-1, not '${values.region}'`, 2);
  }
  const allowedHosts = (values['allow-host'] ?? []).map(parseAllowHost);
  return { target, ...parseListen(values.listen), region, logLevel: values['log-level']?.toUpperCase(), allowedHosts };
}

/** --region, else the Function URL's own region, else the SDK's region configuration. */
export async function signingRegion(options: ProxyOptions): Promise<string> {
  const fromUrl = regionFromFunctionUrl(options.target);
  if (options.region) return options.region;
  if (fromUrl) return fromUrl;
  // Any SDK client resolves AWS_REGION / AWS_DEFAULT_REGION / the profile's region the standard way.
  const client = new DynamoDBClient({});
  try {
    return await client.config.region();
  } catch {
    throw new CliError('cannot tell the signing region: give --region (the target is not a Function URL host)', 2);
  } finally {
    client.destroy();
  }
}

export async function startProxy(
  options: ProxyOptions,
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider = fromNodeProviderChain(),
): Promise<RunningProxy & { region: string }> {
  const logger = new JsonLineLog({ service: SERVICE_NAME, level: options.logLevel });
  const region = await signingRegion(options);
  const fromUrl = regionFromFunctionUrl(options.target);
  if (fromUrl && fromUrl !== region) {
    logger.warn('--region differs from the Function URL region; AWS will refuse the signature', { region, urlRegion: fromUrl });
  }
  if (typeof credentials === 'function') {
    // Fail at start-up, not on the gateway's first connection, when this host has no credentials at all.
    try {
      await credentials();
    } catch (error) {
      throw new CliError(`no AWS credentials found to sign with (instance role, AWS_* variables or a profile): ${(error as Error).message}`);
    }
  }
  let running: RunningProxy;
  try {
    running = await startSigV4Proxy({
      target: options.target,
      region,
      credentials,
      log: logger,
      host: options.host,
      port: options.port,
      allowedHosts: options.allowedHosts,
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new CliError(`port ${options.port} on ${options.host} is already in use`);
    throw new CliError(`cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`);
  }
  logger.info('dcv-resolver proxy listening', { url: running.url, target: options.target.host, region });
  return { ...running, region };
}

export async function runProxy(argv: string[]): Promise<void> {
  const running = await startProxy(parseProxyArgs(argv));
  // Handlers first: a supervisor may signal as soon as it reads the line below (stderr to a pipe is
  // written synchronously), and until then a signal has its default effect, killing the process.
  stopOnSignal(running);
  process.stderr.write(`dcv-resolver: proxy on ${running.url} signing for ${running.region} (gateway: [resolver] url = '${running.url}')\n`);
}
