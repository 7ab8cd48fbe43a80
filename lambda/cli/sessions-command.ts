import { readFileSync, statSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { sdkDynamoApi } from '../adapters/dynamodb-api.js';
import { boundedHttpHandler } from '../adapters/sdk-http-handler.js';
import { FileSessionAdminStore, writeFileAtomic } from '../adapters/session-admin-file.js';
import { TableSessionAdminStore } from '../adapters/session-admin-table.js';
import {
  buildManualItem,
  ConcurrentChangeError,
  isDiscovered,
  problemText,
  SessionNotFoundError,
  StoreError,
  type PutFlags,
  type SessionAdminStore,
  type StoredItem,
} from '../core/session-admin.js';
import { describeSession, formatSessionTable, listEntries, portalAccess, sessionRow, sessionsFileText, sortById, verdict } from '../core/session-admin-format.js';
import { invalidRecordText, planImport, validateImportRecords } from '../core/session-admin-import.js';
import { Attr, parseSessionRecord } from '../core/session-record.js';
import { CliError } from './cli-error.js';

const STORE_OPTIONS = `Store (exactly one):
  --table NAME      a DynamoDB session table (standard AWS SDK configuration: AWS_REGION, credentials,
                    AWS_ENDPOINT_URL_DYNAMODB)
  --sessions FILE   a sessions file (the serve --sessions format); writes replace it atomically`;

const EXIT = `Exit status: 0 done, 1 failed (nothing written unless stated), 2 bad usage.`;

const SUB_USAGE: Record<string, string> = {
  list: `Usage: dcv-resolver sessions list (--table NAME | --sessions FILE) [--json]

Every item, sorted by SessionId: id, endpoint, HTTP/QUIC port, path, target, source, enabled, expiry,
instance, pool, portal access (users, then groups as group:NAME) and DCV user (DcvUser; '-': the token's
user). Items the resolver skips are listed too, with the reason (NOTE column).

  --json            print the items as JSON (each with "valid" and, if not, "reason")

${STORE_OPTIONS}

${EXIT}
`,
  get: `Usage: dcv-resolver sessions get ID (--table NAME | --sessions FILE) [--json]

One item as stored, and whether the resolver answers for it: where it sends the gateway, or why it
does not (disabled, expired, or the exact reason a malformed item is skipped).

  --json            print the item as JSON

${STORE_OPTIONS}

${EXIT} An unknown ID is a failure.
`,
  put: `Usage: dcv-resolver sessions put ID --endpoint HOST [options] (--table NAME | --sessions FILE)

Writes the whole item (replacing any item with this id) with Source = manual and UpdatedAt = now,
after checking it with the resolver's own rules.

  --endpoint HOST              DcvServerEndpoint: host name or IP address of the DCV server
  --port N                     HttpPort (default 8443)
  --quic-port N                QuicPort (default: none, QUIC not offered)
  --web-url-path P             WebUrlPath (default /)
  --target ID                  TargetSessionId: the session id on the DCV server (default: ID)
  --allowed-client-cidr CIDR   AllowedClientCidrs; repeatable, or comma-separated
  --expires-at ISO|+DURATION   ExpiresAt: 2026-12-01T18:00:00Z, 2026-12-01 (UTC), or +8h, +1d12h (s m h d w)
  --disabled                   Enabled = false
  --allowed-users A,B          AllowedUsers (portal): user names, e-mails or subjects; repeatable, or comma-separated
  --allowed-groups G,H         AllowedGroups (portal): groups from the ID token's groups claim; same form
  --pool NAME                  Pool (portal): the host is a member of this pool
  --dcv-user NAME              DcvUser: the user name the verifier gives the DCV server, typically the
                               session's owner (ubuntu, Administrator, DOMAIN\\user); default: the token's user
                               (put writes the whole item: leave an option out to clear that attribute;
                               without --allowed-users or --allowed-groups the portal shows the session to nobody)
  --force                      replace an item discovery wrote (Source = ec2); it becomes manual and
                               discovery leaves it alone from then on

${STORE_OPTIONS}

${EXIT}
`,
  enable: `Usage: dcv-resolver sessions enable ID (--table NAME | --sessions FILE)

Sets Enabled = true on an existing item (and UpdatedAt).

${STORE_OPTIONS}

${EXIT} An unknown ID is a failure.
`,
  disable: `Usage: dcv-resolver sessions disable ID (--table NAME | --sessions FILE)

Sets Enabled = false on an existing item (and UpdatedAt): the resolver answers 404 for it.

${STORE_OPTIONS}

${EXIT} An unknown ID is a failure.
`,
  rm: `Usage: dcv-resolver sessions rm ID (--table NAME | --sessions FILE)

Deletes the item. For a discovered item (Source = ec2) in a table, asks EC2 (standard configuration,
AWS_ENDPOINT_URL_EC2) whether its instance still runs, and warns: discovery would recreate the item.

${STORE_OPTIONS}

${EXIT} An unknown ID is a failure.
`,
  import: `Usage: dcv-resolver sessions import FILE (--table NAME | --sessions FILE) [--force]

Copies the records of a sessions file (a JSON array of items) into the store, as they are. Every record
is checked first; if any is invalid, each is reported (index, SessionId, attribute, rule) and nothing is
written. A discovered item (Source = ec2) that would change is refused, and nothing written, unless
--force. Prints how many items were added, replaced and unchanged.

  --force           also replace discovered items

${STORE_OPTIONS}

${EXIT}
`,
  export: `Usage: dcv-resolver sessions export [FILE] (--table NAME | --sessions FILE) [--force]

Writes every item, sorted by SessionId, as a sessions file that serve --sessions reads (2-space JSON),
to FILE (atomically) or to stdout. Malformed items are exported as they are, and named on stderr.

  --force           replace FILE if it exists

${STORE_OPTIONS}

${EXIT}
`,
};

export const SESSIONS_USAGE = `Usage: dcv-resolver sessions <list|get|put|enable|disable|rm|import|export> [ID|FILE] (--table NAME | --sessions FILE) [options]

Reads and edits session items in a DynamoDB table or a sessions file, with the resolver's own rules.

  list                   every item, as a table (--json for scripts)
  get ID                 one item, and why the resolver does or does not answer for it
  put ID --endpoint HOST write a manual item (see 'sessions put --help')
  enable ID / disable ID set Enabled
  rm ID                  delete an item
  import FILE            copy a sessions file's records into the store (all or nothing)
  export [FILE]          write the store as a sessions file (or to stdout)

${STORE_OPTIONS}

Run 'dcv-resolver sessions <subcommand> --help' for its options. ${EXIT}
`;

/** `--help` text: the subcommand's when one is named. */
export function sessionsUsage(argv: readonly string[]): string {
  const sub = argv[0];
  return sub !== undefined && Object.hasOwn(SUB_USAGE, sub) ? SUB_USAGE[sub]! : SESSIONS_USAGE;
}

/** Options every sessions subcommand takes, and each one's own (test/docs checks every documented command against them). */
export const STORE_FLAGS = { table: { type: 'string' }, sessions: { type: 'string' } } as const;

export const SUB_FLAGS = {
  list: { json: { type: 'boolean' } },
  get: { json: { type: 'boolean' } },
  put: {
    endpoint: { type: 'string' },
    port: { type: 'string' },
    'quic-port': { type: 'string' },
    'web-url-path': { type: 'string' },
    target: { type: 'string' },
    'allowed-client-cidr': { type: 'string', multiple: true },
    'expires-at': { type: 'string' },
    disabled: { type: 'boolean' },
    'allowed-users': { type: 'string', multiple: true },
    'allowed-groups': { type: 'string', multiple: true },
    pool: { type: 'string' },
    'dcv-user': { type: 'string' },
    force: { type: 'boolean' },
  },
  enable: {},
  disable: {},
  rm: {},
  import: { force: { type: 'boolean' } },
  export: { force: { type: 'boolean' } },
} as const satisfies Record<string, ParseArgsConfig['options']>;

type Subcommand = keyof typeof SUB_FLAGS;

/** Positional arguments per subcommand: [required, optional]. */
const POSITIONALS: Record<Subcommand, { readonly name: string; readonly required: boolean } | undefined> = {
  list: undefined,
  get: { name: 'ID', required: true },
  put: { name: 'ID', required: true },
  enable: { name: 'ID', required: true },
  disable: { name: 'ID', required: true },
  rm: { name: 'ID', required: true },
  import: { name: 'FILE', required: true },
  export: { name: 'FILE', required: false },
};

export type StoreChoice = { readonly kind: 'table'; readonly table: string } | { readonly kind: 'file'; readonly file: string };

export interface SessionsArgs {
  readonly sub: Subcommand;
  readonly store: StoreChoice;
  readonly positional?: string;
  readonly flags: Record<string, string | boolean | string[] | undefined>;
}

function usageError(message: string, sub?: Subcommand): CliError {
  return new CliError(`${message}\n\n${sub ? SUB_USAGE[sub] : SESSIONS_USAGE}`, 2);
}

export function parseSessionsArgs(argv: readonly string[]): SessionsArgs {
  const [name, ...rest] = argv;
  if (name === undefined) throw usageError('a subcommand is required');
  if (!Object.hasOwn(SUB_FLAGS, name)) throw usageError(`unknown subcommand '${name}'`);
  const sub = name as Subcommand;
  let parsed;
  try {
    parsed = parseArgs({ args: [...rest], options: { ...STORE_FLAGS, ...SUB_FLAGS[sub] }, strict: true, allowPositionals: true });
  } catch (error) {
    throw usageError((error as Error).message, sub);
  }
  const { values, positionals } = parsed;
  const spec = POSITIONALS[sub];
  if (positionals.length > (spec ? 1 : 0)) throw usageError(`unexpected argument '${positionals[spec ? 1 : 0]}'`, sub);
  if (spec?.required && (positionals[0] === undefined || positionals[0] === '')) throw usageError(`${spec.name} is required`, sub);
  const table = values.table as string | undefined;
  const sessions = values.sessions as string | undefined;
  if ((table === undefined) === (sessions === undefined)) throw usageError('give exactly one of --table NAME or --sessions FILE', sub);
  if (table !== undefined && table.trim() === '') throw usageError('--table needs a table name', sub);
  if (sessions !== undefined && sessions.trim() === '') throw usageError('--sessions needs a file name', sub);
  if (sub === 'put' && (values as { endpoint?: string }).endpoint === undefined) throw usageError('--endpoint HOST is required', sub);
  return {
    sub,
    store: table !== undefined ? { kind: 'table', table: table.trim() } : { kind: 'file', file: sessions! },
    ...(positionals[0] === undefined ? {} : { positional: positionals[0] }),
    flags: values as SessionsArgs['flags'],
  };
}

// ---------------------------------------------------------------------------------------------------------

const PREFIX = 'dcv-resolver sessions';

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function note(text: string): void {
  process.stderr.write(`${PREFIX}: ${text}\n`);
}

/** Progress on stderr, only once an operation has taken more than a second; on a terminal, one line rewritten. */
export function slowProgress(stream: NodeJS.WriteStream, now: () => number = Date.now): { update(text: string): void; end(): void } {
  const started = now();
  const tty = stream.isTTY === true;
  let lastShown = 0;
  let shown = false;
  let pendingText: string | undefined;
  const show = (text: string) => {
    stream.write(tty ? `\r\x1b[2K${PREFIX}: ${text}` : `${PREFIX}: ${text}\n`);
    shown = true;
    lastShown = now();
    pendingText = undefined;
  };
  return {
    update(text) {
      const t = now();
      pendingText = text;
      if (t - started >= 1000 && t - lastShown >= (tty ? 100 : 1000)) show(text);
    },
    end() {
      if (shown && pendingText !== undefined) show(pendingText);
      if (shown && tty) stream.write('\n');
    },
  };
}

async function openStore(choice: StoreChoice, sub: Subcommand): Promise<SessionAdminStore> {
  // put and import may create the file; reading or editing a file that is not there is an error.
  if (choice.kind === 'file') return new FileSessionAdminStore(choice.file, { missingIsEmpty: sub === 'put' || sub === 'import' });
  const client = new DynamoDBClient({ requestHandler: boundedHttpHandler({ connectionTimeoutMs: 2000, requestTimeoutMs: 10_000 }) });
  let region: string;
  try {
    region = await client.config.region();
  } catch {
    client.destroy();
    throw new CliError('no AWS region configured: set AWS_REGION (or a profile with a region)');
  }
  return new TableSessionAdminStore(sdkDynamoApi(client), choice.table, { region });
}

async function mustGet(store: SessionAdminStore, sessionId: string): Promise<StoredItem> {
  const stored = await store.get(sessionId);
  if (!stored) throw new SessionNotFoundError(sessionId, store.description);
  return stored;
}

function readRecordsFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (error) {
    throw new CliError(`${file}: not valid JSON (${(error as Error).message})`);
  }
}

