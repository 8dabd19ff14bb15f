/** @module Manifests by tag or digest, passed through from the upstream (the disk cache slots in here). */
import type { Route } from '../routing.js';
import type { Upstreams } from '../upstream/upstreams.js';
import type { ManifestAnswer } from './types.js';

export interface ManifestOptions {
  head: boolean;
  accept: string | undefined;
}

export function createManifests(upstreams: Upstreams) {
  return {
    async manifest(route: Route, reference: string, options: ManifestOptions): Promise<ManifestAnswer> {
      const remote = upstreams.get(route.registry);
      if (options.head) {
        const head = await remote.headManifest(route.repository, reference, options.accept);
        return { ...head, bytes: null, cache: 'pass' };
      }
      const manifest = await remote.getManifest(route.repository, reference, options.accept);
      return { ...manifest, cache: 'pass' };
    },
  };
}
