/** One thing the doctor noticed, with the one-line fix. `error` means users cannot connect (or not safely). */
export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  /** Stable id, e.g. `resolver.url-trailing-slash`; tests and scripts match on it. */
  readonly rule: string;
  readonly severity: Severity;
  /** The file the finding is about (as given on the command line), or `resolver` for the probe. */
  readonly file: string;
  /** Where in the file, e.g. `[resolver] url`. */
  readonly key?: string;
  readonly message: string;
  readonly fix: string;
}

const ORDER: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

/** Errors first, then warnings, then notes; otherwise in the order they were found. */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return findings
    .map((finding, index) => ({ finding, index }))
    .sort((a, b) => ORDER[a.finding.severity] - ORDER[b.finding.severity] || a.index - b.index)
    .map(({ finding }) => finding);
}

export function countBySeverity(findings: readonly Finding[]): Record<Severity, number> {
  const counts: Record<Severity, number> = { error: 0, warning: 0, info: 0 };
  for (const finding of findings) counts[finding.severity] += 1;
  return counts;
}
