import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assetVariant, FUNCTION_BUNDLES, type FunctionName } from '../../lib/function-assets';
import { codeBlocks, section } from '../helpers/markdown';
import { REPO_ROOT } from '../helpers/run-cli';

/**
 * The package as a user gets it: `npm pack` (which runs the build, prepack), a fresh
 * `cdk init app --language typescript` project (the aws-cdk CLI's own template, generated here), the tarball
 * installed into it, the construct example of docs/deploying.md added verbatim as lib/gateway-stack.ts and used by the
 * app's bin file, and a jest test of its own. Then that project's own commands: `npx tsc`, `npx cdk synth`,
 * `npx jest`. Nothing of the generated configuration changes. The functions in its cdk.out must be byte for
 * byte the package's assets/ (the bundles test/shipped runs). And the CLI, installed globally from the
 * tarball, answers `--help` and serves the example sessions. Talks only to the npm registry and loopback.
 */
const run = promisify(execFile);
const APP = 'gw-app';
let work: string;
let app: string;
let tarball: string;

/**
 * A command in `cwd` with this test's Node first on PATH (so npx, jest and cdk run on it). Fails on a
 * non-zero exit unless `mayFail`, which returns its output either way.
 */
async function sh(cwd: string, command: string, args: string[], { timeout = 240_000, mayFail = false } = {}) {
  const env: Record<string, string | undefined> = { ...process.env, PATH: `${join(process.execPath, '..')}:${process.env.PATH}`, CI: 'true', npm_config_fund: 'false', npm_config_audit: 'false' };
  for (const key of Object.keys(env)) if (key.startsWith('VITEST') || key === 'NODE_OPTIONS') delete env[key];
  try {
    return await run(command, args, { cwd, env, timeout, maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    if (mayFail) return { stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`.slice(0, 8000));
  }
}

/** The construct example, exactly as docs/deploying.md "Using it as a construct" has it. */
function documentedConstructExample(): string {
  const block = codeBlocks(section('docs/deploying.md', 'Using it as a construct')).find((b) => b.lang === 'ts');
  if (!block) throw new Error('docs/deploying.md: no ts block under "Using it as a construct"');
  return `${block.body}\n`;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'dcv-consumer-'));
  const packed = await sh(REPO_ROOT, 'npm', ['pack', '--pack-destination', work, '--json']);
  tarball = join(work, (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename);
  app = join(work, APP);
  await sh(work, 'mkdir', [APP]);
  await sh(app, join(REPO_ROOT, 'node_modules', '.bin', 'cdk'), ['init', 'app', '--language', 'typescript']);
  await sh(app, 'npm', ['install', tarball]);
  writeFileSync(join(app, 'lib', 'gateway-stack.ts'), documentedConstructExample());
  writeFileSync(
    join(app, 'bin', `${APP}.ts`),
    `#!/usr/bin/env node\nimport * as cdk from 'aws-cdk-lib/core';\nimport { GatewayStack } from '../lib/gateway-stack';\n\nconst app = new cdk.App();\nnew GatewayStack(app, 'GatewayStack');\n`,
  );
  copyFileSync(join(REPO_ROOT, 'test', 'fixtures', 'cdk-init-app', 'gateway-stack.jest.ts'), join(app, 'test', `${APP}.test.ts`));
}, 600_000);

// Removing the app's node_modules takes over a minute on a loaded 2-core machine.
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
}, 300_000);

