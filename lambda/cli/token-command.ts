import { parseArgs, type ParseArgsConfig } from 'node:util';

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { sdkDynamoApi } from '../adapters/dynamodb-api.js';
import { DynamoDbSessionStore } from '../adapters/dynamodb-session-store.js';
import { DirectoryTokenStore } from '../adapters/directory-token-store.js';
import { DynamoDbTokenStore } from '../adapters/dynamodb-token-store.js';
import { FileSessionStore } from '../adapters/file-session-store.js';
import { ConfigError } from '../core/config-errors.js';
import { HttpError } from '../core/errors.js';
import { silentLog, type Log } from '../core/log.js';
import { SessionResolver } from '../core/resolve.js';
import type { SessionStore } from '../core/session-store.js';
import { parseDurationSeconds } from '../core/tokens/duration.js';
import { DEFAULT_MAX_USES, DEFAULT_TTL_SECONDS, issueToken } from '../core/tokens/issue-token.js';
import { hashToken, isTokenFormat, TOKEN_ID_LENGTH, tokenIdOf } from '../core/tokens/token.js';
import type { TokenState } from '../core/tokens/token-grant.js';
import { stateRefusal, type TokenStore } from '../core/tokens/token-store.js';
import { CliError } from './cli-error.js';

const STORE_OPTIONS = `Stores (standard AWS SDK configuration for tables: AWS_REGION, credentials, AWS_ENDPOINT_URL_DYNAMODB):
  --table NAME           the session table; tokens go to --tokens-table (default NAME-tokens)
  --tokens-table NAME    the tokens table (the stack's TokenTableName output)
  --tokens-dir DIR       tokens in a directory (no AWS), read by 'serve --tokens-dir DIR'
  --sessions FILE        with --tokens-dir: the sessions file the session must resolve in`;

export const TOKEN_USAGE = `Usage: dcv-resolver token <create|list|revoke> [options]

Connect tokens for the gateway's authentication loop: 'create' prints the link a user opens,
the DCV server asks this resolver's verifier (POST …/verifyToken/<server>) about the token.

  token create --session ID --user NAME [--group G]… [--gateway URL] [--ttl 10m] [--max-uses N]
               [--client-cidr CIDR]… (store options) [--json]
      Issues a token for the client-facing session ID (refused unless it resolves now: known,
      enabled, unexpired) and prints the browser link and the native client's dcv:// link.
      A session with AllowedUsers / AllowedGroups takes tokens only for a user on the list or
      in one of the groups; the verifier checks that again when the token is used.
      --group      the user's group, matched against AllowedGroups (repeatable, or comma-separated)
      --ttl        how long the token is valid: 90s, 10m, 2h, 1d (default ${DEFAULT_TTL_SECONDS / 60}m)
      --max-uses   successful verifications allowed (default ${DEFAULT_MAX_USES}: first connection,
                   a page reload, a reconnect)
      --client-cidr  only for clients the DCV server reports inside this CIDR (repeatable)
  token list [--all] (store options) [--json]
      What each token is for and how much of it is left (never the token). --all includes expired,
      used-up and revoked tokens.
  token revoke TOKEN|ID… (store options)
      Revokes by the token itself or by the ID 'token list' shows.

${STORE_OPTIONS}
`;

interface StoreArgs {
  readonly table?: string;
  readonly tokensTable?: string;
  readonly tokensDir?: string;
  readonly sessions?: string;
}

interface Stores {
  readonly tokens: TokenStore;
  readonly sessions?: SessionStore;
  /** Where the tokens are, for messages. */
  readonly where: string;
  close(): Promise<void>;
}

/** Options every token subcommand takes (test/docs checks every documented command against these). */
export const STORE_PARSE_OPTIONS: ParseArgsOptionsConfig = {
  table: { type: 'string' },
  'tokens-table': { type: 'string' },
  'tokens-dir': { type: 'string' },
  sessions: { type: 'string' },
  json: { type: 'boolean', default: false },
};

