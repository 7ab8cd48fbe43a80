import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createDiscoveryDynamoClient } from '../adapters/dynamodb-discovery-table.js';
import { sdkDynamoApi } from '../adapters/dynamodb-api.js';
import { createDiscoveryEc2Client } from '../adapters/ec2-instance-source.js';
import type { Change } from '../core/discovery/reconcile.js';
import type { DiscoveryProgress, DiscoveryResult } from '../core/discovery/run-discovery.js';
import { DEFAULT_TAG_PREFIX, validateTagPrefix } from '../core/discovery/tag-parser.js';
import { silentLog } from '../core/log.js';
import { runFullReconcile } from '../discovery/discovery-runner.js';
import { checkTable } from './check-table.js';
import { CliError } from './cli-error.js';

export const DISCOVER_USAGE = `Usage: dcv-resolver discover --table NAME [options]

Makes the table's discovered sessions (Source = ec2) match the running EC2 instances tagged
<prefix>session-id: adds, changes and removes discovered items; never touches any other item,
nor a discovered item edited by hand since discovery wrote it (listed as a conflict).

  --table NAME         the session table
  --tag-prefix PREFIX  tag prefix (default ${DEFAULT_TAG_PREFIX})
  --dry-run            show what would change; write nothing
  --json               print the result as JSON on stdout

Standard AWS SDK configuration: AWS_REGION, credentials, AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL_DYNAMODB.
Progress goes to stderr. Exit code 1 when the EC2 listing fails (nothing is changed) or a write fails.
`;

export interface DiscoverOptions {
  readonly table: string;
  readonly tagPrefix: string;
  readonly dryRun: boolean;
  readonly json: boolean;
}

