import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI_PATH, cliBaseEnv, REPO_ROOT } from '../helpers/run-cli';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };

/** The CLI as a child on this Node, with process.versions.node made to read `version` before the CLI starts. */
async function cliOn(version: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const preload = `data:text/javascript,Object.defineProperty(process.versions,'node',{value:${JSON.stringify(version)}})`;
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', preload, CLI_PATH, ...args], {
      cwd: REPO_ROOT,
      env: cliBaseEnv(),
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout: string; stderr: string };
    return { code: e.code ?? 1, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('the CLI refuses a Node.js older than package.json engines.node', () => {
  it('checks the same minimum as engines.node', () => {
    const source = readFileSync(CLI_PATH, 'utf8');
    const min = /const MIN_NODE = \[(\d+), (\d+)\];/.exec(source);
    expect(min, 'bin/dcv-resolver.mjs declares MIN_NODE').not.toBeNull();
    expect(pkg.engines.node).toBe(`>=${min![1]}.${min![2]}`);
  });

  it.each(['20.19.0', '22.11.0'])('Node %s: one line on stderr, exit 1, nothing run', async (version) => {
    const run = await cliOn(version, ['--help']);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`dcv-resolver: needs Node.js 22.12 or later; this is Node.js ${version}\n`);
  });

  it.each(['22.12.0', '24.0.0'])('Node %s: runs', async (version) => {
    const run = await cliOn(version, ['--help']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('Usage: dcv-resolver');
  });
});
