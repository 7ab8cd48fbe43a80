import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseDcvConf, setting } from '../../lambda/core/doctor/dcv-conf';
import { compareBases, isLoopbackHostname, normalizeResolverUrl, resolverBase } from '../../lambda/core/doctor/resolver-url';

describe('parseDcvConf: tolerant of what hand-edited dcv.conf files contain', () => {
  it('BOM, CRLF, section case, spaces around =, single quotes, a trailing comment, a stray line', () => {
    const text = readFileSync(fileURLToPath(new URL('../fixtures/doctor/dcv/quirky.conf', import.meta.url)), 'utf8');
    const conf = parseDcvConf(text);
    expect(setting(conf, 'security', 'auth-token-verifier')).toEqual({ value: 'https://resolver.example.internal:8445/3f9c0b1e0d8a4e6f/verifyToken/10.0.1.15', line: 3 });
    expect(setting(conf, 'connectivity', 'web-url-path')).toEqual({ value: '/dcv', line: 6 });
    expect(conf.unparsed).toEqual([{ line: 4, text: 'this line is not a setting' }]);
  });

  it.each([
    ['double quotes', 'k="v w"', 'v w'],
    ['single quotes', "k='v'", 'v'],
    ['no quotes', 'k=v', 'v'],
    ['an empty value', 'k=', ''],
    ['an unclosed quote is kept as written', 'k="v', '"v'],
    ['text after the closing quote is ignored', 'k="v" ; note', 'v'],
    ['an = inside the value', 'k="a=b"', 'a=b'],
  ])('%s', (_name, line, value) => {
    expect(setting(parseDcvConf(`[s]\n${line}\n`), 's', 'k')?.value).toBe(value);
  });

  it('the last of repeated keys wins; comments (# and ;) and a key before any section are handled', () => {
    const conf = parseDcvConf('orphan=1\n# c\n; c\n[s]\nk=1\nk=2\n');
    expect(setting(conf, 's', 'k')?.value).toBe('2');
    expect(conf.unparsed).toEqual([{ line: 1, text: 'orphan=1' }]);
  });
});

describe('resolver URLs', () => {
  it.each([
    ['localhost', true],
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['[::1]', true],
    ['10.0.0.5', false],
    ['localhost.example.com', false],
  ])('isLoopbackHostname(%s) = %s', (host, loopback) => {
    expect(isLoopbackHostname(host)).toBe(loopback);
  });

  it.each([
    ['the same origin and prefix', 'https://r.example/p', 'https://r.example:443/p/', 'same'],
    ['another prefix', 'https://r.example/p', 'https://r.example/q', 'different'],
    ['another host', 'https://r.example/p', 'https://s.example/p', 'different'],
    ['another port', 'https://r.example/p', 'https://r.example:8445/p', 'different'],
    ['loopback against loopback (the iam proxies)', 'http://127.0.0.1:9000', 'http://localhost:9100/x', 'same'],
    ['one loopback, same prefix: cannot tell', 'http://localhost:9000', 'http://10.0.0.5:9000', 'unknown'],
    ['one loopback, another prefix', 'http://localhost:9000/a', 'http://10.0.0.5:9000/b', 'different'],
  ])('compareBases: %s', (_name, a, b, verdict) => {
    expect(compareBases(resolverBase(new URL(a)), resolverBase(new URL(b)))).toBe(verdict);
  });

  it.each([
    ['a Function URL as AWS prints it', 'https://abc.lambda-url.eu-west-1.on.aws/', 'https://abc.lambda-url.eu-west-1.on.aws', []],
    ['a prefix with a trailing slash', 'https://abc.lambda-url.eu-west-1.on.aws/p/', 'https://abc.lambda-url.eu-west-1.on.aws/p', ['dropped the trailing slash: the gateway would ask for …//resolveSession']],
    ['a /resolveSession suffix', 'http://127.0.0.1:9000/resolveSession', 'http://127.0.0.1:9000', ["dropped '/resolveSession': the gateway appends it itself"]],
    ['plain http across the network', 'http://10.0.0.5:9000', 'http://10.0.0.5:9000', [expect.stringMatching(/^warning: plain http:\/\/ to 10\.0\.0\.5/)]],
  ])('normalizeResolverUrl: %s', (_name, input, url, notes) => {
    expect(normalizeResolverUrl(input)).toEqual({ url, notes });
  });

  it.each([
    ['not a URL', 'resolver:9000', /is not an http:\/\/ or https:\/\/ URL/],
    ['a query', 'https://r.example/?a=1', /must not carry a query string/],
  ])('normalizeResolverUrl refuses %s', (_name, input, message) => {
    expect(() => normalizeResolverUrl(input)).toThrow(message);
  });
});