/** The command's options as parseArgs takes them (test/docs checks every documented command against them). */
export const DISCOVER_OPTIONS = {
  table: { type: 'string' },
  'tag-prefix': { type: 'string', default: DEFAULT_TAG_PREFIX },
  'dry-run': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export function parseDiscoverArgs(argv: string[]): DiscoverOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: DISCOVER_OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${DISCOVER_USAGE}`, 2);
  }
  if (!values.table?.trim()) throw new CliError(`--table NAME is required\n\n${DISCOVER_USAGE}`, 2);
  let tagPrefix: string;
  try {
    tagPrefix = validateTagPrefix(values['tag-prefix']);
  } catch (error) {
    throw new CliError(`--tag-prefix: ${(error as Error).message}`, 2);
  }
  return { table: values.table.trim(), tagPrefix, dryRun: values['dry-run'], json: values.json };
}

/** One line per page and per 500 writes; on a terminal, one line rewritten in place. */
function progressPrinter(stream: NodeJS.WriteStream): { update(p: DiscoveryProgress): void; end(): void } {
  const tty = stream.isTTY === true;
  let pending = false;
  const write = (text: string) => {
    if (tty) {
      stream.write(`\r\x1b[2K${text}`);
      pending = true;
    } else {
      stream.write(`${text}\n`);
    }
  };
  return {
    update(p) {
      if (p.phase === 'instances') write(`discover: listed ${p.instances} tagged instances (${p.pages} pages)`);
      else if (p.phase === 'table') write(`discover: read ${p.items} table items`);
      else if (tty || p.done % 500 === 0 || p.done === p.total) write(`discover: wrote ${p.done}/${p.total}`);
    },
    end() {
      if (pending) stream.write('\n');
    },
  };
}

interface Row {
  readonly action: string;
  readonly sessionId: string;
  readonly instanceId: string;
  readonly detail: string;
}

function describeItem(item: Record<string, unknown>): string {
  const target = item.TargetSessionId ? ` → ${String(item.TargetSessionId)}` : '';
  const quic = item.QuicPort ? ` quic ${String(item.QuicPort)}` : '';
  return `${String(item.DcvServerEndpoint)}:${String(item.HttpPort)}${String(item.WebUrlPath ?? '/')}${quic}${target}`;
}

function changeRow(change: Change, action?: string): Row {
  if (change.kind === 'add') return { action: action ?? 'added', sessionId: change.sessionId, instanceId: change.instanceId, detail: describeItem(change.item) };
  if (change.kind === 'change') {
    return { action: action ?? 'changed', sessionId: change.sessionId, instanceId: change.instanceId, detail: `${change.changed.join(', ')} → ${describeItem(change.item)}` };
  }
  return { action: action ?? 'removed', sessionId: change.sessionId, instanceId: change.instanceId ?? '-', detail: change.reason };
}

export function resultRows(result: DiscoveryResult): Row[] {
  const verb = result.dryRun ? { add: 'would add', change: 'would change', remove: 'would remove' } : undefined;
  const changes = result.dryRun ? result.plan.changes : result.applied;
  return [
    ...changes.map((c) => changeRow(c, verb?.[c.kind])),
    ...result.plan.conflicts.map((c) => ({ action: 'conflict', sessionId: c.sessionId, instanceId: c.instanceId, detail: c.reason })),
    ...result.plan.unparsable.map((u) => ({ action: 'unparsable', sessionId: '-', instanceId: u.instanceId, detail: u.reason })),
    ...result.skipped.map((s) => ({ ...changeRow(s.change), action: 'skipped', detail: s.reason })),
    ...result.failed.map((f) => ({ ...changeRow(f.change), action: 'failed', detail: f.reason })),
  ];
}

export function formatTable(rows: readonly Row[]): string {
  const header: Row = { action: 'ACTION', sessionId: 'SESSION ID', instanceId: 'INSTANCE', detail: 'DETAIL' };
  const all = [header, ...rows];
  const width = (key: keyof Row) => Math.min(64, Math.max(...all.map((r) => r[key].length)));
  const w = { action: width('action'), sessionId: width('sessionId'), instanceId: width('instanceId') };
  return all
    .map((r) => `${r.action.padEnd(w.action)}  ${r.sessionId.padEnd(w.sessionId)}  ${r.instanceId.padEnd(w.instanceId)}  ${r.detail}`)
    .join('\n');
}

export function summaryLine(result: DiscoveryResult): string {
  const c = result.counts;
  const parts = [
    `${c.instances} tagged instances`,
    `${c.added} added`,
    `${c.changed} changed`,
    `${c.removed} removed`,
    `${c.unchanged} unchanged`,
    `${c.conflicts} conflicts`,
    `${c.unparsable} unparsable`,
  ];
  if (c.skipped) parts.push(`${c.skipped} skipped`);
  if (c.failed) parts.push(`${c.failed} failed`);
  return `${parts.join(', ')}${result.dryRun ? ' (dry run: nothing written)' : ''}`;
}

export function resultJson(result: DiscoveryResult): unknown {
  const changes = result.dryRun ? result.plan.changes : result.applied;
  const strip = (c: Change) =>
    c.kind === 'remove'
      ? { sessionId: c.sessionId, instanceId: c.instanceId, reason: c.reason }
      : { sessionId: c.sessionId, instanceId: c.instanceId, item: c.item, ...(c.kind === 'change' ? { changed: c.changed } : {}) };
  return {
    dryRun: result.dryRun,
    counts: result.counts,
    added: changes.filter((c) => c.kind === 'add').map(strip),
    changed: changes.filter((c) => c.kind === 'change').map(strip),
    removed: changes.filter((c) => c.kind === 'remove').map(strip),
    conflicts: result.plan.conflicts,
    unparsable: result.plan.unparsable,
    skipped: result.skipped.map((s) => ({ kind: s.change.kind, sessionId: s.change.sessionId, reason: s.reason })),
    failed: result.failed.map((f) => ({ kind: f.change.kind, sessionId: f.change.sessionId, reason: f.reason })),
  };
}

export async function runDiscover(argv: string[]): Promise<void> {
  const options = parseDiscoverArgs(argv);
  const dynamodb = createDiscoveryDynamoClient();
  const ec2 = createDiscoveryEc2Client();
  const progress = progressPrinter(process.stderr);
  try {
    await checkTable(dynamodb, options.table);
    let report;
    try {
      report = await runFullReconcile(
        { ec2, dynamodb: sdkDynamoApi(dynamodb) },
        { tableName: options.table, tagPrefix: options.tagPrefix, dryRun: options.dryRun, log: silentLog, onProgress: progress.update },
      );
    } catch (error) {
      throw new CliError(`cannot read table '${options.table}': ${(error as Error).message}`);
    } finally {
      progress.end();
    }
    const result = report.result;
    if (result.abortReason !== undefined) throw new CliError(`nothing changed: ${result.abortReason}`);
    if (options.json) {
      process.stdout.write(`${JSON.stringify(resultJson(result), null, 2)}\n`);
    } else {
      const rows = resultRows(result);
      process.stdout.write(`${rows.length > 0 ? `${formatTable(rows)}\n\n` : ''}${summaryLine(result)}\n`);
    }
    if (result.failed.length > 0) throw new CliError(`${result.failed.length} write(s) failed; run again to retry`);
  } finally {
    ec2.destroy();
    dynamodb.destroy();
  }
}
