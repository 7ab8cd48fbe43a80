import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build, type Metafile } from 'esbuild';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  name: string;
  exports: Record<string, string | { types: string; import: string; require?: string }>;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};
const importPath = (key: string) => (pkg.exports[key] as { import: string }).import;

/**
 * Imports `specifier` by the package's own name in a fresh Node process with tsx (as a consumer's app runs
 * it: Node resolves the name through package.json `exports`), and reports its export names and which
 * packages' CommonJS files got loaded (aws-cdk-lib and constructs are CommonJS, so they land in
 * require.cache whoever imports them).
 */
async function importInChild(specifier: string): Promise<{ names: string[]; loadedPackages: string[] }> {
  const script = `
    import { createRequire } from 'node:module';
    const mod = await import(${JSON.stringify(specifier)});
    const cache = Object.keys(createRequire(import.meta.url).cache);
    const packages = new Set(cache.map((f) => /node_modules[\\\\/]((?:@[^\\\\/]+[\\\\/])?[^\\\\/]+)/.exec(f)?.[1]).filter(Boolean));
    process.stdout.write(JSON.stringify({ names: Object.keys(mod).sort(), loadedPackages: [...packages].sort() }));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    timeout: 60_000,
  });
  return JSON.parse(stdout) as { names: string[]; loadedPackages: string[] };
}

/** The static module graph of an entry: local files reached and bare package imports, from esbuild's metafile. */
async function moduleGraph(entry: string): Promise<{ files: string[]; packages: string[] }> {
  const result = await build({
    entryPoints: [entry],
    absWorkingDir: ROOT,
    bundle: true,
    write: false,
    metafile: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    logLevel: 'silent',
  });
  const inputs = (result.metafile as Metafile).inputs;
  const packages = new Set<string>();
  for (const input of Object.values(inputs)) {
    for (const imported of input.imports) {
      if (imported.external && !imported.path.startsWith('node:')) {
        packages.add(imported.path.startsWith('@') ? imported.path.split('/').slice(0, 2).join('/') : imported.path.split('/')[0]!);
      }
    }
  }
  return { files: Object.keys(inputs).sort(), packages: [...packages].sort() };
}

const CDK_PACKAGES = ['aws-cdk-lib', 'constructs', 'cdk-nag'];

const CDK_ENTRY_NAMES = [
  'ACCESS_MODES',
  'AccessSettingsError',
  'DCV_SERVER_PLACEHOLDER',
  'DEFAULT_RESERVED_CONCURRENCY',
  'DcvFunction',
  'DcvResolverStack',
  'DcvSessionResolver',
  'DesktopPower',
  'FUNCTION_BUNDLES',
  'HOST_SIGNALS_TIMEOUT_SECONDS',
  'HostSignalsDocument',
  'MISSING_ALLOW_LIST_MESSAGE',
  'PORTAL_MODES',
  'PROXY_DEFAULT_LISTEN',
  'PortalSettingsError',
  'ResolverObservability',
  'ResolverPortal',
  'SessionDiscovery',
  'addGatewayOutputs',
  'functionAssetDir',
  'readStackContext',
];

const RUNTIME_ENTRY_NAMES = [
  'BadRequestError',
  'CidrSet',
  'DEFAULT_MAX_USES',
  'DEFAULT_TTL_SECONDS',
  'DirectoryTokenStore',
  'DynamoApiSessionStore',
  'DynamoDbSessionStore',
  'DynamoDbTokenStore',
  'FileSessionStore',
  'ForbiddenError',
  'HttpError',
  'MAX_TTL_SECONDS',
  'MemorySessionStore',
  'MemoryTokenStore',
  'MethodNotAllowedError',
  'NotFoundError',
  'PayloadTooLargeError',
  'ServiceUnavailableError',
  'SessionResolver',
  'TokenVerifier',
  'checkResolverAnswer',
  'connectLinks',
  'createLiteDynamoApi',
  'createResolveDynamoClient',
  'createRouter',
  'gatewayRequestUrl',
  'hashToken',
  'issueToken',
  'mintToken',
  'parseGatewayUrl',
  'parseResolveQuery',
  'parseSessionRecord',
  'renderGatewayConfig',
  'sdkDynamoApi',
  'silentLog',
  'startLocalServer',
  'tokenIdOf',
];

describe('package.json exports', () => {
  it('maps the CDK entry (. and ./cdk) and the runtime entry (./runtime) to their built files and declarations', () => {
    const cdk = { types: './dist/lib/index.d.ts', import: './dist/lib/index.js', require: './dist/cdk.cjs' };
    expect(pkg.exports).toEqual({
      '.': cdk,
      './cdk': cdk,
      './runtime': { types: './dist/lambda/index.d.ts', import: './dist/lambda/index.js' },
      './package.json': './package.json',
    });
  });

  it('require() of the CDK entry (CommonJS: jest in a cdk init app) gives the same construct', async () => {
    const script = `process.stdout.write(JSON.stringify(Object.keys(require('dcv-session-resolver')).sort()))`;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { cwd: ROOT, timeout: 60_000 });
    expect(JSON.parse(stdout)).toEqual(CDK_ENTRY_NAMES);
  });

  it.each(['dcv-session-resolver', 'dcv-session-resolver/cdk'])('%s gives a CDK app the construct', async (specifier) => {
    const { names, loadedPackages } = await importInChild(specifier);
    expect(names).toEqual(CDK_ENTRY_NAMES);
    // The probe sees CDK when it is loaded (the runtime test below relies on that).
    expect(loadedPackages).toEqual(expect.arrayContaining(['aws-cdk-lib', 'constructs', 'cdk-nag']));
  });

  it('dcv-session-resolver/runtime gives a portal the library API without loading CDK', async () => {
    const { names, loadedPackages } = await importInChild('dcv-session-resolver/runtime');
    expect(names).toEqual(RUNTIME_ENTRY_NAMES);
    for (const cdk of CDK_PACKAGES) expect(loadedPackages).not.toContain(cdk);
  });

  it("the runtime entry's module graph has no CLI, no CDK code and only runtime dependencies", async () => {
    const { files, packages } = await moduleGraph(importPath('./runtime'));
    expect(files).toContain('dist/lambda/core/tokens/issue-token.js');
    expect(files.filter((f) => f.startsWith('dist/lambda/cli/') || f.startsWith('dist/lib/') || f.startsWith('bin/'))).toEqual([]);
    for (const cdk of CDK_PACKAGES) expect(packages).not.toContain(cdk);
    expect(packages.filter((p) => !(p in pkg.dependencies))).toEqual([]);
  });

  it("the CDK entry's module graph has no CLI and needs only dependencies and the CDK peers (not devDependencies)", async () => {
    const { files, packages } = await moduleGraph(importPath('.'));
    expect(files).toContain('dist/lib/dcv-session-resolver.js');
    expect(files.filter((f) => f.startsWith('dist/lambda/cli/'))).toEqual([]);
    expect(packages).toEqual(expect.arrayContaining(CDK_PACKAGES));
    expect(packages.filter((p) => !(p in pkg.dependencies) && !(p in pkg.peerDependencies))).toEqual([]);
    // aws-cdk-lib and constructs are the app's (one copy per app), never our own dependencies.
    expect(Object.keys(pkg.peerDependencies).sort()).toEqual(['aws-cdk-lib', 'constructs']);
    for (const peer of Object.keys(pkg.peerDependencies)) expect(pkg.dependencies).not.toHaveProperty(peer);
  });
});