async function list(store: SessionAdminStore, json: boolean): Promise<void> {
  const progress = slowProgress(process.stderr);
  let stored;
  try {
    stored = await store.list((p) => progress.update(`read ${p.items} items (${p.pages} pages)`));
  } finally {
    progress.end();
  }
  const items = stored.map((s) => s.item);
  if (json) {
    out(JSON.stringify(listEntries(items), null, 2));
    return;
  }
  const now = Date.now();
  const rows = sortById(items).map((item) => sessionRow(item, now));
  const malformed = rows.filter((r) => r.note.startsWith('malformed')).length;
  out(`${formatSessionTable(rows)}\n\n${rows.length} sessions${malformed ? ` (${malformed} malformed: the resolver skips them)` : ''} in ${store.description}`);
}

async function get(store: SessionAdminStore, sessionId: string, json: boolean): Promise<void> {
  const { item } = await mustGet(store, sessionId);
  if (json) {
    out(JSON.stringify(listEntries([item])[0], null, 2));
    return;
  }
  out(describeSession(item, Date.now()));
}

function putFlags(sessionId: string, flags: SessionsArgs['flags']): PutFlags {
  const text = (key: string) => flags[key] as string | undefined;
  return {
    sessionId,
    endpoint: text('endpoint')!,
    ...(text('port') === undefined ? {} : { port: text('port') }),
    ...(text('quic-port') === undefined ? {} : { quicPort: text('quic-port') }),
    ...(text('web-url-path') === undefined ? {} : { webUrlPath: text('web-url-path') }),
    ...(text('target') === undefined ? {} : { target: text('target') }),
    ...(flags['allowed-client-cidr'] === undefined ? {} : { allowedClientCidrs: flags['allowed-client-cidr'] as string[] }),
    ...(text('expires-at') === undefined ? {} : { expiresAt: text('expires-at') }),
    ...(flags['allowed-users'] === undefined ? {} : { allowedUsers: flags['allowed-users'] as string[] }),
    ...(flags['allowed-groups'] === undefined ? {} : { allowedGroups: flags['allowed-groups'] as string[] }),
    ...(text('pool') === undefined ? {} : { pool: text('pool') }),
    ...(text('dcv-user') === undefined ? {} : { dcvUser: text('dcv-user') }),
    disabled: flags.disabled === true,
  };
}

