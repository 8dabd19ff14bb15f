/**
 * @module This replica's part in the cluster: its member address, the live member list, who owns a
 * digest or a tag (rendezvous), and the peer client, offered to the pull layer as its Peers, with
 * metrics and log lines of what the peers answered and where they fell short. Loaded only when the
 * config has `cluster:` (runtime.ts imports it on demand).
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { ConfigError } from '../config-error.js';
import type { Metrics } from '../metrics.js';
import type { Peers } from '../pull/peers.js';
import type { Route } from '../routing.js';
import { type AddressLookup, createMembership } from './membership.js';
import { selfAddress } from './peer-address.js';
import { createPeerClient, PeerError } from './peer-client.js';
import { candidates, ownerOf } from './rendezvous.js';

export interface ClusterOptions {
  config: Config & { cluster: NonNullable<Config['cluster']> };
  logger: Logger;
  metrics: Metrics;
  /** Where DNS questions go (tests); default: cluster.peers.resolver or the system's. */
  lookup?: AddressLookup;
}

export interface Cluster {
  /** This replica's member address. */
  readonly self: string;
  readonly peers: Peers;
  members(): readonly string[];
  /** Reads the member list once (and then every `refresh`). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The rendezvous key of a manifest: its digest, or the tag with its repository and registry. */
export const manifestKey = (route: Pick<Route, 'registry' | 'repository'>, reference: string) =>
  reference.includes(':') ? reference : `${route.registry}/${route.repository}:${reference}`;

export function createCluster({ config, logger, metrics, lookup }: ClusterOptions): Cluster {
  const { cluster, upstream } = config;
  const self = selfAddress(config);
  if (self === null) {
    throw new ConfigError(
      'cluster.self: cannot tell how the other members reach this replica (no address besides loopback); set cluster.self',
    );
  }
  const membership = createMembership({ self, cluster, logger, ...(lookup ? { lookup } : {}) });
  const client = createPeerClient({
    secret: cluster.secret,
    self,
    peerTimeout: cluster.peerTimeout,
    // A live owner reaching its upstream for us gets as long as it gives its upstream.
    maxWait: upstream.connectTimeout + upstream.headersTimeout,
    // The owner streams at its upstream's pace and resumes a silent one after bodyTimeout itself.
    bodyTimeout: 2 * upstream.bodyTimeout,
    tls: config.tls ? { ca: readFileSync(config.tls.cert) } : undefined,
  });

  // A member that could not be reached, did not answer or broke off is skipped for a while (until
  // the member list has been read again, likely without it), so each download does not pay its
  // timeout again.
  const downUntil = new Map<string, number>();
  const isUp = (member: string) => (downUntil.get(member) ?? 0) <= Date.now();

  const peers: Peers = {
    blobPeers(digest) {
      const ranked = candidates(digest, membership.members());
      return ranked.slice(0, ranked.indexOf(self)).filter(isUp);
    },
    async openBlob(peer, route, digest, offset) {
      const part = await client.openBlob(peer, route, digest, offset);
      metrics.peerRequests.inc({ peer, direction: 'fetched', kind: 'blob' });
      return part;
    },
    async statBlob(peer, route, digest) {
      const size = await client.statBlob(peer, route, digest);
      metrics.peerRequests.inc({ peer, direction: 'fetched', kind: 'blob' });
      return size;
    },
    manifestOwner(route, reference) {
      const owner = ownerOf(manifestKey(route, reference), membership.members());
      return owner === self || !isUp(owner) ? null : owner;
    },
    async getManifest(peer, route, reference, accept) {
      const manifest = await client.getManifest(peer, route, reference, accept);
      metrics.peerRequests.inc({ peer, direction: 'fetched', kind: 'manifest' });
      return manifest;
    },
    fetched(peer, bytes) {
      metrics.peerBytes.inc({ peer, direction: 'fetched' }, bytes);
    },
    fellBack(peer, kind, error) {
      // Not a PeerError: the bytes it sent did not verify, or its stream ended before the last byte.
      const reason =
        error instanceof PeerError
          ? error.reason
          : (error as { code?: string }).code === 'DIGEST_INVALID'
            ? 'invalid'
            : 'broken';
      metrics.peerFallbacks.inc({ kind, reason });
      if (reason !== 'answer') downUntil.set(peer, Date.now() + cluster.refresh);
      // An error answer is the peer's upstream speaking (404, 401): worth a line, not a warning.
      logger[reason === 'answer' ? 'info' : 'warn'](
        { peer, kind, reason, error: (error as Error).message },
        'peer could not serve: asking the next source',
      );
    },
  };

  return {
    self,
    peers,
    members: () => membership.members(),
    start: () => membership.start(),
    async stop() {
      membership.stop();
      await client.close();
    },
  };
}
