import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerOptions as HttpsOptions } from 'node:https';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { coalesceWrites } from '../adapters/coalesced-writes.js';
import { sdkDynamoApi } from '../adapters/dynamodb-api.js';
import { createResolveDynamoClient, DynamoDbSessionStore } from '../adapters/dynamodb-session-store.js';
import { DirectoryTokenStore } from '../adapters/directory-token-store.js';
import { DynamoDbTokenStore } from '../adapters/dynamodb-token-store.js';
import { EmfMetrics, flushEvery } from '../adapters/emf-metrics.js';
import { DynamoSessionCatalog } from '../adapters/dynamodb-session-catalog.js';
import { FileSessionStore } from '../adapters/file-session-store.js';
import { openIdConnectClient } from '../adapters/openid-connect.js';
import { DEFAULT_MAX_CONNECTIONS, startLocalServer, type RunningServer } from '../adapters/local-server.js';
import { JsonLineLog } from '../adapters/json-line-log.js';
import { SERVICE_NAME } from '../adapters/logger.js';
import { splitList, validatePathPrefix } from '../config.js';
import { ConfigError } from '../core/config-errors.js';
import { CidrSet } from '../core/ip.js';
import { MetricService } from '../core/metrics.js';
import { createPortal } from '../core/portal/portal-app.js';
import type { DesktopStartPort } from '../core/portal/desktop-start.js';
import { userClaimsProblem } from '../core/portal/portal-user.js';
import type { LeaseStore, SessionCatalog } from '../core/portal/session-catalog.js';
import { MIN_KEY_LENGTH } from '../core/portal/signed-cookie.js';
import { LeasedSessionStore, type SessionStore } from '../core/session-store.js';
import { parseGatewayUrl } from '../core/tokens/connect-links.js';
import type { TokenStore } from '../core/tokens/token-store.js';
import { createResolverRouter, type PortalShared } from '../handlers/resolver-handler.js';
import { CliError } from './cli-error.js';
import { checkTable } from './check-table.js';
import { stopOnSignal } from './stop-on-signal.js';

export const SERVE_USAGE = `Usage: dcv-resolver serve (--sessions FILE | --table NAME) [options]

Answers the DCV Connection Gateway's POST /resolveSession over HTTP, and with a token store the
DCV servers' POST /verifyToken[/<server>] (their [security] auth-token-verifier).

  --sessions FILE        serve the sessions in a JSON file (reloaded when it changes)
  --table NAME           serve from a DynamoDB table (standard AWS SDK configuration:
                         AWS_REGION, credentials, AWS_ENDPOINT_URL_DYNAMODB)
  --tokens-dir DIR       verify connect tokens kept in this directory (written by 'token create')
  --tokens-table NAME    verify connect tokens kept in this DynamoDB table
  --host HOST            address to listen on (default 127.0.0.1)
  --port PORT            port to listen on (default 9000)
  --allow-source CIDRS   only answer callers from these CIDRs (comma-separated, repeatable) on
                         every route but the portal's: the gateway's and DCV servers' addresses
  --path-prefix VALUE    answer only under /VALUE/resolveSession (and /VALUE/verifyToken);
                         anything else is 404. The portal is never under it
  --max-connections N    hold at most N connections open; more are closed on arrival (default ${DEFAULT_MAX_CONNECTIONS})
  --tls-cert FILE        serve HTTPS with this PEM certificate (chain) ...
  --tls-key FILE         ... and its PEM private key
  --client-ca FILE       require a client certificate signed by this PEM CA (mutual TLS: the
                         gateway's [resolver] cert-file / cert-key-file); needs --tls-cert/--tls-key
  --oidc-issuer URL      turn on the self-service portal (GET /portal): sign-in at this OpenID
                         Connect issuer (https, or http on this machine) ...
  --oidc-client-id ID    ... as this public client (code flow + PKCE, no secret) ...
  --gateway URL          ... and connect links to this gateway (https://HOST[:PORT]); the portal
                         needs a token store (--tokens-dir, --tokens-table, or with --table NAME
                         the table NAME-tokens by default)
  --oidc-groups-claim N  the ID token claim with the user's groups (default groups)
  --oidc-scopes LIST     scopes to ask for (default 'openid email profile'; Okta: add groups)
  --oidc-user-claims L   more ID token claims that name a person (comma-separated, repeatable),
                         for claims only administrators set, e.g. upn at Entra ID; by default
                         only sub, email when email_verified is true, and a Cognito issuer's
                         cognito:username match AllowedUsers
  --portal-url URL       the portal's public base URL (default: this server's scheme and the
                         request's Host); the identity provider must accept URL/portal/callback
  --portal-allow-source CIDRS
                         only answer users' browsers from these CIDRs on /portal (comma-separated,
                         repeatable; default: anyone); --allow-source does not apply there
  --signals-document NAME
                         with --table and the portal: Start and open asks a starting host's DCV
                         through this SSM Command document (the stack's HostSignalsDocumentName)
                         instead of sending the shipped script with AWS-RunShellScript
  --log-level LEVEL      DEBUG, INFO (default), WARN, ERROR
  --metrics              also write CloudWatch embedded-metric-format lines to stdout, every
                         10 s (the Lambda function's metrics, for a CloudWatch agent to pick up)

The portal signs its cookies with DCV_PORTAL_COOKIE_KEY (32+ characters) when set, else with a key
made at start (sign-ins then end when the process does; several processes need the same key).
With --table the portal also offers Start and open for desktops tagged dcv:start-on-connect=true
(EC2 and SSM with the standard SDK configuration: AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL_SSM).
`;