/** Each subcommand's own options, beside STORE_PARSE_OPTIONS; revoke takes positionals (TOKEN|ID…). */
export const TOKEN_SUB_OPTIONS = {
  create: {
    session: { type: 'string' },
    user: { type: 'string' },
    gateway: { type: 'string' },
    ttl: { type: 'string' },
    'max-uses': { type: 'string' },
    'client-cidr': { type: 'string', multiple: true },
    group: { type: 'string', multiple: true },
  },
  list: { all: { type: 'boolean', default: false } },
  revoke: {},
} as const satisfies Record<string, ParseArgsOptionsConfig>;

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(argv: string[], options: ParseArgsOptionsConfig, positionals = false): { values: Values; positionals: string[] } {
  try {
    const parsed = parseArgs({ args: argv, options: { ...STORE_PARSE_OPTIONS, ...options }, strict: true, allowPositionals: positionals });
    return { values: parsed.values as Values, positionals: parsed.positionals };
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${TOKEN_USAGE}`, 2);
  }
}

const text = (values: Values, name: string) => values[name] as string | undefined;

function storeArgs(values: Record<string, unknown>): StoreArgs {
  const args: StoreArgs = {
    table: values.table as string | undefined,
    tokensTable: values['tokens-table'] as string | undefined,
    tokensDir: values['tokens-dir'] as string | undefined,
    sessions: values.sessions as string | undefined,
  };
  if (args.tokensDir && (args.table || args.tokensTable)) {
    throw new CliError('give either --tokens-dir DIR [--sessions FILE] or --table NAME [--tokens-table NAME], not both', 2);
  }
  if (!args.tokensDir && !args.table && !args.tokensTable) {
    throw new CliError(`where are the tokens? give --table NAME (or --tokens-table NAME) or --tokens-dir DIR\n\n${TOKEN_USAGE}`, 2);
  }
  if (args.sessions && !args.tokensDir) throw new CliError('--sessions FILE goes with --tokens-dir DIR', 2);
  return args;
}

/** `create` makes a missing tokens directory (token create); listing and revoking refuse one. */
function openStores(args: StoreArgs, log: Log, create = false): Stores {
  try {
    if (args.tokensDir) {
      const tokens = new DirectoryTokenStore(args.tokensDir, log, { create });
      const sessions = args.sessions ? new FileSessionStore(args.sessions, { log }) : undefined;
      return { tokens, sessions, where: `directory ${args.tokensDir}`, close: async () => sessions?.close() };
    }
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(error.message);
    throw error;
  }
  const client = new DynamoDBClient({});
  const tokensTable = args.tokensTable ?? `${args.table}-tokens`;
  return {
    tokens: new DynamoDbTokenStore(sdkDynamoApi(client), tokensTable, log),
    sessions: args.table ? new DynamoDbSessionStore(client, args.table) : undefined,
    where: `table ${tokensTable}`,
    close: async () => client.destroy(),
  };
}

/** Store failures in words an operator can act on (a missing table is the usual one). */
function storeFailure(error: unknown, stores: Stores): CliError {
  const name = (error as Error).name;
  if (name === 'ResourceNotFoundException') {
    return new CliError(`${stores.where}: table not found (check the name and AWS_REGION; the stack's TokenTableName output names it)`);
  }
  return new CliError(`${stores.where}: ${(error as Error).message}`);
}

/** Messages go to stderr, so stdout carries only the links (or JSON) for scripts. */
const stderrLog: Log = {
  ...silentLog,
  warn: (message, ...extra) => process.stderr.write(`dcv-resolver token: ${message} ${JSON.stringify(Object.assign({}, ...extra))}\n`),
};

export async function runToken(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'create') return runCreate(rest);
  if (sub === 'list') return runList(rest);
  if (sub === 'revoke') return runRevoke(rest);
  throw new CliError(sub === undefined ? `a subcommand is required\n\n${TOKEN_USAGE}` : `unknown subcommand '${sub}'\n\n${TOKEN_USAGE}`, 2);
}

