import { countBySeverity, type Finding } from './finding.js';

const LABEL = { error: 'ERROR  ', warning: 'WARNING', info: 'NOTE   ' } as const;

/** Findings as text: one line for what and where, one for the fix. */
export function renderFindings(findings: readonly Finding[]): string {
  if (findings.length === 0) return 'No findings.\n';
  const lines: string[] = [];
  for (const f of findings) {
    lines.push(`${LABEL[f.severity]}  ${f.file}${f.key ? ` ${f.key}` : ''}: ${f.message}`, `         fix: ${f.fix}`);
  }
  const counts = countBySeverity(findings);
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  lines.push('', `${plural(counts.error, 'error')}, ${plural(counts.warning, 'warning')}, ${plural(counts.info, 'note')}`);
  return `${lines.join('\n')}\n`;
}
