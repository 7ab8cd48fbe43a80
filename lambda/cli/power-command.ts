import { parseArgs, type ParseArgsConfig } from 'node:util';
import { sdkDynamoApi } from '../adapters/dynamodb-api.js';
import { createDiscoveryDynamoClient } from '../adapters/dynamodb-discovery-table.js';
import { createPowerEc2Client } from '../adapters/ec2-power-api.js';
import { loadHostSignalsScript } from '../adapters/host-signals-script.js';
import { createSignalsSsmClient } from '../adapters/ssm-host-signals.js';
import { DEFAULT_TAG_PREFIX, validateTagPrefix } from '../core/discovery/tag-parser.js';
import type { Log } from '../core/log.js';
import { runPowerPass, type PowerPassResult } from '../power/power-runner.js';
import { checkTable } from './check-table.js';
import { CliError } from './cli-error.js';

export const POWER_USAGE = `Usage: dcv-resolver power --table NAME [options]

Runs one power pass, as the stack's scheduled function does every minute: starts stopped instances
whose schedule window has opened, reads the DCV signals of idle candidates through SSM Run Command
and stops those nobody has been connected to for their AutoStopMinutes (read twice; never on unknown).

  --table NAME         the session table
  --dry-run            read and decide; start, stop and write nothing
  --at ISO-TIME        with --dry-run: evaluate schedules as of this time (e.g. 2026-12-07T08:00:00+01:00)
  --json               print {dryRun, actions, failures, counts, requests} as JSON on stdout
  --tag-prefix PREFIX  tag prefix (default ${DEFAULT_TAG_PREFIX})
  --document NAME      send this SSM Command document (the stack's HostSignalsDocumentName output)
                       instead of the shipped script with AWS-RunShellScript
  --timeout SECONDS    give up waiting for hosts after this (default 50)

Standard AWS SDK configuration: AWS_REGION, credentials, AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL_SSM,
AWS_ENDPOINT_URL_DYNAMODB. Hosts need the SSM agent and an instance profile allowing it.
Log lines go to stderr. Exit code 1 when a start or stop failed, or the pass could not run.
`;

export interface PowerOptions {
  readonly table: string;
  readonly tagPrefix: string;
  readonly dryRun: boolean;
  readonly at?: number;
  readonly json: boolean;
  readonly document?: string;
  readonly timeoutSeconds: number;
}

