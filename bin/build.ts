// `npm run build`, after tsc has written dist/: the esbuild half of the build.
//  - every function variant into assets/<variant>/index.mjs, from the sources, with the options
//    lib/function-assets.ts declares (the construct deploys these folders as they are);
//  - dist/cdk.cjs, the CDK entry as CommonJS for `require` (jest in a `cdk init` app requires it; Node and
//    TypeScript consumers import dist/lib/index.js). aws-cdk-lib, constructs and the rest stay external.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { build, type OutputFile } from 'esbuild';
import { ASSET_VARIANTS, assetVariant, bundleOptions, FUNCTION_BUNDLES, packageRoot } from '../lib/function-assets.js';

const quiet = process.argv.includes('--quiet');
const say = (line: string) => quiet || process.stdout.write(`${line}\n`);
const root = packageRoot();
const assets = join(root, 'assets');

/**
 * Writes what changed only, each file through a rename: a build while tests or a synth read these files
 * (vitest's global setup, `cdk synth` from cdk.json) never shows them a missing or half-written file.
 */
function writeIfChanged(file: OutputFile): void {
  mkdirSync(dirname(file.path), { recursive: true });
  if (existsSync(file.path) && readFileSync(file.path).equals(file.contents)) return;
  const temp = `${file.path}.${process.pid}.tmp`;
  writeFileSync(temp, file.contents);
  renameSync(temp, file.path);
}

/** An asset folder holds exactly these files. */
function writeOutputs(outdir: string, files: readonly OutputFile[]): void {
  mkdirSync(outdir, { recursive: true });
  const wanted = new Set(files.map((f) => basename(f.path)));
  for (const stale of readdirSync(outdir).filter((f) => !wanted.has(f))) rmSync(join(outdir, stale), { recursive: true, force: true });
  for (const file of files) writeIfChanged(file);
}

const variants = ASSET_VARIANTS.map(({ name, bundleAwsSdk }) => assetVariant(name, bundleAwsSdk));
if (existsSync(assets)) {
  for (const stale of readdirSync(assets).filter((d) => !variants.includes(d))) rmSync(join(assets, stale), { recursive: true, force: true });
}
for (const { name, bundleAwsSdk } of ASSET_VARIANTS) {
  const options = bundleOptions(name, bundleAwsSdk);
  const outdir = join(assets, assetVariant(name, bundleAwsSdk));
  const result = await build({
    ...options,
    mainFields: [...options.mainFields],
    external: [...options.external],
    entryPoints: [join(root, FUNCTION_BUNDLES[name].entry)],
    outfile: join(outdir, 'index.mjs'),
    write: false,
  });
  writeOutputs(outdir, result.outputFiles);
  say(`assets/${assetVariant(name, bundleAwsSdk)}: ${readdirSync(outdir).map((f) => `${f} ${statSync(join(outdir, f)).size.toLocaleString('en')} B`).join(', ')}`);
}

const cjs = join(root, 'dist', 'cdk.cjs');
const cdkEntry = await build({
  entryPoints: [join(root, 'lib', 'index.ts')],
  outfile: cjs,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node22',
  packages: 'external',
  // import.meta.url (lib/function-assets.ts finds the package root from it) as CommonJS has it.
  define: { 'import.meta.url': '__importMetaUrl' },
  banner: { js: "const __importMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'error',
  write: false,
});
for (const file of cdkEntry.outputFiles) writeIfChanged(file);
say(`dist/cdk.cjs: ${statSync(cjs).size.toLocaleString('en')} B`);
