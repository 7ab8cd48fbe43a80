#!/usr/bin/env node
// The CLI: the package's compiled JavaScript (dist/, from `npm run build`, which `npm pack` and `npm start` run first).

// package.json engines.node, checked before anything is imported (test/unit/cli-node-version.test.ts keeps
// the two in step): an older Node would otherwise fail somewhere deep in a dependency, or run unsupported.
const MIN_NODE = [22, 12];
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
  process.stderr.write(`dcv-resolver: needs Node.js ${MIN_NODE.join('.')} or later; this is Node.js ${process.versions.node}\n`);
  process.exit(1);
}

let cli;
try {
  cli = await import('../dist/lambda/cli/main.js');
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !String(error.message).includes('dist/lambda/cli/main.js')) throw error;
  process.stderr.write("dcv-resolver: not built (no dist/): run 'npm run build' in the package\n");
  process.exit(1);
}
process.exitCode = await cli.main(process.argv.slice(2));
