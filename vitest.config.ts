import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/helpers/offline-aws-env.ts'],
    // Builds dist/ and assets/ (npm run build) first: the tests run the CLI and the functions as they ship.
    globalSetup: ['test/helpers/build-package.ts'],
    // CDK synthesis bundles with esbuild and dynalite starts real servers: give them room on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // In CI, also write a machine-readable summary (.ci/run prints its plain "N passed, N failed" line).
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: { json: 'test-results.json' },
  },
});
