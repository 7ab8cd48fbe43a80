import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A loopback AWS Systems Manager speaking the real AWS JSON 1.1 protocol (`X-Amz-Target:
 * AmazonSSM.<Operation>`), reachable by the SDK through AWS_ENDPOINT_URL_SSM. SendCommand with
 * AWS-RunShellScript really runs `Parameters.commands` with /bin/sh (dash on Ubuntu, as the SSM agent
 * does) once per instance, with that host's own fake-bin directory first on PATH, bounded by
 * `executionTimeout` (killed with its process group: TimedOut, exit 137, as the Linux agent reports).
 * What real SSM does that a client must survive is reproduced: the whole SendCommand is refused with
 * InvalidInstanceId when one listed instance is not a managed node; a managed node whose agent is
 * offline accepts the command but never runs it (DeliveryTimedOut after TimeoutSeconds); output is cut
 * at 24,000 characters (GetCommandInvocation) and at 2,500 with the agent's truncation markers
 * (ListCommandInvocations with Details); ThrottlingException on demand. DescribeInstanceInformation
 * lists the managed nodes (Filters by InstanceIds / PingStatus).
 */
export interface SsmHost {
  /** A directory put first on PATH when this host runs a command (its fake dcv, nvidia-smi). */
  readonly binDir?: string;
  /** Not a managed node (no agent / no instance profile): SendCommand naming it is refused. */
  readonly unmanaged?: boolean;
  /** A managed node whose agent is not connected: commands stay Pending until the delivery timeout. */
  readonly pingStatus?: 'Online' | 'ConnectionLost' | 'Inactive';
  readonly platformType?: 'Linux' | 'Windows';
  /**
   * Answer every command at once with this stdout (Success), running nothing: for benchmarks at fleet
   * scale, where 10,000 shell processes would measure this machine, not the pass.
   */
  readonly stdout?: string;
}

export interface SsmServerOptions {
  /** Extra PATH after each host's binDir. @default '/usr/bin:/bin' */
  readonly basePath?: string;
  /** Commands running at once across hosts (the rest wait, Pending). @default 8 */
  readonly concurrency?: number;
  /** Return true to answer that call with ThrottlingException. */
  readonly throttle?: (call: { readonly index: number; readonly operation: string }) => boolean;
  /** Clock for delivery timeouts. @default Date.now */
  readonly now?: () => number;
  /**
   * Command documents of the account besides AWS-RunShellScript, by name, as their JSON content (schema 2.2):
   * SendCommand with one runs its first aws:runShellScript step's runCommand, bounded by that step's
   * timeoutSeconds, and refuses any Parameters (the document declares none).
   */
  readonly documents?: Readonly<Record<string, unknown>>;
}

type Status = 'Pending' | 'InProgress' | 'Success' | 'Failed' | 'TimedOut' | 'Cancelled';

interface Invocation {
  readonly commandId: string;
  readonly instanceId: string;
  readonly requested: number;
  status: Status;
  details: string;
  responseCode: number;
  started?: number;
  ended?: number;
  stdout: string;
  stderr: string;
  process?: ChildProcess;
  timer?: NodeJS.Timeout;
}

interface Command {
  readonly id: string;
  readonly documentName: string;
  readonly commands: string[];
  readonly executionTimeout: number;
  readonly deliveryTimeout: number;
  readonly comment: string;
  readonly requested: number;
  readonly invocations: Map<string, Invocation>;
}

class SsmError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const RUN_SHELL = 'AWS-RunShellScript';
const PLUGIN = 'aws:runShellScript';
const MAX_CAPTURE = 1024 * 1024; // keep at most 1 MiB per stream in memory

/** The SSM agent's TruncateOutput (agent/contracts): how Output is cut for ListCommandInvocations. */
export function truncateOutput(stdout: string, stderr: string, capacity: number): string {
  const truncOut = '\n---Output truncated---';
  const truncErr = '\n---Error truncated----';
  const title = stderr.length > 0 ? '\n----------ERROR-------\n' : '';
  const available = capacity - title.length;
  if (stdout.length + stderr.length < available) return stdout + title + stderr;
  if (stdout.length > available / 2 && stderr.length > available / 2) {
    const size = available - truncErr.length - truncOut.length;
    const half = Math.trunc(size / 2);
    return stdout.slice(0, half) + truncOut + title + stderr.slice(0, half) + truncErr;
  }
  if (stdout.length < available / 2) return stdout + title + stderr.slice(0, available - truncErr.length - stdout.length) + truncErr;
  return stdout.slice(0, available - truncOut.length - stderr.length) + truncOut + title + stderr;
}

