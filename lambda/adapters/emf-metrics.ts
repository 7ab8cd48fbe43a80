import { METRICS_NAMESPACE, type MetricDimensions, type Metrics } from '../core/metrics.js';

/**
 * CloudWatch embedded metric format (EMF) without a library: metrics are aggregated in memory and
 * written as JSON lines that CloudWatch Logs (Lambda) or the CloudWatch agent (`serve --metrics`) turns
 * into metrics. No PutMetricData call, no AWS SDK, no network. Hand-written rather than Powertools
 * Metrics to keep the resolver's cold start (see docs/operations.md "Watching it" for the measurement).
 *
 * One line per distinct set of dimension values; counts are summed, durations kept as value arrays
 * (at most 100 per line, the EMF limit). Every line carries the `service` dimension.
 */
export interface EmfMetricsOptions {
  /** The `service` dimension. */
  readonly service: string;
  /** @default METRICS_NAMESPACE */
  readonly namespace?: string;
  /** Where each line goes (with its newline). @default process.stdout */
  readonly write?: (text: string) => void;
  readonly now?: () => number;
}

const MAX_VALUES = 100;

interface Bucket {
  readonly dimensions: Record<string, string>;
  readonly counts: Map<string, number>;
  readonly times: Map<string, number[]>;
}

export class EmfMetrics implements Metrics {
  private readonly service: string;
  private readonly namespace: string;
  private readonly write: (text: string) => void;
  private readonly now: () => number;
  private buckets = new Map<string, Bucket>();

  constructor(options: EmfMetricsOptions) {
    this.service = options.service;
    this.namespace = options.namespace ?? METRICS_NAMESPACE;
    this.write = options.write ?? ((text) => process.stdout.write(text));
    this.now = options.now ?? Date.now;
  }

  count(name: string, dimensions?: MetricDimensions, value = 1): void {
    const counts = this.bucket(dimensions).counts;
    counts.set(name, (counts.get(name) ?? 0) + value);
  }

  time(name: string, ms: number, dimensions?: MetricDimensions): void {
    const times = this.bucket(dimensions).times;
    const values = times.get(name);
    const rounded = Math.round(ms * 1000) / 1000;
    if (values) values.push(rounded);
    else times.set(name, [rounded]);
  }

  /** Writes everything recorded since the last flush (nothing when nothing was recorded). */
  flush(): void {
    if (this.buckets.size === 0) return;
    const buckets = this.buckets;
    this.buckets = new Map();
    const timestamp = this.now();
    let text = '';
    for (const bucket of buckets.values()) {
      // Durations beyond 100 per metric go on further lines with the same dimensions.
      const longest = Math.max(0, ...[...bucket.times.values()].map((v) => v.length));
      for (let offset = 0; offset === 0 || offset < longest; offset += MAX_VALUES) {
        text += `${JSON.stringify(this.line(bucket, timestamp, offset))}\n`;
      }
    }
    this.write(text);
  }

  private line(bucket: Bucket, timestamp: number, offset: number): Record<string, unknown> {
    const metrics: { Name: string; Unit: string }[] = [];
    const values: Record<string, unknown> = {};
    if (offset === 0) {
      for (const [name, value] of bucket.counts) {
        metrics.push({ Name: name, Unit: 'Count' });
        values[name] = value;
      }
    }
    for (const [name, all] of bucket.times) {
      const part = all.slice(offset, offset + MAX_VALUES);
      if (part.length === 0) continue;
      metrics.push({ Name: name, Unit: 'Milliseconds' });
      values[name] = part.length === 1 ? part[0] : part;
    }
    return {
      _aws: {
        Timestamp: timestamp,
        CloudWatchMetrics: [{ Namespace: this.namespace, Dimensions: [Object.keys(bucket.dimensions)], Metrics: metrics }],
      },
      ...bucket.dimensions,
      ...values,
    };
  }

  private bucket(extra: MetricDimensions | undefined): Bucket {
    // `service` first, then the caller's dimensions in a stable order, so equal sets share a bucket.
    const dimensions: Record<string, string> = { service: this.service };
    let key = '';
    if (extra) {
      for (const name of Object.keys(extra).sort()) {
        dimensions[name] = extra[name]!;
        key += `${name}\u0000${extra[name]}\u0000`;
      }
    }
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { dimensions, counts: new Map(), times: new Map() };
      this.buckets.set(key, bucket);
    }
    return bucket;
  }
}

/** Flushes `metrics` every `intervalMs` (a long-running server); the timer never keeps the process alive. */
export function flushEvery(metrics: EmfMetrics, intervalMs: number): { stop(): void } {
  const timer = setInterval(() => metrics.flush(), intervalMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      metrics.flush();
    },
  };
}