export interface ServeOptions {
  readonly sessions?: string;
  readonly table?: string;
  readonly tokensDir?: string;
  readonly tokensTable?: string;
  readonly host: string;
  readonly port: number;
  /** The gateway's and DCV servers' callers: every route but the portal's. */
  readonly allowSources?: CidrSet;
  readonly pathPrefix?: string;
  /** The portal's callers (users' browsers); absent: anyone. */
  readonly portalAllowSources?: CidrSet;
  /** Open connections at most; more are closed on arrival. */
  readonly maxConnections: number;
  readonly logLevel?: string;
  /** HTTPS, and with a client CA, mutual TLS. */
  readonly tls?: HttpsOptions;
  readonly portal?: ServePortalOptions;
  /** EMF metric lines on stdout, next to the log lines. */
  readonly metrics?: boolean;
  /** Start and open's SSM Command document; absent: the shipped script with AWS-RunShellScript. */
  readonly signalsDocument?: string;
}

/** How often `serve --metrics` writes its aggregated EMF lines (CloudWatch's finest standard resolution is 1 min). */
export const METRICS_FLUSH_MS = 10_000;

function readPem(option: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new CliError(`${option}: cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 2);
  }
}

/** Files are read once here, so a typo fails at start-up with the option named. */
export function tlsOptions(cert?: string, key?: string, clientCa?: string): HttpsOptions | undefined {
  if (!cert && !key && !clientCa) return undefined;
  if (!cert || !key) throw new CliError('--tls-cert and --tls-key go together (and --client-ca needs both)', 2);
  const options: HttpsOptions = { cert: readPem('--tls-cert', cert), key: readPem('--tls-key', key), minVersion: 'TLSv1.2' };
  if (!clientCa) return options;
  // Mutual TLS: a client without a certificate signed by this CA fails the handshake.
  return { ...options, ca: readPem('--client-ca', clientCa), requestCert: true, rejectUnauthorized: true };
}

export interface ServePortalOptions {
  readonly issuer: string;
  readonly clientId: string;
  readonly gatewayUrl: string;
  readonly groupsClaim?: string;
  readonly scopes?: string;
  readonly publicUrl?: string;
  /** Claims trusted as names besides the defaults (see UserClaimsPolicy). */
  readonly userClaims?: readonly string[];
}

/** All three or none; the portal issues tokens, so it needs a token store. */
function portalOptions(values: Record<string, string | boolean | string[] | undefined>): ServePortalOptions | undefined {
  const issuer = values['oidc-issuer'] as string | undefined;
  const clientId = values['oidc-client-id'] as string | undefined;
  const gateway = values.gateway as string | undefined;
  const extras = ['oidc-groups-claim', 'oidc-scopes', 'oidc-user-claims', 'portal-url', 'portal-allow-source'].filter((name) => values[name] !== undefined);
  if (!issuer && !clientId && !gateway) {
    if (extras.length > 0) throw new CliError(`--${extras[0]} is a portal option: give --oidc-issuer, --oidc-client-id and --gateway too`, 2);
    return undefined;
  }
  if (!issuer || !clientId || !gateway) {
    throw new CliError('the portal needs all three of --oidc-issuer URL, --oidc-client-id ID and --gateway URL', 2);
  }
  if (!values['tokens-dir'] && !values['tokens-table'] && !values.table) {
    throw new CliError('the portal issues connect tokens: give --tokens-dir DIR or --tokens-table NAME too', 2);
  }
  const url = (name: string, text: string): void => {
    try {
      new URL(text);
    } catch {
      throw new CliError(`--${name} must be a URL, not '${text}'`, 2);
    }
  };
  url('oidc-issuer', issuer);
  try {
    parseGatewayUrl(gateway);
  } catch (error) {
    throw new CliError(`--gateway: ${(error as Error).message}`, 2);
  }
  const publicUrl = values['portal-url'] as string | undefined;
  if (publicUrl !== undefined) url('portal-url', publicUrl);
  const groupsClaim = values['oidc-groups-claim'] as string | undefined;
  const userClaims = (values['oidc-user-claims'] as string[] | undefined)?.flatMap(splitList);
  const claimsProblem = userClaims && userClaimsProblem(userClaims, groupsClaim);
  if (claimsProblem) throw new CliError(`--oidc-user-claims ${claimsProblem}`, 2);
  return {
    issuer,
    clientId,
    gatewayUrl: gateway,
    groupsClaim,
    scopes: values['oidc-scopes'] as string | undefined,
    publicUrl,
    ...(userClaims && userClaims.length > 0 ? { userClaims } : {}),
  };
}

/** The command's options as parseArgs takes them (test/docs checks every documented command against them). */
export const SERVE_OPTIONS = {
  sessions: { type: 'string' },
  table: { type: 'string' },
  'tokens-dir': { type: 'string' },
  'tokens-table': { type: 'string' },
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '9000' },
  'allow-source': { type: 'string', multiple: true },
  'path-prefix': { type: 'string' },
  'max-connections': { type: 'string', default: String(DEFAULT_MAX_CONNECTIONS) },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'client-ca': { type: 'string' },
  'log-level': { type: 'string' },
  metrics: { type: 'boolean' },
  'oidc-issuer': { type: 'string' },
  'oidc-client-id': { type: 'string' },
  'oidc-groups-claim': { type: 'string' },
  'oidc-scopes': { type: 'string' },
  'oidc-user-claims': { type: 'string', multiple: true },
  gateway: { type: 'string' },
  'portal-url': { type: 'string' },
  'portal-allow-source': { type: 'string', multiple: true },
  'signals-document': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export function parseServeArgs(argv: string[]): ServeOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: SERVE_OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${SERVE_USAGE}`, 2);
  }
  if (Boolean(values.sessions) === Boolean(values.table)) {
    throw new CliError(`give exactly one of --sessions FILE or --table NAME\n\n${SERVE_USAGE}`, 2);
  }
  if (values['tokens-dir'] && values['tokens-table']) {
    throw new CliError('give at most one of --tokens-dir DIR or --tokens-table NAME', 2);
  }
  const port = Number(values.port);
  if (!/^\d{1,5}$/.test(values.port) || port > 65535) throw new CliError(`--port must be 0–65535, not '${values.port}'`, 2);
  const allowSources = cidrsOption('allow-source', values['allow-source']);
  const portalAllowSources = cidrsOption('portal-allow-source', values['portal-allow-source']);
  const maxConnections = Number(values['max-connections']);
  if (!/^\d{1,6}$/.test(values['max-connections']) || maxConnections < 1 || maxConnections > 100_000) {
    throw new CliError(`--max-connections must be 1–100000, not '${values['max-connections']}'`, 2);
  }
  let pathPrefix: string | undefined;
  try {
    pathPrefix = validatePathPrefix(values['path-prefix'], '--path-prefix');
  } catch (error) {
    throw new CliError((error as Error).message, 2);
  }
  // The portal answers /portal/… before any prefix is looked at: that prefix would hide the gateway's routes.
  if (pathPrefix === 'portal' && values['oidc-issuer']) {
    throw new CliError("--path-prefix cannot be 'portal' with the portal on: /portal/… are the portal's pages", 2);
  }
  const signalsDocument = values['signals-document'];
  if (signalsDocument !== undefined) {
    if (!values.table || !values['oidc-issuer']) throw new CliError('--signals-document is for Start and open: give --table NAME and the portal options too', 2);
    if (signalsDocument.trim() === '') throw new CliError('--signals-document NAME must not be empty', 2);
  }
  return {
    sessions: values.sessions,
    table: values.table,
    tokensDir: values['tokens-dir'],
    // With the portal and --table, tokens default to NAME-tokens, as for 'token create --table NAME'.
    tokensTable: values['tokens-table'] ?? (values['oidc-issuer'] && values.table && !values['tokens-dir'] ? `${values.table}-tokens` : undefined),
    host: values.host,
    port,
    allowSources,
    pathPrefix,
    portalAllowSources,
    maxConnections,
    logLevel: values['log-level']?.toUpperCase(),
    tls: tlsOptions(values['tls-cert'], values['tls-key'], values['client-ca']),
    metrics: values.metrics,
    portal: portalOptions(values),
    ...(signalsDocument === undefined ? {} : { signalsDocument }),
  };
}

