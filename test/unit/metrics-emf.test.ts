import { describe, expect, it, vi } from 'vitest';
import { EmfMetrics, flushEvery } from '../../lambda/adapters/emf-metrics';
import { PowertoolsMetricsSink } from '../../lambda/adapters/powertools-metrics';
import type { DiscoveryResult, DiscoveryService } from '../../lambda/core/discovery/run-discovery';
import { resolveOutcome, timedStore, verifyOutcome } from '../../lambda/core/metrics';
import { MemorySessionStore } from '../../lambda/core/session-store';
import { createDiscoveryHandler } from '../../lambda/handlers/discovery-handler';
import { createLogger } from '../../lambda/adapters/logger';
import { dimensionNames, emfLines } from '../helpers/emf';

function writer() {
  const written: string[] = [];
  const metrics = new EmfMetrics({ service: 'resolver', write: (t) => written.push(t), now: () => 1_000 });
  return { metrics, text: () => written.join('') };
}

describe('the EMF writer', () => {
  it('writes nothing when nothing was recorded', () => {
    const { metrics, text } = writer();
    metrics.flush();
    expect(text()).toBe('');
  });

  it('sums counts, keeps durations, and starts afresh after a flush', () => {
    const { metrics, text } = writer();
    metrics.count('A');
    metrics.count('A', undefined, 4);
    metrics.time('T', 1.23456);
    metrics.time('T', 2);
    metrics.flush();
    metrics.count('A');
    metrics.flush();
    const lines = emfLines(text());
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ service: 'resolver', A: 5, T: [1.235, 2] });
    expect(lines[0]!._aws.CloudWatchMetrics[0]!.Metrics).toEqual([
      { Name: 'A', Unit: 'Count' },
      { Name: 'T', Unit: 'Milliseconds' },
    ]);
    expect(lines[1]).toMatchObject({ A: 1 });
    expect(lines[1]!.T).toBeUndefined();
  });

  it('splits more than 100 durations over lines (the EMF limit), counts only on the first', () => {
    const { metrics, text } = writer();
    metrics.count('A');
    for (let i = 0; i < 250; i++) metrics.time('T', i);
    metrics.flush();
    const lines = emfLines(text());
    expect(lines.map((l) => (l.T as number[]).length)).toEqual([100, 100, 50]);
    expect(lines.map((l) => l.A)).toEqual([1, undefined, undefined]);
    expect(lines.flatMap((l) => l.T as number[])).toEqual(Array.from({ length: 250 }, (_, i) => i));
  });

  it('one line per set of dimension values, dimension order not mattering', () => {
    const { metrics, text } = writer();
    metrics.count('R', { Outcome: 'hit', Route: 'x' });
    metrics.count('R', { Route: 'x', Outcome: 'hit' });
    metrics.count('R', { Outcome: 'expired', Route: 'x' });
    metrics.flush();
    const lines = emfLines(text());
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ Outcome: 'hit', Route: 'x', R: 2 });
    expect(lines[0]!._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['service', 'Outcome', 'Route']]);
  });

  it('a batched writer (serve) flushes on its interval and once more on stop', async () => {
    vi.useFakeTimers();
    try {
      const { metrics, text } = writer();
      const batch = flushEvery(metrics, 1000);
      metrics.count('A');
      expect(text()).toBe('');
      vi.advanceTimersByTime(1000);
      expect(emfLines(text())).toHaveLength(1);
      metrics.count('A', undefined, 2);
      batch.stop();
      expect(emfLines(text()).map((l) => l.A)).toEqual([1, 2]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('outcome mapping', () => {
  it.each([
    [200, undefined, 'hit'],
    [404, undefined, 'not-found'],
    [404, 'expired', 'expired'],
    [403, undefined, 'source-refused'],
    [400, undefined, 'bad-request'],
    [405, undefined, 'bad-request'],
    [413, undefined, 'bad-request'],
    [503, undefined, 'store-error'],
    [500, undefined, 'internal-error'],
  ])('resolve %s %s → %s', (status, code, outcome) => {
    expect(resolveOutcome(status, code)).toBe(outcome);
  });

  it.each([
    [200, 'yes', undefined, 'yes'],
    [200, 'no', 'revoked', 'revoked'],
    [403, 'no', 'caller address is not allowed', 'source-refused'],
    [404, 'no', 'not enabled', 'not-enabled'],
    [415, 'no', 'form', 'bad-request'],
    [503, 'no', 'token store unavailable', 'store-error'],
  ])('verify %s %s %s → %s', (status, result, reason, outcome) => {
    expect(verifyOutcome(status, result, reason)).toBe(outcome);
  });

  it('a timed store records failed reads too, and passes results and errors through', async () => {
    const { metrics, text } = writer();
    const store = timedStore(new MemorySessionStore([{ SessionId: 'a', DcvServerEndpoint: 'h' }]), metrics);
    expect(await store.get('a')).toMatchObject({ SessionId: 'a' });
    const failing = timedStore({ get: async () => Promise.reject(new Error('boom')) }, metrics);
    await expect(failing.get('a')).rejects.toThrow('boom');
    metrics.flush();
    expect(emfLines(text())[0]!.StoreLatency).toHaveLength(2);
  });
});

describe('discovery metrics through Powertools Metrics', () => {
  const COUNTS = { instances: 40, added: 3, changed: 2, removed: 1, unchanged: 34, conflicts: 1, unparsable: 2, skipped: 0, failed: 0, puts: 5, deletes: 1, ec2Calls: 1 };
  const result = (extra: Partial<DiscoveryResult> = {}): DiscoveryResult =>
    ({ trigger: 'schedule', dryRun: false, plan: {} as DiscoveryResult['plan'], applied: [], skipped: [], failed: [], counts: COUNTS, ...extra }) as DiscoveryResult;

  /** The discovery handler over a fake service, its stdout captured (Powertools writes with console.log to stdout). */
  async function invoke(service: Partial<DiscoveryService>, event: unknown) {
    const chunks: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => {
      chunks.push(String(chunk));
      return true;
    });
    let outcome: unknown;
    try {
      const logger = createLogger();
      const handler = createDiscoveryHandler({ service: service as DiscoveryService, logger, metrics: new PowertoolsMetricsSink('discovery') });
      outcome = await handler(event, { functionName: 'f', awsRequestId: 'r' } as never).catch((e: Error) => e);
    } finally {
      spy.mockRestore();
    }
    return { outcome, lines: emfLines(chunks.join('')) };
  }

  it('a full run: counts, duration and fleet size on one line with only the service dimension', async () => {
    const { lines } = await invoke({ reconcileAll: async () => result() }, { source: 'aws.events', 'detail-type': 'Scheduled Event' });
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).toMatchObject({
      service: 'discovery',
      DiscoveryRuns: 1,
      DiscoveryFailedRuns: 0,
      DiscoveryAdded: 3,
      DiscoveryChanged: 2,
      DiscoveryRemoved: 1,
      DiscoveryConflicts: 1,
      DiscoveryUnparsableTags: 2,
      DiscoveryFailedWrites: 0,
      DiscoveryFleetSize: 40,
    });
    expect(typeof line.DiscoveryRunDuration).toBe('number');
    expect([...dimensionNames(lines)]).toEqual(['service']);
  });

  it('a failed run (a write failed) counts as failed and still reports its counts', async () => {
    const failed = [{ change: { kind: 'add', sessionId: 's', instanceId: 'i-1' }, reason: 'boom' }] as unknown as DiscoveryResult['failed'];
    const { outcome, lines } = await invoke(
      { reconcileAll: async () => result({ failed, counts: { ...COUNTS, failed: 1 } }) },
      { source: 'aws.events', 'detail-type': 'Scheduled Event' },
    );
    expect((outcome as Error).name).toBe('DiscoveryRunFailed');
    expect(lines[0]).toMatchObject({ DiscoveryRuns: 1, DiscoveryFailedRuns: 1, DiscoveryFailedWrites: 1 });
  });

  it('a run that throws is a failed run without counts; an aborted scan reports no fleet size', async () => {
    const thrown = await invoke({ reconcileAll: async () => Promise.reject(new Error('table gone')) }, { source: 'aws.events', 'detail-type': 'Scheduled Event' });
    expect(thrown.lines[0]).toMatchObject({ DiscoveryRuns: 1, DiscoveryFailedRuns: 1 });
    expect(thrown.lines[0]!.DiscoveryAdded).toBeUndefined();
    const aborted = await invoke(
      { reconcileAll: async () => result({ abortReason: 'listing failed', counts: { ...COUNTS, instances: 0 } }) },
      { source: 'aws.events', 'detail-type': 'Scheduled Event' },
    );
    expect(aborted.lines[0]).toMatchObject({ DiscoveryFailedRuns: 1 });
    expect(aborted.lines[0]!.DiscoveryFleetSize).toBeUndefined();
  });
});
