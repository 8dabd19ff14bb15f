/**
 * @module The parts behind every command that pulls: metrics, the disk store, upstream clients, the
 * pull layer, and what the status page reports (traffic history, upstream errors, pull counts).
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { createDiskStore } from './cache/disk-store.js';
import { createPullCounter } from './cache/pull-counter.js';
import type { Config } from './config.js';
import type { AnsweredPull } from './http/request-log.js';
import { createMetrics } from './metrics.js';
import { createPuller, type PullerDeps } from './pull/puller.js';
import { createStatusReport } from './status/status-report.js';
import { createTrafficHistory } from './status/traffic-history.js';
import { createUpstreamErrors } from './status/upstream-errors.js';
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
  const store = createDiskStore({
    root: resolve(config.storage.path),
    maxSize: config.storage.maxSize,
    ...(hooks.now ? { now: hooks.now } : {}),
    onEvict: (key, size) => {
      metrics.evictions.inc();
      logger.debug({ key, size }, 'evicted');
    },
  });
  await store.init();
  const traffic = createTrafficHistory();
  const upstreamErrors = createUpstreamErrors();
  const pulls = createPullCounter({
    store,
    onError: (error) =>
      logger.warn(
        { error: (error as Error).message },
        'cannot write pull counts: keeping them for the next try',
      ),
  });
  const upstreams = createUpstreams(config, {
    onTokenFetch: (registry) => metrics.tokenFetches.inc({ registry }),
    onResponse: (registry, status, seconds) => {
      metrics.upstreamDuration.observe({ registry, status: String(status) }, seconds);
      upstreamErrors.answered(registry, status);
    },
    onError: (registry, reason) => {
      metrics.upstreamErrors.inc({ registry, reason });
      upstreamErrors.failed(registry, reason);
    },
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
    events: {
      fetched: (registry, bytes) => {
        metrics.fetchedBytes.inc({ registry }, bytes);
        traffic.fetched(registry, bytes);
      },
    },
    ...hooks,
  });
  metrics.observe({ cacheStats: () => store.stats(), downloadsInFlight: () => puller.inflightCount() });
  const status = createStatusReport({
    store,
    registries: Object.keys(config.registries),
    traffic,
    errors: upstreamErrors,
    pulls,
    downloads: puller.downloads,
  });
  return {
    metrics,
    store,
    upstreams,
    puller,
    status,
    /**
     * A manifest or blob answer was sent: the traffic history counts it, and a manifest by tag
     * answered 200 (HEAD or GET) is one pull of that tag.
     */
    answered(pull: AnsweredPull): void {
      const fromCache = pull.cache !== 'miss';
      traffic.answered(pull.registry, fromCache, fromCache && !pull.aborted ? pull.bytes : 0);
      if (pull.endpoint === 'manifest' && !pull.reference.includes(':') && pull.status === 200)
        pulls.pulled(pull.registry, pull.repository, pull.reference);
    },
    /**
     * Stops downloads still receiving (their temp files are removed), gives verified blobs until
     * `deadline` (ms since epoch; no limit without one) to be committed, removes what could not be,
     * and closes upstream connections.
     */
    async close(deadline = Number.POSITIVE_INFINITY): Promise<void> {
      await puller.stopDownloads(new Error('pullcache is shutting down'), deadline);
      await upstreams.close();
      await pulls.close();
      await store.close();
    },
  };
}
