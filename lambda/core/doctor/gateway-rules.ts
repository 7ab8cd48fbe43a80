import type { Finding, Severity } from './finding.js';
import { compareBases, describeBase, executeApiUrlProblem, isFunctionUrlHostname, isLoopbackHostname, parseHttpUrl, resolverBase, type ResolverBase } from './resolver-url.js';

/**
 * The rules for the gateway's dcv-connection-gateway.conf, each a small function over the parsed TOML.
 * Key names from the Amazon DCV Connection Gateway admin guide.
 */

type Table = Readonly<Record<string, unknown>>;

interface GatewayContext {
  readonly file: string;
  readonly config: Table;
  /** `--resolver-url`, when the operator named the resolver this gateway should use. */
  readonly resolverUrl?: URL;
}

function table(config: Table, name: string): Table | undefined {
  const value = config[name];
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Table) : undefined;
}

function finding(ctx: GatewayContext, rule: string, severity: Severity, key: string, message: string, fix: string): Finding {
  return { rule, severity, file: ctx.file, key, message, fix };
}

/** `[resolver] url` as a URL when it is a usable one (other rules report why it is not). */
export function gatewayResolverUrl(config: Table): URL | undefined {
  const url = table(config, 'resolver')?.url;
  return typeof url === 'string' ? parseHttpUrl(url) : undefined;
}

function checkListeners(ctx: GatewayContext): Finding[] {
  const gateway = table(ctx.config, 'gateway');
  const endpoints = gateway?.['web-listen-endpoints'];
  if (Array.isArray(endpoints) && endpoints.length > 0) return [];
  if (endpoints !== undefined && !Array.isArray(endpoints)) {
    return [finding(ctx, 'gateway.listen-missing', 'error', '[gateway] web-listen-endpoints', `web-listen-endpoints must be a list, not ${JSON.stringify(endpoints)}`, `write web-listen-endpoints = [${JSON.stringify(String(endpoints)).replace(/"/g, "'")}]`)];
  }
  if (gateway?.['bind-addr'] !== undefined) {
    return [finding(ctx, 'gateway.bind-addr-deprecated', 'warning', '[gateway] bind-addr', 'bind-addr is deprecated', "use web-listen-endpoints = ['0.0.0.0:8443'] instead")];
  }
  return [
    finding(ctx, 'gateway.listen-missing', 'error', '[gateway] web-listen-endpoints', 'no web-listen-endpoints: the gateway has no TCP listener for clients', "add web-listen-endpoints = ['0.0.0.0:8443'] under [gateway]"),
  ];
}

function checkCertificatePairs(ctx: GatewayContext): Finding[] {
  const out: Finding[] = [];
  for (const section of ['gateway', 'resolver']) {
    const t = table(ctx.config, section);
    const cert = t?.['cert-file'] !== undefined;
    const key = t?.['cert-key-file'] !== undefined;
    if (cert !== key) {
      const [has, lacks] = cert ? ['cert-file', 'cert-key-file'] : ['cert-key-file', 'cert-file'];
      out.push(finding(ctx, 'tls.cert-unpaired', 'error', `[${section}] ${has}`, `${has} without ${lacks}: the two go together`, `add ${lacks} (the matching ${cert ? 'private key' : 'certificate'}) or remove ${has}`));
    }
  }
  const gateway = table(ctx.config, 'gateway');
  if (gateway?.['cert-file'] === undefined && gateway?.['cert-key-file'] === undefined) {
    out.push(finding(ctx, 'gateway.self-signed', 'info', '[gateway]', 'no cert-file: the gateway presents a self-signed certificate, so browsers warn', 'give [gateway] cert-file and cert-key-file for the name users connect to'));
  }
  return out;
}

function checkTlsStrict(ctx: GatewayContext): Finding[] {
  const out: Finding[] = [];
  const resolverUrl = gatewayResolverUrl(ctx.config);
  for (const section of ['resolver', 'dcv', 'web-resources']) {
    const value = table(ctx.config, section)?.['tls-strict'];
    if (value === undefined || value === true) continue;
    const key = `[${section}] tls-strict`;
    if (typeof value !== 'boolean') {
      out.push(finding(ctx, 'tls.tls-strict-type', 'error', key, `tls-strict must be a TOML boolean, not ${JSON.stringify(value)}`, 'write tls-strict = true (or leave it out: true is the default)'));
      continue;
    }
    const what = section === 'dcv' ? 'the DCV servers' : section === 'resolver' ? 'the resolver' : 'the web resources server';
    const noEffect = section === 'resolver' && resolverUrl?.protocol === 'http:';
    out.push(
      finding(
        ctx,
        'tls.tls-strict-false',
        'warning',
        key,
        noEffect
          ? 'tls-strict = false has no effect on a plain http:// url, and once the url is https:// it accepts any certificate'
          : `tls-strict = false: the gateway accepts any certificate from ${what}, so anyone on the path can impersonate them`,
        section === 'dcv'
          ? 'remove it; give the DCV servers certificates from your CA and set [dcv] ca-file to that CA'
          : `remove it; for a private CA set [${section}] ca-file`,
      ),
    );
  }
  return out;
}

