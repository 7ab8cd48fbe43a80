#!/usr/bin/env node
// The CLI runs the TypeScript sources directly through tsx, so there is no build step to forget.

// package.json engines.node, checked before anything is imported (test/unit/cli-node-version.test.ts keeps
// the two in step): an older Node would otherwise fail somewhere deep in a dependency, or run unsupported.
const MIN_NODE = [22, 12];
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
  process.stderr.write(`dcv-resolver: needs Node.js ${MIN_NODE.join('.')} or later; this is Node.js ${process.versions.node}\n`);
  process.exit(1);
}

const { register } = await import('tsx/esm/api');
register();
const { main } = await import('../lambda/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
