/**
 * What the power pass asks of AWS, as two small ports with no AWS types: starting and stopping
 * instances (EC2), and reading each host's signal line (SSM Run Command). Adapters live in
 * lambda/adapters (ec2-power-api.ts, ssm-host-signals.ts); both answer per instance and never throw
 * an SDK error, so one bad instance or one failed call never hides the others' outcomes.
 */

/** One instance's answer to a start or stop request. */
export type PowerOutcome =
  /** EC2 accepted the request: `current` is `pending`/`running` for a start, `stopping`/`stopped` for a stop. */
  | { readonly instanceId: string; readonly outcome: 'accepted'; readonly previousState: string; readonly currentState: string }
  /** IncorrectInstanceState: e.g. starting a `stopping` instance, stopping a `pending` one. Try again later. */
  | { readonly instanceId: string; readonly outcome: 'incorrect-state'; readonly message: string }
  /** InsufficientInstanceCapacity: AWS has no capacity for this instance type in its zone right now. */
  | { readonly instanceId: string; readonly outcome: 'insufficient-capacity'; readonly message: string }
  /** Still throttled (RequestLimitExceeded) after the SDK's and the adapter's retries. */
  | { readonly instanceId: string; readonly outcome: 'throttled'; readonly message: string }
  /** InvalidInstanceID.NotFound / .Malformed: the instance is gone (terminated and forgotten) or never was. */
  | { readonly instanceId: string; readonly outcome: 'not-found'; readonly message: string }
  /** Anything else (access denied, network, 5xx): `code` names it for the log and the metric. */
  | { readonly instanceId: string; readonly outcome: 'failed'; readonly code: string; readonly message: string };

export type PowerOutcomeKind = PowerOutcome['outcome'];

export interface Ec2PowerApi {
  /** StartInstances; one outcome per distinct requested id, in request order. */
  start(instanceIds: readonly string[]): Promise<PowerOutcome[]>;
  /** StopInstances (never forced); one outcome per distinct requested id, in request order. */
  stop(instanceIds: readonly string[]): Promise<PowerOutcome[]>;
}

/** Why a host's signal is unknown (and so, by the rule, the host counts as in use). */
export type SignalUnknownCause =
  /** SSM refused it: no SSM agent registered, no instance profile, or not in this account/region. */
  | 'unmanaged'
  /** A managed node whose agent is not online (ConnectionLost / Inactive). */
  | 'agent-offline'
  /** The command ran and exited non-zero (or was cancelled). */
  | 'failed'
  /** The command did not finish within its execution timeout, or was never delivered in time. */
  | 'timed-out'
  /** The pass's deadline came before the host answered. */
  | 'deadline'
  /** The output exceeded what SSM returns (24,000 characters). */
  | 'truncated'
  /** SendCommand or the polling calls failed (throttling after retries, access denied, network). */
  | 'api-error';

export type HostSignal =
  | { readonly instanceId: string; readonly status: 'ok'; readonly stdout: string }
  | { readonly instanceId: string; readonly status: 'unknown'; readonly cause: SignalUnknownCause; readonly reason: string };

export interface HostSignalsReader {
  /**
   * Runs the signal script on every listed instance and waits for the answers until `deadline`
   * (epoch ms). Answers one HostSignal per distinct instance id, in request order; never throws for
   * an AWS failure (every instance it could not read is `unknown` with its reason).
   */
  read(instanceIds: readonly string[], deadline: number): Promise<HostSignal[]>;
}
