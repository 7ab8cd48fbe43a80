import type { Finding } from './finding.js';

/** What the doctor needs of a probe (lambda/adapters/gateway-probe.ts's result has this shape). */
export type ProbeOutcome =
  | {
      readonly answered: true;
      readonly status: number;
      readonly latencyMs: number;
      readonly violations: readonly { readonly rule: string; readonly message: string }[];
      readonly answer?: Readonly<Record<string, unknown>>;
    }
  | { readonly answered: false; readonly error: string; readonly latencyMs: number };

/** The probe's result as findings: the gateway's exact request, judged by the contract. */
export function probeFindings(resolverUrl: string, sessionId: string, outcome: ProbeOutcome): Finding[] {
  const file = 'resolver';
  const key = `POST ${resolverUrl}/resolveSession?sessionId=${sessionId}`;
  if (!outcome.answered) {
    return [{ rule: 'probe.no-answer', severity: 'error', file, key, message: `no answer after ${outcome.latencyMs} ms: ${outcome.error}`, fix: 'start the resolver (or proxy), check the address, port, firewall and certificate' }];
  }
  if (outcome.violations.length > 0) {
    return outcome.violations.map((violation) => ({
      rule: `probe.${violation.rule}`,
      severity: 'error' as const,
      file,
      key,
      message: violation.message,
      fix: 'make the resolver answer exactly {"SessionId","TransportProtocol","DcvServerEndpoint","Port","WebUrlPath"} (see dcv-resolver resolve)',
    }));
  }
  if (outcome.status === 200 && outcome.answer) {
    const a = outcome.answer;
    const message = `200 in ${outcome.latencyMs} ms: '${sessionId}' → ${String(a.DcvServerEndpoint)}:${String(a.Port)}, server session '${String(a.SessionId)}'`;
    return [{ rule: 'probe.ok', severity: 'info', file, key, message, fix: 'nothing to do' }];
  }
  if (outcome.status === 404) {
    return [{ rule: 'probe.not-found', severity: 'info', file, key, message: `404 in ${outcome.latencyMs} ms: the resolver has no destination for '${sessionId}' (it honours the contract)`, fix: 'pass --session with an id that should resolve to check a full answer' }];
  }
  return [{ rule: 'probe.bad-request', severity: 'error', file, key, message: `400 in ${outcome.latencyMs} ms: the resolver calls the gateway's own request malformed`, fix: 'read sessionId, transport and clientIpAddress from the query string of a POST with no body' }];
}
