/**
 * @module What the pull layer asks of the cluster (cluster/cluster.ts implements it): which members
 * to ask for a blob or a tag before the upstream, and their answers. A peer is one more source of
 * verified bytes: every failure of one (refused, slow, broken off, a bad answer) is reported here and
 * the pull layer goes on to its next source; nothing a peer does reaches a client as an error.
 */
import type { BlobPart, Manifest } from '../content.js';
import type { Route } from '../routing.js';

export interface Peers {
  /**
   * Members to ask for this blob before the upstream, best first: those ranked above this replica
   * for the digest (none when it is the owner), so every replica falls back in the same order.
   */
  blobPeers(digest: string): readonly string[];
  /** The blob from `offset` on, as the peer serves it (from its store or its own download). */
  openBlob(peer: string, route: Route, digest: string, offset: number): Promise<BlobPart>;
  /** The blob's size as the peer knows it (its store, its download, or its upstream HEAD). */
  statBlob(peer: string, route: Route, digest: string): Promise<number>;
  /**
   * The member that fetches this manifest (a tag: and revalidates it) for the cluster, when it is
   * another one; null for this replica.
   */
  manifestOwner(route: Route, reference: string): string | null;
  /** The manifest as its owner serves it, verified against its digest (the one a tag's owner names). */
  getManifest(peer: string, route: Route, reference: string, accept: string | undefined): Promise<Manifest>;
  /** A peer could not serve (`error` says why): the next source is asked. For metrics and the log. */
  fellBack(peer: string, what: 'blob' | 'manifest', error: unknown): void;
  /** Blob bytes received from a peer (metrics). */
  fetched(peer: string, bytes: number): void;
}