describe('a fresh cdk init app with the package installed from its tarball', () => {
  it('the tarball holds the built package only: no sources, tests, benches or local runtimes', async () => {
    const listing = await sh(work, 'tar', ['-tzf', tarball]);
    const files = listing.stdout.trim().split('\n').map((f) => f.replace(/^package\//, ''));
    expect(files).toContain('dist/lib/index.js');
    expect(files).toContain('dist/lib/index.d.ts');
    expect(files).toContain('dist/cdk.cjs');
    expect(files).toContain('assets/resolver/index.mjs');
    expect(files.filter((f) => /^(test|bench|lib|lambda|\.node\d+|\.lambda-ric|node_modules|cdk\.out)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it("installs with the app's one copy of aws-cdk-lib and constructs (peers), and brings no build tools", async () => {
    let nested: string[] = [];
    try {
      nested = readdirSync(join(app, 'node_modules', 'dcv-session-resolver', 'node_modules'));
    } catch {
      // nothing nested: every dependency is shared with the app
    }
    expect(nested).not.toContain('aws-cdk-lib');
    expect(nested).not.toContain('constructs');
    // esbuild is there for the app's own tsx; nothing of ours needs it.
    const why = JSON.parse((await sh(app, 'npm', ['explain', 'esbuild', '--json'])).stdout) as { dependents: { from: { name?: string } }[] }[];
    expect(why.flatMap((e) => e.dependents.map((d) => d.from.name))).not.toContain('dcv-session-resolver');
  });

  it('type-checks with its own tsc', async () => {
    await sh(app, 'npx', ['tsc']);
  });

  it('type-checks with stricter flags too, our declarations included (skipLibCheck off)', async () => {
    // tsc exits non-zero here for aws-cdk-lib's own declarations; what matters is that none of ours fail.
    const strict = await sh(app, 'npx', ['tsc', '--exactOptionalPropertyTypes', '--noUncheckedIndexedAccess', '--skipLibCheck', 'false'], { mayFail: true });
    const errors = strict.stdout.split('\n').filter((line) => line.includes('error TS'));
    expect(errors.filter((line) => !/^node_modules\/(aws-cdk-lib|constructs|@types)\//.test(line))).toEqual([]);
  });

  it("synthesizes with its own cdk synth, deploying exactly the package's pre-built functions", async () => {
    await sh(app, 'npx', ['cdk', 'synth', '--quiet']);
    const template = JSON.parse(readFileSync(join(app, 'cdk.out', 'GatewayStack.template.json'), 'utf8')) as {
      Resources: Record<string, { Type: string; Properties: { Code?: { S3Key?: string }; Description?: string } }>;
    };
    const functions = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
    expect(functions).toHaveLength(3);
    const shipped = (name: FunctionName) => readFileSync(join(REPO_ROOT, 'assets', assetVariant(name, true), 'index.mjs'));
    const deployed = functions.map((f) => readFileSync(join(app, 'cdk.out', `asset.${f.Properties.Code!.S3Key!.replace(/\.zip$/, '')}`, 'index.mjs')));
    const names = Object.keys(FUNCTION_BUNDLES) as FunctionName[];
    // The example turns no portal on: the resolver, discovery and the power pass (on with discovery), each byte
    // for byte the package's bundle.
    expect(deployed.map((code) => names.find((n) => shipped(n).equals(code))).sort()).toEqual(['discovery', 'power', 'resolver']);
  });

  it('passes its own jest test (CommonJS require of the package)', async () => {
    const { stdout, stderr } = await sh(app, 'npx', ['jest']);
    expect(`${stdout}${stderr}`).toMatch(/Tests:\s+1 passed, 1 total/);
  });

  it('does all three with the lowest peer versions package.json admits', async () => {
    const peers = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> }).peerDependencies;
    const lowest = Object.entries(peers).map(([name, range]) => `${name}@${range.replace(/^\^/, '')}`);
    expect(lowest).toEqual(['aws-cdk-lib@2.224.0', 'constructs@10.5.1']);
    await sh(app, 'npm', ['install', '--save-exact', ...lowest]);
    const installed = JSON.parse(readFileSync(join(app, 'node_modules', 'aws-cdk-lib', 'package.json'), 'utf8')) as { version: string };
    expect(installed.version).toBe('2.224.0');
    await sh(app, 'npx', ['tsc']);
    rmSync(join(app, 'cdk.out'), { recursive: true, force: true });
    await sh(app, 'npx', ['cdk', 'synth', '--quiet']);
    expect(readFileSync(join(app, 'cdk.out', 'GatewayStack.template.json'), 'utf8')).toContain('nodejs24.x');
    // The generated jest.config.js loads aws-cdk-lib/testhelpers/jest-autoclean, which the template's own
    // aws-cdk-lib has and 2.224.0 does not: the same configuration without that one setup file.
    const generated = (await import(join(app, 'jest.config.js'))) as { default: Record<string, unknown> };
    const { setupFilesAfterEnv, ...config } = generated.default;
    expect(setupFilesAfterEnv).toEqual(['aws-cdk-lib/testhelpers/jest-autoclean']);
    const { stdout, stderr } = await sh(app, 'npx', ['jest', '--config', JSON.stringify({ ...config, rootDir: app })]);
    expect(`${stdout}${stderr}`).toMatch(/Tests:\s+1 passed, 1 total/);
  });
});

describe('the CLI installed from the tarball', () => {
  let prefix: string;

  beforeAll(async () => {
    prefix = join(work, 'global');
    await sh(work, 'npm', ['install', '--global', '--prefix', prefix, tarball]);
  }, 300_000);

  it('prints its help', async () => {
    const { stdout } = await sh(work, join(prefix, 'bin', 'dcv-resolver'), ['--help']);
    expect(stdout).toMatch(/^Usage: dcv-resolver <command>/);
  });

  it('serves the example sessions on loopback and answers the gateway', async () => {
    const sessions = join(prefix, 'lib', 'node_modules', 'dcv-session-resolver', 'sessions.example.json');
    const child = spawn(join(prefix, 'bin', 'dcv-resolver'), ['serve', '--sessions', sessions, '--host', '127.0.0.1', '--port', '0'], {
      env: { PATH: `${join(process.execPath, '..')}:${process.env.PATH}`, HOME: process.env.HOME ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 20_000);
        const watch = (c: Buffer) => {
          out += c.toString();
          const m = /http:\/\/127\.0\.0\.1:\d+/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[0]);
          }
        };
        child.stdout.on('data', watch);
        child.stderr.on('data', watch);
      });
      const answer = await fetch(`${url}/resolveSession?sessionId=console&transport=HTTP`, { method: 'POST' });
      expect(answer.status).toBe(200);
      expect(await answer.json()).toMatchObject({ SessionId: 'console', TransportProtocol: 'HTTP' });
    } finally {
      child.kill();
    }
  });
});
