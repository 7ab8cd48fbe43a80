import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  SendCommandCommand,
  SSMClient,
  type CommandInvocation,
} from '@aws-sdk/client-ssm';
import { boundedHttpHandler } from './sdk-http-handler.js';
import { forEachBounded } from '../core/bounded-pool.js';
import type { HostSignal, HostSignalsReader, SignalUnknownCause } from '../core/power/power-ports.js';

/**
 * Reads every host's signal line with SSM Run Command (AWS-RunShellScript), one SendCommand per 50
 * instances (SendCommand's limit), then polls ListCommandInvocations with Details (one call per 50
 * invocations, carrying each host's first 2,500 characters of output) until every host has answered or
 * the deadline passes. Only an output the agent marked truncated is fetched again, alone, with
 * GetCommandInvocation (24,000 characters).
 *
 * SSM refuses a whole SendCommand (InvalidInstanceId) when one instance is not a managed node, without
 * saying which. So on that refusal the batch's managed nodes are looked up with one
 * DescribeInstanceInformation call and the command is sent again to the online ones; the others are
 * `unknown` with the reason. If the resend is refused too (a node deregistered in between), the batch is
 * split in halves until each refusal is pinned on its instance. The common case costs nothing extra.
 */
export interface SsmHostSignalsOptions {
  /**
   * What runs on the hosts: the stack's own Command document (its name or ARN; it holds the script and
   * declares no parameters, so whoever may send it can run nothing else), or the script's lines sent with
   * AWS-RunShellScript (the CLI, under an operator's own credentials).
   */
  readonly command: { readonly documentName: string } | { readonly commands: readonly string[] };
  /** The agent kills the script after this. @default 20 */
  readonly executionTimeoutSeconds?: number;
  /** SendCommand TimeoutSeconds (delivery; SSM's minimum is 30). @default 30 */
  readonly deliveryTimeoutSeconds?: number;
  /** @default 1000 */
  readonly pollIntervalMs?: number;
  /** Instances per SendCommand (at most 50). @default 50 */
  readonly batchSize?: number;
  /** SSM calls in flight at once. @default 8 */
  readonly concurrency?: number;
  /** Extra attempts after the SDK's own when SSM still throttles. @default 2 */
  readonly throttleRetries?: number;
  readonly comment?: string;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

const RUN_SHELL_DOCUMENT = 'AWS-RunShellScript';
// The agent's markers in ListCommandInvocations' Output (agent/contracts TruncateOutput).
const OUTPUT_TRUNCATED = '\n---Output truncated---';
const ERROR_TITLE = '\n----------ERROR-------\n';
const FULL_OUTPUT_LIMIT = 24_000;
const RUNNING = new Set(['Pending', 'InProgress', 'Delayed', 'Cancelling']);
const THROTTLING = new Set(['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded']);

/** A signals client: standard SDK configuration (AWS_REGION, credentials, AWS_ENDPOINT_URL_SSM). */
export function createSignalsSsmClient(): SSMClient {
  return new SSMClient({
    maxAttempts: 3,
    requestHandler: boundedHttpHandler({ connectionTimeoutMs: 3000, requestTimeoutMs: 10_000 }),
  });
}

function codeOf(error: unknown): string {
  const e = error as { name?: string; Code?: string; code?: string };
  return e?.Code ?? (e?.name && e.name !== 'Error' ? e.name : undefined) ?? e?.code ?? 'Error';
}

function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message ? `${codeOf(error)}: ${message}` : codeOf(error);
}

