/** @module The pull-through layer: one object answering every pull the HTTP layer routes to it. */
import type { Upstreams } from '../upstream/upstreams.js';
import { createBlobs } from './blobs.js';
import { createListings } from './listings.js';
import { createManifests } from './manifests.js';

export function createPuller(upstreams: Upstreams) {
  return { ...createManifests(upstreams), ...createBlobs(upstreams), ...createListings(upstreams) };
}

export type Puller = ReturnType<typeof createPuller>;
