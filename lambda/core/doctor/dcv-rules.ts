import { sectionsWith, setting, type DcvConf } from './dcv-conf.js';
import type { Finding, Severity } from './finding.js';
import { compareBases, describeBase, executeApiUrlProblem, isLoopbackHostname, parseHttpUrl, resolverBase, type ResolverBase } from './resolver-url.js';

/**
 * The rules for a DCV server's dcv.conf. The verifier is this product's: served next to the resolver (same
 * origin and path prefix) at `…/verifyToken/<DcvServerEndpoint>`, the segment naming the server so a token
 * issued for one host is refused on another (docs/connecting.md "The cross-server rule").
 */

/** `<base>/verifyToken` or `<base>/verifyToken/<one segment>`. */
const VERIFIER_PATH = /^(.*)\/verifyToken(?:\/([^/]+))?$/;

export interface Reference {
  readonly base: ResolverBase;
  /** Where the reference came from, for messages. */
  readonly from: string;
}

function suggestedVerifier(reference: Reference | undefined): string {
  if (!reference) return '<resolver URL>/verifyToken/<DcvServerEndpoint of this server>';
  // The gateway's loopback is not this server's: a proxy (or serve) on this host answers there instead.
  const base = reference.base.loopback ? `http://127.0.0.1:${reference.base.port}${reference.base.prefix}` : describeBase(reference.base);
  return `${base}/verifyToken/<DcvServerEndpoint of this server>`;
}

export function checkDcvConfig(file: string, conf: DcvConf, reference: Reference | undefined): Finding[] {
  const out: Finding[] = [];
  const add = (rule: string, severity: Severity, key: string, message: string, fix: string) => out.push({ rule, severity, file, key, message, fix });
  const line = `[security] auth-token-verifier="${suggestedVerifier(reference)}"`;

  for (const bad of conf.unparsed.slice(0, 5)) {
    add('dcv.unparsed-line', 'info', `line ${bad.line}`, `line not understood, skipped: ${JSON.stringify(bad.text.trim())}`, 'write it as [section] or key="value"');
  }

  const webUrlPath = setting(conf, 'connectivity', 'web-url-path');
  if (webUrlPath && !webUrlPath.value.startsWith('/')) {
    add('dcv.web-url-path', 'error', `[connectivity] web-url-path (line ${webUrlPath.line})`, `web-url-path "${webUrlPath.value}" does not start with '/'`, `write web-url-path="/${webUrlPath.value}" (and the same WebUrlPath in the session records)`);
  }

  const verifier = setting(conf, 'security', 'auth-token-verifier');
  if (!verifier) {
    const elsewhere = sectionsWith(conf, 'auth-token-verifier');
    if (elsewhere.length > 0) {
      add('dcv.verifier-wrong-section', 'error', `[${elsewhere[0]}] auth-token-verifier`, `auth-token-verifier is under [${elsewhere[0]}]; DCV reads it only from [security]`, `move it under [security]`);
    } else {
      add(
        'dcv.verifier-missing',
        'error',
        '[security] auth-token-verifier',
        'no auth-token-verifier: this server cannot check the token in a connect link, and the gateway does not support connecting without one',
        `add ${line} and restart dcvserver${reference?.base.loopback ? ' (127.0.0.1: a dcv-resolver proxy or serve on this DCV host; else the resolver\'s https:// address as this server reaches it)' : ''}`,
      );
    }
    return out;
  }

  const key = `[security] auth-token-verifier (line ${verifier.line})`;
  const url = parseHttpUrl(verifier.value);
  if (!url || url.search || url.hash) {
    add('dcv.verifier-invalid', 'error', key, `"${verifier.value}" is not an http:// or https:// URL without query or fragment`, `write ${line}`);
    return out;
  }
  if (url.protocol === 'http:' && !isLoopbackHostname(url.hostname)) {
    add('dcv.verifier-plain-http', 'error', key, `plain http:// to ${url.hostname}: every user's token crosses the network readable, and a forged answer lets anyone in`, 'use https://, or a proxy on this host at http://127.0.0.1');
  }
  const call = /\/verifyToken(\/[^/]*)?(?=\/*$)/.exec(url.pathname);
  const apiProblem = executeApiUrlProblem(url, call ? call[0] : '');
  if (apiProblem) add('dcv.verifier-execute-api-url', 'warning', key, apiProblem.message, apiProblem.fix);
  const path = VERIFIER_PATH.exec(url.pathname);
  if (!path) {
    add('dcv.verifier-elsewhere', 'error', key, `"${url.pathname}" is not this product's verifier path (…/verifyToken/<DcvServerEndpoint>): tokens from dcv-resolver are not checked here`, `write ${line}`);
    return out;
  }
  if (path[2] === undefined) {
    add(
      'dcv.verifier-no-server',
      'warning',
      key,
      "no server segment after /verifyToken: a token for a session on another host whose session id is also e.g. 'console' is accepted here (safe only with a single DCV server)",
      `append this server's DcvServerEndpoint: ${url.href}/<DcvServerEndpoint of this server>`,
    );
  }
  if (reference) {
    const base = resolverBase(new URL(`${url.origin}${path[1]}`));
    const verdict = compareBases(base, reference.base);
    if (verdict === 'different') {
      add('dcv.verifier-elsewhere', 'error', key, `the verifier ${describeBase(base)} is not the resolver (${describeBase(reference.base)}, from ${reference.from}): tokens issued for it are refused here`, `write ${line}`);
    } else if (verdict === 'unknown') {
      add(
        'dcv.verifier-unverifiable',
        'info',
        key,
        `cannot tell from here whether ${describeBase(base)} is the resolver the gateway reaches as ${describeBase(reference.base)}`,
        'check with: dcv-resolver resolve --url <the verifier URL without /verifyToken…> --session <id>, run on this server',
      );
    }
  }
  return out;
}
