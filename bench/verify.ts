import { Agent, request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryTokenStore } from '../lambda/adapters/directory-token-store';
import { JsonLineLog } from '../lambda/adapters/json-line-log';
import { startLocalServer } from '../lambda/adapters/local-server';
import type { HttpRequest } from '../lambda/core/http-router';
import { silentLog } from '../lambda/core/log';
import { MemorySessionStore } from '../lambda/core/session-store';
import { issueToken } from '../lambda/core/tokens/issue-token';
import { MemoryTokenStore, type TokenStore } from '../lambda/core/tokens/token-store';
import { createResolverRouter } from '../lambda/handlers/resolver-handler';
import { report, timedRounds, type Spread } from './lib';

/**
 * The token verifier's latency: in-process through the shared router (what the Lambda handler and
 * `serve` both call), over the memory and directory token stores; then over `serve`'s real HTTP on
 * loopback (keep-alive, one request at a time). Each verification takes a use of a fresh 100-use token,
 * so every answer measured is a yes that really updates the store. Args: [rounds] [verifications per round].
 */
const rounds = Number(process.argv[2] ?? 3);
const perRound = Number(process.argv[3] ?? 2000);
const SESSION = { SessionId: 'agent1', DcvServerEndpoint: '10.0.1.15', TargetSessionId: 'console' };
const USES = 100;

export interface VerifyCaseResult {
  readonly case: string;
  readonly p50Us: Spread;
  readonly p99Us: Spread;
  readonly samples: number;
}

async function mintTokens(tokens: TokenStore, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    out.push((await issueToken({ tokens }, { sessionId: 'agent1', user: `user${i}`, maxUses: USES, ttlSeconds: 3600 })).token);
  }
  return out;
}

function form(token: string): string {
  return `sessionId=console&authenticationToken=${token}&clientAddress=203.0.113.25`;
}

async function inProcess(name: string, tokens: TokenStore): Promise<VerifyCaseResult> {
  // One log line per request, as in production, to /dev/null (the parent's stdout for bench children).
  const route = createResolverRouter({ store: new MemorySessionStore([SESSION]), logger: new JsonLineLog({ service: 'bench' }), tokens });
  const pool = await mintTokens(tokens, Math.ceil((perRound * rounds) / USES) + 1);
  const timed = await timedRounds(`verify ${name}`, rounds, perRound, async (n) => {
    const req: HttpRequest = {
      method: 'POST',
      path: '/verifyToken/10.0.1.15',
      rawQueryString: '',
      sourceIp: '127.0.0.1',
      contentType: 'application/x-www-form-urlencoded',
      body: form(pool[Math.floor(n / USES)]!),
    };
    const res = await route(req);
    if (!res.body.startsWith('<auth result="yes">')) throw new Error(`${name}: expected yes, got ${res.statusCode} ${res.body}`);
  }, { scale: 1000, digits: 2 });
  return { case: name, p50Us: timed.p50, p99Us: timed.p99, samples: timed.samples };
}

function post(agent: Agent, port: number, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/verifyToken/10.0.1.15', method: 'POST', agent, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve(text));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

async function overServe(dir: string): Promise<VerifyCaseResult> {
  const tokens = new DirectoryTokenStore(dir, silentLog);
  const route = createResolverRouter({ store: new MemorySessionStore([SESSION]), logger: new JsonLineLog({ service: 'bench' }), tokens });
  const server = await startLocalServer({ route, log: silentLog, host: '127.0.0.1', port: 0 });
  const port = Number(new URL(server.url).port);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const pool = await mintTokens(tokens, Math.ceil((perRound * rounds) / USES) + 1);
  let timed;
  try {
    timed = await timedRounds('verify serve+directory', rounds, perRound, async (n) => {
      const body = await post(agent, port, form(pool[Math.floor(n / USES)]!));
      if (!body.startsWith('<auth result="yes">')) throw new Error(`serve: expected yes, got ${body}`);
    }, { scale: 1000, digits: 2 });
  } finally {
    agent.destroy();
    await server.close();
  }
  return { case: 'serve (HTTP, directory store)', p50Us: timed.p50, p99Us: timed.p99, samples: timed.samples };
}

const dir = mkdtempSync(join(tmpdir(), 'bench-verify-'));
const serveDir = mkdtempSync(join(tmpdir(), 'bench-verify-serve-'));
try {
  const results = [
    await inProcess('in-process, memory store', new MemoryTokenStore()),
    await inProcess('in-process, directory store', new DirectoryTokenStore(dir, silentLog)),
    await overServe(serveDir),
  ];
  await report({ rounds, perRound, results });
} finally {
  rmSync(dir, { recursive: true, force: true });
  rmSync(serveDir, { recursive: true, force: true });
}
