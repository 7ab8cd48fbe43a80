import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Vitest global setup: `npm run build` once before any test file, so the CLI the tests spawn (dist/) and the
 * function assets every synthesized stack deploys (assets/) are built from the sources under test, exactly as
 * `npm pack` builds them. tsc is incremental: an unchanged tree rebuilds in seconds.
 */
export default function setup(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  execFileSync(process.execPath, ['--import', 'tsx', 'bin/build.ts', '--quiet'], { cwd: root, stdio: 'inherit' });
}
