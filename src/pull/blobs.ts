/**
 * @module Blobs by digest: local first, forever. A miss starts one shared download per digest, which
 * every client (whole or Range) joins and streams from as bytes arrive; the verified blob is then
 * served from the store (or, by a store that offers it, through a redirect to it). In a cluster the
 * download asks the digest's owner before the upstream (blob-sources.ts). Only a missing file is a
 * miss: a cached blob that cannot be read is a logged storage error (503), never a silent re-download.
 */
import type { Logger } from 'pino';
import { type RangeSpec, resolveRange } from '../byte-range.js';
import type { ContentStore } from '../cache/content-store.js';
import type { ByteRange } from '../content.js';
import { parseDigest } from '../digest.js';
import { peerConflict, RegistryError, storageUnavailable, upstreamUnavailable } from '../errors.js';
import type { Route } from '../routing.js';
import type { Upstreams } from '../upstream/upstreams.js';
import { BlobDownload } from './blob-download.js';
import { type BlobSource, createBlobSources } from './blob-sources.js';
import { createDownloadSource } from './download-source.js';
import { createLimiter } from './limiter.js';
import { createLocalRead } from './local-read.js';
import type { Peers } from './peers.js';
import type { BlobAnswer, PullEvents } from './types.js';

export interface BlobOptions {
  head: boolean;
  range: RangeSpec | null;
  /** The member asking, for a peer request: served from here (store or download), never forwarded. */
  fromPeer?: string | undefined;
}

export interface DownloadProgress {
  digest: string;
  registry: string;
  repository: string;
  /** Bytes received so far. */
  received: number;
  /** Total size, once the upstream said. */
  size: number | null;
  /** ms since epoch. */
  startedAt: number;
  /** False once the store failed and the bytes pass through. */
  storing: boolean;
}

export interface BlobsDeps {
  upstreams: Upstreams;
  store: ContentStore;
  logger: Logger;
  /** Called when a download starts (tests). */
  onDownload?: (download: BlobDownload, route: Route) => void;
  events?: PullEvents;
  /** Concurrent upstream downloads per registry; more wait for a slot. */
  downloadsPerRegistry?: number;
  /** The cluster's other members, asked before the upstream; absent: this replica is alone. */
  peers?: Peers | undefined;
}