async function runCreate(argv: string[]): Promise<void> {
  const { values } = parse(argv, TOKEN_SUB_OPTIONS.create);
  const sessionId = text(values, 'session');
  const user = text(values, 'user');
  const ttl = text(values, 'ttl');
  const maxUsesText = text(values, 'max-uses');
  if (!sessionId) throw new CliError('--session ID is required (the client-facing session id)', 2);
  if (!user) throw new CliError('--user NAME is required (the name the DCV server logs the user in as)', 2);
  let ttlSeconds: number | undefined;
  if (ttl !== undefined) {
    ttlSeconds = parseDurationSeconds(ttl);
    if (ttlSeconds === undefined) throw new CliError(`--ttl must be a duration such as 90s, 10m, 2h or 1d, not '${ttl}'`, 2);
  }
  let maxUses: number | undefined;
  if (maxUsesText !== undefined) {
    if (!/^\d{1,3}$/.test(maxUsesText)) throw new CliError(`--max-uses must be a whole number, not '${maxUsesText}'`, 2);
    maxUses = Number(maxUsesText);
  }
  const groupArgs = values.group as string[] | undefined;
  const groups = groupArgs?.flatMap((g) => g.split(',')).map((g) => g.trim()).filter((g) => g !== '');
  if (groupArgs && groups!.length === 0) throw new CliError('--group needs a group name', 2);
  const stores = openStores(storeArgs(values), stderrLog, true);
  try {
    if (!stores.sessions) {
      process.stderr.write('dcv-resolver token: no --sessions FILE given: the session id was not checked\n');
    }
    let issued;
    try {
      issued = await issueToken(
        { tokens: stores.tokens, sessions: stores.sessions ? new SessionResolver({ store: stores.sessions, log: stderrLog }) : undefined },
        {
          sessionId,
          user,
          ...(groups ? { groups } : {}),
          ttlSeconds,
          maxUses,
          clientCidrs: values['client-cidr'] as string[] | undefined,
          gatewayUrl: text(values, 'gateway'),
        },
      );
    } catch (error) {
      if (error instanceof HttpError) {
        const hint =
          error.statusCode === 404
            ? ' (a token is only issued for a session that resolves now)'
            : error.statusCode === 403
              ? '; no token issued (add the user to AllowedUsers, or give a --group that is in AllowedGroups)'
              : '';
        throw new CliError(`${error.message}${hint}`, error.statusCode === 400 ? 2 : 1);
      }
      throw storeFailure(error, stores);
    }
    if (stores.tokens instanceof DirectoryTokenStore) await stores.tokens.prune(Date.now() / 1000);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(issued, null, 2)}\n`);
      return;
    }
    if (issued.url) {
      process.stdout.write(`${issued.url}\n${issued.nativeUrl}\n`);
    } else {
      process.stdout.write(`${issued.token}\n`);
      process.stderr.write(
        `dcv-resolver token: no --gateway URL: the user opens https://<gateway>:<port>/?authToken=<the token above>#${issued.sessionId}\n`,
      );
    }
    const server = issued.dcvServerEndpoint ? ` on ${issued.dcvServerEndpoint}` : '';
    const as = issued.dcvUser === undefined ? '' : ` (as DCV user '${issued.dcvUser}')`;
    process.stderr.write(
      `dcv-resolver token: ${issued.tokenId} lets ${issued.user}${as} into '${issued.sessionId}'${server} ${issued.maxUses} time(s) until ${issued.expiresAt}\n`,
    );
  } finally {
    await stores.close();
  }
}

export interface TokenListEntry {
  readonly id: string;
  readonly sessionId: string;
  /** The token's user: the person it was issued to. */
  readonly user: string;
  /**
   * The name the verifier would answer DCV with on this token's next use: the session's DcvUser now, else
   * the token's user. Absent when it cannot be told (no session store given, or the session does not
   * resolve, in which case the verifier refuses the token anyway).
   */
  readonly dcvUser?: string;
  readonly state: 'active' | 'expired' | 'used-up' | 'revoked';
  readonly usesLeft: number;
  readonly maxUses: number;
  readonly expiresAt: string;
  readonly createdAt: string;
  readonly clientCidrs?: readonly string[];
  readonly groups?: readonly string[];
  readonly revokedAt?: string;
}

/**
 * What `token list` shows of a grant: never the token (no store has it), never the full hash. `session` is
 * the grant's session as it resolves now (undefined: unknown), for the DCV user column.
 */
export function listEntry(state: TokenState, nowSeconds: number, session?: { readonly dcvUser?: string }): TokenListEntry {
  const refusal = stateRefusal(state, nowSeconds);
  return {
    id: tokenIdOf(state.hash),
    sessionId: state.sessionId,
    user: state.user,
    ...(session === undefined ? {} : { dcvUser: session.dcvUser ?? state.user }),
    state: refusal === undefined ? 'active' : (refusal as TokenListEntry['state']),
    usesLeft: state.usesLeft,
    maxUses: state.maxUses,
    expiresAt: new Date(state.expiresAt * 1000).toISOString(),
    createdAt: state.createdAt,
    ...(state.clientCidrs ? { clientCidrs: state.clientCidrs } : {}),
    ...(state.groups ? { groups: state.groups } : {}),
    ...(state.revokedAt ? { revokedAt: state.revokedAt } : {}),
  };
}

