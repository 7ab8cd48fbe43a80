import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../lambda/adapters/logger';
import { PowertoolsMetricsSink } from '../../lambda/adapters/powertools-metrics';
import { MetricName, MetricService, type MetricsSink } from '../../lambda/core/metrics';
import { createPowerHandler, DEADLINE_MARGIN_MS } from '../../lambda/handlers/power-handler';
import type { PowerPassClients, PowerPassResult, PowerPassSetup } from '../../lambda/power/power-runner';
import { emfLines } from '../helpers/emf';

const config = { tableName: 'sessions', tagPrefix: 'lab:', signalsDocument: 'Stack-HostSignals-AbC' };
const clients = { ec2: {}, ssm: {}, dynamodb: {} } as unknown as PowerPassClients;
const NOW = 1_800_000_000_000;
const context = (remainingMs: number) => ({ functionName: 'power', awsRequestId: 'r-1', getRemainingTimeInMillis: () => remainingMs }) as never;

function result(extra: Partial<PowerPassResult> = {}): PowerPassResult {
  return { actions: [], failures: [], counts: {}, requests: { ec2: 1, ssm: 0, dynamodb: 1 }, elapsedMs: 12, ...extra };
}

/** A pass that records its setup and answers `answer` (or throws it), counting a stop into the metrics it was given. */
function fakePass(answer: PowerPassResult | Error) {
  const setups: PowerPassSetup[] = [];
  const runPass = async (_clients: PowerPassClients, setup: PowerPassSetup) => {
    setups.push(setup);
    setup.metrics?.count(MetricName.powerPasses);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { runPass, setups };
}

function recordingSink() {
  const counted: string[] = [];
  let flushes = 0;
  const sink: MetricsSink = { count: (name) => void counted.push(name), time() {}, flush: () => void flushes++ };
  return { sink, counted, flushes: () => flushes };
}

const logger = createLogger({ logLevel: 'SILENT' });
afterEach(() => vi.restoreAllMocks());

describe('power handler', () => {
  it('runs one pass with the configured table, prefix and signals document, due 10 s before the invocation times out', async () => {
    const { runPass, setups } = fakePass(result());
    const { sink } = recordingSink();
    await createPowerHandler({ config, clients, logger, metrics: sink, runPass, now: () => NOW })({}, context(60_000));
    expect(setups).toHaveLength(1);
    expect(setups[0]).toMatchObject({
      tableName: 'sessions',
      tagPrefix: 'lab:',
      signals: { documentName: 'Stack-HostSignals-AbC' },
      deadline: NOW + 60_000 - DEADLINE_MARGIN_MS,
    });
    expect(DEADLINE_MARGIN_MS).toBe(10_000);
    expect(setups[0]!.metrics).toBe(sink);
    // Never the ad-hoc commands form: the role may send only the stack's document.
    expect('commands' in setups[0]!.signals).toBe(false);
    expect(setups[0]!.dryRun).toBeUndefined();
  });

  it('a refused stop is counted and logged, not thrown; one summary line with counts, actions and failures', async () => {
    const actions = [{ instanceId: 'i-1', action: 'stop' as const, reason: 'idle 30 min' }];
    const failures = [{ instanceId: 'i-2', action: 'stop' as const, outcome: 'incorrect-state', message: 'pending' }];
    const { runPass } = fakePass(result({ actions, failures, counts: { stops: 1, failures: 1 } }));
    const { sink, flushes } = recordingSink();
    const info = vi.spyOn(logger, 'info');
    const warn = vi.spyOn(logger, 'warn');
    const answer = await createPowerHandler({ config, clients, logger, metrics: sink, runPass, now: () => NOW })({}, context(60_000));
    expect(answer).toEqual({ counts: { stops: 1, failures: 1 }, actions: 1, failures: 1 });
    expect(info).not.toHaveBeenCalled();
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![1]).toMatchObject({ counts: { stops: 1, failures: 1 }, actions, failures });
    expect(flushes()).toBe(1);
  });

  it('a clean pass logs its summary at info', async () => {
    const actions = [{ instanceId: 'i-1', action: 'start' as const, reason: 'schedule' }];
    const { runPass } = fakePass(result({ actions, counts: { starts: 1 } }));
    const info = vi.spyOn(logger, 'info');
    await createPowerHandler({ config, clients, logger, runPass, now: () => NOW })({}, context(60_000));
    expect(info).toHaveBeenCalledTimes(1);
    expect(info.mock.calls[0]![1]).toMatchObject({ counts: { starts: 1 }, actions });
  });

  it('a pass that cannot run (listing or scan failed) throws, so Lambda counts an error; metrics are still flushed', async () => {
    const { runPass } = fakePass(new Error('DescribeInstances: AccessDenied'));
    const { sink, counted, flushes } = recordingSink();
    const handler = createPowerHandler({ config, clients, logger, metrics: sink, runPass, now: () => NOW });
    await expect(handler({}, context(60_000))).rejects.toThrow('DescribeInstances: AccessDenied');
    expect(counted).toEqual([MetricName.powerPasses]);
    expect(flushes()).toBe(1);
  });

  it('through Powertools: what the pass records is published once, under service=power', async () => {
    const chunks: string[] = [];
    const { runPass } = fakePass(result());
    const handler = createPowerHandler({ config, clients, logger, metrics: new PowertoolsMetricsSink(MetricService.power), runPass, now: () => NOW });
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => {
      chunks.push(String(chunk));
      return true;
    });
    await handler({}, context(60_000));
    vi.restoreAllMocks();
    const lines = emfLines(chunks.join(''));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ service: 'power', PowerPasses: 1 });
  });
});
