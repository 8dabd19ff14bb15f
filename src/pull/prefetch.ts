/**
 * @module Prefetch: when an image manifest is served, the downloads of its config and layers start
 * at once in the background, so the client's blob requests (containerd asks three at a time) join
 * downloads already running. Only the manifest served is expanded: an index prefetches nothing, its
 * platform's manifest does when the client asks for it. Failures never touch the manifest answer.
 */
import type { Logger } from 'pino';
import { MEDIA_TYPES } from '../content.js';
import { parseDigest } from '../digest.js';
import type { Route } from '../routing.js';

const IMAGE_MANIFESTS = new Set<string>([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);

/** The blobs of an image manifest, or why it has none to prefetch. */
export type PrefetchPlan =
  | { blobs: { digest: string; size: number }[]; layerBytes: number }
  | { skip: 'not an image manifest' | 'not valid JSON' | 'an invalid descriptor' };

/** What prefetch decided for one served manifest (logs, tests). */
export type PrefetchOutcome =
  | { started: string[]; cached: number; running: number }
  | { skipped: string }
  | { failed: string };

/** Config first (a client reads it before the layers), then the layers in order, each digest once. */
export function prefetchPlan(mediaType: string, bytes: Buffer): PrefetchPlan {
  if (!IMAGE_MANIFESTS.has(mediaType.split(';')[0]!.trim().toLowerCase())) {
    return { skip: 'not an image manifest' };
  }
  let document: { config?: unknown; layers?: unknown };
  try {
    document = JSON.parse(bytes.toString('utf8')) as typeof document;
  } catch {
    return { skip: 'not valid JSON' };
  }
  const layers = Array.isArray(document?.layers) ? (document.layers as unknown[]) : [];
  const descriptors = [document?.config, ...layers].filter((d) => d !== undefined);
  const blobs = new Map<string, number>();
  let layerBytes = 0;
  for (const [i, descriptor] of descriptors.entries()) {
    const { digest, size } = (descriptor ?? {}) as { digest?: unknown; size?: unknown };
    if (typeof digest !== 'string' || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      return { skip: 'an invalid descriptor' };
    }
    try {
      parseDigest(digest); // a digest reaches a path and a URL only once it is valid
    } catch {
      return { skip: 'an invalid descriptor' };
    }
    blobs.set(digest, size);
    if (i > 0 || document.config === undefined) layerBytes += size;
  }
  return { blobs: [...blobs].map(([digest, size]) => ({ digest, size })), layerBytes };
}

export interface PrefetchDeps {
  /** Images whose layers add up to more than this are not prefetched. */
  maxBytes: number;
  /**
   * Starts a download kept for the cache alone: `cached` when the blob is stored, `running` when a
   * download of it is in flight already.
   */
  fetchBlob(route: Route, digest: string): Promise<'started' | 'cached' | 'running'>;
  logger: Logger;
  onPrefetch?: ((route: Route, manifest: string, outcome: PrefetchOutcome) => void) | undefined;
}

export function createPrefetch({ maxBytes, fetchBlob, logger, onPrefetch }: PrefetchDeps) {
  async function plan(route: Route, mediaType: string, bytes: Buffer): Promise<PrefetchOutcome> {
    const planned = prefetchPlan(mediaType, bytes);
    if ('skip' in planned) return { skipped: planned.skip };
    if (planned.layerBytes > maxBytes) {
      return { skipped: `its layers (${planned.layerBytes} bytes) are larger than prefetch.maxBytes` };
    }
    const started: string[] = [];
    let cached = 0;
    let running = 0;
    // One at a time: each check is a stat, and the downloads it starts run in parallel anyway.
    for (const { digest } of planned.blobs) {
      const result = await fetchBlob(route, digest);
      if (result === 'started') started.push(digest);
      else if (result === 'cached') cached++;
      else running++;
    }
    return { started, cached, running };
  }

  /** Starts the downloads of a served manifest's blobs; returns at once, never throws. */
  return function prefetch(route: Route, manifest: { digest: string; mediaType: string; bytes: Buffer }) {
    void plan(route, manifest.mediaType, manifest.bytes)
      .catch((error: unknown): PrefetchOutcome => ({ failed: (error as Error).message }))
      .then((outcome) => {
        const about = { registry: route.registry, repository: route.repository, manifest: manifest.digest };
        if ('failed' in outcome) logger.warn({ ...about, error: outcome.failed }, 'prefetch failed');
        else if ('started' in outcome && outcome.started.length > 0)
          logger.debug({ ...about, blobs: outcome.started.length }, 'prefetching blobs');
        else if ('skipped' in outcome) logger.debug({ ...about, reason: outcome.skipped }, 'not prefetched');
        onPrefetch?.(route, manifest.digest, outcome);
      });
  };
}
