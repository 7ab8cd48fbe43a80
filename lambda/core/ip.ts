import { BlockList, isIP } from 'node:net';

/**
 * IP and CIDR helpers on top of node:net (no dependency). IPv4-mapped IPv6 addresses (::ffff:a.b.c.d),
 * which dual-stack sockets report for IPv4 peers, are folded to plain IPv4 so one allow-list serves both,
 * and an IPv4 address is admitted only by an IPv4 rule.
 */
export type IpFamily = 'ipv4' | 'ipv6';

export interface ParsedIp {
  readonly address: string;
  readonly family: IpFamily;
}

/** A zone id (`fe80::1%eth0`, `%1`): names the interface a link-local peer was reached on. */
const ZONE = /^[A-Za-z0-9_.-]{1,32}$/;

/**
 * The IPv4 address an IPv4-mapped IPv6 address (::ffff:0:0/96) carries, however it is written
 * (`::ffff:10.0.0.1`, `::ffff:a00:1`, `0:0:0:0:0:ffff:10.0.0.1`); undefined for any other IPv6 address.
 */
function mappedV4(v6: string): string | undefined {
  // Every spelling of a mapped address has an ffff group; the URL parser gives the canonical form.
  if (!/ffff/i.test(v6)) return undefined;
  const canonical = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(new URL(`http://[${v6}]/`).hostname);
  if (!canonical) return undefined;
  const high = parseInt(canonical[1]!, 16);
  const low = parseInt(canonical[2]!, 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/**
 * Parses a bare address; returns undefined for anything that is not an IPv4 or IPv6 address. An IPv4-mapped
 * IPv6 address is its IPv4 address (family ipv4); an IPv6 zone id is dropped (the address bits decide).
 */
export function parseIp(input: string): ParsedIp | undefined {
  if (input.length === 0 || input.length > 64) return undefined;
  const percent = input.indexOf('%');
  const bare = percent === -1 ? input : input.slice(0, percent);
  const version = isIP(bare);
  if (version === 4) return percent === -1 ? { address: bare, family: 'ipv4' } : undefined;
  if (version !== 6) return undefined;
  if (percent !== -1 && !ZONE.test(input.slice(percent + 1))) return undefined;
  const v4 = mappedV4(bare);
  return v4 ? { address: v4, family: 'ipv4' } : { address: bare.toLowerCase(), family: 'ipv6' };
}

/**
 * Parses the gateway's clientIpAddress, tolerating the forms an address is commonly written in:
 * `1.2.3.4`, `1.2.3.4:5555`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:5555`.
 */
export function parseClientAddress(input: string): ParsedIp | undefined {
  const direct = parseIp(input);
  if (direct) return direct;
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(input);
  if (bracketed) return validPort(bracketed[2]) ? parseIp(bracketed[1]!) : undefined;
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(input);
  if (v4WithPort) return validPort(v4WithPort[2]) ? parseIp(v4WithPort[1]!) : undefined;
  return undefined;
}

function validPort(text: string | undefined): boolean {
  return text === undefined || Number(text) <= 65535;
}

export interface Cidr {
  readonly network: string;
  readonly prefix: number;
  readonly family: IpFamily;
}

/**
 * Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a single-host range). A network inside the IPv4-mapped
 * range with a prefix of 96 or more (`::ffff:10.0.0.0/104`) is the IPv4 network it spells (`10.0.0.0/8`);
 * any other IPv6 network, even one covering that range (`::/0`), is IPv6 only. No zone ids.
 */
export function parseCidr(input: string): Cidr | undefined {
  const text = input.trim();
  if (text.includes('%')) return undefined;
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const ip = parseIp(addressText);
  if (!ip) return undefined;
  const spelledV6 = addressText.includes(':');
  const max = spelledV6 ? 128 : 32;
  let prefix = max;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText)) return undefined;
    prefix = Number(prefixText);
    if (prefix > max) return undefined;
  }
  if (spelledV6 && ip.family === 'ipv4') {
    // Mapped: an IPv4 rule when it lies within ::ffff:0:0/96, else the IPv6 range it is (admitting no IPv4 caller).
    if (prefix >= 96) return { network: ip.address, prefix: prefix - 96, family: 'ipv4' };
    return { network: addressText.toLowerCase(), prefix, family: 'ipv6' };
  }
  return { network: ip.address, prefix, family: ip.family };
}

/** The same address however it is written (`2001:db8::1` and `2001:0db8:0:0:0:0:0:1`), by node's own parser. */
export function sameAddress(a: ParsedIp, b: ParsedIp): boolean {
  if (a.family !== b.family) return false;
  const one = new BlockList();
  one.addAddress(a.address, a.family);
  return one.check(b.address, b.family);
}

/**
 * A compiled allow-list; checking an address costs one BlockList lookup. One list per family: a single
 * BlockList matches IPv4 against IPv6 rules covering ::ffff:0:0/96 (so `::/0` would admit all of IPv4).
 */
export class CidrSet {
  private readonly v4 = new BlockList();
  private readonly v6 = new BlockList();
  readonly cidrs: readonly Cidr[];

  constructor(cidrs: readonly Cidr[]) {
    this.cidrs = cidrs;
    for (const cidr of cidrs) (cidr.family === 'ipv4' ? this.v4 : this.v6).addSubnet(cidr.network, cidr.prefix, cidr.family);
  }

  /** Parses every entry; throws with the offending entry named, for start-up validation. */
  static parse(entries: readonly string[]): CidrSet {
    const cidrs = entries.map((entry) => {
      const cidr = parseCidr(entry);
      if (!cidr) throw new Error(`'${entry}' is not an IPv4 or IPv6 CIDR`);
      return cidr;
    });
    return new CidrSet(cidrs);
  }

  /** `ip` as parseIp gives it: an IPv4-mapped caller is already IPv4, so only IPv4 rules can admit it. */
  contains(ip: ParsedIp): boolean {
    return ip.family === 'ipv4' ? this.v4.check(ip.address, 'ipv4') : this.v6.check(ip.address, 'ipv6');
  }
}
