import type { FakeFleet } from './ec2-fleet';

/**
 * StartInstances and StopInstances for the loopback EC2, over a FakeFleet: the real state machine
 * (stopped → pending → running, running → stopping → stopped) with transitions that complete after a
 * delay measured on an injectable clock, so a test moves time itself instead of sleeping. Transitions
 * that are due are applied whenever the server answers anything (`settle`), so DescribeInstances shows
 * them. Errors are EC2's own codes, and like EC2 a failed call changes nothing for any of its instances:
 * `IncorrectInstanceState`, `InsufficientInstanceCapacity` (per instance), `RequestLimitExceeded`
 * (throttling, per call), `InvalidInstanceID.NotFound` and `InvalidInstanceID.Malformed`.
 */
export type PowerAction = 'StartInstances' | 'StopInstances';

export interface PowerDelays {
  /** pending → running. Infinity keeps it pending until `complete`. @default 0 */
  readonly pendingMs?: number;
  /** stopping → stopped. Infinity keeps it stopping until `complete`. @default 0 */
  readonly stoppingMs?: number;
}

export class Ec2Error extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = code;
  }
}

export interface StateChange {
  readonly instanceId: string;
  readonly previous: string;
  readonly current: string;
}

/** EC2's instance state codes (the low byte of InstanceState.Code). */
export const STATE_CODES: Readonly<Record<string, number>> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

const ID = /^i-([0-9a-f]{8}|[0-9a-f]{17})$/;

export class Ec2PowerModel {
  /** Every StartInstances/StopInstances call received, answered or refused. */
  readonly calls: { readonly action: PowerAction; readonly instanceIds: readonly string[] }[] = [];
  /** Instances whose start EC2 refuses with InsufficientInstanceCapacity (while they are in the set). */
  readonly insufficientCapacity = new Set<string>();
  /** Return true to answer that call with RequestLimitExceeded (index counts power calls from 0). */
  throttle?: (call: { readonly index: number; readonly action: PowerAction; readonly instanceIds: readonly string[] }) => boolean;
  private readonly due = new Map<string, { readonly at: number; readonly to: 'running' | 'stopped' }>();
  private readonly delays = new Map<string, PowerDelays>();

  constructor(
    private readonly fleet: FakeFleet,
    private readonly options: PowerDelays & { readonly now?: () => number } = {},
  ) {}

  now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** Per-instance delays, overriding the model's. */
  setDelays(instanceId: string, delays: PowerDelays): void {
    this.delays.set(instanceId, delays);
  }

  state(instanceId: string): string {
    return this.fleet.instances.get(instanceId)?.State?.Name ?? 'absent';
  }

  /** Applies the transitions whose time has come. */
  settle(): void {
    const now = this.now();
    for (const [id, next] of this.due) {
      if (next.at <= now) {
        this.due.delete(id);
        this.setState(id, next.to);
      }
    }
  }

  /** Completes an instance's transition now, whatever its delay (a test's "the host has booted"). */
  complete(instanceId: string): void {
    const next = this.due.get(instanceId);
    if (!next) throw new Error(`no transition under way for ${instanceId}`);
    this.due.delete(instanceId);
    this.setState(instanceId, next.to);
  }

  start(instanceIds: readonly string[]): StateChange[] {
    return this.act('StartInstances', instanceIds);
  }

  stop(instanceIds: readonly string[]): StateChange[] {
    return this.act('StopInstances', instanceIds);
  }

  /** The Query-protocol answer for a power action, or undefined if `form` is not one. */
  answer(form: URLSearchParams): { readonly status: number; readonly body: string } | undefined {
    const action = form.get('Action');
    if (action !== 'StartInstances' && action !== 'StopInstances') return undefined;
    const ids: string[] = [];
    for (let i = 1; form.has(`InstanceId.${i}`); i++) ids.push(form.get(`InstanceId.${i}`)!);
    try {
      const changes = this.act(action, ids);
      const items = changes
        .map(
          (c) =>
            `<item><instanceId>${c.instanceId}</instanceId>` +
            `<currentState><code>${STATE_CODES[c.current]}</code><name>${c.current}</name></currentState>` +
            `<previousState><code>${STATE_CODES[c.previous]}</code><name>${c.previous}</name></previousState></item>`,
        )
        .join('');
      return {
        status: 200,
        body:
          `<?xml version="1.0" encoding="UTF-8"?><${action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` +
          `<requestId>${requestId()}</requestId><instancesSet>${items}</instancesSet></${action}Response>`,
      };
    } catch (error) {
      if (!(error instanceof Ec2Error)) throw error;
      return { status: error.status, body: errorXml(error.code, error.message) };
    }
  }

