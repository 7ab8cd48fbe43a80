import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { hashToken, tokenIdOf } from '../../lambda/core/tokens/token';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { cliBaseEnv, runCli, type CliRun } from '../helpers/run-cli';
import { createTokensTable, scanAll } from '../helpers/token-tables';
import { httpSend, parseAuthXml, startServeProcess, verifyForm, type HttpReply, type ServeProcess } from '../helpers/verify-http';

/**
 * `token create|list|revoke` as real child processes against a token directory (with a sessions file)
 * and against DynamoDB tables (dynalite), then the verifier over `serve`'s real HTTP: the whole loop a
 * user goes through, cross-server replay, malformed requests, and single use across two `serve` processes.
 */
const SESSIONS = [
  { SessionId: 'agent1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console' },
  { SessionId: 'agent2', DcvServerEndpoint: '10.0.2.20', TargetSessionId: 'console' },
  { SessionId: 'off', DcvServerEndpoint: '10.0.3.1', Enabled: false },
  { SessionId: 'old', DcvServerEndpoint: '10.0.3.2', ExpiresAt: 1000 },
  // Names who may open it (portal attributes): tokens only for carol, or a member of ops.
  { SessionId: 'team', DcvServerEndpoint: '10.0.4.1', TargetSessionId: 'console', AllowedUsers: ['carol@example.com'], AllowedGroups: ['ops'] },
  // DCV authorizes its console owner, not the person: the verifier answers with DcvUser.
  { SessionId: 'linux', DcvServerEndpoint: '10.0.5.1', TargetSessionId: 'console', DcvUser: 'ubuntu' },
  { SessionId: 'windows', DcvServerEndpoint: '10.0.5.2', TargetSessionId: 'console', DcvUser: 'CORP\\Admin & <Ops>' },
];
const GATEWAY = 'https://gw.example.com:8443';
const TOKEN = /^[A-Za-z0-9_-]{43}$/;
const SERVE_ENV = cliBaseEnv();

let work: string;
let sessionsFile: string;
const servers: ServeProcess[] = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'cli-token-'));
  sessionsFile = join(work, 'sessions.json');
  writeFileSync(sessionsFile, JSON.stringify(SESSIONS, null, 2));
});

afterAll(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  rmSync(work, { recursive: true, force: true });
});

async function serve(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  const server = await startServeProcess(args, { ...SERVE_ENV, ...env });
  servers.push(server);
  return server;
}

/** Every file under a directory, names and contents, as one string (to look for a token in). */
function everythingIn(dir: string): string {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => {
      const path = join(dir, name);
      return statSync(path).isFile() ? `${name}\n${readFileSync(path, 'utf8')}` : name;
    })
    .join('\n');
}

function json<T = Record<string, unknown>>(run: CliRun): T {
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as T;
}

interface Issued {
  token: string;
  tokenId: string;
  url: string;
  nativeUrl: string;
  sessionId: string;
  user: string;
  expiresAt: string;
  maxUses: number;
}

function verify(url: string, server: string | undefined, fields: Record<string, string>): Promise<HttpReply> {
  return httpSend(url, server === undefined ? '/verifyToken' : `/verifyToken/${server}`, { body: verifyForm(fields) });
}

function expectAuth(reply: HttpReply, result: 'yes' | 'no', textMatch?: RegExp | string): void {
  expect(reply.status, reply.body).toBe(200);
  expect(reply.type).toMatch(/^text\/xml\b/);
  const parsed = parseAuthXml(reply.body);
  expect(parsed, reply.body).toBeDefined();
  expect(parsed!.result, reply.body).toBe(result);
  if (textMatch !== undefined) {
    const text = parsed!.result === 'yes' ? parsed!.username : parsed!.message;
    if (typeof textMatch === 'string') expect(text).toBe(textMatch);
    else expect(text).toMatch(textMatch);
  }
}

