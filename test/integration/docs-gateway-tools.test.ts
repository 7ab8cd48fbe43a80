import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { section, shellCommands } from '../helpers/markdown';
import { runCli, startServe, type ServingCli } from '../helpers/run-cli';

/**
 * The gateway tools as documented: docs/operations.md's "Probing a resolver", the README's "Point the gateway"
 * and docs/operations.md's "Doctor". Every runnable `npx dcv-resolver …` line in their sh blocks runs here, in that
 * order, as written (lines with <placeholders> are covered by cli-resolve/cli-doctor/cli-gateway-config).
 * `npm start`'s port 9000 becomes a free port, and the file the commands write goes to a temp directory.
 */
const SECTIONS: [page: string, heading: string][] = [
  ['docs/operations.md', 'Probing a resolver'],
  ['README.md', 'Point the gateway'],
  ['docs/operations.md', 'Doctor'],
];

function documentedCommands(): string[] {
  return SECTIONS.flatMap(([page, heading]) => shellCommands(section(page, heading))).filter(
    (line) => line.startsWith('npx dcv-resolver ') && !line.includes('<'),
  );
}

describe('documented gateway-tool commands run as written', () => {
  let serve: ServingCli;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dcv-docs-'));
    serve = await startServe(['--sessions', 'sessions.example.json']);
  });
  afterAll(() => {
    serve?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds them, and each exits as documented (the field report’s and the refused sessions’ doctor runs: 1, the rest: 0)', async () => {
    const commands = documentedCommands();
    expect(commands.map((c) => c.split(' ')[2])).toEqual(['resolve', 'resolve', 'gateway-config', 'gateway-config', 'doctor', 'doctor', 'doctor']);
    for (const command of commands) {
      const [line, redirect] = command.split(/\s+>\s+/);
      const args = line!
        .replace(/^npx dcv-resolver /, '')
        .split(/\s+/)
        .map((arg) => (arg === 'http://127.0.0.1:9000' ? serve.url : arg === 'dcv-connection-gateway.conf' ? join(dir, arg) : arg));
      const run = await runCli(args);
      expect({ command, code: run.code, stderr: run.stderr }).toMatchObject({ command, code: /field-report|--sessions/.test(command) ? 1 : 0 });
      // The page says the sessions example refuses three sessions (two on the Linux console, one on the Windows one): the doctor agrees.
      if (command.includes('--sessions')) expect(run.stdout, command).toMatch(/^3 errors, /m);
      if (redirect) writeFileSync(join(dir, redirect), run.stdout);
    }
  });
});
