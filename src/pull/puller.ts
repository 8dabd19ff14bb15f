/** @module The pull-through layer: one object answering every pull the HTTP layer routes to it. */
import type { Logger } from 'pino';
import type { ContentStore } from '../cache/content-store.js';
import type { Config } from '../config.js';
import type { Upstreams } from '../upstream/upstreams.js';
import { type BlobsDeps, createBlobs } from './blobs.js';
import { createListings } from './listings.js';
import { createManifests } from './manifests.js';
import type { Peers } from './peers.js';
import { createPrefetch, type PrefetchDeps } from './prefetch.js';
import { mapPullFailure } from './pull-failure.js';
import { createReferrers } from './referrers.js';
import type { PullEvents } from './types.js';

export interface PullerDeps {
  config: Pick<Config, 'cache' | 'limits' | 'prefetch'>;
  upstreams: Upstreams;
  store: ContentStore;
  logger: Logger;
  now?: () => number;
  onDownload?: BlobsDeps['onDownload'];
  events?: PullEvents;
  /** The cluster's other members, asked before the upstream; absent: this replica is alone. */
  peers?: Peers | undefined;
  /** Called with what prefetch decided for each image manifest served (tests). */
  onPrefetch?: PrefetchDeps['onPrefetch'];
}

export function createPuller(deps: PullerDeps) {
  const { upstreams, store, logger, events, now, onDownload, peers } = deps;
  const blobs = createBlobs({
    upstreams,
    store,
    logger,
    peers,
    downloadsPerRegistry: deps.config.limits.downloadsPerRegistry,
    ...(onDownload ? { onDownload } : {}),
    ...(events ? { events } : {}),
  });
  const manifests = createManifests({
    upstreams,
    store,
    logger,
    peers,
    tagTTL: deps.config.cache.tagTTL,
    serveDeletedTags: deps.config.cache.serveDeletedTags,
    ...(now ? { now } : {}),
    ...(events ? { events } : {}),
  });
  const listings = createListings(upstreams);
  const prefetch = deps.config.prefetch.layers
    ? createPrefetch({
        maxBytes: deps.config.prefetch.maxBytes,
        fetchBlob: blobs.prefetch,
        logger,
        onPrefetch: deps.onPrefetch,
      })
    : null;
  const referrers = createReferrers({
    upstreams,
    store,
    logger,
    manifest: manifests.manifest,
    tagTTL: deps.config.cache.tagTTL,
    ...(now ? { now } : {}),
  });
  // The layer's one error boundary: whatever fails below, the client gets a RegistryError.
  return {
    async manifest(...args: Parameters<typeof manifests.manifest>) {
      const answer = await mapPullFailure(args[0].registry, manifests.manifest(...args));
      // A GET means the client is pulling (a HEAD may only check whether a tag moved).
      if (prefetch && answer.bytes) prefetch(args[0], { ...answer, bytes: answer.bytes });
      return answer;
    },
    blob: (...args: Parameters<typeof blobs.blob>) => mapPullFailure(args[0].registry, blobs.blob(...args)),
    tags: (...args: Parameters<typeof listings.tags>) =>
      mapPullFailure(args[0].registry, listings.tags(...args)),
    referrers: (...args: Parameters<typeof referrers.referrers>) =>
      mapPullFailure(args[0].registry, referrers.referrers(...args)),
    inflightCount: blobs.inflightCount,
    downloads: blobs.downloads,
    stopDownloads: blobs.stopDownloads,
    stats: () => ({ ...store.stats(), downloadsInFlight: blobs.inflightCount() }),
  };
}

export type Puller = ReturnType<typeof createPuller>;