/** A repeatable, comma-separated CIDR option; absent: undefined (anyone). */
function cidrsOption(name: string, given: string[] | undefined): CidrSet | undefined {
  if (!given) return undefined;
  try {
    return CidrSet.parse(given.flatMap(splitList));
  } catch (error) {
    throw new CliError(`--${name}: ${(error as Error).message}`, 2);
  }
}

export async function startServe(options: ServeOptions): Promise<RunningServer & { store: SessionStore }> {
  const logger = new JsonLineLog({ service: SERVICE_NAME, level: options.logLevel });
  let store: SessionStore;
  let source: string;
  let catalog: (SessionCatalog & LeaseStore) | undefined;
  let desktopStart: DesktopStartPort | undefined;
  const closeStart: (() => void)[] = [];
  if (options.sessions) {
    let fileStore: FileSessionStore;
    try {
      fileStore = new FileSessionStore(options.sessions, { log: logger });
    } catch (error) {
      if (error instanceof ConfigError) throw new CliError(error.message);
      throw error;
    }
    // The portal's pool leases live in memory in front of the file: the operator's file is never rewritten.
    store = options.portal ? (catalog = new LeasedSessionStore(fileStore)) : fileStore;
    source = `file ${options.sessions}`;
  } else {
    const client = createResolveDynamoClient();
    await checkTable(client, options.table!);
    store = new DynamoDbSessionStore(client, options.table!);
    if (options.portal) {
      catalog = new DynamoSessionCatalog(sdkDynamoApi(client), options.table!, { log: logger });
      // Start and open needs EC2 and SSM, which only a table of discovered desktops has (a file has none);
      // loaded here only, so `serve --sessions` and the table without the portal do not carry those clients.
      const [{ AwsDesktopStart }, { createPowerEc2Client }, { createSignalsSsmClient }, { loadHostSignalsScript }] = await Promise.all([
        import('../adapters/desktop-start-aws.js'),
        import('../adapters/ec2-power-api.js'),
        import('../adapters/ssm-host-signals.js'),
        import('../adapters/host-signals-script.js'),
      ]);
      const ec2 = createPowerEc2Client();
      const ssm = createSignalsSsmClient();
      closeStart.push(() => ec2.destroy(), () => ssm.destroy());
      desktopStart = new AwsDesktopStart({
        ec2,
        ssm,
        dynamodb: sdkDynamoApi(client),
        tableName: options.table!,
        signals: options.signalsDocument ? { documentName: options.signalsDocument } : { commands: loadHostSignalsScript() },
        log: logger,
      });
    }
    source = `table ${options.table}`;
  }
  let tokens: TokenStore | undefined;
  try {
    tokens = await openTokenStore(options, logger);
  } catch (error) {
    await store.close?.();
    throw error;
  }
  const metrics = options.metrics ? new EmfMetrics({ service: MetricService.resolver }) : undefined;
  const route = createResolverRouter({
    store,
    logger,
    allowedSources: options.allowSources,
    pathPrefix: options.pathPrefix,
    portalAllowedSources: options.portalAllowSources,
    tokens,
    metrics,
    portal: options.portal && catalog ? servePortal(options.portal, catalog, logger, desktopStart) : undefined,
  });
  let running: RunningServer;
  try {
    running = await startLocalServer({
      route,
      log: logger,
      host: options.host,
      port: options.port,
      tls: options.tls,
      // The router refuses these callers too; the server refuses them before reading their bodies.
      allowedSources: options.allowSources,
      ...(options.portal ? { portal: { allowedSources: options.portalAllowSources } } : {}),
      maxConnections: options.maxConnections,
    });
  } catch (error) {
    await store.close?.();
    await tokens?.close?.();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new CliError(`port ${options.port} on ${options.host} is already in use`);
    if (code === 'EADDRNOTAVAIL') throw new CliError(`cannot listen on ${options.host}: no such local address`);
    if (code === 'EACCES') throw new CliError(`not allowed to listen on ${options.host}:${options.port}`);
    throw new CliError(`cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`);
  }
  const batches = metrics ? flushEvery(metrics, METRICS_FLUSH_MS) : undefined;
  logger.info('dcv-resolver listening', {
    url: running.url,
    source,
    verifier: tokens ? 'on' : 'off',
    metrics: metrics ? 'on' : 'off',
    portal: options.portal ? 'on' : 'off',
    ...(options.portal ? { startAndOpen: desktopStart ? 'on' : 'off' } : {}),
  });
  return {
    ...running,
    store,
    close: async () => {
      await running.close();
      // The last requests' metrics, written before exit.
      batches?.stop();
      closeStart.forEach((close) => close());
      await store.close?.();
      await tokens?.close?.();
    },
  };
}