const TAKEOVER_NOTE =
  'it is now Source = manual: discovery will leave it alone from then on (an instance tagged with this id is reported as a conflict); delete it to hand it back to discovery';

function instanceOf(item: Record<string, unknown>): string {
  return typeof item[Attr.InstanceId] === 'string' ? ` from instance ${item[Attr.InstanceId]}` : '';
}

async function put(store: SessionAdminStore, sessionId: string, flags: SessionsArgs['flags']): Promise<void> {
  const now = Date.now();
  const built = buildManualItem(putFlags(sessionId, flags), now);
  if (!built.ok) throw new CliError(`${problemText(built.problem)}; nothing written`);
  const current = await store.get(sessionId);
  if (current && isDiscovered(current.item) && flags.force !== true) {
    throw new CliError(
      `session '${sessionId}' was discovered${instanceOf(current.item)} (Source = ec2); replacing it makes it Source = manual, ` +
        'and discovery leaves it alone from then on: add --force to do that. Nothing written',
    );
  }
  await store.putIf({ item: built.item, expected: current ? { kind: 'unchanged', current } : { kind: 'absent' } });
  const portal = portalAccess(built.item);
  out(`${current ? 'replaced' : 'added'} session '${sessionId}' in ${store.description}\n${verdict(built.item, now)}${portal ? `\n${portal}` : ''}`);
  if (current && isDiscovered(current.item)) note(`session '${sessionId}' was discovered${instanceOf(current.item)}; ${TAKEOVER_NOTE}`);
}