/** AWS-RunShellScript's two parameters, checked as SSM does. */
function runShellParameters(params: Record<string, unknown>): { commands: string[]; executionTimeout: number } {
  const commands = params.commands;
  if (!Array.isArray(commands) || commands.length === 0 || !commands.every((c) => typeof c === 'string'))
    throw new SsmError('InvalidParameters', 'Parameter "commands" has null value or is empty');
  let executionTimeout = 3600;
  if (params.executionTimeout !== undefined) {
    const value = Array.isArray(params.executionTimeout) ? params.executionTimeout[0] : undefined;
    if (typeof value !== 'string' || !/^[1-9][0-9]{0,5}$/.test(value) || Number(value) > 172800)
      throw new SsmError('InvalidParameters', `Parameter "executionTimeout" "${String(value)}" failed to satisfy constraint: allowed pattern`);
    executionTimeout = Number(value);
  }
  return { commands: commands as string[], executionTimeout };
}

export class FakeSsm {
  readonly hosts = new Map<string, SsmHost>();
  readonly commands = new Map<string, Command>();
  /** Every call received: operation and parsed body. */
  readonly calls: { readonly operation: string; readonly body: Record<string, unknown> }[] = [];
  private running = 0;
  private readonly queue: Invocation[] = [];
  private readonly workDir = mkdtempSync(join(tmpdir(), 'fake-ssm-'));
  private closed = false;

  constructor(private readonly options: SsmServerOptions = {}) {}

  now(): number {
    return this.options.now?.() ?? Date.now();
  }

  sendCommands(): number {
    return this.calls.filter((c) => c.operation === 'SendCommand').length;
  }

  handle(operation: string, body: Record<string, unknown>): unknown {
    const index = this.calls.length;
    this.calls.push({ operation, body });
    if (this.options.throttle?.({ index, operation })) throw new SsmError('ThrottlingException', 'Rate exceeded');
    this.expireDeliveries();
    switch (operation) {
      case 'SendCommand':
        return this.sendCommand(body);
      case 'GetCommandInvocation':
        return this.getCommandInvocation(body);
      case 'ListCommandInvocations':
        return this.listCommandInvocations(body);
      case 'DescribeInstanceInformation':
        return this.describeInstanceInformation(body);
      default:
        throw new SsmError('UnknownOperationException', `Unknown operation ${operation}`);
    }
  }