/** The portal over this server's stores; the cookie key from DCV_PORTAL_COOKIE_KEY or made now. */
function servePortal(portal: ServePortalOptions, catalog: SessionCatalog & LeaseStore, log: JsonLineLog, desktopStart?: DesktopStartPort) {
  const fromEnv = process.env.DCV_PORTAL_COOKIE_KEY;
  if (fromEnv !== undefined && fromEnv.length < MIN_KEY_LENGTH) {
    throw new CliError(`DCV_PORTAL_COOKIE_KEY must be at least ${MIN_KEY_LENGTH} characters`, 2);
  }
  const cookieKey = fromEnv ?? randomBytes(32);
  let oidc;
  try {
    oidc = openIdConnectClient({ issuer: portal.issuer, clientId: portal.clientId, scopes: portal.scopes });
  } catch (error) {
    throw new CliError((error as Error).message, 2);
  }
  return (shared: PortalShared) =>
    createPortal({
      ...shared,
      oidc,
      cookieKey,
      gatewayUrl: portal.gatewayUrl,
      catalog,
      leases: catalog,
      groupsClaim: portal.groupsClaim,
      userClaims: portal.userClaims,
      publicUrl: portal.publicUrl,
      log,
      ...(desktopStart ? { desktopStart } : {}),
    });
}

