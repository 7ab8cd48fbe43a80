import { App, CfnOutput, CfnParameter, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { diagnose } from '../../lambda/core/doctor/diagnose';
import { DECIDE, renderGatewayConfig, tomlString, WEB_CLIENT_PATH } from '../../lambda/core/gateway-config';

describe('renderGatewayConfig', () => {
  it('parses as TOML with every section and the documented keys', () => {
    const config = parse(renderGatewayConfig({ resolverUrl: 'http://127.0.0.1:9000' }));
    expect(config).toEqual({
      gateway: { 'web-listen-endpoints': ['0.0.0.0:8443'], 'quic-listen-endpoints': ['0.0.0.0:8443'] },
      resolver: { url: 'http://127.0.0.1:9000' },
      'web-resources': { 'local-resources-path': WEB_CLIENT_PATH },
      dcv: {},
      'health-check': { 'bind-addr': '127.0.0.1', port: 8989 },
      log: { level: 'info' },
    });
  });

  it('adds the resolver TLS keys only when given', () => {
    const config = parse(
      renderGatewayConfig({ resolverUrl: 'https://r.example:8445/p', caFile: '/etc/ca.pem', certFile: '/etc/c.pem', certKeyFile: '/etc/c.key' }),
    ) as { resolver: Record<string, unknown> };
    expect(config.resolver).toEqual({ url: 'https://r.example:8445/p', 'ca-file': '/etc/ca.pem', 'cert-file': '/etc/c.pem', 'cert-key-file': '/etc/c.key' });
  });

  it('marks the operator’s decisions', () => {
    const text = renderGatewayConfig({ resolverUrl: 'http://127.0.0.1:9000' });
    const decisions = text.split('\n').filter((line) => line.startsWith(DECIDE));
    expect(decisions.length).toBe(5);
    expect(text).toContain('https://<gateway-host>:8443/?authToken=<token>#<sessionId>');
  });

  it('works on a CDK token string (plain concatenation, the token survives as one literal string)', () => {
    const token = '${Token[TOKEN.1234]}';
    const text = renderGatewayConfig({ resolverUrl: token });
    expect(text).toContain(`url = '${token}'`);
    expect((parse(text) as { resolver: { url: string } }).resolver.url).toBe(token);
  });

  it('in a stack output around a deployed URL token, CloudFormation gets one Fn::Join that renders the same text', () => {
    const stack = new Stack(new App(), 'GatewayConfigOutput');
    const url = new CfnParameter(stack, 'ResolverUrl').valueAsString; // an unresolved token, as the Function URL is
    new CfnOutput(stack, 'GatewayConfig', { value: renderGatewayConfig({ resolverUrl: url }) });
    const value = Template.fromStack(stack).toJSON().Outputs.GatewayConfig.Value as { 'Fn::Join': [string, unknown[]] };
    // What CloudFormation will print, with the URL's intrinsic standing in as a marker:
    const [separator, parts] = value['Fn::Join'];
    const rendered = parts.map((part) => (typeof part === 'string' ? part : 'URL')).join(separator);
    expect(rendered).toBe(renderGatewayConfig({ resolverUrl: 'URL' }));
  });

  it('stays well under 4 KB with every option and a long URL (it is also a stack output value)', () => {
    const text = renderGatewayConfig({
      resolverUrl: `https://${'a'.repeat(32)}.lambda-url.ap-southeast-2.on.aws/${'f'.repeat(128)}`,
      caFile: '/etc/dcv-connection-gateway/resolver-ca.pem',
      certFile: '/etc/dcv-connection-gateway/resolver-client.pem',
      certKeyFile: '/etc/dcv-connection-gateway/resolver-client.key',
    });
    expect(Buffer.byteLength(text)).toBeLessThan(4000);
  });

  it('a doctor run on its output finds no error (only the self-signed certificate note)', () => {
    const text = renderGatewayConfig({ resolverUrl: 'https://abc.lambda-url.eu-west-1.on.aws/3f9c' });
    expect(diagnose({ gateway: { file: 'g', text }, dcv: [] }).findings.map((f) => f.rule)).toEqual(['gateway.self-signed']);
  });
});

describe('tomlString', () => {
  it.each([
    ['/usr/share/dcv/www', "'/usr/share/dcv/www'"],
    ["/opt/o'brien/ca.pem", '"/opt/o\'brien/ca.pem"'],
    ['C:\\certs\\"x"', "'C:\\certs\\\"x\"'"],
    ["a'b\\c\nd", '"a\'b\\\\c\\nd"'],
  ])('%j → %s, which parses back to the same string', (value, toml) => {
    expect(tomlString(value)).toBe(toml);
    expect((parse(`v = ${toml}`) as { v: string }).v).toBe(value);
  });
});
