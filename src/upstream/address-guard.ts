/**
 * @module Keeps upstream connections (registries, their redirects, token realms) away from link-local
 * and cloud metadata addresses, judged on the addresses a socket would really use (after DNS).
 */
import { lookup as dnsLookup } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import type { buildConnector as ConnectorTypes } from 'undici';
// undici's connector alone (its index loads fetch, WebSocket, caches: see http-agent.ts).
import buildConnector from 'undici/lib/core/connect.js';

/** The `code` of the error a refused connection fails with (transport-error.ts names it). */
export const ADDRESS_FORBIDDEN = 'PULLCACHE_ADDRESS_FORBIDDEN';

export interface AddressForbiddenError extends Error {
  code: typeof ADDRESS_FORBIDDEN;
  /** The host name (or IP literal) the connection was for. */
  host: string;
  /** The address it resolved to that is refused. */
  address: string;
}

// Loopback and private ranges stay allowed: tests, sidecars and in-cluster registries use them.
const FORBIDDEN = new BlockList();
FORBIDDEN.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local; AWS, GCP, Azure, OCI metadata at .169.254
FORBIDDEN.addAddress('100.100.100.200', 'ipv4'); // Alibaba Cloud metadata
FORBIDDEN.addSubnet('fe80::', 10, 'ipv6'); // link-local
FORBIDDEN.addAddress('fd00:ec2::254', 'ipv6'); // AWS metadata over IPv6 (Nitro)

/** Whether `address` (an IP literal, IPv6 with or without brackets/zone) is link-local or metadata. */
export function isForbiddenAddress(address: string): boolean {
  const plain = address.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const version = isIP(plain);
  if (version === 4) return FORBIDDEN.check(plain, 'ipv4');
  if (version !== 6) return false;
  const embedded = embeddedIpv4(plain);
  if (embedded !== undefined) return FORBIDDEN.check(embedded, 'ipv4');
  return FORBIDDEN.check(plain, 'ipv6');
}

/**
 * The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) or NAT64
 * (64:ff9b::a.b.c.d) IPv6 address, in either notation: each reaches that IPv4 host.
 */
function embeddedIpv4(ipv6: string): string | undefined {
  const groups = expandIpv6(ipv6);
  const low = `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  const zeros = (n: number) => groups.slice(0, n).every((g) => g === 0);
  if (zeros(5) && groups[5] === 0xffff) return low;
  if (zeros(6) && (groups[6] !== 0 || groups[7]! > 1)) return low; // not :: or ::1
  if (groups[0] === 0x64 && groups[1] === 0xff9b && groups.slice(2, 6).every((g) => g === 0)) return low;
  return undefined;
}

/** The eight 16-bit groups of a valid IPv6 address (isIP already said it is one). */
function expandIpv6(ipv6: string): number[] {
  let text = ipv6.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

function forbidden(host: string, address: string): AddressForbiddenError {
  const error = new Error(
    `${host} is a link-local or cloud metadata address (${address}): connection refused`,
  ) as AddressForbiddenError;
  error.code = ADDRESS_FORBIDDEN;
  error.host = host;
  error.address = address;
  return error;
}

/** `lookup`, failing when any address the name resolves to is forbidden (a name is judged whole). */
export function guardedLookup(lookup: LookupFunction = dnsLookup): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, options, (error, address, family) => {
      if (error) return callback(error, address, family);
      const addresses = Array.isArray(address) ? address.map((a) => a.address) : [address];
      const refused = addresses.find(isForbiddenAddress);
      if (refused !== undefined) return callback(forbidden(hostname, refused), address, family);
      callback(null, address, family);
    });
  };
}

export interface GuardedConnectorOptions {
  /** Connect timeout, milliseconds. */
  timeout: number;
  /** DNS lookup to use (tests map names to addresses); node:dns lookup otherwise. */
  lookup?: LookupFunction | undefined;
}

/**
 * An undici connector that refuses forbidden addresses: IP literals before any socket exists (Node
 * does not call `lookup` for them), names right after resolution, on the addresses the socket then
 * uses, so a name that re-resolves (DNS rebinding) is judged on what it is connected to.
 */
export function createGuardedConnector(options: GuardedConnectorOptions): ConnectorTypes.connector {
  const connect = buildConnector({ timeout: options.timeout, lookup: guardedLookup(options.lookup) });
  return (target, callback) => {
    const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
    if (isIP(host) !== 0 && isForbiddenAddress(host)) {
      callback(forbidden(host, host), null);
      return;
    }
    connect(target, callback);
  };
}