/** The verifier's token store, if one was asked for; a missing table or unusable folder fails start-up. */
async function openTokenStore(options: ServeOptions, log: JsonLineLog): Promise<TokenStore | undefined> {
  if (options.tokensDir) {
    try {
      return new DirectoryTokenStore(options.tokensDir, log);
    } catch (error) {
      if (error instanceof ConfigError) throw new CliError(error.message);
      throw error;
    }
  }
  if (options.tokensTable) {
    const client = createResolveDynamoClient();
    await checkTable(client, options.tokensTable, 'TokenHash');
    return new DynamoDbTokenStore(sdkDynamoApi(client), options.tokensTable, log);
  }
  return undefined;
}

export async function runServe(argv: string[]): Promise<void> {
  const options = parseServeArgs(argv);
  // One log line per request: write each event-loop turn's lines at once, not one syscall per line.
  coalesceWrites(process.stdout);
  const running = await startServe(options);
  // Handlers first: a supervisor may signal as soon as it reads the line below (stderr to a pipe is
  // written synchronously), and until then a signal has its default effect, killing the process.
  stopOnSignal(running);
  // Human-readable too: the first thing a newcomer wants to know is where to point the gateway.
  // The prefix is a secret: name the option, never echo its value.
  const gatewayUrl = options.pathPrefix ? `${running.url}/<--path-prefix value>` : running.url;
  process.stderr.write(`dcv-resolver: serving on ${running.url} (gateway: [resolver] url = '${gatewayUrl}')\n`);
  if (options.portal) {
    // Never under the path prefix: that stays the gateway's and the DCV servers' secret.
    const portalUrl = options.portal.publicUrl ?? running.url;
    process.stderr.write(`dcv-resolver: portal at ${portalUrl}/portal (the identity provider's redirect URI: ${portalUrl}/portal/callback)\n`);
  }
  if (options.tokensDir || options.tokensTable) {
    process.stderr.write(
      `dcv-resolver: verifying tokens (each DCV server's dcv.conf: [security] auth-token-verifier="${gatewayUrl}/verifyToken/<its DcvServerEndpoint>")\n`,
    );
  }
}
