import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli, startServe, type ServingCli } from '../helpers/run-cli';

/**
 * The README's "Probing a resolver", "Gateway configuration" and "Doctor" sections: every runnable
 * `npx dcv-resolver …` line in their sh blocks runs here, in order, as written (lines with <placeholders> are
 * covered by cli-resolve/cli-doctor/cli-gateway-config). `npm start`'s port 9000 becomes a free port, and the
 * file the commands write goes to a temp directory.
 */
function readmeCommands(): string[] {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Probing a resolver\n');
  const doctor = readme.indexOf('\n## Doctor\n', start);
  const end = readme.indexOf('\n## ', doctor + 1);
  expect(start).toBeGreaterThan(-1);
  expect(doctor).toBeGreaterThan(start);
  const sections = readme.slice(start, end === -1 ? undefined : end);
  const blocks = [...sections.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks
    .flatMap((block) => block.split('\n'))
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line.startsWith('npx dcv-resolver ') && !line.includes('<'));
}

describe('README gateway-tool commands run as written', () => {
  let serve: ServingCli;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dcv-readme-'));
    serve = await startServe(['--sessions', 'sessions.example.json']);
  });
  afterAll(() => {
    serve?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds them, and each exits as documented (the field report’s doctor run: 1, the rest: 0)', async () => {
    const commands = readmeCommands();
    expect(commands.map((c) => c.split(' ')[2])).toEqual(['resolve', 'resolve', 'gateway-config', 'gateway-config', 'doctor', 'doctor']);
    for (const command of commands) {
      const [line, redirect] = command.split(/\s+>\s+/);
      const args = line!
        .replace(/^npx dcv-resolver /, '')
        .split(/\s+/)
        .map((arg) => (arg === 'http://127.0.0.1:9000' ? serve.url : arg === 'dcv-connection-gateway.conf' ? join(dir, arg) : arg));
      const run = await runCli(args);
      expect({ command, code: run.code, stderr: run.stderr }).toMatchObject({ command, code: command.includes('field-report') ? 1 : 0 });
      if (redirect) writeFileSync(join(dir, redirect), run.stdout);
    }
  });
});