function excerpt(text: string, max = 300): string {
  const flat = text.trim().replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

interface Sent {
  readonly commandId: string;
  readonly waiting: Set<string>;
}

export class SsmHostSignalsReader implements HostSignalsReader {
  private readonly executionTimeout: number;
  private readonly deliveryTimeout: number;
  private readonly pollIntervalMs: number;
  private readonly batchSize: number;
  private readonly concurrency: number;
  private readonly throttleRetries: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly client: SSMClient,
    private readonly options: SsmHostSignalsOptions,
  ) {
    const command = options.command;
    if ('commands' in command ? command.commands.length === 0 : command.documentName.length === 0) {
      throw new Error('SsmHostSignalsReader: the command (document name or script lines) must not be empty');
    }
    this.executionTimeout = options.executionTimeoutSeconds ?? 20;
    this.deliveryTimeout = Math.max(30, options.deliveryTimeoutSeconds ?? 30);
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.batchSize = Math.min(50, options.batchSize ?? 50);
    this.concurrency = options.concurrency ?? 8;
    this.throttleRetries = options.throttleRetries ?? 2;
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  async read(instanceIds: readonly string[], deadline: number): Promise<HostSignal[]> {
    const ids = [...new Set(instanceIds)];
    const results = new Map<string, HostSignal>();
    const unknown = (instanceId: string, cause: SignalUnknownCause, reason: string) =>
      results.set(instanceId, { instanceId, status: 'unknown', cause, reason });
    const sent: Sent[] = [];

    const batches: string[][] = [];
    for (let i = 0; i < ids.length; i += this.batchSize) batches.push(ids.slice(i, i + this.batchSize));
    await forEachBounded(batches, this.concurrency, async (batch) => {
      await this.dispatch(batch, deadline, sent, unknown);
    });

    // Poll until every sent host has answered or the deadline has passed.
    const lastStatus = new Map<string, string>();
    const lastError = new Map<string, string>();
    for (;;) {
      const open = sent.filter((s) => s.waiting.size > 0);
      if (open.length === 0 || this.now() >= deadline) break;
      await forEachBounded(open, this.concurrency, async (command) => {
        try {
          await this.collect(command, deadline, results, lastStatus);
          lastError.delete(command.commandId);
        } catch (error) {
          lastError.set(command.commandId, describeError(error));
        }
      });
      if (sent.every((s) => s.waiting.size === 0)) break;
      const wait = Math.min(this.pollIntervalMs, deadline - this.now());
      if (wait <= 0) break;
      await this.sleep(wait);
    }
    for (const command of sent) {
      for (const id of command.waiting) {
        const error = lastError.get(command.commandId);
        if (error) unknown(id, 'api-error', `could not read the command's result before the pass's deadline: ${error}`);
        else unknown(id, 'deadline', `no answer before the pass's deadline (command ${command.commandId}, last status ${lastStatus.get(id) ?? 'Pending'})`);
      }
    }
    return ids.map((id) => results.get(id)!);
  }

  /** SendCommand for one batch, working around instances that SSM refuses. */
  private async dispatch(
    batch: string[],
    deadline: number,
    sent: Sent[],
    unknown: (id: string, cause: SignalUnknownCause, reason: string) => void,
  ): Promise<void> {
    try {
      sent.push(await this.send(batch, deadline));
      return;
    } catch (error) {
      if (codeOf(error) !== 'InvalidInstanceId') {
        for (const id of batch) unknown(id, 'api-error', `SendCommand failed: ${describeError(error)}`);
        return;
      }
    }
    if (batch.length === 1) {
      unknown(batch[0]!, 'unmanaged', 'SSM refused the command (InvalidInstanceId): not a managed node (no SSM agent registered or no instance profile)');
      return;
    }
    let nodes: Map<string, string>;
    try {
      nodes = await this.managedNodes(batch, deadline);
    } catch {
      // Without the lookup, splitting alone still finds the refused instances.
      const half = Math.ceil(batch.length / 2);
      await this.bisect(batch.slice(0, half), deadline, sent, unknown);
      await this.bisect(batch.slice(half), deadline, sent, unknown);
      return;
    }
    const online: string[] = [];
    for (const id of batch) {
      const ping = nodes.get(id);
      if (ping === undefined) unknown(id, 'unmanaged', 'not a managed node: SSM has no registered agent for it (check the SSM agent and the instance profile)');
      else if (ping !== 'Online') unknown(id, 'agent-offline', `its SSM agent is not connected (PingStatus ${ping})`);
      else online.push(id);
    }
    await this.bisect(online, deadline, sent, unknown);
  }

  private async bisect(
    ids: string[],
    deadline: number,
    sent: Sent[],
    unknown: (id: string, cause: SignalUnknownCause, reason: string) => void,
  ): Promise<void> {
    if (ids.length === 0) return;
    try {
      sent.push(await this.send(ids, deadline));
    } catch (error) {
      if (codeOf(error) !== 'InvalidInstanceId') {
        for (const id of ids) unknown(id, 'api-error', `SendCommand failed: ${describeError(error)}`);
      } else if (ids.length === 1) {
        unknown(ids[0]!, 'unmanaged', 'SSM refused the command (InvalidInstanceId): not a managed node (no SSM agent registered or no instance profile)');
      } else {
        const half = Math.ceil(ids.length / 2);
        await this.bisect(ids.slice(0, half), deadline, sent, unknown);
        await this.bisect(ids.slice(half), deadline, sent, unknown);
      }
    }
  }

  private documentAndParameters(): { DocumentName: string; Parameters?: Record<string, string[]> } {
    const command = this.options.command;
    // A document's own step sets its timeout (timeoutSeconds); AWS-RunShellScript takes it as a parameter.
    if ('documentName' in command) return { DocumentName: command.documentName };
    return { DocumentName: RUN_SHELL_DOCUMENT, Parameters: { commands: [...command.commands], executionTimeout: [String(this.executionTimeout)] } };
  }

  private async send(ids: string[], deadline: number): Promise<Sent> {
    const out = await this.retrying(deadline, () =>
      this.client.send(
        new SendCommandCommand({
          InstanceIds: ids,
          ...this.documentAndParameters(),
          TimeoutSeconds: this.deliveryTimeout,
          Comment: this.options.comment ?? 'dcv-resolver power: host signals',
        }),
      ),
    );
    const commandId = out.Command?.CommandId;
    if (!commandId) throw Object.assign(new Error('SendCommand answered without a CommandId'), { name: 'MissingCommandId' });
    return { commandId, waiting: new Set(ids) };
  }

  /** Managed nodes among `ids` with their PingStatus (absent: not managed). */
  private async managedNodes(ids: string[], deadline: number): Promise<Map<string, string>> {
    const nodes = new Map<string, string>();
    let token: string | undefined;
    do {
      const page = await this.retrying(deadline, () =>
        this.client.send(
          new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: ids }], MaxResults: 50, NextToken: token }),
        ),
      );
      for (const info of page.InstanceInformationList ?? []) if (info.InstanceId) nodes.set(info.InstanceId, info.PingStatus ?? 'Unknown');
      token = page.NextToken;
    } while (token);
    return nodes;
  }

  /** One ListCommandInvocations sweep over a command: records every host that has finished. */
  private async collect(command: Sent, deadline: number, results: Map<string, HostSignal>, lastStatus: Map<string, string>): Promise<void> {
    let token: string | undefined;
    const truncated: string[] = [];
    do {
      const page = await this.retrying(deadline, () =>
        this.client.send(new ListCommandInvocationsCommand({ CommandId: command.commandId, Details: true, MaxResults: 50, NextToken: token })),
      );
      for (const inv of page.CommandInvocations ?? []) {
        const id = inv.InstanceId;
        if (!id || !command.waiting.has(id)) continue;
        const status = inv.Status ?? 'Pending';
        lastStatus.set(id, inv.StatusDetails ?? status);
        if (RUNNING.has(status)) continue;
        const output = inv.CommandPlugins?.[0]?.Output ?? '';
        if (status === 'Success' && output.includes(OUTPUT_TRUNCATED)) truncated.push(id);
        else {
          results.set(id, this.finished(id, inv, output));
          command.waiting.delete(id);
        }
      }
      token = page.NextToken;
    } while (token);
    // Only hosts whose output did not fit in 2,500 characters cost a call of their own.
    for (const id of truncated) {
      const full = await this.retrying(deadline, () =>
        this.client.send(new GetCommandInvocationCommand({ CommandId: command.commandId, InstanceId: id })),
      );
      const stdout = full.StandardOutputContent ?? '';
      results.set(
        id,
        stdout.length >= FULL_OUTPUT_LIMIT
          ? { instanceId: id, status: 'unknown', cause: 'truncated', reason: `its output reached SSM's ${FULL_OUTPUT_LIMIT} characters and was cut` }
          : { instanceId: id, status: 'ok', stdout },
      );
      command.waiting.delete(id);
    }
  }

  private finished(instanceId: string, inv: CommandInvocation, output: string): HostSignal {
    const status = inv.Status ?? 'Failed';
    const details = inv.StatusDetails ?? status;
    if (status === 'Success') {
      const cut = output.indexOf(ERROR_TITLE);
      return { instanceId, status: 'ok', stdout: cut === -1 ? output : output.slice(0, cut) };
    }
    const code = inv.CommandPlugins?.[0]?.ResponseCode;
    if (status === 'TimedOut')
      return {
        instanceId,
        status: 'unknown',
        cause: 'timed-out',
        reason:
          details === 'DeliveryTimedOut'
            ? `the command was never delivered (DeliveryTimedOut after ${this.deliveryTimeout} s: agent offline?)`
            : `the script did not finish within ${this.executionTimeout} s (${details})`,
      };
    return {
      instanceId,
      status: 'unknown',
      cause: 'failed',
      reason: `the script ${status === 'Failed' ? 'failed' : status.toLowerCase()} (${details}${code !== undefined ? `, exit ${code}` : ''})${output ? `: ${excerpt(output)}` : ''}`,
    };
  }

  private async retrying<T>(deadline: number, call: () => Promise<T>): Promise<T> {
    for (let retry = 0; ; retry++) {
      try {
        return await call();
      } catch (error) {
        const wait = 250 * 2 ** retry;
        if (!THROTTLING.has(codeOf(error)) || retry >= this.throttleRetries || this.now() + wait >= deadline) throw error;
        await this.sleep(wait);
      }
    }
  }
}