export function formatTokenTable(entries: readonly TokenListEntry[]): string {
  const header = ['ID', 'SESSION', 'USER', 'DCV USER', 'STATE', 'USES LEFT', 'EXPIRES', 'CLIENTS'];
  const rows = entries.map((e) => [
    e.id,
    e.sessionId,
    e.user,
    e.dcvUser ?? '-',
    e.state,
    `${e.usesLeft}/${e.maxUses}`,
    e.expiresAt,
    e.clientCidrs?.join(',') ?? 'any',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

async function runList(argv: string[]): Promise<void> {
  const { values } = parse(argv, TOKEN_SUB_OPTIONS.list);
  const stores = openStores(storeArgs(values), stderrLog);
  try {
    const now = Date.now() / 1000;
    const entries: TokenListEntry[] = [];
    const sessionOf = dcvUserLookup(stores);
    try {
      for await (const state of stores.tokens.list()) {
        const refusal = stateRefusal(state, now);
        if (!values.all && refusal !== undefined) continue;
        entries.push(listEntry(state, now, await sessionOf(state.sessionId)));
      }
    } catch (error) {
      throw storeFailure(error, stores);
    }
    if (!stores.sessions && entries.length > 0) {
      process.stderr.write(
        "dcv-resolver token: DCV USER is '-': give the session store (--table NAME, or --sessions FILE with --tokens-dir) to see the name the verifier answers DCV with\n",
      );
    }
    entries.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    if (values.json) {
      process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
    } else if (entries.length === 0) {
      process.stderr.write(`dcv-resolver token: no ${values.all ? '' : 'active '}tokens in ${stores.where}\n`);
    } else {
      process.stdout.write(formatTokenTable(entries));
    }
  } finally {
    await stores.close();
  }
}

/**
 * The session each token is for, as it resolves now, read once per session id. The verifier reads the
 * session at each use, so its current DcvUser is the name the next use answers with; recording the name on
 * the token at each use would put a write on the verifier's path and still be stale after the next edit.
 */
function dcvUserLookup(stores: Stores): (sessionId: string) => Promise<{ dcvUser?: string } | undefined> {
  if (!stores.sessions) return async () => undefined;
  const resolver = new SessionResolver({ store: stores.sessions, log: silentLog });
  const cache = new Map<string, Promise<{ dcvUser?: string } | undefined>>();
  return (sessionId) => {
    let found = cache.get(sessionId);
    if (!found) {
      found = resolver.findUsable(sessionId).then(
        (record) => (record.dcvUser === undefined ? {} : { dcvUser: record.dcvUser }),
        (error: unknown) => {
          // Not resolvable now (unknown, disabled, expired): the verifier refuses the token, DCV is told nothing.
          if (error instanceof HttpError && error.statusCode === 404) return undefined;
          // The session store failing must not hide the token list: the column says '-' and stderr why.
          process.stderr.write(`dcv-resolver token: cannot read session '${sessionId}' for its DCV user: ${(error as Error).message}\n`);
          return undefined;
        },
      );
      cache.set(sessionId, found);
    }
    return found;
  };
}

async function runRevoke(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, TOKEN_SUB_OPTIONS.revoke, true);
  if (positionals.length === 0) throw new CliError(`give at least one TOKEN or ID to revoke\n\n${TOKEN_USAGE}`, 2);
  const stores = openStores(storeArgs(values), stderrLog);
  let failed = 0;
  try {
    let known: TokenState[] | undefined;
    for (const arg of positionals) {
      try {
        const hash = looksLikeId(arg) ? await hashForId(arg, async () => (known ??= await collect(stores.tokens))) : hashToken(arg);
        const ok = await stores.tokens.revoke(hash, new Date());
        if (!ok) throw new CliError('no such token');
        process.stdout.write(`revoked ${tokenIdOf(hash)}\n`);
      } catch (error) {
        failed++;
        const message = error instanceof CliError ? error.message : storeFailure(error, stores).message;
        // Never echo a token back; an id is not secret.
        const shown = looksLikeId(arg) ? `'${arg.slice(0, 64)}'` : 'token';
        process.stderr.write(`dcv-resolver token revoke: ${shown}: ${message}\n`);
      }
    }
  } finally {
    await stores.close();
  }
  if (failed > 0) throw new CliError(`${failed} of ${positionals.length} not revoked`);
}

/** Ids and hashes are lower-case hex; tokens are base64url (a 43-character all-hex token is ~2^-86 likely). */
function looksLikeId(arg: string): boolean {
  return /^[0-9a-f]{1,64}$/i.test(arg) || !isTokenFormat(arg);
}

async function collect(tokens: TokenStore): Promise<TokenState[]> {
  const all: TokenState[] = [];
  for await (const state of tokens.list()) all.push(state);
  return all;
}

/** An id from `token list` (or any longer prefix of the hash), matched against the store. */
async function hashForId(id: string, all: () => Promise<TokenState[]>): Promise<string> {
  const prefix = id.toLowerCase();
  if (!/^[0-9a-f]+$/.test(prefix) || prefix.length < TOKEN_ID_LENGTH || prefix.length > 64) {
    throw new CliError(`not a token or a ${TOKEN_ID_LENGTH}-character id from 'token list'`);
  }
  const matches = (await all()).filter((s) => s.hash.startsWith(prefix));
  if (matches.length === 0) throw new CliError('no such token');
  if (matches.length > 1) throw new CliError('more than one token has this id; give more of the hash');
  return matches[0]!.hash;
}
