import { Metrics as PowertoolsMetrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { METRICS_NAMESPACE, type MetricDimensions, type MetricsSink } from '../core/metrics.js';

/**
 * The metrics port over Powertools Metrics (EMF on stdout, flushed by `flush()`), for functions whose cold
 * start does not matter (discovery). The resolver writes the same format with its own small writer
 * (emf-metrics.ts). Extra dimensions go on a single metric of their own, so they never leak onto others.
 */
export class PowertoolsMetricsSink implements MetricsSink {
  readonly powertools: PowertoolsMetrics;

  constructor(service: string, powertools?: PowertoolsMetrics) {
    this.powertools = powertools ?? new PowertoolsMetrics({ namespace: METRICS_NAMESPACE, serviceName: service });
  }

  count(name: string, dimensions?: MetricDimensions, value = 1): void {
    this.target(dimensions).addMetric(name, MetricUnit.Count, value);
  }

  time(name: string, ms: number, dimensions?: MetricDimensions): void {
    this.target(dimensions).addMetric(name, MetricUnit.Milliseconds, Math.round(ms * 1000) / 1000);
  }

  flush(): void {
    // Publishing nothing only logs a warning (a batch of unusable events runs nothing).
    if (this.powertools.hasStoredMetrics()) this.powertools.publishStoredMetrics();
  }

  private target(dimensions: MetricDimensions | undefined): PowertoolsMetrics {
    if (!dimensions || Object.keys(dimensions).length === 0) return this.powertools;
    const single = this.powertools.singleMetric();
    single.addDimensions({ ...dimensions });
    return single;
  }
}
