import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './package-root.js';

/** The shipped host script, relative to the package root (package.json `files` ships host-scripts/). */
export const HOST_SIGNALS_SCRIPT = join('host-scripts', 'dcv-idle-signals.sh');

/**
 * The host script as command lines, as AWS-RunShellScript's `commands` and an SSM document's `runCommand`
 * take it: the agent writes the lines to a file and runs it with sh, so the lines are the script unchanged.
 */
export function loadHostSignalsScript(root: string = packageRoot()): string[] {
  const text = readFileSync(join(root, HOST_SIGNALS_SCRIPT), 'utf8');
  return text.replace(/\n$/, '').split('\n');
}
