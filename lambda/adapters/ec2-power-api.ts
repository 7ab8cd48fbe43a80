import { EC2Client, StartInstancesCommand, StopInstancesCommand, type InstanceStateChange } from '@aws-sdk/client-ec2';
import { boundedHttpHandler } from './sdk-http-handler.js';
import type { Ec2PowerApi, PowerOutcome } from '../core/power/power-ports.js';

/**
 * StartInstances / StopInstances for the power pass, answered per instance. EC2 refuses a whole call
 * when one of its instances is in the wrong state, unknown or short of capacity, and changes nothing
 * for any of them; so a refused batch is split in halves and retried until each refusal is pinned on
 * its own instance (a batch with one bad instance costs about 2·log2(batch) extra calls, not one call
 * per instance). Throttling is retried with backoff, then reported as `throttled` without splitting
 * (splitting would only add calls to a throttled API); other failures end as `failed` with their code.
 */
export interface Ec2PowerApiOptions {
  /** Instances per call. @default 50 */
  readonly batchSize?: number;
  /** Attempts after the SDK's own retries when the answer is still throttling. @default 2 */
  readonly throttleRetries?: number;
  /** First backoff in ms; doubles per retry, with full jitter. @default 1000 */
  readonly baseBackoffMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

const THROTTLING = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'RequestThrottled', 'EC2ThrottledException']);

/** A power client: standard SDK configuration (AWS_REGION, credentials, AWS_ENDPOINT_URL_EC2). */
export function createPowerEc2Client(): EC2Client {
  return new EC2Client({
    maxAttempts: 3,
    requestHandler: boundedHttpHandler({ connectionTimeoutMs: 3000, requestTimeoutMs: 10_000 }),
  });
}

type Action = 'start' | 'stop';

function codeOf(error: unknown): string {
  const e = error as { name?: string; Code?: string; code?: string };
  // SDK service errors carry the EC2 code as name/Code; network errors are plain Errors with a code.
  return e?.Code ?? (e?.name && e.name !== 'Error' ? e.name : undefined) ?? e?.code ?? 'Error';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A refusal that names one (or some) of the batch's instances: splitting the batch finds which. */
function isPerInstance(code: string): boolean {
  return code === 'IncorrectInstanceState' || code === 'InsufficientInstanceCapacity' || code.startsWith('InvalidInstanceID.');
}

function outcomeFor(instanceId: string, error: unknown): PowerOutcome {
  const code = codeOf(error);
  const message = messageOf(error);
  if (code === 'IncorrectInstanceState') return { instanceId, outcome: 'incorrect-state', message };
  if (code === 'InsufficientInstanceCapacity') return { instanceId, outcome: 'insufficient-capacity', message };
  if (THROTTLING.has(code)) return { instanceId, outcome: 'throttled', message };
  if (code.startsWith('InvalidInstanceID.')) return { instanceId, outcome: 'not-found', message };
  return { instanceId, outcome: 'failed', code, message };
}

export class SdkEc2PowerApi implements Ec2PowerApi {
  private readonly batchSize: number;
  private readonly throttleRetries: number;
  private readonly baseBackoffMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private callCount = 0;

  constructor(
    private readonly client: EC2Client,
    options: Ec2PowerApiOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 50;
    this.throttleRetries = options.throttleRetries ?? 2;
    this.baseBackoffMs = options.baseBackoffMs ?? 1000;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = options.random ?? Math.random;
  }

  /** Start/Stop calls sent (not counting the SDK's own retries). */
  get calls(): number {
    return this.callCount;
  }

  start(instanceIds: readonly string[]): Promise<PowerOutcome[]> {
    return this.run('start', instanceIds);
  }

  stop(instanceIds: readonly string[]): Promise<PowerOutcome[]> {
    return this.run('stop', instanceIds);
  }

  private async run(action: Action, instanceIds: readonly string[]): Promise<PowerOutcome[]> {
    const ids = [...new Set(instanceIds)];
    const byId = new Map<string, PowerOutcome>();
    for (let i = 0; i < ids.length; i += this.batchSize) {
      for (const outcome of await this.batch(action, ids.slice(i, i + this.batchSize))) byId.set(outcome.instanceId, outcome);
    }
    return ids.map((id) => byId.get(id)!);
  }

  private async batch(action: Action, ids: string[]): Promise<PowerOutcome[]> {
    let changes: InstanceStateChange[];
    try {
      changes = await this.send(action, ids);
    } catch (error) {
      const code = codeOf(error);
      if (ids.length > 1 && isPerInstance(code)) {
        const half = Math.ceil(ids.length / 2);
        return [...(await this.batch(action, ids.slice(0, half))), ...(await this.batch(action, ids.slice(half)))];
      }
      return ids.map((id) => outcomeFor(id, error));
    }
    const byId = new Map(changes.filter((c) => c.InstanceId).map((c) => [c.InstanceId!, c]));
    return ids.map((instanceId): PowerOutcome => {
      const change = byId.get(instanceId);
      if (!change) return { instanceId, outcome: 'failed', code: 'MissingFromResponse', message: `EC2 accepted the ${action} call but did not report ${instanceId}` };
      return {
        instanceId,
        outcome: 'accepted',
        previousState: change.PreviousState?.Name ?? 'unknown',
        currentState: change.CurrentState?.Name ?? 'unknown',
      };
    });
  }

  private async send(action: Action, ids: string[]): Promise<InstanceStateChange[]> {
    for (let retry = 0; ; retry++) {
      try {
        this.callCount++;
        if (action === 'start') return (await this.client.send(new StartInstancesCommand({ InstanceIds: ids }))).StartingInstances ?? [];
        return (await this.client.send(new StopInstancesCommand({ InstanceIds: ids }))).StoppingInstances ?? [];
      } catch (error) {
        if (!THROTTLING.has(codeOf(error)) || retry >= this.throttleRetries) throw error;
        await this.sleep(Math.round(this.random() * this.baseBackoffMs * 2 ** retry));
      }
    }
  }
}