function checkResolverUrl(ctx: GatewayContext): Finding[] {
  const resolver = table(ctx.config, 'resolver');
  const raw = resolver?.url;
  const key = '[resolver] url';
  if (raw === undefined) {
    return [finding(ctx, 'resolver.url-missing', 'error', key, 'no [resolver] url: the gateway cannot look up any session', "add [resolver] url = '<this resolver, e.g. http://127.0.0.1:9000>'")];
  }
  const url = typeof raw === 'string' ? parseHttpUrl(raw) : undefined;
  if (!url || url.search || url.hash || url.username || url.password) {
    return [finding(ctx, 'resolver.url-invalid', 'error', key, `${JSON.stringify(raw)} is not an http:// or https:// URL without query, fragment or credentials`, "write it as 'https://host[:port][/prefix]'")];
  }
  const text = raw as string;
  const out: Finding[] = [];
  if (/\/resolveSession\/?$/.test(url.pathname)) {
    out.push(finding(ctx, 'resolver.url-resolvesession-suffix', 'error', key, `the url ends in /resolveSession: the gateway appends it again (…/resolveSession/resolveSession)`, `write url = '${text.replace(/\/resolveSession\/?$/, '')}'`));
  } else if (text.endsWith('/')) {
    const bare = url.pathname === '/';
    out.push(
      finding(
        ctx,
        'resolver.url-trailing-slash',
        bare ? 'warning' : 'error',
        key,
        bare
          ? 'the url ends with a slash: the gateway asks for //resolveSession, which many resolvers answer with 404'
          : `the url ends with a slash: the gateway asks for ${url.pathname}/resolveSession, which misses the path prefix`,
        `write url = '${text.replace(/\/+$/, '')}'`,
      ),
    );
  }
  if (url.protocol === 'http:' && !isLoopbackHostname(url.hostname)) {
    out.push(
      finding(ctx, 'resolver.plain-http', 'error', key, `plain http:// to ${url.hostname}: anyone on the path can read session lookups and answer them, sending users to a host of their choice`, 'use https:// (serve --tls-cert/--tls-key), or run the resolver or proxy on this host and use http://127.0.0.1'),
    );
  }
  if (isFunctionUrlHostname(url.hostname) && url.pathname.replace(/\/+$/, '') === '') {
    out.push(
      finding(ctx, 'resolver.function-url-no-prefix', 'warning', key, 'a Function URL without a path prefix: any caller inside the allowed source ranges who learns the host can resolve sessions', 'deploy with -c pathPrefix=$(openssl rand -hex 16) and use the GatewayResolverUrl output'),
    );
  }
  const apiProblem = executeApiUrlProblem(url, '');
  if (apiProblem) out.push(finding(ctx, 'resolver.execute-api-url', 'warning', key, apiProblem.message, apiProblem.fix));
  if (ctx.resolverUrl) {
    const verdict = compareBases(resolverBase(url), resolverBase(ctx.resolverUrl));
    if (verdict === 'different') {
      out.push(finding(ctx, 'resolver.not-this-resolver', 'warning', key, `the gateway asks ${describeBase(resolverBase(url))}, not the resolver you named (${describeBase(resolverBase(ctx.resolverUrl))})`, `write url = '${ctx.resolverUrl.href.replace(/\/+$/, '')}' (or the proxy in front of it)`));
    }
  }
  return out;
}

function checkWebResources(ctx: GatewayContext): Finding[] {
  const web = table(ctx.config, 'web-resources');
  const key = '[web-resources]';
  const local = web?.['local-resources-path'];
  const url = web?.url;
  if (local === undefined && url === undefined) {
    return [
      finding(ctx, 'web-resources.missing', 'error', key, 'no [web-resources] local-resources-path or url: browsers get 404 instead of the DCV web client', "install nice-dcv-web-viewer on the gateway and add [web-resources] local-resources-path = '/usr/share/dcv/www'"),
    ];
  }
  if (local !== undefined && url !== undefined) {
    return [finding(ctx, 'web-resources.both', 'warning', key, 'both local-resources-path and url are set; keep one so it is clear where the web client comes from', 'remove one of the two')];
  }
  if (typeof url === 'string') {
    const parsed = parseHttpUrl(url);
    if (parsed && isLoopbackHostname(parsed.hostname)) {
      return [
        finding(ctx, 'web-resources.local-server', 'info', '[web-resources] url', `a separate web server on this host (${url}) serves the web client; the gateway can serve the files itself`, "replace url with local-resources-path = '/usr/share/dcv/www' and stop the extra server"),
      ];
    }
  }
  return [];
}

function checkLog(ctx: GatewayContext): Finding[] {
  const level = table(ctx.config, 'log')?.level;
  if (level === 'trace' || level === 'debug') {
    return [finding(ctx, 'log.verbose', 'info', '[log] level', `level = '${level}' is meant for troubleshooting: large logs, with session ids and addresses`, "set level = 'info' once things work")];
  }
  return [];
}

export function checkGatewayConfig(file: string, config: Table, resolverUrl?: URL): Finding[] {
  const ctx: GatewayContext = { file, config, resolverUrl };
  return [...checkListeners(ctx), ...checkResolverUrl(ctx), ...checkTlsStrict(ctx), ...checkCertificatePairs(ctx), ...checkWebResources(ctx), ...checkLog(ctx)];
}

/** The resolver the DCV servers' verifiers should point at: `--resolver-url`, else the gateway's url. */
export function referenceResolver(config: Table, resolverUrl?: URL): { base: ResolverBase; from: string } | undefined {
  if (resolverUrl) return { base: resolverBase(resolverUrl), from: '--resolver-url' };
  const url = gatewayResolverUrl(config);
  return url ? { base: resolverBase(url), from: "the gateway's [resolver] url" } : undefined;
}
