/**
 * A complete, commented `dcv-connection-gateway.conf` (TOML) for a gateway that uses this resolver. Key names
 * are the Amazon DCV Connection Gateway admin guide's ("Configuring the Connection Gateway", "Enabling Web
 * Access", "Logs"). Pure string building: the stack calls `renderGatewayConfig` with a CDK token for the
 * URL, so nothing here may parse or inspect the URL.
 */

/** Where the gateway host's web client package (nice-dcv-web-viewer) installs the DCV web client. */
export const WEB_CLIENT_PATH = '/usr/share/dcv/www';
export const GATEWAY_CONFIG_PATH = '/etc/dcv-connection-gateway/dcv-connection-gateway.conf';
/** Marks a value the operator has to choose; `grep -n DECIDE` lists them. */
export const DECIDE = '# DECIDE:';

export interface GatewayConfigOptions {
  /** `[resolver] url`: without a trailing slash or `/resolveSession` (may be a CDK token). */
  readonly resolverUrl: string;
  /** `[resolver] ca-file`: the CA that signed the resolver's certificate (a private CA). */
  readonly caFile?: string;
  /** `[resolver] cert-file` + `cert-key-file`: the gateway's client certificate for a mutual-TLS resolver. */
  readonly certFile?: string;
  readonly certKeyFile?: string;
}

/**
 * A TOML string: a literal string ('…', no escapes) when the value allows it, else a basic string ("…")
 * with the escapes TOML requires. A CDK token ('${Token[…]}') is a literal string either way.
 */
export function tomlString(value: string): string {
  if (!/['\u0000-\u001f\u007f]/.test(value)) return `'${value}'`;
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `"${out}"`;
}

export function renderGatewayConfig(options: GatewayConfigOptions): string {
  const resolverTls: string[] = [];
  if (options.caFile !== undefined) {
    resolverTls.push('# The CA that signed the resolver\'s certificate (certificate checks stay on).', `ca-file = ${tomlString(options.caFile)}`);
  }
  if (options.certFile !== undefined && options.certKeyFile !== undefined) {
    resolverTls.push(
      '# The client certificate the gateway shows a resolver that requires mutual TLS (serve --client-ca).',
      `cert-file = ${tomlString(options.certFile)}`,
      `cert-key-file = ${tomlString(options.certKeyFile)}`,
    );
  }
  const lines = [
    `# ${GATEWAY_CONFIG_PATH}`,
    '# Written by `dcv-resolver gateway-config`. Lines marked "DECIDE:" need your choice (grep -n DECIDE).',
    '# Reference: https://docs.aws.amazon.com/dcv/latest/gw-admin/config-reference.html',
    '# Apply: sudo systemctl restart dcv-connection-gateway. Check: dcv-resolver doctor --gateway-config <this file>.',
    '#',
    '# Users connect with a token and the session id after "#" (a link without a token loads the web client,',
    '# then fails with 404 on wss://<gateway>/auth):',
    '#   browser:        https://<gateway-host>:8443/?authToken=<token>#<sessionId>',
    '#   native client:  dcv://<gateway-host>:8443/?authToken=<token>#<sessionId>',
    '',
    '[gateway]',
    '# TCP listeners for browsers and native clients (required, non-empty).',
    `${DECIDE} the address and port users reach; the links above use this port.`,
    "# For IPv6 add e.g. '[::]:8445' (the admin guide's example gives IPv6 its own port).",
    "web-listen-endpoints = ['0.0.0.0:8443']",
    '# UDP listeners for QUIC; an empty list turns QUIC off.',
    `${DECIDE} keep QUIC only if this UDP port is open from the clients to the gateway and on to the DCV servers.`,
    "quic-listen-endpoints = ['0.0.0.0:8443']",
    '# The certificate browsers see. Without cert-file/cert-key-file the gateway makes a self-signed one',
    '# (browsers warn). Give both or neither; the key in PKCS#8 PEM.',
    `${DECIDE} your certificate for the gateway's public name, then uncomment both lines.`,
    `# cert-file = '/etc/dcv-connection-gateway/certs/gateway.pem'`,
    `# cert-key-file = '/etc/dcv-connection-gateway/certs/gateway.key'`,
    '',
    '[resolver]',
    '# The gateway POSTs <url>/resolveSession?sessionId=…&transport=…: no trailing slash, no /resolveSession.',
    `url = ${tomlString(options.resolverUrl)}`,
    ...resolverTls,
    '# Certificate checks stay on (tls-strict defaults to true): for a private CA give ca-file, never tls-strict = false.',
    '',
    '[web-resources]',
    '# The DCV web client, served by the gateway itself from the nice-dcv-web-viewer package',
    '# (install it on this host). To use a separate web server instead, replace the line with',
    "# url = 'https://<web server>' (one of the two).",
    `local-resources-path = ${tomlString(WEB_CLIENT_PATH)}`,
    '',
    '[dcv]',
    '# How the gateway connects to the DCV servers the resolver names.',
    `${DECIDE} if the DCV servers' certificates come from your private CA, uncomment ca-file. Their default`,
    '# self-signed certificates need tls-strict = false, which accepts any certificate: replace them instead.',
    `# ca-file = '/etc/dcv-connection-gateway/dcv-servers-ca.pem'`,
    '# Each DCV server behind this gateway checks tokens with this resolver; in its /etc/dcv/dcv.conf:',
    '#   [security]',
    '#   auth-token-verifier="<resolver URL as that server reaches it>/verifyToken/<its DcvServerEndpoint>"',
    '',
    '[health-check]',
    '# The gateway\'s health-check endpoint, for a load balancer in front of one or more gateways.',
    `${DECIDE} where the load balancer's health check connects (keep 127.0.0.1 without a load balancer).`,
    "bind-addr = '127.0.0.1'",
    'port = 8989',
    '',
    '[log]',
    '# error, warn, info, debug or trace; files in /var/log/dcv-connection-gateway/. debug/trace while troubleshooting.',
    "level = 'info'",
    '',
  ];
  return lines.join('\n');
}
