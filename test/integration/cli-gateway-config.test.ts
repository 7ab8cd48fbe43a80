import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli';

describe.concurrent('gateway-config as a child process', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dcv-gwconf-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints a complete config that parses as TOML; a Function URL as AWS prints it loses its slash', async () => {
    const run = await runCli(['gateway-config', '--url', 'https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/3f9c0b1e/']);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('dcv-resolver gateway-config: dropped the trailing slash: the gateway would ask for …//resolveSession\n');
    const config = parse(run.stdout) as Record<string, Record<string, unknown>>;
    expect(Object.keys(config)).toEqual(['gateway', 'resolver', 'web-resources', 'dcv', 'health-check', 'log']);
    expect(config.resolver).toEqual({ url: 'https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/3f9c0b1e' });
    expect(config['web-resources']).toEqual({ 'local-resources-path': '/usr/share/dcv/www' });
    expect(run.stdout).toMatch(/^# DECIDE: /m);
  });

  it('mutual TLS and a private CA: the [resolver] keys', async () => {
    const run = await runCli([
      'gateway-config', '--url', 'https://resolver.example.internal:8445/3f9c', '--ca-file', '/etc/dcv-connection-gateway/resolver-ca.pem',
      '--cert-file', '/etc/dcv-connection-gateway/resolver-client.pem', '--cert-key-file', '/etc/dcv-connection-gateway/resolver-client.key',
    ]);
    expect(run.code).toBe(0);
    expect((parse(run.stdout) as Record<string, unknown>).resolver).toEqual({
      url: 'https://resolver.example.internal:8445/3f9c',
      'ca-file': '/etc/dcv-connection-gateway/resolver-ca.pem',
      'cert-file': '/etc/dcv-connection-gateway/resolver-client.pem',
      'cert-key-file': '/etc/dcv-connection-gateway/resolver-client.key',
    });
  });

  it('the doctor passes what gateway-config writes (no error)', async () => {
    const file = join(dir, 'dcv-connection-gateway.conf');
    const written = await runCli(['gateway-config', '--url', 'http://127.0.0.1:9000']);
    writeFileSync(file, written.stdout);
    const run = await runCli(['doctor', '--gateway-config', file, '--json']);
    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as { findings: { rule: string }[] }).findings.map((f) => f.rule)).toEqual(['gateway.self-signed']);
  });

  it('warns (stderr) about plain http across the network but still prints the config', async () => {
    const run = await runCli(['gateway-config', '--url', 'http://10.0.0.5:9000']);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/^dcv-resolver gateway-config: warning: plain http:\/\/ to 10\.0\.0\.5/);
    expect((parse(run.stdout) as { resolver: { url: string } }).resolver.url).toBe('http://10.0.0.5:9000');
  });

  it.each([
    ['no --url', [], /^dcv-resolver gateway-config: --url URL is required\n\nUsage: dcv-resolver gateway-config/],
    ['not a URL', ['--url', 'resolver:9000'], /^dcv-resolver gateway-config: --url 'resolver:9000' is not an http:\/\/ or https:\/\/ URL\n$/],
    ['an unpaired client certificate', ['--url', 'https://r.example', '--cert-file', '/c.pem'], /--cert-file and --cert-key-file go together/],
    ['a relative path', ['--url', 'https://r.example', '--ca-file', 'ca.pem'], /--ca-file must be an absolute path on the gateway host, not 'ca.pem'/],
    ['a CA for an http url', ['--url', 'http://127.0.0.1:9000', '--ca-file', '/ca.pem'], /--ca-file needs an https:\/\/ --url/],
  ])('%s: exit 2, nothing on stdout', async (_name, args, message) => {
    const run = await runCli(['gateway-config', ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stdout).toBe('');
  });
});
