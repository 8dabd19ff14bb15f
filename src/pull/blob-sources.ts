/**
 * @module Where a blob download takes its bytes from, attempt by attempt: the peers ranked above
 * this replica for the digest (the owner first), then the upstream. A peer that refuses, answers
 * too slowly or breaks off mid-stream is not asked again by that download: the next attempt resumes
 * from the bytes already received, from the next source. A download for a peer request goes to the
 * upstream directly: peer requests are never forwarded, so they cannot go round in circles.
 */
import type { BlobPart } from '../content.js';
import type { Route } from '../routing.js';
import type { Passed } from '../upstream/remote-registry.js';
import type { Upstreams } from '../upstream/upstreams.js';
import type { Peers } from './peers.js';

/** One download's sources; `fetch` is BlobDownload's. */
export interface BlobSource {
  /** The blob from `offset` on, from the first source that answers. */
  fetch(offset: number): Promise<BlobPart>;
  /** The peer the current attempt reads from; null for the upstream (and before the first answer). */
  readonly peer: string | null;
  /** Whether the first answer (the one the download's writer is created for) came from a peer. */
  readonly firstFromPeer: boolean;
  /** The download's bytes did not verify: every peer that sent some of them is reported. */
  blame(error: unknown): void;
}

// The owner and the one after it: with the owner gone, the next in line is the replica its other
// clients fell back to, whose download this one can join. More would mostly add their timeouts.
const MAX_PEERS = 2;

export interface BlobSources {
  /** Sources for one download; `forPeer`: it serves a peer's request, so only the upstream is asked. */
  open(route: Route, digest: string, forPeer: boolean): BlobSource;
  /** The blob's size: from its owner when that is another member, else (or failing that) the upstream. */
  stat(route: Route, digest: string, forPeer: boolean): Promise<{ size: number } & Passed>;
}

export function createBlobSources(upstreams: Upstreams, peers: Peers | undefined): BlobSources {
  return {
    open(route, digest, forPeer) {
      const tried = new Set<string>();
      const answered: string[] = [];
      let current: string | null = null;
      let firstFromPeer = false;
      let attempts = 0;
      const nextPeer = (): string | undefined => {
        if (!peers || forPeer || tried.size >= MAX_PEERS) return undefined;
        // Read again at every attempt: a member that left since the last one is not asked.
        return peers.blobPeers(digest).find((peer) => !tried.has(peer));
      };
      return {
        get peer() {
          return current;
        },
        get firstFromPeer() {
          return firstFromPeer;
        },
        blame(error) {
          for (const peer of answered) peers!.fellBack(peer, 'blob', error);
        },
        async fetch(offset) {
          attempts++;
          // Asked again after a peer answered: it did not deliver the whole blob.
          if (current !== null) peers!.fellBack(current, 'blob', new Error('broke off mid-stream'));
          current = null;
          for (let peer = nextPeer(); peer !== undefined; peer = nextPeer()) {
            tried.add(peer);
            try {
              const part = await peers!.openBlob(peer, route, digest, offset);
              current = peer;
              answered.push(peer);
              if (attempts === 1) firstFromPeer = true;
              return part;
            } catch (error) {
              peers!.fellBack(peer, 'blob', error);
            }
          }
          return upstreams.get(route.registry).openBlob(route.repository, digest, { offset });
        },
      };
    },

    async stat(route, digest, forPeer) {
      const owner = peers && !forPeer ? peers.blobPeers(digest)[0] : undefined;
      if (owner !== undefined) {
        try {
          return { size: await peers!.statBlob(owner, route, digest), passed: {} };
        } catch (error) {
          peers!.fellBack(owner, 'blob', error);
        }
      }
      return upstreams.get(route.registry).statBlob(route.repository, digest);
    },
  };
}
