import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Vitest global setup: `npm run build` once before any test file, so the CLI the tests spawn (dist/) and the
 * function assets every synthesized stack deploys (assets/) are built from the sources under test, exactly as
 * `npm pack` builds them. Incremental, and it writes only what changed: seconds on an unchanged tree.
 */
export default function setup(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: 'inherit' });
}
