import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { DynamoApi } from '../adapters/dynamodb-api.js';
import { DynamoDbPowerTable } from '../adapters/dynamodb-power-table.js';
import { SdkEc2PowerApi, type Ec2PowerApiOptions } from '../adapters/ec2-power-api.js';
import { Ec2InstanceSource } from '../adapters/ec2-instance-source.js';
import { SsmHostSignalsReader, type SsmHostSignalsOptions } from '../adapters/ssm-host-signals.js';
import { forEachBounded } from '../core/bounded-pool.js';
import { DEFAULT_TAG_PREFIX, POWER_TAGS } from '../core/discovery/tag-parser.js';
import { silentLog, type Log } from '../core/log.js';
import { MetricName, NO_METRICS, type Metrics } from '../core/metrics.js';
import {
  assessSignals,
  confirmStop,
  desktopOf,
  planDesktop,
  releaseClaim,
  type Desktop,
  type DesktopPlan,
  type PowerEvent,
  type PowerInstance,
  type PowerWrite,
  type SignalAnswer,
} from '../core/power/power-plan.js';
import type { HostSignal, PowerOutcome } from '../core/power/power-ports.js';

/**
 * One power pass wired to real SDK clients: what the scheduled function and `dcv-resolver power` share.
 * EC2 is the truth for which instances exist and their state; the table holds their settings and the
 * pass's bookkeeping. Order matters for safety: bookkeeping first, then starts (each behind a claim), then
 * one signals read for every candidate, a second read of the would-be stops immediately before
 * StopInstances, each stop behind its own claim.
 */
export interface PowerPassClients {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly dynamodb: DynamoApi;
}

export interface PowerPassSetup {
  readonly tableName: string;
  /** @default 'dcv:' */
  readonly tagPrefix?: string;
  /** Decide and read, but start, stop and write nothing. */
  readonly dryRun?: boolean;
  /** Evaluate schedules as of this instant (epoch ms); dry runs only. */
  readonly scheduleAt?: number;
  readonly now?: () => number;
  /** Epoch ms by which the pass must be done (the function's timeout less a margin). */
  readonly deadline: number;
  /** What runs on the hosts: the stack's document, or the script's lines (AWS-RunShellScript). */
  readonly signals: SsmHostSignalsOptions['command'];
  readonly signalsOptions?: Omit<SsmHostSignalsOptions, 'command'>;
  readonly ec2PowerOptions?: Ec2PowerApiOptions;
  readonly log?: Log;
  readonly metrics?: Metrics;
}

export interface PowerAction {
  readonly instanceId: string;
  readonly action: 'start' | 'stop';
  readonly reason: string;
}

export interface PowerFailure {
  readonly instanceId: string;
  readonly action: 'start' | 'stop';
  /** The EC2 outcome (incorrect-state, insufficient-capacity, throttled, not-found, failed) or `write-failed`. */
  readonly outcome: string;
  readonly message: string;
}

export interface PowerPassResult {
  readonly actions: readonly PowerAction[];
  readonly failures: readonly PowerFailure[];
  readonly counts: Readonly<Record<string, number>>;
  readonly requests: { readonly ec2: number; readonly ssm: number; readonly dynamodb: number };
  readonly elapsedMs: number;
}

/** States the pass looks at; shutting-down and terminated instances are discovery's business. */
const CONSIDERED = new Set(['pending', 'running', 'stopping', 'stopped']);
/** Table writes in flight at once. */
const WRITE_CONCURRENCY = 16;
/** Time kept after the first signals read for the confirming read, the stops and their writes. */
const AFTER_FIRST_READ_MS = 20_000;
/** Time kept after the confirming read for the stops and their writes. */
const AFTER_CONFIRM_MS = 5_000;

