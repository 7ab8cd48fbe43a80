import { describe, expect, it } from 'vitest';
import { CidrSet, parseCidr, parseClientAddress, parseIp } from '../../lambda/core/ip';

describe('parseIp', () => {
  it.each([
    ['IPv4', '203.0.113.25', { address: '203.0.113.25', family: 'ipv4' }],
    ['IPv4 zero', '0.0.0.0', { address: '0.0.0.0', family: 'ipv4' }],
    ['IPv6 compressed', '2001:db8::25', { address: '2001:db8::25', family: 'ipv6' }],
    ['IPv6 upper case (normalised to lower)', '2001:DB8::AB', { address: '2001:db8::ab', family: 'ipv6' }],
    ['IPv6 loopback', '::1', { address: '::1', family: 'ipv6' }],
    ['IPv6 full form', '2001:0db8:0000:0000:0000:0000:0000:0001', { address: '2001:0db8:0000:0000:0000:0000:0000:0001', family: 'ipv6' }],
    ['IPv4-mapped IPv6 folds to IPv4', '::ffff:203.0.113.25', { address: '203.0.113.25', family: 'ipv4' }],
    ['IPv4-mapped IPv6, upper case', '::FFFF:10.0.0.1', { address: '10.0.0.1', family: 'ipv4' }],
  ] as const)('%s', (_name, input, expected) => {
    expect(parseIp(input)).toEqual(expected);
  });

  it.each([
    ['empty', ''],
    ['a host name', 'dcv.example.com'],
    ['octet out of range', '256.0.0.1'],
    ['three octets', '10.0.1'],
    ['with a port', '203.0.113.25:5555'],
    ['bracketed IPv6', '[2001:db8::1]'],
    ['a CIDR', '10.0.0.0/8'],
    ['surrounding spaces', ' 10.0.0.1 '],
    ['triple colon', '2001:::1'],
    ['longer than 64 characters', `${'1'.repeat(60)}.0.0.1`],
  ])('rejects %s', (_name, input) => {
    expect(parseIp(input)).toBeUndefined();
  });
});

describe('parseClientAddress (the gateway’s clientIpAddress)', () => {
  it.each([
    ['bare IPv4', '203.0.113.25', '203.0.113.25', 'ipv4'],
    ['IPv4 with a port', '203.0.113.25:5555', '203.0.113.25', 'ipv4'],
    ['bare IPv6', '2001:db8::25', '2001:db8::25', 'ipv6'],
    ['bracketed IPv6', '[2001:db8::25]', '2001:db8::25', 'ipv6'],
    ['bracketed IPv6 with a port', '[2001:db8::25]:5555', '2001:db8::25', 'ipv6'],
    ['IPv4-mapped IPv6', '::ffff:198.51.100.4', '198.51.100.4', 'ipv4'],
    ['bracketed IPv4-mapped IPv6 with a port', '[::ffff:198.51.100.4]:443', '198.51.100.4', 'ipv4'],
  ])('%s', (_name, input, address, family) => {
    expect(parseClientAddress(input)).toEqual({ address, family });
  });

  it.each([
    ['a host name', 'client.example.com'],
    ['garbage', 'not-an-ip'],
    ['an IPv4 with an empty port', '203.0.113.25:'],
    ['an IPv4 with a non-numeric port', '203.0.113.25:http'],
    ['unclosed bracket', '[2001:db8::25'],
    ['brackets around a host name', '[example.com]:443'],
    ['a list of addresses', '203.0.113.25, 198.51.100.4'],
    ['a CIDR', '203.0.113.0/24'],
    ['an IPv4 with a port above 65535', '203.0.113.25:99999'],
    ['a bracketed IPv6 with a port above 65535', '[2001:db8::25]:65536'],
  ])('rejects %s', (_name, input) => {
    expect(parseClientAddress(input)).toBeUndefined();
  });
});

describe('parseCidr', () => {
  it.each([
    ['IPv4 network', '10.0.0.0/8', { network: '10.0.0.0', prefix: 8, family: 'ipv4' }],
    ['IPv4 /0', '0.0.0.0/0', { network: '0.0.0.0', prefix: 0, family: 'ipv4' }],
    ['IPv4 /32', '203.0.113.7/32', { network: '203.0.113.7', prefix: 32, family: 'ipv4' }],
    ['bare IPv4 is a single host', '203.0.113.7', { network: '203.0.113.7', prefix: 32, family: 'ipv4' }],
    ['IPv6 network', '2001:db8::/32', { network: '2001:db8::', prefix: 32, family: 'ipv6' }],
    ['IPv6 /128', '::1/128', { network: '::1', prefix: 128, family: 'ipv6' }],
    ['bare IPv6 is a single host', '2001:db8::7', { network: '2001:db8::7', prefix: 128, family: 'ipv6' }],
    ['surrounding spaces are trimmed', '  10.0.0.0/8 ', { network: '10.0.0.0', prefix: 8, family: 'ipv4' }],
  ] as const)('%s', (_name, input, expected) => {
    expect(parseCidr(input)).toEqual(expected);
  });

  it.each([
    ['IPv4 prefix over 32', '10.0.0.0/33'],
    ['IPv6 prefix over 128', '2001:db8::/129'],
    ['negative prefix', '10.0.0.0/-1'],
    ['empty prefix', '10.0.0.0/'],
    ['non-numeric prefix', '10.0.0.0/eight'],
    ['four-digit prefix', '10.0.0.0/0008'],
    ['not an address', 'office/24'],
    ['empty', ''],
  ])('rejects %s', (_name, input) => {
    expect(parseCidr(input)).toBeUndefined();
  });
});

