/**
 * @module Blobs by digest: local first, forever. A miss starts one shared upstream download per
 * digest, which every client (whole or Range) joins and streams from as bytes arrive; the verified
 * blob is then served from disk.
 */
import type { Logger } from 'pino';
import { parseContentRange, type RangeSpec, resolveRange } from '../byte-range.js';
import type { DiskStore } from '../cache/disk-store.js';
import type { ByteRange } from '../content.js';
import { parseDigest } from '../digest.js';
import { RegistryError, upstreamInvalid } from '../errors.js';
import type { Route } from '../routing.js';
import type { Upstreams } from '../upstream/upstreams.js';
import { BlobDownload, type UpstreamPart } from './blob-download.js';
import { createDownloadSource } from './download-source.js';
import { createLimiter } from './limiter.js';
import type { BlobAnswer, PullEvents } from './types.js';

export interface BlobOptions {
  head: boolean;
  range: RangeSpec | null;
}

export interface BlobsDeps {
  upstreams: Upstreams;
  store: DiskStore;
  logger: Logger;
  /** Called when a download starts (tests). */
  onDownload?: (download: BlobDownload, route: Route) => void;
  events?: PullEvents;
  /** Concurrent upstream downloads per registry; more wait for a slot. */
  downloadsPerRegistry?: number;
}

export function createBlobs({
  upstreams,
  store,
  logger,
  onDownload,
  events,
  downloadsPerRegistry,
}: BlobsDeps) {
  const inflight = new Map<string, BlobDownload>();
  const limiters = new Map<string, ReturnType<typeof createLimiter>>();
  const limiterOf = (registry: string) => {
    const limiter = limiters.get(registry) ?? createLimiter(downloadsPerRegistry ?? Number.POSITIVE_INFINITY);
    limiters.set(registry, limiter);
    return limiter;
  };

  function startDownload(route: Route, digest: string): BlobDownload {
    const remote = upstreams.get(route.registry);
    const download = new BlobDownload({
      digest: parseDigest(digest),
      registry: route.registry,
      fetch: async (offset): Promise<UpstreamPart> => {
        const response = await remote.getBlob(
          route.repository,
          digest,
          offset > 0 ? { range: `bytes=${offset}-` } : {},
        );
        if (response.status === 206) {
          const contentRange = parseContentRange(String(response.headers['content-range'] ?? ''));
          if (!contentRange) {
            response.body.destroy();
            throw upstreamInvalid(route.registry, 'sent an invalid range', 'UNAVAILABLE');
          }
          return { total: contentRange.size, startsAt: contentRange.range.start, stream: response.body };
        }
        const length = Number(response.headers['content-length']);
        return { total: Number.isSafeInteger(length) ? length : null, startsAt: 0, stream: response.body };
      },
      createTemp: () => store.createBlobTemp(parseDigest(digest)),
      commit: (temp) => store.commitBlob(temp, digest),
      onCommitError: (error) => logger.error({ err: error, digest }, 'could not store a verified blob'),
      onBytes: (bytes) => events?.fetched(route.registry, bytes),
      acquireSlot: () => limiterOf(route.registry).acquire(),
    });
    inflight.set(digest, download);
    onDownload?.(download, route);
    download
      .run()
      .then(() => {
        if (download.state === 'failed') {
          const level =
            download.error instanceof RegistryError && download.error.status < 500 ? 'debug' : 'warn';
          logger[level](
            { digest, registry: route.registry, error: download.error?.message },
            'blob download failed',
          );
        }
      })
      .finally(() => inflight.delete(digest));
    return download;
  }

  async function fromDownload(
    download: BlobDownload,
    digest: string,
    options: BlobOptions,
  ): Promise<BlobAnswer> {
    await download.ready;
    // Without a size from the upstream, ranges and lengths wait for the end of the download.
    if (download.size === null) await download.finished;
    const size = download.size!;
    const range = options.range ? resolveRange(options.range, size) : null;
    return {
      digest,
      size,
      range,
      source: options.head ? null : createDownloadSource(download, range?.start ?? 0, range?.end ?? size - 1),
      passed: {},
      cache: 'miss',
    };
  }

  return {
    async blob(route: Route, digest: string, options: BlobOptions): Promise<BlobAnswer> {
      const rangeOf = (size: number): ByteRange | null =>
        options.range ? resolveRange(options.range, size) : null;
      // In flight first, then disk, then in flight again: a download that commits while we look at
      // the disk is found one way or the other, so it is never started twice.
      const early = inflight.get(digest);
      if (early) return fromDownload(early, digest, options);
      if (options.head) {
        const size = await store.statBlob(digest);
        if (size !== null)
          return { digest, size, range: rangeOf(size), source: null, passed: {}, cache: 'hit' };
      } else {
        const cached = await store.openBlob(digest, rangeOf);
        if (cached) return { digest, ...cached, passed: {}, cache: 'hit' };
      }

      const running = inflight.get(digest);
      if (running) return fromDownload(running, digest, options);
      if (options.head) {
        // A HEAD alone does not start a download: ask the upstream (HEADs are cheap and not rate-limited).
        const response = await upstreams
          .get(route.registry)
          .getBlob(route.repository, digest, { head: true });
        response.body.resume();
        const size = Number(response.headers['content-length']);
        if (!Number.isSafeInteger(size)) {
          throw upstreamInvalid(route.registry, 'sent no blob length', 'UNAVAILABLE');
        }
        return { digest, size, range: rangeOf(size), source: null, passed: response.passed, cache: 'miss' };
      }
      return fromDownload(startDownload(route, digest), digest, options);
    },

    /** Downloads in progress, for stats and metrics. */
    inflightCount: () => inflight.size,

    /** Aborts every download (shutdown) and waits until their temp files are gone. */
    async abortDownloads(reason: Error): Promise<void> {
      const running = [...inflight.values()];
      for (const download of running) download.abort(reason);
      await Promise.all(running.map((d) => d.finished.catch(() => {})));
    },
  };
}