export const POWER_OPTIONS = {
  table: { type: 'string' },
  'dry-run': { type: 'boolean', default: false },
  at: { type: 'string' },
  json: { type: 'boolean', default: false },
  'tag-prefix': { type: 'string', default: DEFAULT_TAG_PREFIX },
  document: { type: 'string' },
  timeout: { type: 'string', default: '50' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

// An ISO date-time with a zone (Z or ±HH:MM): a time without one would be read in this machine's zone.
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

export function parsePowerArgs(argv: string[]): PowerOptions {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: POWER_OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${POWER_USAGE}`, 2);
  }
  if (!values.table?.trim()) throw new CliError(`--table NAME is required\n\n${POWER_USAGE}`, 2);
  let tagPrefix: string;
  try {
    tagPrefix = validateTagPrefix(values['tag-prefix']);
  } catch (error) {
    throw new CliError(`--tag-prefix: ${(error as Error).message}`, 2);
  }
  let at: number | undefined;
  if (values.at !== undefined) {
    if (!values['dry-run']) throw new CliError('--at needs --dry-run (a real pass acts on the real time)', 2);
    at = ISO_WITH_ZONE.test(values.at) ? Date.parse(values.at) : NaN;
    if (!Number.isFinite(at)) throw new CliError(`--at '${values.at}' is not an ISO date-time with a zone (e.g. 2026-12-07T08:00:00Z)`, 2);
  }
  const timeoutSeconds = /^\d{1,4}$/.test(values.timeout) ? Number(values.timeout) : NaN;
  if (!(timeoutSeconds >= 5 && timeoutSeconds <= 900)) throw new CliError(`--timeout '${values.timeout}' must be whole seconds 5–900`, 2);
  const document = values.document?.trim();
  if (values.document !== undefined && !document) throw new CliError('--document NAME must not be empty', 2);
  return {
    table: values.table.trim(),
    tagPrefix,
    dryRun: values['dry-run'],
    ...(at === undefined ? {} : { at }),
    json: values.json,
    ...(document ? { document } : {}),
    timeoutSeconds,
  };
}

/** Warnings and errors on stderr, one line each (info lines too with --json off: they say what happened). */
function stderrLog(verbose: boolean): Log {
  const line = (level: string, message: string, extra: Record<string, unknown>[]) => {
    const fields = Object.assign({}, ...extra) as Record<string, unknown>;
    const text = Object.entries(fields)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    process.stderr.write(`${level} ${message}${text ? ` ${text}` : ''}\n`);
  };
  return {
    debug() {},
    info: (m, ...e) => verbose && line('info', m, e),
    warn: (m, ...e) => line('warn', m, e),
    error: (m, ...e) => line('error', m, e),
  };
}

export function powerSummary(result: PowerPassResult, dryRun: boolean): string {
  const c = result.counts;
  const parts = [
    `${c.instances} on-demand instances`,
    `${c.signalsRead} read`,
    `${c.idle} idle`,
    `${c.inUse} in use`,
    `${c.signalsUnknown} unknown`,
    `${result.actions.filter((a) => a.action === 'start').length} ${dryRun ? 'would start' : 'started'}`,
    `${result.actions.filter((a) => a.action === 'stop').length} ${dryRun ? 'would stop' : 'stopped'}`,
    `${result.failures.length} failed`,
  ];
  if (c.startsStuck) parts.push(`${c.startsStuck} starts stuck`);
  if (c.stopsStuck) parts.push(`${c.stopsStuck} stops stuck`);
  if (c.conflicts) parts.push(`${c.conflicts} conflicts`);
  const r = result.requests;
  return `${parts.join(', ')}; requests: EC2 ${r.ec2}, SSM ${r.ssm}, DynamoDB ${r.dynamodb}${dryRun ? ' (dry run: nothing started, stopped or written)' : ''}`;
}

export async function runPower(argv: string[]): Promise<void> {
  const options = parsePowerArgs(argv);
  const dynamodb = createDiscoveryDynamoClient();
  const ec2 = createPowerEc2Client();
  const ssm = createSignalsSsmClient();
  try {
    await checkTable(dynamodb, options.table);
    let result: PowerPassResult;
    try {
      result = await runPowerPass(
        { ec2, ssm, dynamodb: sdkDynamoApi(dynamodb) },
        {
          tableName: options.table,
          tagPrefix: options.tagPrefix,
          dryRun: options.dryRun,
          ...(options.at === undefined ? {} : { scheduleAt: options.at }),
          deadline: Date.now() + options.timeoutSeconds * 1000,
          signals: options.document ? { documentName: options.document } : { commands: loadHostSignalsScript() },
          log: stderrLog(!options.json),
        },
      );
    } catch (error) {
      throw new CliError(`the pass could not run (nothing started or stopped after the failure): ${(error as Error).message}`);
    }
    if (options.json) {
      const { actions, failures, counts, requests } = result;
      process.stdout.write(`${JSON.stringify({ dryRun: options.dryRun, actions, failures, counts, requests }, null, 2)}\n`);
    } else {
      const verb = (a: string) => (options.dryRun ? `would ${a}` : a === 'start' ? 'started' : 'stopped');
      for (const a of result.actions) process.stdout.write(`${verb(a.action).padEnd(10)}  ${a.instanceId}  ${a.reason}\n`);
      for (const f of result.failures) process.stdout.write(`${`${f.action} failed`.padEnd(10)}  ${f.instanceId}  ${f.outcome}: ${f.message}\n`);
      process.stdout.write(`${powerSummary(result, options.dryRun)}\n`);
    }
    if (result.failures.length > 0) throw new CliError(`${result.failures.length} start/stop request(s) failed (see above)`);
  } finally {
    ec2.destroy();
    ssm.destroy();
    dynamodb.destroy();
  }
}