describe('CidrSet', () => {
  const set = CidrSet.parse(['10.0.0.0/8', '203.0.113.7', '2001:db8:abcd::/48']);

  it.each([
    ['inside an IPv4 /8', '10.200.3.4', true],
    ['first address of the /8', '10.0.0.0', true],
    ['last address of the /8', '10.255.255.255', true],
    ['just outside the /8', '11.0.0.0', false],
    ['the single host', '203.0.113.7', true],
    ['next to the single host', '203.0.113.8', false],
    ['inside the IPv6 /48', '2001:db8:abcd:12::1', true],
    ['just outside the IPv6 /48', '2001:db8:abce::1', false],
    ['IPv4-mapped form of an allowed IPv4', '::ffff:10.1.2.3', true],
    ['IPv6 loopback', '::1', false],
  ])('%s: %s -> %s', (_name, address, expected) => {
    expect(set.contains(parseIp(address)!)).toBe(expected);
  });

  it('matches a network written with host bits set as the whole network', () => {
    const sloppy = CidrSet.parse(['10.1.2.3/16']);
    expect(sloppy.contains(parseIp('10.1.200.1')!)).toBe(true);
    expect(sloppy.contains(parseIp('10.2.0.1')!)).toBe(false);
  });

  it('an empty set contains nothing', () => {
    const empty = new CidrSet([]);
    expect(empty.contains(parseIp('10.0.0.1')!)).toBe(false);
    expect(empty.contains(parseIp('::1')!)).toBe(false);
  });

  it('0.0.0.0/0 does not admit IPv6 clients, ::/0 does', () => {
    expect(CidrSet.parse(['0.0.0.0/0']).contains(parseIp('2001:db8::1')!)).toBe(false);
    expect(CidrSet.parse(['::/0']).contains(parseIp('2001:db8::1')!)).toBe(true);
  });

  it('keeps the parsed CIDRs', () => {
    expect(set.cidrs).toEqual([
      { network: '10.0.0.0', prefix: 8, family: 'ipv4' },
      { network: '203.0.113.7', prefix: 32, family: 'ipv4' },
      { network: '2001:db8:abcd::', prefix: 48, family: 'ipv6' },
    ]);
  });

  it('names the offending entry when parsing fails', () => {
    expect(() => CidrSet.parse(['10.0.0.0/8', '10.0.0.0/40'])).toThrow("'10.0.0.0/40' is not an IPv4 or IPv6 CIDR");
  });
});

/**
 * An IPv4 caller is admitted only by an IPv4 rule (or a rule written in the IPv4-mapped range
 * ::ffff:0:0/96 with a prefix of 96 or more, which is read as the IPv4 rule it spells). Node's BlockList
 * alone would match IPv4 against any IPv6 rule covering ::ffff:0:0/96 (`::/0` among them), and IPv4-mapped
 * IPv6 against IPv4 rules.
 */
