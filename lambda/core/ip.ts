import { BlockList, isIP } from 'node:net';

/**
 * IP and CIDR helpers on top of node:net (no dependency). IPv4-mapped IPv6 addresses (::ffff:a.b.c.d),
 * which dual-stack sockets report for IPv4 peers, are folded to plain IPv4 so one allow-list serves both.
 */
export type IpFamily = 'ipv4' | 'ipv6';

export interface ParsedIp {
  readonly address: string;
  readonly family: IpFamily;
}

const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** Parses a bare address; returns undefined for anything that is not an IPv4 or IPv6 address. */
export function parseIp(input: string): ParsedIp | undefined {
  if (input.length === 0 || input.length > 64) return undefined;
  const mapped = MAPPED_V4.exec(input);
  const candidate = mapped ? mapped[1]! : input;
  const version = isIP(candidate);
  if (version === 4) return { address: candidate, family: 'ipv4' };
  if (version === 6) return { address: candidate.toLowerCase(), family: 'ipv6' };
  return undefined;
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

/** Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a single-host range). */
export function parseCidr(input: string): Cidr | undefined {
  const text = input.trim();
  const slash = text.indexOf('/');
  const ip = parseIp(slash === -1 ? text : text.slice(0, slash));
  if (!ip) return undefined;
  const max = ip.family === 'ipv4' ? 32 : 128;
  if (slash === -1) return { network: ip.address, prefix: max, family: ip.family };
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > max) return undefined;
  return { network: ip.address, prefix, family: ip.family };
}

/** The same address however it is written (`2001:db8::1` and `2001:0db8:0:0:0:0:0:1`), by node's own parser. */
export function sameAddress(a: ParsedIp, b: ParsedIp): boolean {
  if (a.family !== b.family) return false;
  const one = new BlockList();
  one.addAddress(a.address, a.family);
  return one.check(b.address, b.family);
}

/** A compiled allow-list; checking an address costs one BlockList lookup. */
export class CidrSet {
  private readonly list = new BlockList();
  readonly cidrs: readonly Cidr[];

  constructor(cidrs: readonly Cidr[]) {
    this.cidrs = cidrs;
    for (const cidr of cidrs) this.list.addSubnet(cidr.network, cidr.prefix, cidr.family);
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

  contains(ip: ParsedIp): boolean {
    return this.list.check(ip.address, ip.family);
  }
}
