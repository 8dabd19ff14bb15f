/** @module The parts behind every command that pulls: metrics, the store, upstream clients, the pull layer. */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { ContentStore } from './cache/content-store.js';
import { createDiskStore } from './cache/disk-store.js';
import type { Config } from './config.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createPuller, type PullerDeps } from './pull/puller.js';
import { createUpstreams, type UpstreamHooks } from './upstream/upstreams.js';

export interface RuntimeHooks {
  /** Test clock for tag TTLs and last-use times. */
  now?: () => number;
  onDownload?: PullerDeps['onDownload'];
  /** DNS lookup for upstream connections (tests map host names to loopback addresses). */
  lookup?: UpstreamHooks['lookup'];
}

export type Runtime = Awaited<ReturnType<typeof createRuntime>>;

export async function createRuntime(config: Config, logger: Logger, hooks: RuntimeHooks = {}) {
  const metrics = createMetrics();
  const store = await createStore(config, logger, metrics, hooks);
  await store.init();
  const upstreams = createUpstreams(config, {
    onTokenFetch: (registry) => metrics.tokenFetches.inc({ registry }),
    onResponse: (registry, status, seconds) =>
      metrics.upstreamDuration.observe({ registry, status: String(status) }, seconds),
    onError: (registry, reason) => metrics.upstreamErrors.inc({ registry, reason }),
    onCredentialsWithheld: (registry, realmHost, reason) =>
      logger.warn(
        { registry, realmHost, reason },
        `token realm ${realmHost} of ${registry} may not have its credentials: fetching an anonymous token (list it in registries.${registry}.tokenRealms to trust it)`,
      ),
    lookup: hooks.lookup,
  });
  const puller = createPuller({
    config,
    upstreams,
    store,
    logger,
    events: { fetched: (registry, bytes) => metrics.fetchedBytes.inc({ registry }, bytes) },
    ...hooks,
  });
  metrics.observe({ cacheStats: () => store.stats(), downloadsInFlight: () => puller.inflightCount() });
  return {
    metrics,
    store,
    upstreams,
    puller,
    /**
     * Stops downloads still receiving (their temp files are removed), gives verified blobs until
     * `deadline` (ms since epoch; no limit without one) to be committed, removes what could not be,
     * and closes upstream connections.
     */
    async close(deadline = Number.POSITIVE_INFINITY): Promise<void> {
      await puller.stopDownloads(new Error('pullcache is shutting down'), deadline);
      await upstreams.close();
      await store.close();
    },
  };
}

/**
 * The store the config names: the bucket of `storage.s3` (its module, and the AWS SDK with it, loaded
 * only then), else the folder `storage.path`.
 */
async function createStore(
  config: Config,
  logger: Logger,
  metrics: Metrics,
  hooks: RuntimeHooks,
): Promise<ContentStore> {
  const { storage } = config;
  const onEvict = (key: string, size: number) => {
    metrics.evictions.inc();
    logger.debug({ key, size }, 'evicted');
  };
  const now = hooks.now ? { now: hooks.now } : {};
  if (storage.s3) {
    const { createS3Store } = await import('./cache/s3-store.js');
    return createS3Store({
      ...storage.s3,
      localPath: resolve(storage.path),
      maxSize: storage.maxSize,
      ...now,
      onEvict,
      onBackgroundError: (error, what) =>
        logger.warn({ error: (error as Error).message, store: 's3' }, `S3 store: could not ${what}`),
    });
  }
  return createDiskStore({ root: resolve(storage.path), maxSize: storage.maxSize, ...now, onEvict });
}