describe('CidrSet: address families do not cross', () => {
  it.each([
    // ::/0 means "any IPv6", never IPv4, however the IPv4 caller is written
    ['::/0', '203.0.113.5', false],
    ['::/0', '0.0.0.0', false],
    ['::/0', '::ffff:203.0.113.5', false],
    ['::/0', '::ffff:cb00:7105', false],
    ['::/0', '0:0:0:0:0:ffff:203.0.113.5', false],
    ['::/0', '2001:db8::1', true],
    ['::/0', '::1', true],
    ['::/0', '::', true],
    // IPv6 rules that cover the mapped range but are wider than it stay IPv6 rules
    ['::/80', '203.0.113.5', false],
    ['::ffff:0:0/95', '203.0.113.5', false],
    ['::ffff:0:0/95', '::ffff:0:1', false],
    // an explicit IPv4-mapped rule (prefix >= 96) is the IPv4 rule it spells
    ['::ffff:0:0/96', '203.0.113.5', true],
    ['::ffff:0:0/96', '::ffff:203.0.113.5', true],
    ['::ffff:0:0/96', '2001:db8::1', false],
    ['::ffff:0:0/96', '::1', false],
    ['::ffff:10.0.0.0/104', '10.9.8.7', true],
    ['::ffff:10.0.0.0/104', '::ffff:10.9.8.7', true],
    ['::ffff:10.0.0.0/104', '11.0.0.1', false],
    ['::FFFF:a00:0/104', '10.9.8.7', true],
    ['::ffff:203.0.113.5/128', '203.0.113.5', true],
    ['::ffff:203.0.113.5/128', '203.0.113.6', false],
    ['::ffff:203.0.113.5', '203.0.113.5', true],
    // 0.0.0.0/0 means "any IPv4", never IPv6
    ['0.0.0.0/0', '2001:db8::1', false],
    ['0.0.0.0/0', '::1', false],
    ['0.0.0.0/0', '::', false],
    ['0.0.0.0/0', '64:ff9b::cb00:7105', false],
    ['0.0.0.0/0', '::203.0.113.5', false],
    ['0.0.0.0/0', '203.0.113.5', true],
    ['0.0.0.0/0', '::ffff:203.0.113.5', true],
    ['10.0.0.0/8', '::ffff:a00:1', true],
    ['10.0.0.0/8', '::10.0.0.1', false],
    // single hosts, /32 and /128
    ['203.0.113.5/32', '203.0.113.5', true],
    ['203.0.113.5/32', '203.0.113.4', false],
    ['2001:db8::1/128', '2001:db8::1', true],
    ['2001:db8::1/128', '2001:DB8:0:0:0:0:0:1', true],
    ['2001:db8::1/128', '2001:db8::2', false],
    // a link-local caller with a zone id matches by its address
    ['fe80::/10', 'fe80::1%eth0', true],
    ['fe80::/10', 'fe80::1%1', true],
    ['::/0', 'fe80::1%eth0', true],
    ['0.0.0.0/0', 'fe80::1%eth0', false],
    ['2001:db8::/32', 'fe80::1%eth0', false],
  ])('%s admits %s: %s', (rule, caller, expected) => {
    const ip = parseIp(caller);
    expect(ip).toBeDefined();
    expect(CidrSet.parse([rule]).contains(ip!)).toBe(expected);
  });

  it('a set with both families admits each family only by its own rules', () => {
    const both = CidrSet.parse(['10.0.0.0/8', '2001:db8::/32']);
    expect(both.contains(parseIp('10.1.1.1')!)).toBe(true);
    expect(both.contains(parseIp('::ffff:10.1.1.1')!)).toBe(true);
    expect(both.contains(parseIp('2001:db8::5')!)).toBe(true);
    expect(both.contains(parseIp('11.1.1.1')!)).toBe(false);
    expect(both.contains(parseIp('2001:db9::5')!)).toBe(false);
  });

  it.each([
    ['::ffff:10.0.0.0/104', { network: '10.0.0.0', prefix: 8, family: 'ipv4' }],
    ['::ffff:0:0/96', { network: '0.0.0.0', prefix: 0, family: 'ipv4' }],
    ['::ffff:203.0.113.5/128', { network: '203.0.113.5', prefix: 32, family: 'ipv4' }],
    ['::ffff:0:0/95', { network: '::ffff:0:0', prefix: 95, family: 'ipv6' }],
    ['::/0', { network: '::', prefix: 0, family: 'ipv6' }],
  ] as const)('parseCidr reads %s as %o', (input, expected) => {
    expect(parseCidr(input)).toEqual(expected);
  });

  it.each([
    ['a zone id on a network', 'fe80::%eth0/10'],
    ['a zone id after the prefix', 'fe80::/10%eth0'],
    ['a zone id on a bare address', 'fe80::1%eth0'],
    ['a zone id on IPv4', '10.0.0.1%eth0'],
    ['an IPv4-mapped network with a prefix over 128', '::ffff:10.0.0.0/129'],
    ['an empty prefix after ::', '::/'],
    ['a prefix alone', '/0'],
    ['two prefixes', '10.0.0.0/8/8'],
    ['a triple colon', ':::/0'],
  ])('parseCidr rejects %s', (_name, input) => {
    expect(parseCidr(input)).toBeUndefined();
  });

  it.each([
    ['a zone id is dropped', 'fe80::1%eth0', { address: 'fe80::1', family: 'ipv6' }],
    ['a hex IPv4-mapped address folds to IPv4', '::ffff:a00:1', { address: '10.0.0.1', family: 'ipv4' }],
    ['a long-form IPv4-mapped address folds to IPv4', '0:0:0:0:0:FFFF:10.0.0.1', { address: '10.0.0.1', family: 'ipv4' }],
    ['an IPv4-compatible address stays IPv6', '::10.0.0.1', { address: '::10.0.0.1', family: 'ipv6' }],
  ] as const)('parseIp: %s', (_name, input, expected) => {
    expect(parseIp(input)).toEqual(expected);
  });

  it.each([
    ['an empty zone id', 'fe80::1%'],
    ['a zone id on IPv4', '10.0.0.1%eth0'],
    ['a zone id with a space', 'fe80::1%eth 0'],
  ])('parseIp rejects %s', (_name, input) => {
    expect(parseIp(input)).toBeUndefined();
  });
});
