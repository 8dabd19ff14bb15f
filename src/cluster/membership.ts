/**
 * @module The live member list: a static list, or the A/AAAA records of a headless Service's name
 * re-read every `refresh`. Always includes this replica; a failed lookup keeps the last good list,
 * since owners computed over a stale list are better than owners shuffled by a DNS hiccup.
 */
import { promises as dns } from 'node:dns';
import type { Logger } from 'pino';
import type { ClusterConfig } from '../config.js';
import { ConfigError } from '../config-error.js';
import { formatPeerAddress } from './peer-address.js';

/** The two lookups membership makes; node's `dns.promises.Resolver` has them. */
export interface AddressLookup {
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  /** Ends lookups in flight (stop). */
  cancel(): void;
}

// Per try; two tries. A lookup slower than that has failed: the last list serves meanwhile, and the
// next refresh asks again.
const LOOKUP_TIMEOUT_MS = 1_000;
const LOOKUP_TRIES = 2;

/** Answers that mean "the name has no such records", not "DNS failed": no member of that family. */
const NO_RECORDS = new Set<string>([dns.NODATA, dns.NOTFOUND]);

/** node's resolver: the system's servers (/etc/resolv.conf), or `server` when one is configured. */
export function createAddressLookup(server?: string): dns.Resolver {
  const resolver = new dns.Resolver({ timeout: LOOKUP_TIMEOUT_MS, tries: LOOKUP_TRIES });
  if (server !== undefined) resolver.setServers([server]);
  return resolver;
}

export interface MembershipOptions {
  /** This replica, canonical `HOST:PORT` (selfAddress); with a static list, one of its entries. */
  self: string;
  cluster: Pick<ClusterConfig, 'peers' | 'port' | 'refresh'>;
  logger: Logger;
  /** Where DNS questions go; default: createAddressLookup(cluster.peers.resolver). */
  lookup?: AddressLookup;
}

export type MembersListener = (members: readonly string[], previous: readonly string[]) => void;

export interface Membership {
  /** The members now: sorted, without duplicates, always including this replica. */
  members(): readonly string[];
  /** Reads the list once (resolves when done, even if the lookup failed), then every `refresh`. */
  start(): Promise<void>;
  /** Reads the list now; concurrent calls share one lookup. */
  refresh(): Promise<void>;
  /** Called after the list changed; returns the unsubscribe function. */
  onChange(listener: MembersListener): () => void;
  /** No more lookups or change calls; a lookup in flight is cancelled. */
  stop(): void;
}

export function createMembership(options: MembershipOptions): Membership {
  const { self, cluster, logger } = options;
  const { dns: name, static: fixed } = cluster.peers;
  // The config checks a configured self; a derived one is checked here, at start.
  if (fixed !== undefined && !fixed.includes(self)) {
    throw new ConfigError(
      `cluster.self: ${self} is not one of cluster.peers.static (${fixed.join(', ')}); set cluster.self`,
    );
  }
  const listeners = new Set<MembersListener>();
  let current = normalize(fixed ?? [], self);
  let inFlight: Promise<void> | null = null;
  let timer: NodeJS.Timeout | undefined;
  let started = false;
  let stopped = false;
  // Log a failing lookup once, and once when it recovers, not every refresh.
  let failing = false;
  let alone = false;
  const lookup = name === undefined ? null : (options.lookup ?? createAddressLookup(cluster.peers.resolver));

  function update(next: readonly string[]): void {
    if (sameList(next, current)) return;
    const previous = current;
    current = next;
    logger.info({ members: next, previous }, 'cluster members changed');
    for (const listener of listeners) {
      try {
        listener(next, previous);
      } catch (error) {
        logger.error({ err: error }, 'cluster members listener failed');
      }
    }
  }

  async function read(dnsName: string, resolver: AddressLookup): Promise<void> {
    const answers = await Promise.allSettled([resolver.resolve4(dnsName), resolver.resolve6(dnsName)]);
    if (stopped) return;
    const errors = answers.flatMap((a) =>
      a.status === 'rejected' && !NO_RECORDS.has((a.reason as { code?: string }).code ?? '')
        ? [a.reason]
        : [],
    );
    if (errors.length > 0) {
      // One family failing is a failure too: half an answer would drop members that are there.
      if (!failing) {
        const codes = errors.map((e) => (e as { code?: string }).code ?? String(e));
        logger.warn(
          { name: dnsName, errors: codes, members: current },
          'cluster member lookup failed; keeping the last list',
        );
      }
      failing = true;
      return;
    }
    if (failing) logger.info({ name: dnsName }, 'cluster member lookup works again');
    failing = false;
    const addresses = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : []));
    if (addresses.length === 0 && !alone) {
      logger.warn({ name: dnsName }, 'cluster name has no A/AAAA records: this replica works alone');
    }
    alone = addresses.length === 0;
    update(
      normalize(
        addresses.map((host) => formatPeerAddress({ host, port: cluster.port })),
        self,
      ),
    );
  }

  function schedule(): void {
    if (stopped || lookup === null) return;
    timer = setTimeout(() => {
      refresh().then(schedule, schedule);
    }, cluster.refresh);
    // Re-reading the list is no reason to keep the process alive.
    timer.unref();
  }

  function refresh(): Promise<void> {
    if (stopped || name === undefined || lookup === null) return Promise.resolve();
    inFlight ??= read(name, lookup).finally(() => {
      inFlight = null;
    });
    return inFlight;
  }

  return {
    members: () => current,
    async start() {
      if (started) return;
      started = true;
      await refresh();
      schedule();
    },
    refresh,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      listeners.clear();
      lookup?.cancel();
    },
  };
}

/** Sorted, deduplicated, with this replica: the same set gives the same list on every replica. */
function normalize(members: readonly string[], self: string): readonly string[] {
  return Object.freeze([...new Set([...members, self])].sort());
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((member, i) => member === b[i]);
}
