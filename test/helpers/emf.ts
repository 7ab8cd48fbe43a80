import { expect } from 'vitest';

/** One CloudWatch embedded-metric-format line, as parsed from stdout. */
export interface EmfLine {
  readonly _aws: {
    readonly Timestamp: number;
    readonly CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[];
  };
  readonly [key: string]: any;
}

/**
 * The EMF lines in `text` (other lines, such as JSON log lines, are skipped), each checked against the
 * format's rules: every dimension and every metric named in a directive has a value at the root, metric
 * values are numbers or arrays of at most 100 numbers, dimension values are strings.
 */
export function emfLines(text: string): EmfLine[] {
  const lines: EmfLine[] = [];
  for (const raw of text.split('\n')) {
    if (!raw.startsWith('{')) continue;
    const line = JSON.parse(raw) as EmfLine;
    if (line._aws === undefined) continue;
    expect(typeof line._aws.Timestamp).toBe('number');
    expect(line._aws.CloudWatchMetrics.length).toBeGreaterThan(0);
    for (const directive of line._aws.CloudWatchMetrics) {
      expect(directive.Namespace).toBe('DcvSessionResolver');
      for (const set of directive.Dimensions) {
        expect(set.length).toBeLessThanOrEqual(30);
        for (const name of set) expect(typeof line[name], `dimension ${name}`).toBe('string');
      }
      expect(directive.Metrics.length).toBeGreaterThan(0);
      for (const metric of directive.Metrics) {
        expect(['Count', 'Milliseconds']).toContain(metric.Unit);
        const value = line[metric.Name];
        if (Array.isArray(value)) {
          expect(value.length).toBeLessThanOrEqual(100);
          for (const v of value) expect(typeof v).toBe('number');
        } else {
          expect(typeof value, `metric ${metric.Name}`).toBe('number');
        }
      }
    }
    lines.push(line);
  }
  return lines;
}

/** Every dimension name used by any directive of these lines. */
export function dimensionNames(lines: readonly EmfLine[]): Set<string> {
  return new Set(lines.flatMap((l) => l._aws.CloudWatchMetrics.flatMap((d) => d.Dimensions.flat())));
}