/** Counts every HTTP request a client sends (retries included) until `stop()`. */
function countRequests(client: EC2Client | SSMClient): { readonly count: () => number; stop(): void } {
  let n = 0;
  const name = `dcvPowerRequestCount${Math.random().toString(36).slice(2)}`;
  const stack = client.middlewareStack as unknown as {
    add(mw: (next: (a: unknown) => Promise<unknown>) => (a: unknown) => Promise<unknown>, o: { step: string; name: string }): void;
    remove(name: string): boolean;
  };
  stack.add(
    (next) => async (args) => {
      n++;
      return next(args);
    },
    { step: 'finalizeRequest', name },
  );
  return { count: () => n, stop: () => void stack.remove(name) };
}

function countedDynamo(api: DynamoApi): { api: DynamoApi; count: () => number } {
  let n = 0;
  return {
    api: {
      call(operation, input) {
        n++;
        return api.call(operation, input);
      },
    },
    count: () => n,
  };
}

const answerOf = (signal: HostSignal): SignalAnswer =>
  signal.status === 'ok' ? { ok: true, stdout: signal.stdout } : { ok: false, cause: signal.cause, reason: signal.reason };

export async function runPowerPass(clients: PowerPassClients, setup: PowerPassSetup): Promise<PowerPassResult> {
  if (setup.scheduleAt !== undefined && !setup.dryRun) throw new Error('scheduleAt (--at) is for dry runs only');
  const clockNow = setup.now ?? Date.now;
  const started = performance.now();
  const log = setup.log ?? silentLog;
  const metrics = setup.metrics ?? NO_METRICS;
  const dryRun = setup.dryRun ?? false;
  const prefix = setup.tagPrefix ?? DEFAULT_TAG_PREFIX;
  const counts: Record<string, number> = {
    instances: 0,
    desktops: 0,
    unmanaged: 0,
    signalsRead: 0,
    idle: 0,
    inUse: 0,
    signalsUnknown: 0,
    starts: 0,
    stops: 0,
    failures: 0,
    startsStuck: 0,
    stopsStuck: 0,
    writes: 0,
    conflicts: 0,
    writeErrors: 0,
  };
  const actions: PowerAction[] = [];
  const failures: PowerFailure[] = [];
  const ec2Count = countRequests(clients.ec2);
  const ssmCount = countRequests(clients.ssm);
  const dynamo = countedDynamo(clients.dynamodb);
  const table = new DynamoDbPowerTable(dynamo.api, setup.tableName, log);
  const power = new SdkEc2PowerApi(clients.ec2, setup.ec2PowerOptions);
  const reader = new SsmHostSignalsReader(clients.ssm, { ...setup.signalsOptions, command: setup.signals, now: setup.signalsOptions?.now ?? clockNow });

  const event = (e: PowerEvent) => {
    const fields = { instanceId: e.instanceId, event: e.kind, ...(e.cause ? { cause: e.cause } : {}), detail: e.message };
    if (e.kind === 'start-stuck') {
      counts.startsStuck!++;
      metrics.count(MetricName.powerStartsStuck);
      log.error('power: start stuck', fields);
    } else if (e.kind === 'stop-stuck') {
      counts.stopsStuck!++;
      metrics.count(MetricName.powerStopsStuck);
      log.error('power: stop stuck', fields);
    } else if (e.kind === 'start-failed') {
      counts.failures!++;
      metrics.count(MetricName.powerFailures, { Outcome: 'not-started' });
      log.error('power: start did not happen', fields);
    } else if (e.kind === 'signals-unknown') {
      counts.signalsUnknown!++;
      metrics.count(MetricName.powerSignalsUnknown, { Cause: e.cause ?? 'unknown' });
      log.warn('power: signals unknown, never stopped', fields);
    } else log.info(`power: ${e.kind}`, fields);
  };

  /** Applies writes; answers the ones that won (a claim that lost means someone else acted). */
  const apply = async (writes: readonly PowerWrite[]): Promise<Set<PowerWrite>> => {
    const won = new Set<PowerWrite>();
    if (dryRun) return won;
    await forEachBounded(writes, WRITE_CONCURRENCY, async (w) => {
      try {
        const outcome = await table.write(w);
        if (outcome === 'written') {
          counts.writes!++;
          won.add(w);
        } else {
          counts.conflicts!++;
          metrics.count(MetricName.powerConflicts);
          log.info('power: item changed since read; left alone', { instanceId: w.instanceId, sessionId: w.sessionId, attribute: w.attribute });
        }
      } catch (error) {
        counts.writeErrors!++;
        log.error('power: write failed', { instanceId: w.instanceId, sessionId: w.sessionId, attribute: w.attribute, error: (error as Error).message });
      }
    });
    return won;
  };

  const failed = (instanceId: string, action: 'start' | 'stop', outcome: PowerOutcome) => {
    const message = 'message' in outcome ? outcome.message : '';
    const kind = outcome.outcome === 'failed' ? `failed:${outcome.code}` : outcome.outcome;
    counts.failures!++;
    metrics.count(MetricName.powerFailures, { Outcome: outcome.outcome });
    failures.push({ instanceId, action, outcome: kind, message });
    const why: Record<string, string> = {
      'incorrect-state': 'EC2 says the instance is in the wrong state for it',
      'insufficient-capacity': 'EC2 has no capacity for this instance type in its zone now',
      throttled: 'EC2 throttled the call after retries',
      'not-found': 'EC2 does not know the instance',
    };
    log.error(`power: ${action} refused`, { instanceId, outcome: kind, why: why[outcome.outcome] ?? 'the call failed', error: message });
  };

  try {
    const now = clockNow();
    const clock = { now, scheduleAt: setup.scheduleAt ?? now };

    // 1. EC2: the on-demand instances (one filter: any of the three tags).
    const source = new Ec2InstanceSource(clients.ec2);
    const instances: PowerInstance[] = [];
    for await (const page of source.listWithAnyTag(POWER_TAGS.map((tag) => `${prefix}${tag}`))) {
      for (const info of page) {
        if (!CONSIDERED.has(info.state)) continue;
        instances.push({
          instanceId: info.instanceId,
          state: info.state,
          ...(info.launchTime === undefined ? {} : { launchTime: info.launchTime }),
          ...(info.platform === undefined ? {} : { platform: info.platform }),
        });
      }
    }
    counts.instances = instances.length;

    // 2. The table (skipped when no instance is on demand: a pass every minute costs nothing then).
    const desktops: { desktop: Desktop; plan: DesktopPlan }[] = [];
    if (instances.length > 0) {
      const items = await table.readItems();
      for (const instance of instances) {
        const made = desktopOf(instance, items.get(instance.instanceId) ?? []);
        if (!made.ok) {
          counts.unmanaged!++;
          log.warn('power: instance not managed this pass', { instanceId: instance.instanceId, reason: made.reason });
          continue;
        }
        desktops.push({ desktop: made.desktop, plan: planDesktop(made.desktop, clock) });
      }
    }
    counts.desktops = desktops.length;
    for (const { plan } of desktops) plan.events.forEach(event);

    // 3. Bookkeeping, then starts, each behind its claim.
    await apply(desktops.flatMap(({ plan }) => plan.writes));
    const starting = desktops.filter(({ plan }) => plan.start);
    if (starting.length > 0) {
      const claims = starting.map(({ plan }) => plan.start!.claim);
      const won = dryRun ? new Set(claims) : await apply(claims);
      const go = starting.filter(({ plan }) => won.has(plan.start!.claim));
      if (dryRun) for (const { desktop, plan } of go) actions.push({ instanceId: desktop.instance.instanceId, action: 'start', reason: plan.start!.reason });
      else if (go.length > 0) {
        await apply(go.flatMap(({ plan }) => plan.start!.alsoWrite));
        const outcomes = await power.start(go.map(({ desktop }) => desktop.instance.instanceId));
        const release: PowerWrite[] = [];
        go.forEach(({ desktop, plan }, i) => {
          const outcome = outcomes[i]!;
          if (outcome.outcome === 'accepted') {
            counts.starts!++;
            metrics.count(MetricName.powerStarts);
            actions.push({ instanceId: desktop.instance.instanceId, action: 'start', reason: plan.start!.reason });
            log.info('power: start', { instanceId: desktop.instance.instanceId, reason: plan.start!.reason, state: outcome.currentState });
          } else {
            // The window stays marked as served: a refused start is reported, not retried every minute.
            failed(desktop.instance.instanceId, 'start', outcome);
            release.push(releaseClaim(plan.start!.claim));
          }
        });
        await apply(release);
      }
    }

    // 4. One signals read for every host that needs one.
    const reading = desktops.filter(({ plan }) => plan.read.length > 0);
    const stopCandidates: { desktop: Desktop; reason: string }[] = [];
    if (reading.length > 0) {
      const signals = await reader.read(
        reading.map(({ desktop }) => desktop.instance.instanceId),
        Math.max(clockNow() + 1000, setup.deadline - AFTER_FIRST_READ_MS),
      );
      counts.signalsRead = signals.length;
      const writes: PowerWrite[] = [];
      const readAt = clockNow();
      reading.forEach(({ desktop, plan }, i) => {
        const assessed = assessSignals(desktop, plan.read, answerOf(signals[i]!), readAt);
        assessed.events.forEach(event);
        writes.push(...assessed.writes);
        if (assessed.activity?.state === 'idle') counts.idle!++;
        if (assessed.activity?.state === 'in-use') counts.inUse!++;
        if (assessed.stopCandidate && assessed.activity?.state === 'idle') {
          const minutes = Math.floor(assessed.activity.idleMs / 60_000);
          stopCandidates.push({ desktop, reason: `no DCV client for ${minutes} min (limit ${desktop.autoStopMinutes}): ${assessed.activity.reason}` });
        }
      });
      await apply(writes);
    }

    // 5. Stops: read again right before StopInstances (not in a dry run), each behind its claim.
    if (stopCandidates.length > 0) {
      const stopping: { desktop: Desktop; reason: string; claim?: PowerWrite }[] = [];
      if (dryRun) {
        for (const { desktop, reason } of stopCandidates) actions.push({ instanceId: desktop.instance.instanceId, action: 'stop', reason });
      } else {
        const again = await reader.read(
          stopCandidates.map((c) => c.desktop.instance.instanceId),
          Math.max(clockNow() + 1000, setup.deadline - AFTER_CONFIRM_MS),
        );
        const confirmedAt = clockNow();
        stopCandidates.forEach(({ desktop }, i) => {
          const decision = confirmStop(desktop, answerOf(again[i]!), confirmedAt);
          if (decision.stop) stopping.push({ desktop, reason: decision.reason, claim: decision.claim });
          else log.info('power: kept running', { instanceId: desktop.instance.instanceId, reason: decision.reason });
        });
        const won = await apply(stopping.map((s) => s.claim!));
        const go = stopping.filter((s) => won.has(s.claim!));
        if (go.length > 0) {
          const outcomes = await power.stop(go.map((s) => s.desktop.instance.instanceId));
          const release: PowerWrite[] = [];
          go.forEach((s, i) => {
            const outcome = outcomes[i]!;
            const instanceId = s.desktop.instance.instanceId;
            if (outcome.outcome === 'accepted') {
              counts.stops!++;
              metrics.count(MetricName.powerStops);
              actions.push({ instanceId, action: 'stop', reason: s.reason });
              log.info('power: stop', { instanceId, reason: s.reason, state: outcome.currentState });
            } else {
              failed(instanceId, 'stop', outcome);
              release.push(releaseClaim(s.claim!));
            }
          });
          await apply(release);
        }
      }
    }
  } finally {
    ec2Count.stop();
    ssmCount.stop();
  }
  const elapsedMs = performance.now() - started;
  metrics.count(MetricName.powerPasses);
  metrics.time(MetricName.powerPassDuration, elapsedMs);
  return {
    actions,
    failures,
    counts,
    requests: { ec2: ec2Count.count(), ssm: ssmCount.count(), dynamodb: dynamo.count() },
    elapsedMs,
  };
}
