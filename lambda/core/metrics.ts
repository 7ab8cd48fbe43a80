import type { DiscoveryCounts } from './discovery/run-discovery.js';
import type { SessionStore } from './session-store.js';

/**
 * The metrics port: what the core counts and times, independent of how it reaches CloudWatch (an EMF
 * line on stdout in Lambda and `serve --metrics`, Powertools Metrics in discovery, nothing by default).
 * Dimensions are few and small by rule: an outcome or a route, never a session id, token or address.
 */
export type MetricDimensions = Readonly<Record<string, string>>;

export interface Metrics {
  /** Adds `value` (default 1) to a count. */
  count(name: string, dimensions?: MetricDimensions, value?: number): void;
  /** Records one duration in milliseconds. */
  time(name: string, ms: number, dimensions?: MetricDimensions): void;
}

export const NO_METRICS: Metrics = { count() {}, time() {} };

/** Metrics that are written out in batches: once per invocation in Lambda, every few seconds in `serve`. */
export interface MetricsSink extends Metrics {
  flush(): void;
}

/** The CloudWatch namespace every metric of this product is published in. */
export const METRICS_NAMESPACE = 'DcvSessionResolver';

/** The `service` dimension of each function (and of `serve`, which is the resolver). */
export const MetricService = { resolver: 'resolver', discovery: 'discovery', portal: 'portal', power: 'power' } as const;

export const MetricName = {
  /** POST …/resolveSession answers, dimension `Outcome` (ResolveOutcome). */
  resolutions: 'Resolutions',
  /** Time to answer POST …/resolveSession, any outcome (ms). */
  resolveLatency: 'ResolveLatency',
  /** One session store read (ms), failures included. */
  storeLatency: 'StoreLatency',
  /** POST …/verifyToken answers, dimension `Outcome` (`yes` or a VerifyOutcome refusal). */
  verifications: 'TokenVerifications',
  /** Any answer with a 5xx status, whatever the route. */
  serverErrors: 'ServerErrors',
  discoveryRuns: 'DiscoveryRuns',
  discoveryFailedRuns: 'DiscoveryFailedRuns',
  discoveryAdded: 'DiscoveryAdded',
  discoveryChanged: 'DiscoveryChanged',
  discoveryRemoved: 'DiscoveryRemoved',
  discoveryConflicts: 'DiscoveryConflicts',
  discoveryUnparsable: 'DiscoveryUnparsableTags',
  discoveryFailedWrites: 'DiscoveryFailedWrites',
  /** Wall time of one run (ms). */
  discoveryDuration: 'DiscoveryRunDuration',
  /** Tagged instances a full reconcile saw (event runs see a few and do not report it). */
  fleetSize: 'DiscoveryFleetSize',
  /** One power pass ran (the scheduled function or `dcv-resolver power`). */
  powerPasses: 'PowerPasses',
  /** Wall time of one power pass (ms). */
  powerPassDuration: 'PowerPassDuration',
  /** Instances EC2 accepted to start / to stop. */
  powerStarts: 'PowerStarts',
  powerStops: 'PowerStops',
  /** A start or stop EC2 refused or that failed, dimension `Outcome` (incorrect-state, insufficient-capacity, throttled, not-found, failed). */
  powerFailures: 'PowerFailures',
  /** Desktops whose start has not reached a usable desktop within the deadline (counted every pass while stuck). */
  powerStartsStuck: 'PowerStartsStuck',
  /** Desktops still `stopping` (or still running) past the stop deadline (counted every pass while stuck). */
  powerStopsStuck: 'PowerStopsStuck',
  /** Idle-stop candidates whose signals could not be read (never stopped), dimension `Cause`. */
  powerSignalsUnknown: 'PowerSignalsUnknown',
  /** Conditional writes lost to an operator's edit or another pass (nothing overwritten). */
  powerConflicts: 'PowerConflicts',
} as const;