export function createBlobs({
  upstreams,
  store,
  logger,
  onDownload,
  events,
  downloadsPerRegistry,
  peers,
}: BlobsDeps) {
  const inflight = new Map<string, BlobDownload>();
  const sources = createBlobSources(upstreams, peers);
  const sourceOf = new WeakMap<BlobDownload, BlobSource>();
  // Who a download is for and since when, for the status page.
  const started = new WeakMap<BlobDownload, { route: Route; at: number }>();
  const localRead = createLocalRead(logger);
  const limiters = new Map<string, ReturnType<typeof createLimiter>>();
  const limiterOf = (registry: string) => {
    const limiter = limiters.get(registry) ?? createLimiter(downloadsPerRegistry ?? Number.POSITIVE_INFINITY);
    limiters.set(registry, limiter);
    return limiter;
  };

  function startDownload(route: Route, digest: string, fromPeer: string | undefined): BlobDownload {
    const source = sources.open(route, digest, fromPeer !== undefined);
    const download = new BlobDownload({
      digest: parseDigest(digest),
      registry: route.registry,
      fetch: (offset) => source.fetch(offset),
      // A store the members share gets the blob from its owner's download: not written twice.
      createWriter: async () =>
        store.shared && source.firstFromPeer ? null : store.createBlobWriter(parseDigest(digest)),
      makeRoom: (bytes) => store.makeRoom(bytes),
      onStoreError: (error, during) => {
        const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
        if (during === 'commit')
          logger.error({ err: error, digest, reason }, 'could not store a verified blob');
        else
          logger.warn(
            { err: error, digest, registry: route.registry, reason },
            'cannot store blob: passing it through to its clients without caching it',
          );
      },
      onBytes: (bytes) => {
        if (source.peer !== null) peers?.fetched(source.peer, bytes);
        else events?.fetched(route.registry, bytes);
      },
      acquireSlot: () => limiterOf(route.registry).acquire(),
    });
    inflight.set(digest, download);
    sourceOf.set(download, source);
    started.set(download, { route, at: Date.now() });
    onDownload?.(download, route);
    // A stored blob is served from the store at once; one that could not be stored stays joinable
    // for as long as its bytes are held (clients still reading it).
    const leave = () => {
      if (inflight.get(digest) === download) inflight.delete(digest);
    };
    void download.released.then(leave);
    void download.done.then(() => {
      if (download.stored || download.state === 'failed') leave();
    });
    download.run().then(() => {
      if (download.state === 'failed') {
        if (download.error instanceof RegistryError && download.error.code === 'DIGEST_INVALID')
          source.blame(download.error);
        const level =
          download.error instanceof RegistryError && download.error.status < 500 ? 'debug' : 'warn';
        logger[level](
          { digest, registry: route.registry, error: download.error?.message },
          'blob download failed',
        );
      }
    });
    return download;
  }

  /**
   * Answers from a download. It is held from the moment it is found, so nothing it holds goes away
   * while the size comes; a download that can no longer serve this range (passing through, the
   * bytes are gone) leaves the client to a download of its own.
   */
  async function fromDownload(
    download: BlobDownload,
    route: Route,
    digest: string,
    options: BlobOptions,
    attempt = 1,
  ): Promise<BlobAnswer> {
    // Two members that disagree on the owner (the member list is changing) would otherwise each wait
    // for the other's download: the asking peer goes on to the upstream instead.
    if (options.fromPeer !== undefined && sourceOf.get(download)?.peer === options.fromPeer) {
      throw peerConflict('this replica is fetching the blob from the asking peer', { digest });
    }
    const release = download.hold();
    try {
      await download.ready;
      // Without a size from the upstream, ranges and lengths wait for the end of the download.
      if (download.size === null) await download.finished;
      const size = download.size!;
      const range = options.range ? resolveRange(options.range, size) : null;
      const start = range?.start ?? 0;
      if (!options.head && !download.canServe(start)) {
        // Failed after it answered: its error, before any header, is a clean answer to retry on.
        if (download.state === 'failed' || attempt > 1) throw failureOf(download, route);
        const current = inflight.get(digest);
        const next =
          current && current !== download ? current : startDownload(route, digest, options.fromPeer);
        return await fromDownload(next, route, digest, options, attempt + 1);
      }
      return {
        digest,
        size,
        range,
        source: options.head ? null : createDownloadSource(download, start, range?.end ?? size - 1),
        passed: {},
        cache: 'miss',
      };
    } finally {
      release();
    }
  }

  /** In flight first, then the store, then in flight again, then a new download. */
  async function lookUp(route: Route, digest: string, options: BlobOptions): Promise<BlobAnswer> {
    const rangeOf = (size: number): ByteRange | null =>
      options.range ? resolveRange(options.range, size) : null;
    // A download that commits while we look at the store is found one way or the other, so it is
    // never started twice.
    const early = inflight.get(digest);
    if (early) return fromDownload(early, route, digest, options);
    if (options.head) {
      const size = await localRead({ digest }, store.statBlob(digest));
      if (size !== null)
        return { digest, size, range: rangeOf(size), source: null, passed: {}, cache: 'hit' };
    } else if (store.blobUrl) {
      // The store lets clients fetch cached blobs themselves: the Range goes along with the redirect.
      const cached = await localRead({ digest }, store.blobUrl(digest));
      if (cached) {
        const { url, size } = cached;
        return { digest, size, range: null, source: null, redirect: url, passed: {}, cache: 'hit' };
      }
    } else {
      const cached = await localRead({ digest }, store.openBlob(digest, rangeOf));
      if (cached) return { digest, ...cached, passed: {}, cache: 'hit' };
    }

    const running = inflight.get(digest);
    if (running) return fromDownload(running, route, digest, options);
    if (options.head) {
      // A HEAD alone does not start a download: ask the owner or the upstream (HEADs are cheap and
      // not rate-limited).
      const { size, passed } = await sources.stat(route, digest, options.fromPeer !== undefined);
      return { digest, size, range: rangeOf(size), source: null, passed, cache: 'miss' };
    }
    return fromDownload(startDownload(route, digest, options.fromPeer), route, digest, options);
  }

  function failureOf(download: BlobDownload, route: Route): RegistryError {
    const error = download.error;
    if (error instanceof RegistryError) return error;
    if (!error) return storageUnavailable('the blob is passing through and its bytes are gone: retry');
    return upstreamUnavailable(
      route.registry,
      `blob download from ${route.registry} failed: ${error?.message}`,
      {
        cause: error,
      },
    );
  }

  return {
    blob: lookUp,

    /**
     * Starts a download for the cache alone (prefetch) unless the blob is stored or already coming.
     * With no client it still runs to the end and is stored; only a download that cannot store
     * (passing through) stops once nobody reads it.
     */
    async prefetch(route: Route, digest: string): Promise<'started' | 'cached' | 'running'> {
      if (inflight.has(digest)) return 'running';
      if ((await store.statBlob(digest)) !== null) return 'cached';
      if (inflight.has(digest)) return 'running';
      startDownload(route, digest, undefined);
      return 'started';
    },

    /** Downloads in progress, for stats and metrics. */
    inflightCount: () => inflight.size,

    /** Each download in progress and how far it got, for the status page. */
    downloads: (): DownloadProgress[] =>
      [...inflight.values()].map((download) => {
        const origin = started.get(download)!;
        return {
          digest: download.digest.value,
          registry: origin.route.registry,
          repository: origin.route.repository,
          received: download.available,
          size: download.size,
          startedAt: origin.at,
          storing: download.storing,
        };
      }),

    /**
     * Shutdown, once no client is left: stops downloads still receiving (their temp files are
     * removed), lets verified blobs finish their commit until `deadline` (ms since epoch), then
     * removes what could not be finished, so that no temp file stays behind.
     */
    async stopDownloads(reason: Error, deadline: number): Promise<void> {
      const running = [...inflight.values()];
      for (const download of running) download.abort(reason);
      const all = Promise.all(running.map((d) => d.done));
      if (deadline === Number.POSITIVE_INFINITY) return void (await all);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), Math.max(0, deadline - Date.now()));
      });
      const outcome = await Promise.race([all, late]);
      clearTimeout(timer);
      if (outcome !== 'late') return;
      const unfinished = running.filter((d) => !d.isOver);
      logger.warn(
        { downloads: unfinished.map((d) => d.digest.value) },
        'shutdown grace over: removing blob commits that could not finish',
      );
      await Promise.all(unfinished.map((d) => d.discard()));
    },
  };
}
