/** @module Client address allow-lists: CIDRs parsed once into a node:net BlockList. */
import { BlockList, isIP } from 'node:net';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

export function parseCidr(value: string): Cidr | null {
  const [address = '', prefixText] = value.split('/');
  const version = isIP(address);
  if (version === 0) return null;
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText ?? String(max)) || prefix > max) return null;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** A matcher for client addresses; IPv4-mapped IPv6 addresses (::ffff:10.0.0.1) match IPv4 ranges. */
export function createAllowList(cidrs: string[]): (address: string | undefined) => boolean {
  const list = new BlockList();
  for (const value of cidrs) {
    const cidr = parseCidr(value);
    if (cidr) list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return (address) => {
    if (!address) return false;
    const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const version = isIP(plain);
    return version !== 0 && list.check(plain, version === 4 ? 'ipv4' : 'ipv6');
  };
}
