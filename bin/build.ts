// `npm run build`, after tsc has written dist/: the esbuild half of the build.
//  - every function variant into assets/<variant>/index.mjs, from the sources, with the options
//    lib/function-assets.ts declares (the construct deploys these folders as they are);
//  - dist/cdk.cjs, the CDK entry as CommonJS for `require` (jest in a `cdk init` app requires it; Node and
//    TypeScript consumers import dist/lib/index.js). aws-cdk-lib, constructs and the rest stay external.
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { ASSET_VARIANTS, assetVariant, bundleOptions, FUNCTION_BUNDLES, packageRoot } from '../lib/function-assets.js';

const quiet = process.argv.includes('--quiet');
const say = (line: string) => quiet || process.stdout.write(`${line}\n`);
const root = packageRoot();
const assets = join(root, 'assets');
rmSync(assets, { recursive: true, force: true });
for (const { name, bundleAwsSdk } of ASSET_VARIANTS) {
  const options = bundleOptions(name, bundleAwsSdk);
  const outdir = join(assets, assetVariant(name, bundleAwsSdk));
  mkdirSync(outdir, { recursive: true });
  await build({
    ...options,
    mainFields: [...options.mainFields],
    external: [...options.external],
    entryPoints: [join(root, FUNCTION_BUNDLES[name].entry)],
    outfile: join(outdir, 'index.mjs'),
  });
  say(`assets/${assetVariant(name, bundleAwsSdk)}: ${readdirSync(outdir).map((f) => `${f} ${statSync(join(outdir, f)).size.toLocaleString('en')} B`).join(', ')}`);
}

const cjs = join(root, 'dist', 'cdk.cjs');
await build({
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
});
say(`dist/cdk.cjs: ${statSync(cjs).size.toLocaleString('en')} B`);
