import { parse as parseToml, TomlError } from 'smol-toml';
import { gatewayPort } from './connect-links.js';
import type { RawItem } from '../session-record.js';
import { checkAuthorization } from './dcv-authorization.js';
import { parseDcvConf } from './dcv-conf.js';
import { checkDcvConfig } from './dcv-rules.js';
import { sortFindings, type Finding } from './finding.js';
import { checkGatewayConfig, gatewayResolverUrl, referenceResolver } from './gateway-rules.js';

/**
 * The doctor without I/O: the files' text in, findings out. The CLI reads the files, probes the resolver
 * (lambda/adapters/gateway-probe.ts) and adds probe-findings.ts's findings.
 */
export interface DoctorInput {
  readonly gateway: { readonly file: string; readonly text: string };
  readonly dcv: readonly { readonly file: string; readonly text: string }[];
  /** `--resolver-url`, already checked to be an http(s) URL. */
  readonly resolverUrl?: URL;
  /** `--sessions FILE` / `--table NAME`: the records, to check each DCV server's authorization against. */
  readonly sessions?: readonly RawItem[];
  /** Milliseconds since the epoch (expired records are left out). @default Date.now() */
  readonly nowMs?: number;
}

export interface Diagnosis {
  readonly findings: Finding[];
  /** The gateway's client port, for the connect links. */
  readonly port: string;
  /** The gateway's `[resolver] url`, when usable. */
  readonly gatewayResolverUrl?: URL;
  /** The gateway's `[resolver]` table, for probing the way the gateway does. */
  readonly gatewayResolver?: Readonly<Record<string, unknown>>;
}

export function diagnose(input: DoctorInput): Diagnosis {
  const findings: Finding[] = [];
  let config: Record<string, unknown> = {};
  try {
    config = parseToml(input.gateway.text.replace(/^\uFEFF/, ''));
    findings.push(...checkGatewayConfig(input.gateway.file, config, input.resolverUrl));
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    const where = `line ${error.line}, column ${error.column}`;
    findings.push({
      rule: 'gateway.toml-syntax',
      severity: 'error',
      file: input.gateway.file,
      key: where,
      message: `not valid TOML (${where}): the gateway refuses to start. ${error.message.split('\n')[0]}`,
      fix: "quote strings ('…'), write lists as ['a', 'b'], one key = value per line",
    });
  }
  const reference = referenceResolver(config, input.resolverUrl);
  for (const dcv of input.dcv) {
    const conf = parseDcvConf(dcv.text);
    findings.push(...checkDcvConfig(dcv.file, conf, reference));
    findings.push(...checkAuthorization(dcv.file, conf, { sessions: input.sessions, nowMs: input.nowMs ?? Date.now() }));
  }
  const resolver = config.resolver;
  return {
    findings: sortFindings(findings),
    port: gatewayPort((config.gateway as Record<string, unknown> | undefined)?.['web-listen-endpoints']),
    gatewayResolverUrl: gatewayResolverUrl(config),
    gatewayResolver: typeof resolver === 'object' && resolver !== null ? (resolver as Record<string, unknown>) : undefined,
  };
}