/** Every way a resolution can end; `internal-error` is an unexpected 500 (a bug, never a refusal). */
export const RESOLVE_OUTCOMES = [
  'hit',
  'not-found',
  'disabled',
  'expired',
  'host-stopped',
  'lease-member-gone',
  'client-refused',
  'transport-refused',
  'source-refused',
  'bad-request',
  'store-error',
  'internal-error',
] as const;
export type ResolveOutcome = (typeof RESOLVE_OUTCOMES)[number];

/** Every way a token verification can end: `yes`, the verifier's refusal reasons, then the HTTP-level ones. */
export const VERIFY_OUTCOMES = [
  'yes',
  'malformed',
  'unknown',
  'expired',
  'used-up',
  'revoked',
  'wrong-client',
  'session-unavailable',
  'wrong-session',
  'wrong-server',
  'user-not-allowed',
  'source-refused',
  'not-enabled',
  'bad-request',
  'store-error',
  'internal-error',
] as const;

/** The codes a NotFoundError from the resolver carries (absent means `not-found`). */
export type NotFoundCode = 'not-found' | 'disabled' | 'expired' | 'host-stopped' | 'lease-member-gone' | 'client-refused' | 'transport-refused';

/** The router's answer to POST …/resolveSession as an outcome: from the status and the 404's code. */
export function resolveOutcome(status: number, notFoundCode?: string): ResolveOutcome {
  if (status === 200) return 'hit';
  if (status === 403) return 'source-refused';
  if (status === 404) return (notFoundCode as NotFoundCode | undefined) ?? 'not-found';
  if (status === 503) return 'store-error';
  if (status >= 400 && status < 500) return 'bad-request';
  return 'internal-error';
}

/**
 * A verifier answer as an outcome: `yes`, the verifier's own refusal reason (malformed, unknown, expired,
 * used-up, revoked, wrong-client, session-unavailable, wrong-session, wrong-server, user-not-allowed) on a 200, else by
 * status: source-refused, not-enabled (no token store), bad-request, store-error, internal-error.
 */
export function verifyOutcome(status: number, result: unknown, reason: unknown): string {
  if (status === 200) return result === 'yes' ? 'yes' : typeof reason === 'string' ? reason : 'no';
  if (status === 403) return 'source-refused';
  if (status === 404) return 'not-enabled';
  if (status === 503) return 'store-error';
  if (status >= 400 && status < 500) return 'bad-request';
  return 'internal-error';
}

/** One discovery run's metrics. `full` runs also report the fleet size (event runs see a few instances). */
export function recordDiscoveryRun(
  metrics: Metrics,
  run: { readonly full: boolean; readonly failed: boolean; readonly ms: number; readonly counts?: DiscoveryCounts },
): void {
  metrics.count(MetricName.discoveryRuns);
  metrics.count(MetricName.discoveryFailedRuns, undefined, run.failed ? 1 : 0);
  metrics.time(MetricName.discoveryDuration, run.ms);
  const counts = run.counts;
  if (!counts) return;
  metrics.count(MetricName.discoveryAdded, undefined, counts.added);
  metrics.count(MetricName.discoveryChanged, undefined, counts.changed);
  metrics.count(MetricName.discoveryRemoved, undefined, counts.removed);
  metrics.count(MetricName.discoveryConflicts, undefined, counts.conflicts);
  metrics.count(MetricName.discoveryUnparsable, undefined, counts.unparsable);
  metrics.count(MetricName.discoveryFailedWrites, undefined, counts.failed);
  if (run.full) metrics.count(MetricName.fleetSize, undefined, counts.instances);
}

/** A store that times every read into StoreLatency (failed reads too: a slow failure is still slow). */
export function timedStore(store: SessionStore, metrics: Metrics): SessionStore {
  return {
    async get(sessionId) {
      const started = performance.now();
      try {
        return await store.get(sessionId);
      } finally {
        metrics.time(MetricName.storeLatency, performance.now() - started);
      }
    },
    ...(store.close ? { close: () => store.close!() } : {}),
  };
}
