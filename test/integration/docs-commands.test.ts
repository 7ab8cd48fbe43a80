import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTableCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeFleet, fleetInstance } from '../helpers/ec2-fleet';
import { startEc2QueryServer, type Ec2QueryServer } from '../helpers/ec2-query-server';
import { startDynalite, type LocalDynamo } from '../helpers/dynalite';
import { docPages, shellCommands } from '../helpers/markdown';
import { CLI_PATH, cliBaseEnv, REPO_ROOT } from '../helpers/run-cli';

/**
 * Every shell command README.md and docs/*.md show is run somewhere: here (against dynalite, a loopback EC2 API
 * and temp files, with `npx dcv-resolver` as the repo's CLI and port 9000 as a free port), by
 * docs-gateway-tools.test.ts (its three sections), or by .ci/run (`npm ci`, `npm test`); the rest need an AWS
 * account or a real host and are listed below with the reason. A new documented command that is none of these
 * fails this test. (test/docs/ checks every documented dcv-resolver command against the CLI's options too.)
 */
const ELSEWHERE: [RegExp, string][] = [
  [/^npm (ci|test)\b/, '.ci/run'],
  [/^npm install dcv-session-resolver\b/, 'test/package/cdk-init-app.test.ts (the packed tarball into a cdk init app)'],
  [/^npx dcv-resolver (resolve|gateway-config|doctor) /, 'docs-gateway-tools.test.ts'],
  [/^npm start &/, 'docs-gateway-tools.test.ts'],
  [/^npm run bench\b/, 'a measurement, run by hand (minutes; never a CI gate)'],
  [/^npx cdk (bootstrap|deploy)\b/, 'needs an AWS account (the template itself: npx cdk synth, run here)'],
  [/^aws ec2 /, 'needs an AWS account (discover on tags: run here against a loopback EC2 API)'],
  [/^npx dcv-resolver proxy --target https:\/\/\w+\.lambda-url\./, 'needs a deployed Function URL (proxy: sigv4-proxy.test.ts)'],
  [/--tls-cert \/etc\//, 'needs the host’s certificates (mutual TLS: serve-tls.test.ts)'],
];

/** The shell commands of README.md and every docs page, in page order: continuations joined, comments dropped. */
function documentedCommands(): string[] {
  return docPages().flatMap((page) => shellCommands(page.text));
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

let dir: string;
let dynamo: LocalDynamo;
let ec2: Ec2QueryServer;
let env: Record<string, string>;

/** Runs a documented line as written, in the temp directory, with `npx dcv-resolver` as this repo's CLI. */
function sh(command: string): Promise<Run> {
  const line = command.replaceAll('npx dcv-resolver ', `node ${CLI_PATH} `).replace(/ --port 9000\b/, ' --port 0');
  return new Promise((resolve) => {
    // The CDK app lives in the repo (cdk.json); everything else works on the temp directory's files.
    const cwd = command.startsWith('npx cdk ') ? REPO_ROOT : dir;
    execFile('bash', ['-c', line], { cwd, env, timeout: 300_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A long-running documented line (serve): started, its "serving on" line awaited, then stopped. */
function serveBriefly(command: string): Promise<string> {
  const line = command.replaceAll('npx dcv-resolver ', `node ${CLI_PATH} `).replace(/ --port 9000\b/, ' --port 0');
  const child = spawn('bash', ['-c', `exec ${line} --port 0`], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command}: no "serving on" line within 60 s: ${err}`));
    }, 60_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      err += chunk.toString('utf8');
      const match = /serving on (http:\/\/\S+) /.exec(err);
      if (match) {
        clearTimeout(timer);
        fetch(`${match[1]}/resolveSession?sessionId=console&transport=HTTP`, { method: 'POST' })
          .then((res) => res.text())
          .then((body) => {
            child.kill('SIGTERM');
            resolve(body);
          }, reject);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${command}: exited with ${code} before serving: ${err}`));
    });
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dcv-docs-all-'));
  copyFileSync(join(REPO_ROOT, 'sessions.example.json'), join(dir, 'sessions.example.json'));
  copyFileSync(join(REPO_ROOT, 'sessions.example.json'), join(dir, 'sessions.json'));
  dynamo = await startDynalite();
  await dynamo.createSessionTable('DcvSessions');
  const client = dynamo.client();
  await client.send(new CreateTableCommand({
    TableName: 'DcvSessions-tokens',
    AttributeDefinitions: [{ AttributeName: 'TokenHash', AttributeType: 'S' }],
    KeySchema: [{ AttributeName: 'TokenHash', KeyType: 'HASH' }],
    BillingMode: 'PAY_PER_REQUEST',
  }));
  for (const [id, endpoint, target] of [['console', '10.150.248.180', 'console'], ['agent1', '10.0.1.15', 'console']]) {
    await client.send(new PutItemCommand({ TableName: 'DcvSessions', Item: { SessionId: { S: id! }, DcvServerEndpoint: { S: endpoint! }, TargetSessionId: { S: target! } } }));
  }
  const fleet = new FakeFleet();
  fleet.put(fleetInstance(1, { privateIp: '10.150.248.181', tags: { 'dcv:session-id': 'tagged' } }));
  ec2 = await startEc2QueryServer(fleet);
  env = {
    ...cliBaseEnv(),
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_ENDPOINT_URL_EC2: ec2.endpoint,
  };
}, 120_000);

afterAll(async () => {
  await ec2?.close();
  await dynamo?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const CONSOLE = '{"SessionId":"console","TransportProtocol":"HTTP","DcvServerEndpoint":"10.150.248.180","Port":8443,"WebUrlPath":"/"}';

describe('README and docs/ commands', () => {
  it('each is run here, by another test or CI, or needs AWS (and says so)', async () => {
    const ran: string[] = [];
    for (const command of documentedCommands()) {
      if (ELSEWHERE.some(([pattern]) => pattern.test(command))) continue;
      ran.push(command);
      if (command === 'npm start') {
        // package.json's start script, as written there.
        const script = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).scripts.start as string;
        expect(await serveBriefly(script.replace('node bin/dcv-resolver.mjs ', 'npx dcv-resolver '))).toBe(CONSOLE);
      } else if (command.startsWith('curl ')) {
        // The quick start's lookup, against npm start's answer above (same file, same request).
        expect(command).toContain("'http://127.0.0.1:9000/resolveSession?sessionId=console&transport=HTTP'");
      } else if (/^npx dcv-resolver serve .*--(sessions|table) /.test(command) && !command.includes('--help')) {
        // Usage brackets ([--host …]) are the docs' notation: run the command without them.
        const answer = await serveBriefly(command.replace(/\[[^\]]*\]/g, '').replace(/\s+/g, ' ').trim());
        expect(answer, command).toBe(CONSOLE);
      } else {
        const run = await sh(command.replace(/\[[^\]]*\]/g, '').replace(/\s+/g, ' ').trim());
        expect({ command, code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ command, code: 0, stderr: '' });
      }
    }
    // The ones a newcomer types first are among them.
    expect(ran).toEqual(expect.arrayContaining(['npm start', 'npx dcv-resolver serve --help']));
    expect(ran.some((c) => c.startsWith('npx dcv-resolver token create'))).toBe(true);
    expect(ran.some((c) => c.startsWith('npx cdk synth'))).toBe(true);
  }, 600_000);
});
