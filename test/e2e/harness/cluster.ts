/**
 * @module Replicas of one pullcache cluster as separate processes, like pods behind a headless
 * Service: each on the same port at its own loopback address (127.0.0.2, .3, ...: all of 127/8 is
 * loopback), found through a name dnsmasq answers with their A records. The secret comes from the
 * environment, as a Kubernetes Secret would pass it.
 */
import { formatPeerAddress } from '../../../src/cluster/peer-address.js';
import type { Dnsmasq } from './dnsmasq.js';
import { freePort } from './ports.js';
import { type Pullcache, type PullcacheOptions, startPullcache } from './pullcache.js';

export const CLUSTER_SECRET = 'an-e2e-cluster-secret-0123456789abcdef';
// Short, so a member list change is seen within a second.
const REFRESH = '300ms';

export interface Replica extends Pullcache {
  /** Its member address, `127.0.0.2:PORT`, as rendezvous names it. */
  member: string;
}

export interface ClusterOptions {
  registries: PullcacheOptions['registries'];
  dns: Dnsmasq;
  /** The Service-like name (default pullcache-peers.e2e.test). */
  name?: string;
  /** More YAML for every replica (a cache section, limits). */
  extraYaml?: string;
  /** More `storage:` keys for every replica (`s3`: one bucket they share). */
  storage?: Record<string, unknown>;
  /** More environment for every replica (the bucket's credentials). */
  env?: Record<string, string>;
}

export interface ClusterHarness {
  name: string;
  port: number;
  /** Running replicas by member address. */
  replicas: Map<string, Replica>;
  /** The member address of a loopback address. */
  memberOf(address: string): string;
  /**
   * Starts a replica at `address` (its DNS record is `publish`'s business), on `storageDir` when
   * given (a stopped replica's, to start it again on what it left).
   */
  start(address: string, options?: { storageDir?: string }): Promise<Replica>;
  /** The name resolves to exactly these addresses (once dnsmasq has re-read its file). */
  publish(addresses: string[]): Promise<void>;
  /** Stops one replica (SIGTERM, or SIGKILL with `kill`), keeping its storage for inspection. */
  stopReplica(member: string, options?: { kill?: boolean }): Promise<void>;
  stop(): Promise<void>;
}

export async function startCluster(options: ClusterOptions): Promise<ClusterHarness> {
  const name = options.name ?? 'pullcache-peers.e2e.test';
  const port = await freePort('0.0.0.0');
  const replicas = new Map<string, Replica>();
  const stopped: Replica[] = [];
  const memberOf = (address: string) => formatPeerAddress({ host: address, port });
  const yaml = [
    'cluster:',
    `  peers: { dns: ${JSON.stringify(name)}, resolver: ${JSON.stringify(options.dns.server)} }`,
    `  port: ${port}`,
    '  secret: "${PULLCACHE_PEER_SECRET}"',
    `  refresh: ${REFRESH}`,
    // Not the 500ms default: on these shared 2-core machines a live member can be starved that long,
    // and would be taken for a silent one (costing a second upstream download).
    '  peerTimeout: 2s',
    ...(options.extraYaml ? [options.extraYaml] : []),
  ].join('\n');

  return {
    name,
    port,
    replicas,
    memberOf,
    async start(address, { storageDir } = {}) {
      const proxy = await startPullcache({
        registries: options.registries,
        listen: `${address}:${port}`,
        extraYaml: yaml,
        env: { ...options.env, PULLCACHE_PEER_SECRET: CLUSTER_SECRET },
        ...(options.storage ? { storage: options.storage } : {}),
        ...(storageDir ? { storageDir } : {}),
      });
      const replica = { ...proxy, member: memberOf(address) };
      replicas.set(replica.member, replica);
      return replica;
    },
    publish: (addresses) => options.dns.setRecords(name, addresses),
    async stopReplica(member, { kill = false } = {}) {
      const replica = replicas.get(member);
      if (!replica) throw new Error(`no replica ${member}`);
      replicas.delete(member);
      stopped.push(replica);
      if (kill) process.kill(replica.process.pid, 'SIGKILL');
      await replica.process.stop();
    },
    async stop() {
      for (const replica of [...replicas.values(), ...stopped]) await replica.stop();
      replicas.clear();
    },
  };
}
