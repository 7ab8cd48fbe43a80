/** The closing explanation: how users connect through the gateway, and why an un-tokened link gets 404 on /auth. */

/** The port of the first `web-listen-endpoints` entry ('0.0.0.0:8443', '[::]:8445'), else 8443. */
export function gatewayPort(endpoints: unknown): string {
  const first = Array.isArray(endpoints) ? endpoints[0] : undefined;
  const match = typeof first === 'string' ? /:(\d{1,5})$/.exec(first) : null;
  return match ? match[1]! : '8443';
}

export function connectLinks(port: string): { browser: string; native: string } {
  return {
    browser: `https://<gateway-host>:${port}/?authToken=<token>#<sessionId>`,
    native: `dcv://<gateway-host>:${port}/?authToken=<token>#<sessionId>`,
  };
}

export function connectHelp(port: string): string {
  const links = connectLinks(port);
  return [
    'How users connect',
    `  browser:        ${links.browser}`,
    `  native client:  ${links.native}`,
    `  dcv-resolver token create --session <id> --user <name> --gateway https://<gateway-host>:${port} … prints both.`,
    '',
    'Why a link without a token fails with 404 on /auth',
    `  A link such as https://<gateway-host>:${port}/?sessionId=console loads the web client (the gateway serves`,
    `  [web-resources] for any page), but the client then opens wss://<gateway-host>:${port}/auth with no token and no`,
    '  session id after "#": the gateway has nothing to route, so it answers that request like an unknown web',
    '  resource, with 404. It is not a gateway limitation: the gateway does not support connecting without an',
    '  authentication token. Put the token in ?authToken= and the session id after "#"; the gateway resolves',
    '  the id here, and the DCV server asks its [security] auth-token-verifier whether the token is good.',
    '',
  ].join('\n');
}
