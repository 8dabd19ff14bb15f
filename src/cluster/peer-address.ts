/**
 * @module How a cluster member is named: one canonical `HOST:PORT` string, so the same replica is the
 * same member (and gets the same rendezvous weights) whether it came from DNS, the config or itself.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

export interface PeerAddress {
  /** An IP address (IPv6 without brackets) or a lower-case host name. */
  host: string;
  port: number;
}

const HOST_NAME_RE =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Whether `name` is a DNS host name (letters, digits and inner hyphens, dot-separated). */
export function isHostName(name: string): boolean {
  return HOST_NAME_RE.test(name.toLowerCase());
}

/** `10.0.0.11:5000`, `[fd00::1]:5000` or `pullcache-0.peers:5000`; null when it is none of them. */
export function parsePeerAddress(value: string): PeerAddress | null {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/.exec(value);
  if (!match) return null;
  const port = Number(match[3]);
  if (port < 1 || port > 65_535) return null;
  const host = (match[1] ?? match[2]!).toLowerCase();
  if (match[1] !== undefined ? isIP(host) !== 6 : isIP(host) !== 4 && !isHostName(host)) return null;
  return { host: canonicalHost(host), port };
}

/** The canonical member string; IPv6 in its shortest form, in brackets. */
export function formatPeerAddress({ host, port }: PeerAddress): string {
  const canonical = canonicalHost(host);
  return isIP(canonical) === 6 ? `[${canonical}]:${port}` : `${canonical}:${port}`;
}

/** IPv6 written any way (`fd00:0::1`, `FD00::1`) becomes the one form DNS answers use (`fd00::1`). */
function canonicalHost(host: string): string {
  if (isIP(host) !== 6) return host.toLowerCase();
  return new URL(`http://[${host}]/`).hostname.slice(1, -1);
}

const WILDCARDS = new Set(['', '0.0.0.0', '::', '[::]']);

/**
 * How the others reach this replica when `cluster.self` is not set: the `listen` host when it is a
 * real address; for a wildcard listen, the machine's first non-internal IPv4 address (a pod has one,
 * on eth0), else its first IPv6 one. Null when there is none: then `cluster.self` must be set.
 */
export function deriveSelf(
  listen: string,
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
  port = Number(listen.slice(listen.lastIndexOf(':') + 1)),
): string | null {
  const host = listen.slice(0, listen.lastIndexOf(':'));
  if (!WILDCARDS.has(host)) {
    const parsed = parsePeerAddress(`${host}:${port}`);
    return parsed ? formatPeerAddress(parsed) : null;
  }
  const addresses = Object.values(interfaces)
    .flatMap((list) => list ?? [])
    .filter((a) => !a.internal && !(a.family === 'IPv6' && a.scopeid !== undefined && a.scopeid !== 0));
  const chosen = addresses.find((a) => a.family === 'IPv4') ?? addresses.find((a) => a.family === 'IPv6');
  return chosen ? formatPeerAddress({ host: chosen.address, port }) : null;
}

/**
 * This replica's member address: `cluster.self`, else derived from `listen`, at `cluster.port` in
 * dns mode (the others reach every member at that port) and at the listen port with a static list.
 */
export function selfAddress(
  config: {
    listen: string;
    cluster: { self?: string | undefined; port: number; peers: { dns?: string | undefined } };
  },
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): string | null {
  const { cluster, listen } = config;
  if (cluster.self !== undefined) return cluster.self;
  return deriveSelf(listen, interfaces, cluster.peers.dns !== undefined ? cluster.port : undefined);
}

/** A DNS server as node's `Resolver.setServers` takes it: `IP`, `IPv4:PORT` or `[IPv6]:PORT`. */
export function isDnsServer(value: string): boolean {
  if (isIP(value) !== 0) return true;
  const parsed = parsePeerAddress(value);
  return parsed !== null && isIP(parsed.host) !== 0;
}
