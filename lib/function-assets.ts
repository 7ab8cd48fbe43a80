import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../lambda/adapters/package-root.js';

/**
 * The product's Lambda functions as pre-built assets: `npm run build` bundles each handler with esbuild into
 * `assets/<variant>/` of the package (`bin/build-assets.ts`), and the construct deploys those folders with
 * `Code.fromAsset`. So a consumer's synth needs no esbuild, no Docker and no lockfile, and what deploys is
 * exactly the bundle this package's tests ran (test/shipped/), never a rebuild against other dependency versions.
 */
export type FunctionName = 'resolver' | 'portal' | 'discovery' | 'power';

export interface FunctionBundle {
  /** The handler's source, relative to the package root (the build's entry point). */
  readonly entry: string;
  /** Ship a source map and run with --enable-source-maps (a scheduled job: start-up cost does not matter). */
  readonly sourceMap: boolean;
  /**
   * AWS SDK clients left out even when the SDK is bundled: imported only on a rare path, they load from the
   * Lambda runtime's own SDK then instead of being parsed at every cold start.
   */
  readonly runtimeSdkModules: readonly string[];
}

export const FUNCTION_BUNDLES: Readonly<Record<FunctionName, FunctionBundle>> = {
  // The portal is its own function (lambda/handlers/portal.ts): none of it is in the resolver's bundle.
  resolver: { entry: 'lambda/handlers/resolver.ts', sourceMap: false, runtimeSdkModules: [] },
  // Its first request always reads the secret, so the Secrets Manager client is bundled (pinned, one file).
  portal: { entry: 'lambda/handlers/portal.ts', sourceMap: false, runtimeSdkModules: [] },
  discovery: { entry: 'lambda/handlers/discovery.ts', sourceMap: true, runtimeSdkModules: [] },
  // The power pass (desktops on demand): scheduled every minute, so start-up cost matters little.
  power: { entry: 'lambda/handlers/power.ts', sourceMap: true, runtimeSdkModules: [] },
};

/** The handler every asset exports (index.mjs, export `handler`). */
export const ASSET_HANDLER = 'index.handler';

/** The Node.js major the bundles target (esbuild `target`) and the functions run on. */
export const FUNCTION_NODE_MAJOR = 24;

// ESM bundles still meet CommonJS dependencies that call require().
export const BUNDLE_BANNER = "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);";

/**
 * esbuild's options for one asset (plain data: the build script passes them to esbuild; nothing here loads it).
 * Minified, ESM, Node 24; `keepNames` because error classes' names are part of the wire format
 * ({"error":"NotFoundError",…}) and of the logs: minified, the deployed resolver once answered {"error":"Ke",…}.
 */
export function bundleOptions(name: FunctionName, bundleAwsSdk: boolean) {
  const bundle = FUNCTION_BUNDLES[name];
  return {
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: `node${FUNCTION_NODE_MAJOR}`,
    minify: true,
    keepNames: true,
    mainFields: ['module', 'main'],
    banner: { js: BUNDLE_BANNER },
    sourcemap: bundle.sourceMap,
    external: bundleAwsSdk ? [...bundle.runtimeSdkModules] : ['@aws-sdk/*'],
    logLevel: 'error',
  } as const;
}

/** The asset folder's name: `resolver`, or `resolver-runtime-sdk` when the AWS SDK comes from the runtime. */
export function assetVariant(name: FunctionName, bundleAwsSdk: boolean): string {
  return bundleAwsSdk ? name : `${name}-runtime-sdk`;
}

export const ASSET_VARIANTS: readonly { readonly name: FunctionName; readonly bundleAwsSdk: boolean }[] = (
  Object.keys(FUNCTION_BUNDLES) as FunctionName[]
).flatMap((name) => [true, false].map((bundleAwsSdk) => ({ name, bundleAwsSdk })));

const PACKAGE_NAME = 'dcv-session-resolver';

export { packageRoot };

/** The folder of one built function; refuses clearly when the package was not built. */
export function functionAssetDir(name: FunctionName, bundleAwsSdk: boolean): string {
  const dir = join(packageRoot(), 'assets', assetVariant(name, bundleAwsSdk));
  if (!existsSync(join(dir, 'index.mjs'))) {
    throw new Error(`${PACKAGE_NAME}: the ${name} function's bundle is missing (${dir}/index.mjs); build the package with 'npm run build'`);
  }
  return dir;
}