async function setEnabled(store: SessionAdminStore, sessionId: string, enabled: boolean): Promise<void> {
  const word = enabled ? 'enabled' : 'disabled';
  const current = await mustGet(store, sessionId);
  const stored = current.item[Attr.Enabled];
  if (stored === enabled || (enabled && stored === undefined)) {
    out(`session '${sessionId}' is already ${word}; nothing written\n${verdict(current.item, Date.now())}`);
    return;
  }
  const updated = await store.updateIf(current, { [Attr.Enabled]: enabled, [Attr.UpdatedAt]: new Date().toISOString() });
  out(`session '${sessionId}' ${word} in ${store.description}\n${verdict(updated, Date.now())}`);
  if (isDiscovered(updated) && store instanceof TableSessionAdminStore) {
    note(
      `session '${sessionId}' is discovered (Source = ec2): discovery now sees a hand edit and leaves it alone ` +
        "(reported as an 'edited' conflict) until you set Source = manual or delete it",
    );
  }
}

async function rm(store: SessionAdminStore, sessionId: string): Promise<void> {
  const current = await mustGet(store, sessionId);
  await store.deleteIf(current);
  out(`removed session '${sessionId}' from ${store.description}`);
  const instanceId = current.item[Attr.InstanceId];
  if (!(store instanceof TableSessionAdminStore) || !isDiscovered(current.item) || typeof instanceId !== 'string') return;
  // Loaded only here: the other subcommands never need the EC2 client.
  const { lookUpInstanceState } = await import('../adapters/session-admin-instances.js');
  const instance = await lookUpInstanceState(instanceId);
  if (!instance.known) {
    note(
      `warning: session '${sessionId}' was discovered from instance ${instanceId}, and EC2 could not be asked whether it still runs ` +
        `(${instance.reason}); if it does, discovery will recreate the session on its next run`,
    );
  } else if (instance.state === 'running' || instance.state === 'pending') {
    note(
      `warning: session '${sessionId}' was discovered from instance ${instanceId}, which is still ${instance.state}: ` +
        "discovery will recreate the session on its next run (remove the instance's session-id tag, or stop it, to keep it gone)",
    );
  }
}