describe('token create / list / revoke with a token directory and a sessions file', () => {
  let tokensDir: string;
  const dirArgs = () => ['--tokens-dir', tokensDir, '--sessions', sessionsFile];

  beforeAll(() => {
    tokensDir = join(work, 'tokens-cli');
  });

  it('create prints exactly the browser link and the dcv:// link, and stores only the hash', async () => {
    const run = await runCli(['token', 'create', '--session', 'agent1', '--user', 'alice', '--gateway', GATEWAY, ...dirArgs()]);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('');
    const match = /^https:\/\/gw\.example\.com:8443\/\?authToken=([A-Za-z0-9_-]{43})#agent1$/.exec(lines[0]!);
    expect(match, run.stdout).not.toBeNull();
    const token = match![1]!;
    expect(lines[1]).toBe(`dcv://gw.example.com:8443/?authToken=${token}#agent1`);
    const hash = hashToken(token);
    expect(readdirSync(tokensDir)).toContain(hash);
    expect(everythingIn(tokensDir)).not.toContain(token);
    expect(run.stderr).toContain(`${tokenIdOf(hash)} lets alice into 'agent1' on 10.0.1.15 3 time(s)`);
    expect(run.stderr).not.toContain(token);
  });

  it('create --json gives token, url, nativeUrl, sessionId, user, expiresAt, maxUses', async () => {
    const before = Date.now();
    const issued = json<Issued>(
      await runCli(['token', 'create', '--session', 'agent2', '--user', 'bob', '--gateway', GATEWAY, '--ttl', '2h', '--max-uses', '5', '--client-cidr', '203.0.113.0/24', '--json', ...dirArgs()]),
    );
    expect(issued.token).toMatch(TOKEN);
    expect(issued).toMatchObject({
      url: `${GATEWAY}/?authToken=${issued.token}#agent2`,
      nativeUrl: `dcv://gw.example.com:8443/?authToken=${issued.token}#agent2`,
      sessionId: 'agent2',
      user: 'bob',
      maxUses: 5,
      tokenId: tokenIdOf(hashToken(issued.token)),
    });
    const expires = Date.parse(issued.expiresAt);
    expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 7200_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 7200_000);
    expect(everythingIn(tokensDir)).not.toContain(issued.token);
  });

  it('refuses a session that does not resolve (unknown, disabled, expired) with exit 1 and stores nothing', async () => {
    const before = readdirSync(tokensDir).sort();
    const runs = await Promise.all(
      ['nope', 'off', 'old'].map((session) => runCli(['token', 'create', '--session', session, '--user', 'alice', '--gateway', GATEWAY, ...dirArgs()])),
    );
    expect(runs.map((r) => r.code)).toEqual([1, 1, 1]);
    expect(runs.map((r) => r.stdout)).toEqual(['', '', '']);
    expect(runs[0]!.stderr).toContain("no session 'nope'");
    expect(runs[1]!.stderr).toContain("session 'off' is disabled");
    expect(runs[2]!.stderr).toContain("session 'old' has expired");
    expect(readdirSync(tokensDir).sort()).toEqual(before);
  });

  it('a session that names who may open it: tokens for a listed user or a --group on its list; anyone else exits 1, nothing stored', async () => {
    const before = readdirSync(tokensDir).sort();
    const [byName, byGroup, byGroupList, stranger, wrongGroup] = await Promise.all([
      runCli(['token', 'create', '--session', 'team', '--user', 'Carol@Example.com', '--json', ...dirArgs()]),
      runCli(['token', 'create', '--session', 'team', '--user', 'dave', '--group', 'staff', '--group', 'ops', '--json', ...dirArgs()]),
      runCli(['token', 'create', '--session', 'team', '--user', 'erin', '--group', 'staff, ops', '--json', ...dirArgs()]),
      runCli(['token', 'create', '--session', 'team', '--user', 'mallory', ...dirArgs()]),
      runCli(['token', 'create', '--session', 'team', '--user', 'dave', '--group', 'staff', ...dirArgs()]),
    ]);
    expect(json(byName)).toMatchObject({ sessionId: 'team', user: 'Carol@Example.com' });
    const grouped = json<Issued & { groups: string[] }>(byGroup);
    expect(grouped).toMatchObject({ user: 'dave', groups: ['staff', 'ops'] });
    expect(json(byGroupList)).toMatchObject({ user: 'erin', groups: ['staff', 'ops'] });
    // The groups are stored with the grant, for the verifier.
    expect(JSON.parse(readFileSync(join(tokensDir, hashToken(grouped.token), 'grant.json'), 'utf8')).groups).toEqual(['staff', 'ops']);

    for (const [run, who] of [[stranger, "user 'mallory'"], [wrongGroup, "user 'dave' (groups staff)"]] as const) {
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(
        `dcv-resolver token: ${who} is not allowed on session 'team' (not in its AllowedUsers, and no group in its AllowedGroups); ` +
          'no token issued (add the user to AllowedUsers, or give a --group that is in AllowedGroups)\n',
      );
    }
    const added = readdirSync(tokensDir).filter((name) => !before.includes(name));
    expect(added.sort()).toEqual([byName, byGroup, byGroupList].map((r) => hashToken(JSON.parse(r.stdout).token)).sort());
  });

  it('usage errors exit 2 with the field named, and store nothing', async () => {
    const before = readdirSync(tokensDir).sort();
    const cases: [string[], RegExp][] = [
      [['--ttl', 'ten'], /--ttl must be a duration such as 90s, 10m, 2h or 1d, not 'ten'/],
      [['--max-uses', '0'], /max uses must be an integer from 1 to 100/],
      [['--client-cidr', '10.0.0.0/33'], /client CIDR '10\.0\.0\.0\/33' is not an IPv4 or IPv6 CIDR/],
      [['--gateway', 'ftp://gw.example.com'], /gateway URL must start with https:\/\//],
      [['--gateway', 'https://user:pw@gw.example.com'], /must not contain a user name or password/],
      [['--user', '', '--gateway', GATEWAY], /--user NAME is required/],
      [['--group', ' , '], /--group needs a group name/],
      [['--group', 'ops\u0007'], /groups entry 'ops\u0007' must not contain control characters/],
    ];
    const runs = await Promise.all(cases.map(([extra]) => runCli(['token', 'create', '--session', 'agent1', '--user', 'alice', ...dirArgs(), ...extra])));
    runs.forEach((run, i) => {
      expect(run.code, `${cases[i]![0].join(' ')}: ${run.stderr}`).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(cases[i]![1]);
    });
    expect(readdirSync(tokensDir).sort()).toEqual(before);
  });

  it('list shows what each token is for, never the token; revoke works by token and by id; an unknown id exits 1', async () => {
    const [a, b] = await Promise.all([
      runCli(['token', 'create', '--session', 'agent1', '--user', 'carol', '--json', ...dirArgs()]),
      runCli(['token', 'create', '--session', 'agent2', '--user', 'dave', '--max-uses', '1', '--json', ...dirArgs()]),
    ]);
    const carol = json<Issued>(a);
    const dave = json<Issued>(b);

    const [text, listed] = await Promise.all([runCli(['token', 'list', ...dirArgs()]), runCli(['token', 'list', '--json', '--tokens-dir', tokensDir])]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout.split('\n')[0]).toMatch(/^ID\s+SESSION\s+USER\s+DCV USER\s+STATE\s+USES LEFT\s+EXPIRES\s+CLIENTS$/);
    // No DcvUser on these sessions: the verifier answers DCV with the token's user.
    expect(text.stdout).toMatch(new RegExp(`^${carol.tokenId}\\s+agent1\\s+carol\\s+carol\\s+active\\s+3/3\\s`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^${dave.tokenId}\\s+agent2\\s+dave\\s+dave\\s+active\\s+1/1\\s`, 'm'));
    const entries = json<Record<string, unknown>[]>(listed);
    const carolEntry = entries.find((e) => e.id === carol.tokenId);
    expect(carolEntry).toMatchObject({ sessionId: 'agent1', user: 'carol', state: 'active', usesLeft: 3, maxUses: 3, expiresAt: carol.expiresAt });
    // Without the sessions file the DCV user cannot be told: absent, and stderr says what to add.
    expect(carolEntry).not.toHaveProperty('dcvUser');
    expect(listed.stderr).toContain("DCV USER is '-': give the session store");
    expect(entries.find((e) => e.user === 'bob')).toMatchObject({ clientCidrs: ['203.0.113.0/24'], usesLeft: 5 });
    for (const output of [text.stdout, text.stderr, listed.stdout, listed.stderr]) {
      expect(output).not.toContain(carol.token);
      expect(output).not.toContain(dave.token);
      expect(output).not.toContain(hashToken(carol.token));
    }

    const [revoked, unknownId] = await Promise.all([
      runCli(['token', 'revoke', carol.token, dave.tokenId, '--tokens-dir', tokensDir]),
      runCli(['token', 'revoke', '0123456789ab', '--tokens-dir', tokensDir]),
    ]);
    // By the token itself and by the id 'token list' shows; the token is never echoed.
    expect(revoked).toMatchObject({ code: 0, stdout: `revoked ${carol.tokenId}\nrevoked ${dave.tokenId}\n` });
    expect(revoked.stderr).not.toContain(carol.token);
    expect(unknownId.code).toBe(1);
    expect(unknownId.stderr).toContain("'0123456789ab': no such token");

    const after = json<Record<string, unknown>[]>(await runCli(['token', 'list', '--all', '--json', '--tokens-dir', tokensDir]));
    expect(after.find((e) => e.id === carol.tokenId)).toMatchObject({ state: 'revoked', revokedAt: expect.any(String) });
    expect(after.find((e) => e.id === dave.tokenId)).toMatchObject({ state: 'revoked' });
    expect(after.find((e) => e.user === 'bob')).toMatchObject({ state: 'active' });
  });
});

describe('token create / list / revoke against DynamoDB tables (dynalite)', () => {
  let dynamo: LocalDynamo;
  let env: Record<string, string>;

  beforeAll(async () => {
    dynamo = await startDynalite();
    env = { AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint };
    await dynamo.createSessionTable('DcvSessions');
    await createTokensTable(dynamo, 'DcvSessions-tokens');
    await createTokensTable(dynamo, 'OtherTokens');
    const client = dynamo.client();
    for (const s of SESSIONS) {
      const item = Object.fromEntries(
        Object.entries(s).map(([k, v]) => [
          k,
          Array.isArray(v) ? { L: v.map((e) => ({ S: e })) } : typeof v === 'string' ? { S: v } : typeof v === 'boolean' ? { BOOL: v } : { N: String(v) },
        ]),
      );
      await client.send(new PutItemCommand({ TableName: 'DcvSessions', Item: item }));
    }
  });

  afterAll(async () => {
    await dynamo.stop();
  });

  it('create writes to <table>-tokens by default (only the hash), refuses unresolvable sessions (exit 1), lists and revokes', async () => {
    const [created, other, disabled] = await Promise.all([
      runCli(['token', 'create', '--session', 'agent1', '--user', 'alice', '--gateway', GATEWAY, '--table', 'DcvSessions', '--json'], env),
      runCli(['token', 'create', '--session', 'agent2', '--user', 'bob', '--table', 'DcvSessions', '--tokens-table', 'OtherTokens', '--gateway', GATEWAY], env),
      runCli(['token', 'create', '--session', 'off', '--user', 'alice', '--table', 'DcvSessions'], env),
    ]);
    const issued = json<Issued>(created);
    expect(issued).toMatchObject({ sessionId: 'agent1', user: 'alice', maxUses: 3, url: `${GATEWAY}/?authToken=${issued.token}#agent1` });
    expect(other.code, other.stderr).toBe(0);
    expect(other.stdout).toMatch(/^https:\/\/gw\.example\.com:8443\/\?authToken=[A-Za-z0-9_-]{43}#agent2\ndcv:\/\/gw\.example\.com:8443\/\?authToken=[A-Za-z0-9_-]{43}#agent2\n$/);
    expect(disabled.code).toBe(1);
    expect(disabled.stderr).toContain("session 'off' is disabled");

    const items = await scanAll(dynamo, 'DcvSessions-tokens');
    expect(items).toHaveLength(1);
    expect(items[0]!.TokenHash).toEqual({ S: hashToken(issued.token) });
    expect(items[0]).toMatchObject({ SessionId: { S: 'agent1' }, UserName: { S: 'alice' }, UsesLeft: { N: '3' }, MaxUses: { N: '3' } });
    expect(JSON.stringify(items)).not.toContain(issued.token);
    const otherToken = /authToken=([A-Za-z0-9_-]+)#/.exec(other.stdout)![1]!;
    const otherItems = await scanAll(dynamo, 'OtherTokens');
    expect(otherItems.map((i) => i.TokenHash!.S)).toEqual([hashToken(otherToken)]);
    expect(JSON.stringify(otherItems)).not.toContain(otherToken);

    const listed = await runCli(['token', 'list', '--table', 'DcvSessions', '--json'], env);
    expect(json<unknown[]>(listed)).toEqual([expect.objectContaining({ id: issued.tokenId, sessionId: 'agent1', user: 'alice', state: 'active', usesLeft: 3 })]);
    expect(listed.stdout).not.toContain(issued.token);

    const [byToken, byId, unknownId] = await Promise.all([
      runCli(['token', 'revoke', issued.token, '--table', 'DcvSessions'], env),
      runCli(['token', 'revoke', tokenIdOf(hashToken(otherToken)), '--tokens-table', 'OtherTokens'], env),
      runCli(['token', 'revoke', 'fedcba987654', '--table', 'DcvSessions'], env),
    ]);
    expect(byToken).toMatchObject({ code: 0, stdout: `revoked ${issued.tokenId}\n` });
    expect(byId).toMatchObject({ code: 0, stdout: `revoked ${tokenIdOf(hashToken(otherToken))}\n` });
    expect(unknownId.code).toBe(1);
    expect((await scanAll(dynamo, 'DcvSessions-tokens'))[0]!.RevokedAt?.S).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect((await scanAll(dynamo, 'OtherTokens'))[0]!.RevokedAt?.S).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('a missing tokens table is a clear error (exit 1), not a crash', async () => {
    const run = await runCli(['token', 'list', '--tokens-table', 'NoSuchTokens'], env);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('table not found');
  });

  it('serve --table T --tokens-table T-tokens: one yes, then no', async () => {
    const issued = json<Issued>(
      await runCli(['token', 'create', '--session', 'agent2', '--user', 'erin', '--max-uses', '1', '--table', 'DcvSessions', '--json'], env),
    );
    const server = await serve(['--table', 'DcvSessions', '--tokens-table', 'DcvSessions-tokens'], env);
    const fields = { sessionId: 'console', authenticationToken: issued.token, clientAddress: '203.0.113.7' };
    expectAuth(await verify(server.url, '10.0.1.15', fields), 'no', /not on 10\.0\.1\.15/);
    expectAuth(await verify(server.url, '10.0.2.20', fields), 'yes', 'erin');
    expectAuth(await verify(server.url, '10.0.2.20', fields), 'no', /used 1 time\(s\), its maximum/);
    expect((await scanAll(dynamo, 'DcvSessions-tokens')).find((i) => i.TokenHash!.S === hashToken(issued.token))).toMatchObject({ UsesLeft: { N: '0' } });
    await server.stop();
    expect(server.stdout()).toContain('"result":"yes"');
    expect(server.stdout() + server.stderr()).not.toContain(issued.token);
  });
});

describe('the verifier over serve --sessions FILE --tokens-dir DIR', () => {
  let tokensDir: string;
  let server: ServeProcess;
  const create = async (args: string[]) =>
    json<Issued>(await runCli(['token', 'create', '--json', '--gateway', GATEWAY, '--tokens-dir', tokensDir, '--sessions', sessionsFile, ...args]));

  beforeAll(async () => {
    tokensDir = join(work, 'tokens-serve');
    server = await serve(['--sessions', sessionsFile, '--tokens-dir', tokensDir]);
  });

  it('yes with the user (XML-escaped); cross-server replay no; used up no; revoked no; never logs the token', async () => {
    const [replayed, revoked] = await Promise.all([
      create(['--session', 'agent1', '--user', 'Ann & <Bob>', '--max-uses', '2']),
      create(['--session', 'agent2', '--user', 'frank']),
    ]);
    const fields = { sessionId: 'console', authenticationToken: replayed.token, clientAddress: '203.0.113.7' };
    // The same token on host B's verifier URL (agent2 is also 'console'): refused, and it burns no use.
    const replay = await verify(server.url, '10.0.2.20', fields);
    expectAuth(replay, 'no', "token is for session 'agent1' on server 10.0.1.15, not on 10.0.2.20");
    const yes = await verify(server.url, '10.0.1.15', fields);
    expectAuth(yes, 'yes', 'Ann & <Bob>');
    expect(yes.body).toBe('<auth result="yes"><username>Ann &amp; &lt;Bob&gt;</username></auth>');
    expectAuth(await verify(server.url, '10.0.1.15', { ...fields, sessionId: 'other' }), 'no', /not server session 'other'/);
    expectAuth(await verify(server.url, '10.0.1.15', fields), 'yes', 'Ann & <Bob>');
    expectAuth(await verify(server.url, '10.0.1.15', fields), 'no', /has been used 2 time\(s\), its maximum/);

    const revokedFields = { sessionId: 'console', authenticationToken: revoked.token };
    const revoke = await runCli(['token', 'revoke', revoked.tokenId, '--tokens-dir', tokensDir]);
    expect(revoke.code, revoke.stderr).toBe(0);
    expectAuth(await verify(server.url, '10.0.2.20', revokedFields), 'no', /was revoked/);
    expectAuth(await verify(server.url, undefined, { sessionId: 'console', authenticationToken: 'A'.repeat(43) }), 'no', /unknown authentication token/);

    for (const reply of [replay, yes]) expect(reply.body).not.toContain(replayed.token);
    const logs = server.stdout() + server.stderr();
    expect(logs).toContain(`"tokenId":"${replayed.tokenId}"`);
    expect(logs).toContain('"reason":"wrong-server"');
    expect(logs).not.toContain(replayed.token);
    expect(logs).not.toContain(revoked.token);
  });

  it('a session with AllowedUsers / AllowedGroups: the verifier says yes to a group member, no (user-not-allowed) to a token for anyone else', async () => {
    const member = await create(['--session', 'team', '--user', 'dave', '--group', 'ops']);
    // Issued without a session check (no --sessions): only the verifier stands between mallory and the session.
    const unchecked = json<Issued>(
      await runCli(['token', 'create', '--json', '--session', 'team', '--user', 'mallory', '--group', 'staff', '--tokens-dir', tokensDir]),
    );
    const ask = (token: string) => ({ sessionId: 'console', authenticationToken: token, clientAddress: '203.0.113.7' });
    expectAuth(await verify(server.url, '10.0.4.1', ask(unchecked.token)), 'no', "token's user 'mallory' is not allowed on session 'team' (AllowedUsers / AllowedGroups)");
    expectAuth(await verify(server.url, '10.0.4.1', ask(member.token)), 'yes', 'dave');
    expect(server.stdout() + server.stderr()).toContain('"reason":"user-not-allowed"');
  });

  it('a session with DcvUser: yes names DcvUser (XML-escaped), the log line keeps the person and adds the DCV user, token list shows both', async () => {
    const [alice, bob] = await Promise.all([
      create(['--session', 'linux', '--user', 'alice@example.com']),
      create(['--session', 'windows', '--user', 'bob@example.com']),
    ]);
    const ask = (token: string) => ({ sessionId: 'console', authenticationToken: token, clientAddress: '203.0.113.7' });
    expectAuth(await verify(server.url, '10.0.5.1', ask(alice.token)), 'yes', 'ubuntu');
    const windows = await verify(server.url, '10.0.5.2', ask(bob.token));
    expectAuth(windows, 'yes', 'CORP\\Admin & <Ops>');
    expect(windows.body).toBe('<auth result="yes"><username>CORP\\Admin &amp; &lt;Ops&gt;</username></auth>');

    // The line is written as the answer goes out: wait (bounded) until the child's output has carried it here.
    const logLines = () =>
      server
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const lines = await vi.waitFor(
      () => {
        const all = logLines();
        if (![alice.tokenId, bob.tokenId].every((id) => all.some((l) => l.tokenId === id))) throw new Error('verifier log lines not seen yet');
        return all;
      },
      { timeout: 10_000, interval: 20 },
    );
    expect(lines.find((l) => l.tokenId === alice.tokenId)).toMatchObject({ route: 'verifyToken', result: 'yes', user: 'alice@example.com', dcvUser: 'ubuntu' });
    expect(lines.find((l) => l.tokenId === bob.tokenId)).toMatchObject({ result: 'yes', user: 'bob@example.com', dcvUser: 'CORP\\Admin & <Ops>' });

    const [text, listed] = await Promise.all([
      runCli(['token', 'list', '--tokens-dir', tokensDir, '--sessions', sessionsFile]),
      runCli(['token', 'list', '--json', '--tokens-dir', tokensDir, '--sessions', sessionsFile]),
    ]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^${alice.tokenId}\\s+linux\\s+alice@example\\.com\\s+ubuntu\\s+active\\s+2/3\\s`, 'm'));
    expect(json<Record<string, unknown>[]>(listed).find((e) => e.id === bob.tokenId)).toMatchObject({ user: 'bob@example.com', dcvUser: 'CORP\\Admin & <Ops>' });
  });

  it('malformed requests: 415, 400, 413, 405 with result="no" XML bodies, never 5xx', async () => {
    const token = (await create(['--session', 'agent1', '--user', 'gina'])).token;
    const good = verifyForm({ sessionId: 'console', authenticationToken: token });
    const cases: { name: string; send: () => Promise<HttpReply>; status: number; message: RegExp }[] = [
      { name: 'JSON body', send: () => httpSend(server.url, '/verifyToken/10.0.1.15', { body: JSON.stringify({ sessionId: 'console', authenticationToken: token }), contentType: 'application/json' }), status: 415, message: /must be application\/x-www-form-urlencoded/ },
      { name: 'text/plain', send: () => httpSend(server.url, '/verifyToken', { body: good, contentType: 'text/plain' }), status: 415, message: /not text\/plain/ },
      { name: 'no token', send: () => httpSend(server.url, '/verifyToken/10.0.1.15', { body: 'sessionId=console&clientAddress=1.2.3.4' }), status: 400, message: /authenticationToken is required/ },
      { name: 'no session id', send: () => httpSend(server.url, '/verifyToken/10.0.1.15', { body: `authenticationToken=${token}` }), status: 400, message: /sessionId is required/ },
      { name: 'empty body', send: () => httpSend(server.url, '/verifyToken/10.0.1.15', { body: '' }), status: 400, message: /is required/ },
      { name: 'token twice', send: () => httpSend(server.url, '/verifyToken/10.0.1.15', { body: `${good}&authenticationToken=${token}` }), status: 400, message: /authenticationToken must be given once/ },
      { name: 'oversized form', send: () => httpSend(server.url, '/verifyToken/10.0.1.15', { body: `${good}&pad=${'x'.repeat(9000)}` }), status: 413, message: /at most 8192 bytes/ },
      { name: 'percent-encoded invalid UTF-8', send: () => httpSend(server.url, '/verifyToken/10.0.1.15', { body: `sessionId=%FF%FE&authenticationToken=${token}` }), status: 400, message: /sessionId must not contain control characters or invalid encoding/ },
      { name: 'raw invalid UTF-8 bytes', send: () => httpSend(server.url, '/verifyToken/10.0.1.15', { body: Buffer.concat([Buffer.from(`${good}&clientAddress=`), Buffer.from([0xc3, 0x28, 0xff])]) }), status: 400, message: /not valid UTF-8/ },
      { name: 'control character in a field', send: () => httpSend(server.url, '/verifyToken/10.0.1.15', { body: `sessionId=con%00sole&authenticationToken=${token}` }), status: 400, message: /sessionId must not contain control characters/ },
      { name: 'bad percent-encoding in the server segment', send: () => httpSend(server.url, '/verifyToken/10.0.1.%ZZ', { body: good }), status: 400, message: /server segment of the verifier URL is not valid percent-encoding/ },
    ];
    const replies = await Promise.all(cases.map((c) => c.send()));
    replies.forEach((reply, i) => {
      const c = cases[i]!;
      expect(reply.status, `${c.name}: ${reply.body}`).toBe(c.status);
      expect(reply.type, c.name).toMatch(/^text\/xml\b/);
      const parsed = parseAuthXml(reply.body);
      expect(parsed, `${c.name}: ${reply.body}`).toMatchObject({ result: 'no' });
      expect((parsed as { message: string }).message, c.name).toMatch(c.message);
      expect(reply.body, c.name).not.toContain(token);
    });
    // Bad percent-encoding in a form value: never yes, never a 5xx.
    const literal = await httpSend(server.url, '/verifyToken/10.0.1.15', { body: `sessionId=console&authenticationToken=${token}%ZZ` });
    expect(literal.status).toBeLessThan(500);
    expect(parseAuthXml(literal.body)).toMatchObject({ result: 'no' });
    // Another method on the verifier path: 405, naming POST.
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const reply = await httpSend(server.url, '/verifyToken/10.0.1.15', { method, body: method === 'GET' ? undefined : good });
      expect(reply.status, `${method}: ${reply.body}`).toBe(405);
      expect(reply.body).toContain('POST');
    }
    // None of these burned a use: the token still says yes, three times, then no.
    for (let i = 0; i < 3; i++) expectAuth(await verify(server.url, '10.0.1.15', { sessionId: 'console', authenticationToken: token }), 'yes', 'gina');
    expectAuth(await verify(server.url, '10.0.1.15', { sessionId: 'console', authenticationToken: token }), 'no');
    expect(server.stdout()).not.toContain(token);
  });

  it('two serve processes on one tokens dir: 100 concurrent verifications of a one-use token, exactly one yes', async () => {
    const second = await serve(['--sessions', sessionsFile, '--tokens-dir', tokensDir]);
    const issued = await create(['--session', 'agent2', '--user', 'hank', '--max-uses', '1']);
    const callers = 100;
    const fields = { sessionId: 'console', authenticationToken: issued.token, clientAddress: '203.0.113.7' };
    const started = performance.now();
    const replies = await Promise.all(Array.from({ length: callers }, (_, i) => verify(i % 2 === 0 ? server.url : second.url, '10.0.2.20', fields)));
    const ms = performance.now() - started;
    const answers = replies.map((r) => parseAuthXml(r.body));
    const yes = replies.filter((_, i) => answers[i]?.result === 'yes');
    const yesByServer = [0, 1].map((s) => replies.filter((_, i) => i % 2 === s && answers[i]?.result === 'yes').length);
    // eslint-disable-next-line no-console
    console.log(
      `two serve processes, one tokens dir: ${callers} concurrent verifications of a 1-use token (${callers / 2} per process): ${yes.length} yes (per process: ${yesByServer.join(' + ')}), ${callers - yes.length} no, in ${ms.toFixed(0)} ms`,
    );
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(answers.every((a) => a !== undefined)).toBe(true);
    expect(yes).toHaveLength(1);
    expect(answers.filter((a) => a?.result === 'no').every((a) => /its maximum/.test((a as { message: string }).message))).toBe(true);
    expect(readdirSync(join(tokensDir, hashToken(issued.token))).sort()).toEqual(['grant.json', 'use-1']);
    await second.stop();
    expect(second.stdout() + server.stdout()).not.toContain(issued.token);
  });

  it('single use holds across a restart of serve', async () => {
    const issued = await create(['--session', 'agent1', '--user', 'ivy', '--max-uses', '1']);
    const fields = { sessionId: 'console', authenticationToken: issued.token };
    expectAuth(await verify(server.url, '10.0.1.15', fields), 'yes', 'ivy');
    const restarted = await serve(['--sessions', sessionsFile, '--tokens-dir', tokensDir]);
    expectAuth(await verify(restarted.url, '10.0.1.15', fields), 'no', /its maximum/);
    await restarted.stop();
  });
});
