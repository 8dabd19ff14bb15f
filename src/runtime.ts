/** @module The parts behind every command that pulls: metrics, the disk store, upstream clients, the pull layer. */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { createDiskStore } from './cache/disk-store.js';
import type { Config } from './config.js';
import { createMetrics } from './metrics.js';
import { createPuller, type PullerDeps } from './pull/puller.js';
import type { BudgetNotice } from './upstream/rate-limit-budget.js';
import type { HealthNotice } from './upstream/upstream-health.js';
import { createUpstreams, type UpstreamHooks } from './upstream/upstreams.js';

export interface RuntimeHooks {
  /** Test clock for tag TTLs and last-use times. */
  now?: () => number;
  onDownload?: PullerDeps['onDownload'];
  onPrefetch?: PullerDeps['onPrefetch'];
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
    onParentDown: (parent, reason) =>
      logger.warn(
        { parent, reason },
        'parent pullcache unreachable: pulling from the registries directly until it is back',
      ),
    onParentUp: (parent) => logger.info({ parent }, 'parent pullcache reachable again: pulling through it'),
    onParentFallback: (registry, reason) =>
      logger.warn(
        { registry, reason },
        'parent pullcache could not serve a request: sent it to the registry',
      ),
    lookup: hooks.lookup,
    now: hooks.now,
    onHealth: (registry, notice) => logHealth(logger, registry, notice),
    onBudget: (registry, notice) => logBudget(logger, registry, notice),
  });
  const puller = createPuller({
    config,
    upstreams,
    store,
    logger,
    events: { fetched: (registry, bytes) => metrics.fetchedBytes.inc({ registry }, bytes) },
    ...hooks,
  });
  metrics.observe({
    cacheStats: () => store.stats(),
    downloadsInFlight: () => puller.inflightCount(),
    upstreams: () => upstreams.status(),
  });
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

function logHealth(logger: Logger, registry: string, notice: HealthNotice): void {
  if (notice.kind === 'down') {
    logger.warn(
      { registry, failures: notice.failures, coolDownSeconds: notice.coolDownSeconds },
      `upstream registry ${registry} is not answering (${notice.failures} requests in a row): cold requests are answered 503 at once, and one probe every ${notice.coolDownSeconds}s checks whether it is back`,
    );
  } else {
    logger.info(
      { registry, downForSeconds: notice.downForSeconds },
      `upstream registry ${registry} answers again`,
    );
  }
}

function logBudget(logger: Logger, registry: string, notice: BudgetNotice): void {
  switch (notice.kind) {
    case 'low':
      logger.warn(
        { registry, ...notice },
        `pull limit of ${registry} below ${Math.round(notice.threshold * 100)}%: ${notice.remaining} of ${notice.limit} left, tags are revalidated ${notice.tagTTLFactor}× less often`,
      );
      return;
    case 'spent':
      logger.warn(
        { registry, ...notice },
        `pull limit of ${registry} spent: cached tags are served as they are, other manifests are answered 429 for ${notice.retryAfterSeconds}s`,
      );
      return;
    case 'restored':
      logger.info(
        { registry, ...notice },
        `pull limit of ${registry} has room again: ${notice.remaining} of ${notice.limit} left`,
      );
  }
}