  private act(action: PowerAction, instanceIds: readonly string[]): StateChange[] {
    const index = this.calls.length;
    this.calls.push({ action, instanceIds: [...instanceIds] });
    this.settle();
    if (this.throttle?.({ index, action, instanceIds })) throw new Ec2Error('RequestLimitExceeded', 'Request limit exceeded.', 503);
    if (instanceIds.length === 0) throw new Ec2Error('MissingParameter', "The request must contain the parameter 'InstanceIds'.", 400);
    const malformed = instanceIds.find((id) => !ID.test(id));
    if (malformed !== undefined) throw new Ec2Error('InvalidInstanceID.Malformed', `Invalid id: "${malformed}"`, 400);
    const missing = instanceIds.filter((id) => !this.fleet.instances.has(id));
    if (missing.length === 1) throw new Ec2Error('InvalidInstanceID.NotFound', `The instance ID '${missing[0]}' does not exist`, 400);
    if (missing.length > 1) throw new Ec2Error('InvalidInstanceID.NotFound', `The instance IDs '${missing.join(', ')}' do not exist`, 400);
    // Validate every instance before changing any: a refused call changes nothing.
    for (const id of instanceIds) {
      const state = this.state(id);
      if (action === 'StartInstances') {
        if (state === 'stopping' || state === 'shutting-down' || state === 'terminated')
          throw new Ec2Error('IncorrectInstanceState', `The instance '${id}' is not in a state from which it can be started.`, 400);
      } else if (state === 'pending') {
        throw new Ec2Error('IncorrectInstanceState', `Instance '${id}' cannot be stopped as it has never reached the 'running' state.`, 400);
      } else if (state === 'shutting-down' || state === 'terminated') {
        throw new Ec2Error('IncorrectInstanceState', `This instance '${id}' is not in a state from which it can be stopped.`, 400);
      }
    }
    if (action === 'StartInstances') {
      const short = instanceIds.find((id) => this.insufficientCapacity.has(id) && this.state(id) === 'stopped');
      if (short !== undefined)
        throw new Ec2Error(
          'InsufficientInstanceCapacity',
          'We currently do not have sufficient g5.xlarge capacity in the Availability Zone you requested (us-east-1a). ' +
            'Our system will be working on provisioning additional capacity.',
          500,
        );
    }
    const now = this.now();
    return [...new Set(instanceIds)].map((id) => {
      const previous = this.state(id);
      const delays = { ...this.options, ...this.delays.get(id) };
      if (action === 'StartInstances' && previous === 'stopped') {
        this.setState(id, 'pending', new Date(now));
        this.schedule(id, now + (delays.pendingMs ?? 0), 'running');
      } else if (action === 'StopInstances' && previous === 'running') {
        this.setState(id, 'stopping');
        this.schedule(id, now + (delays.stoppingMs ?? 0), 'stopped');
      }
      return { instanceId: id, previous, current: this.state(id) };
    });
  }

  private schedule(id: string, at: number, to: 'running' | 'stopped'): void {
    this.due.set(id, { at, to });
  }

  private setState(id: string, state: string, launchTime?: Date): void {
    this.fleet.update(id, (i) => ({ ...i, State: { Name: state as 'running', Code: STATE_CODES[state] }, ...(launchTime ? { LaunchTime: launchTime } : {}) }));
  }
}

let requests = 0;
function requestId(): string {
  return `00000000-0000-4000-8000-${(++requests).toString(16).padStart(12, '0')}`;
}

export function errorXml(code: string, message: string): string {
  const text = message.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!);
  return `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${code}</Code><Message>${text}</Message></Error></Errors><RequestID>${requestId()}</RequestID></Response>`;
}