async function importFile(store: SessionAdminStore, file: string, force: boolean): Promise<void> {
  const validation = validateImportRecords(readRecordsFile(file));
  if (!validation.ok) {
    for (const invalid of validation.invalid) note(`${file}: ${invalidRecordText(invalid)}`);
    throw new CliError(`${file}: ${validation.invalid.length} invalid record(s); nothing written`);
  }
  const existing = new Map((await store.list()).map((s) => [s.item[Attr.SessionId] as string, s]));
  const plan = planImport(validation.records, existing, force);
  if (plan.refused.length > 0) {
    for (const r of plan.refused) {
      note(`${file}: SessionId '${r.sessionId}' would replace a discovered item (Source = ec2${r.instanceId ? `, instance ${r.instanceId}` : ''})`);
    }
    throw new CliError(`${plan.refused.length} record(s) would replace discovered items; nothing written (add --force to replace them)`);
  }
  const progress = slowProgress(process.stderr);
  let result;
  try {
    result = await store.putManyIf(plan.puts, (done) => progress.update(`wrote ${done}/${plan.puts.length}`));
  } finally {
    progress.end();
  }
  const summary = `${plan.added.length} added, ${plan.replaced.length} replaced, ${plan.unchanged.length} unchanged`;
  if (result.failed.length > 0) {
    for (const f of result.failed) note(`'${f.sessionId}': ${f.reason}`);
    throw new CliError(`${result.failed.length} of ${plan.puts.length} write(s) failed, ${result.written} written (planned: ${summary}); run the import again to finish`);
  }
  out(`imported ${file} into ${store.description}: ${summary}`);
  const takenOver = plan.replaced.filter((id) => isDiscovered(existing.get(id)!.item));
  if (takenOver.length > 0) note(`replaced ${takenOver.length} discovered item(s) (--force): ${takenOver.join(', ')}`);
}

async function exportTo(store: SessionAdminStore, file: string | undefined, force: boolean): Promise<void> {
  const items = (await store.list()).map((s) => s.item);
  for (const item of sortById(items)) {
    const parsed = parseSessionRecord(item);
    if (!parsed.ok) note(`warning: '${String(item[Attr.SessionId])}' is malformed (${parsed.reason}); exported as it is, the resolver skips it`);
  }
  const text = sessionsFileText(items);
  if (file === undefined) {
    process.stdout.write(text);
    return;
  }
  const exists = statSync(file, { throwIfNoEntry: false }) !== undefined;
  if (exists && !force) throw new CliError(`${file} exists; add --force to replace it. Nothing written`);
  writeFileAtomic(file, text, exists ? {} : { unchangedSince: 'absent' });
  note(`exported ${items.length} sessions from ${store.description} to ${file}`);
}

export async function runSessions(argv: string[]): Promise<void> {
  const args = parseSessionsArgs(argv);
  const store = await openStore(args.store, args.sub);
  const id = args.positional!;
  try {
    switch (args.sub) {
      case 'list':
        return await list(store, args.flags.json === true);
      case 'get':
        return await get(store, id, args.flags.json === true);
      case 'put':
        return await put(store, id, args.flags);
      case 'enable':
      case 'disable':
        return await setEnabled(store, id, args.sub === 'enable');
      case 'rm':
        return await rm(store, id);
      case 'import':
        return await importFile(store, id, args.flags.force === true);
      case 'export':
        return await exportTo(store, args.positional, args.flags.force === true);
    }
  } catch (error) {
    if (error instanceof StoreError || error instanceof SessionNotFoundError || error instanceof ConcurrentChangeError) {
      throw new CliError(error.message);
    }
    throw error;
  } finally {
    store.close();
  }
}