  close(): void {
    this.closed = true;
    for (const command of this.commands.values()) {
      for (const inv of command.invocations.values()) {
        if (inv.timer) clearTimeout(inv.timer);
        if (inv.process?.pid && inv.process.exitCode === null) {
          try {
            process.kill(-inv.process.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    }
    rmSync(this.workDir, { recursive: true, force: true });
  }

  /** A registered document's first shell step; it declares no parameters, so any given is refused. */
  private documentSteps(name: string, params: Record<string, unknown>): { commands: string[]; executionTimeout: number } {
    const content = this.options.documents?.[name] as { mainSteps?: { action?: string; inputs?: { runCommand?: unknown; timeoutSeconds?: unknown } }[] } | undefined;
    if (!content) throw new SsmError('InvalidDocument', `Document ${name} does not exist in your account`);
    const unknownParameter = Object.keys(params)[0];
    if (unknownParameter !== undefined) throw new SsmError('InvalidParameters', `Document ${name} does not support parameters ${unknownParameter}`);
    const step = (content.mainSteps ?? []).find((s) => s.action === PLUGIN);
    const commands = step?.inputs?.runCommand;
    if (!Array.isArray(commands) || !commands.every((c) => typeof c === 'string')) throw new SsmError('InvalidDocumentContent', `Document ${name} has no aws:runShellScript step`);
    const timeout = Number(step!.inputs!.timeoutSeconds ?? 3600);
    return { commands: commands as string[], executionTimeout: Number.isInteger(timeout) && timeout > 0 ? timeout : 3600 };
  }

  private sendCommand(body: Record<string, unknown>): unknown {
    const name = body.DocumentName;
    if (typeof name !== 'string' || name.length === 0) throw new SsmError('ValidationException', "1 validation error detected: Value null at 'documentName' failed to satisfy constraint: Member must not be null");
    const ids = body.InstanceIds;
    if (!Array.isArray(ids) || ids.length === 0) throw new SsmError('InvalidParameters', 'InstanceIds or Targets must be specified');
    if (ids.length > 50)
      throw new SsmError('ValidationException', "1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50");
    const params = (body.Parameters ?? {}) as Record<string, unknown>;
    const { commands, executionTimeout } = name === RUN_SHELL ? runShellParameters(params) : this.documentSteps(name, params);
    const deliveryTimeout = body.TimeoutSeconds === undefined ? 3600 : Number(body.TimeoutSeconds);
    if (!Number.isInteger(deliveryTimeout) || deliveryTimeout < 30 || deliveryTimeout > 2592000)
      throw new SsmError('ValidationException', "1 validation error detected: Value at 'timeoutSeconds' failed to satisfy constraint: Member must have value between 30 and 2592000");
    const invalid = (ids as string[]).filter((id) => {
      const host = this.hosts.get(id);
      return !host || host.unmanaged;
    });
    // Real SSM refuses the whole command when any one instance is not a managed node.
    if (invalid.length > 0) throw new SsmError('InvalidInstanceId', `Instances [[${invalid.join(', ')}]] not in a valid state for account 123456789012`);
    const id = randomUUID();
    const requested = this.now();
    const command: Command = {
      id,
      documentName: name,
      commands,
      executionTimeout,
      deliveryTimeout,
      comment: typeof body.Comment === 'string' ? body.Comment : '',
      requested,
      invocations: new Map(),
    };
    this.commands.set(id, command);
    for (const instanceId of new Set(ids as string[])) {
      const inv: Invocation = { commandId: id, instanceId, requested, status: 'Pending', details: 'Pending', responseCode: -1, stdout: '', stderr: '' };
      command.invocations.set(instanceId, inv);
      if ((this.hosts.get(instanceId)!.pingStatus ?? 'Online') === 'Online') this.queue.push(inv);
    }
    this.pump();
    return {
      Command: {
        CommandId: id,
        DocumentName: name,
        DocumentVersion: '$DEFAULT',
        Comment: command.comment,
        Parameters: params,
        InstanceIds: [...command.invocations.keys()],
        Targets: [],
        RequestedDateTime: requested / 1000,
        Status: 'Pending',
        StatusDetails: 'Pending',
        TargetCount: command.invocations.size,
        CompletedCount: 0,
        ErrorCount: 0,
        DeliveryTimedOutCount: 0,
        TimeoutSeconds: deliveryTimeout,
        MaxConcurrency: '50',
        MaxErrors: '0',
      },
    };
  }

  private invocation(body: Record<string, unknown>): Invocation {
    const command = this.commands.get(String(body.CommandId));
    const inv = command?.invocations.get(String(body.InstanceId));
    if (!inv) throw new SsmError('InvocationDoesNotExist', '');
    return inv;
  }

  private getCommandInvocation(body: Record<string, unknown>): unknown {
    if (typeof body.CommandId !== 'string' || typeof body.InstanceId !== 'string')
      throw new SsmError('ValidationException', 'CommandId and InstanceId are required');
    const inv = this.invocation(body);
    if (body.PluginName !== undefined && body.PluginName !== PLUGIN) throw new SsmError('InvalidPluginName', '');
    const command = this.commands.get(inv.commandId)!;
    const done = inv.status === 'Success' || inv.status === 'Failed' || inv.status === 'TimedOut';
    return {
      CommandId: inv.commandId,
      InstanceId: inv.instanceId,
      Comment: command.comment,
      DocumentName: command.documentName,
      DocumentVersion: '$DEFAULT',
      PluginName: PLUGIN,
      ResponseCode: inv.responseCode,
      ExecutionStartDateTime: inv.started ? new Date(inv.started).toISOString() : '',
      ExecutionElapsedTime: inv.started ? `PT${(((inv.ended ?? this.now()) - inv.started) / 1000).toFixed(3)}S` : '',
      ExecutionEndDateTime: inv.ended ? new Date(inv.ended).toISOString() : '',
      Status: inv.status,
      StatusDetails: inv.details,
      StandardOutputContent: done ? inv.stdout.slice(0, 24_000) : '',
      StandardOutputUrl: '',
      StandardErrorContent: done ? inv.stderr.slice(0, 8_000) : '',
      StandardErrorUrl: '',
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
    };
  }

  private listCommandInvocations(body: Record<string, unknown>): unknown {
    const max = body.MaxResults === undefined ? 50 : Number(body.MaxResults);
    if (!Number.isInteger(max) || max < 1 || max > 50)
      throw new SsmError('ValidationException', "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 50");
    const all: Invocation[] = [];
    for (const command of this.commands.values()) {
      if (body.CommandId !== undefined && command.id !== body.CommandId) continue;
      for (const inv of command.invocations.values()) if (body.InstanceId === undefined || inv.instanceId === body.InstanceId) all.push(inv);
    }
    if (body.CommandId !== undefined && !this.commands.has(String(body.CommandId))) throw new SsmError('InvalidCommandId', '');
    const start = body.NextToken === undefined ? 0 : Number(body.NextToken);
    if (!Number.isInteger(start) || start < 0) throw new SsmError('InvalidNextToken', 'The specified token isn\'t valid.');
    const page = all.slice(start, start + max);
    const command = (inv: Invocation) => this.commands.get(inv.commandId)!;
    return {
      CommandInvocations: page.map((inv) => ({
        CommandId: inv.commandId,
        InstanceId: inv.instanceId,
        InstanceName: '',
        Comment: command(inv).comment,
        DocumentName: command(inv).documentName,
        DocumentVersion: '$DEFAULT',
        RequestedDateTime: inv.requested / 1000,
        Status: inv.status,
        StatusDetails: inv.details,
        TraceOutput: '',
        StandardOutputUrl: '',
        StandardErrorUrl: '',
        CommandPlugins:
          body.Details === true
            ? [
                {
                  Name: PLUGIN,
                  Status: inv.status,
                  StatusDetails: inv.details,
                  ResponseCode: inv.responseCode,
                  ...(inv.started ? { ResponseStartDateTime: inv.started / 1000 } : {}),
                  ...(inv.ended ? { ResponseFinishDateTime: inv.ended / 1000 } : {}),
                  Output: truncateOutput(inv.stdout, inv.stderr, 2500),
                  StandardOutputUrl: '',
                  StandardErrorUrl: '',
                  OutputS3Region: 'us-east-1',
                  OutputS3BucketName: '',
                  OutputS3KeyPrefix: '',
                },
              ]
            : [],
        ServiceRole: '',
        NotificationConfig: { NotificationArn: '', NotificationEvents: [], NotificationType: '' },
        CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
      })),
      ...(start + max < all.length ? { NextToken: String(start + max) } : {}),
    };
  }

  private describeInstanceInformation(body: Record<string, unknown>): unknown {
    if (body.Filters !== undefined && body.InstanceInformationFilterList !== undefined)
      throw new SsmError('InvalidFilter', 'Filters and InstanceInformationFilterList cannot be used together');
    const max = body.MaxResults === undefined ? 10 : Number(body.MaxResults);
    if (!Number.isInteger(max) || max < 5 || max > 50)
      throw new SsmError('ValidationException', "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value between 5 and 50");
    let nodes = [...this.hosts.entries()].filter(([, h]) => !h.unmanaged);
    for (const filter of (body.Filters ?? []) as { Key?: string; Values?: string[] }[]) {
      const values = new Set(filter.Values ?? []);
      if (values.size === 0 || values.size > 100) throw new SsmError('InvalidFilterValue', `Filter ${filter.Key} needs 1 to 100 values`);
      if (filter.Key === 'InstanceIds') nodes = nodes.filter(([id]) => values.has(id));
      else if (filter.Key === 'PingStatus') nodes = nodes.filter(([, h]) => values.has(h.pingStatus ?? 'Online'));
      else throw new SsmError('InvalidFilterKey', `Filter key ${filter.Key} is not supported here`);
    }
    for (const filter of (body.InstanceInformationFilterList ?? []) as { key?: string; valueSet?: string[] }[]) {
      // The legacy filter refuses ids that are not managed nodes, as SendCommand does.
      if (filter.key !== 'InstanceIds') throw new SsmError('InvalidInstanceInformationFilterValue', `Filter key ${filter.key} is not supported here`);
      const bad = (filter.valueSet ?? []).filter((id) => !this.hosts.has(id) || this.hosts.get(id)!.unmanaged);
      if (bad.length > 0) throw new SsmError('InvalidInstanceId', `Instances [[${bad.join(', ')}]] not in a valid state`);
      const values = new Set(filter.valueSet);
      nodes = nodes.filter(([id]) => values.has(id));
    }
    nodes.sort(([a], [b]) => (a < b ? -1 : 1));
    const start = body.NextToken === undefined ? 0 : Number(body.NextToken);
    const page = nodes.slice(start, start + max);
    return {
      InstanceInformationList: page.map(([id, h]) => ({
        InstanceId: id,
        PingStatus: h.pingStatus ?? 'Online',
        LastPingDateTime: this.now() / 1000,
        AgentVersion: '3.3.1957.0',
        IsLatestVersion: false,
        PlatformType: h.platformType ?? 'Linux',
        PlatformName: h.platformType === 'Windows' ? 'Microsoft Windows Server 2022 Datacenter' : 'Ubuntu',
        PlatformVersion: h.platformType === 'Windows' ? '10.0.20348' : '24.04',
        ResourceType: 'EC2Instance',
        IPAddress: '10.0.0.1',
        ComputerName: `${id}.ec2.internal`,
      })),
      ...(start + max < nodes.length ? { NextToken: String(start + max) } : {}),
    };
  }

  /** Commands never delivered (agent offline) time out once their delivery timeout has passed. */
  private expireDeliveries(): void {
    const now = this.now();
    for (const command of this.commands.values()) {
      for (const inv of command.invocations.values()) {
        if (inv.status === 'Pending' && !this.queue.includes(inv) && now >= command.requested + command.deliveryTimeout * 1000) {
          inv.status = 'TimedOut';
          inv.details = 'DeliveryTimedOut';
        }
      }
    }
  }

  private pump(): void {
    const limit = this.options.concurrency ?? 8;
    while (!this.closed && this.running < limit && this.queue.length > 0) this.run(this.queue.shift()!);
  }

  private run(inv: Invocation): void {
    const command = this.commands.get(inv.commandId)!;
    const host = this.hosts.get(inv.instanceId)!;
    if (host.stdout !== undefined) {
      inv.started = inv.ended = this.now();
      Object.assign(inv, { status: 'Success', details: 'Success', responseCode: 0, stdout: host.stdout });
      return;
    }
    // The agent writes the commands to an orchestration folder's _script.sh and runs it with sh.
    const script = join(mkdtempSync(join(this.workDir, `${inv.instanceId}-`)), '_script.sh');
    writeFileSync(script, command.commands.join('\n') + '\n', { mode: 0o700 });
    const basePath = this.options.basePath ?? '/usr/bin:/bin';
    const env = {
      PATH: host.binDir ? `${host.binDir}:${basePath}` : basePath,
      HOME: '/root',
      LANG: 'C.UTF-8',
      AWS_SSM_INSTANCE_ID: inv.instanceId,
      AWS_SSM_REGION_NAME: 'us-east-1',
    };
    this.running++;
    inv.status = 'InProgress';
    inv.details = 'InProgress';
    inv.started = this.now();
    // Its own process group, so a timeout kills what the script started too (sleep, a hung dcv).
    const child = spawn('/bin/sh', [script], { cwd: join(script, '..'), env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    inv.process = child;
    let timedOut = false;
    const capture = (key: 'stdout' | 'stderr') => (chunk: Buffer) => {
      if (inv[key].length < MAX_CAPTURE) inv[key] += chunk.toString('utf8').slice(0, MAX_CAPTURE - inv[key].length);
    };
    child.stdout!.on('data', capture('stdout'));
    child.stderr!.on('data', capture('stderr'));
    inv.timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already exited
      }
    }, command.executionTimeout * 1000);
    const finish = (code: number | null, error?: Error) => {
      clearTimeout(inv.timer);
      this.running--;
      inv.ended = this.now();
      if (timedOut) {
        inv.status = 'TimedOut';
        inv.details = 'ExecutionTimedOut';
        inv.responseCode = 137;
      } else if (code === 0) {
        inv.status = 'Success';
        inv.details = 'Success';
        inv.responseCode = 0;
      } else {
        inv.status = 'Failed';
        inv.details = 'Failed';
        inv.responseCode = code ?? 1;
        if (error) inv.stderr += `\nfailed to run commands: ${error.message}`;
      }
      this.pump();
    };
    child.on('error', (error) => finish(null, error));
    child.on('close', (code) => finish(code));
  }
}

export interface SsmServer {
  readonly endpoint: string;
  readonly ssm: FakeSsm;
  close(): Promise<void>;
}

export async function startSsmServer(options: SsmServerOptions = {}): Promise<SsmServer> {
  const ssm = new FakeSsm(options);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/x-amz-json-1.1');
      res.setHeader('x-amzn-requestid', randomUUID());
      const target = String(req.headers['x-amz-target'] ?? '');
      const fail = (type: string, message: string, status = 400) => {
        res.statusCode = status;
        res.end(JSON.stringify({ __type: type, message }));
      };
      if (req.method !== 'POST' || !target.startsWith('AmazonSSM.')) return fail('UnknownOperationException', `bad target ${target}`);
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        return fail('SerializationException', 'malformed JSON');
      }
      try {
        res.end(JSON.stringify(ssm.handle(target.slice('AmazonSSM.'.length), body)));
      } catch (error) {
        if (error instanceof SsmError) return fail(error.type, error.message);
        return fail('InternalServerError', (error as Error).message, 500);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    ssm,
    close: () =>
      new Promise<void>((resolve) => {
        ssm.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
