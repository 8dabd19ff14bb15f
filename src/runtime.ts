/**
 * @module The parts behind every command that pulls: metrics, the store (disk or bucket), upstream
 * clients, the cluster (with `cluster:`), the pull layer, and what the status page reports (traffic history, upstream errors, pull
 * counts).
 */
import type { Logger } from 'pino';
import { createPullCounter } from './cache/pull-counter.js';
import { type ConfiguredStore, createConfiguredStore } from './cache/store-from-config.js';
import type { Config } from './config.js';
import type { AnsweredPull } from './http/request-log.js';
import { createMetrics } from './metrics.js';
import { createPuller, type PullerDeps } from './pull/puller.js';
import { createStatusReport } from './status/status-report.js';
import { createTrafficHistory } from './status/traffic-history.js';
import { createUpstreamErrors } from './status/upstream-errors.js';
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
  /** Replaces the store the config makes (tests: replicas sharing one folder as one shared store). */
  wrapStore?(store: ConfiguredStore): ConfiguredStore;
}

export type Runtime = Awaited<ReturnType<typeof createRuntime>>;

export async function createRuntime(config: Config, logger: Logger, hooks: RuntimeHooks = {}) {
  const metrics = createMetrics();
  const configured = await createConfiguredStore(config, {
    ...(hooks.now ? { now: hooks.now } : {}),
    onEvict: (key, size) => {
      metrics.evictions.inc();
      logger.debug({ key, size }, 'evicted');
    },
    onBackgroundError: (error, what) =>
      logger.warn({ error: (error as Error).message, store: 's3' }, `S3 store: could not ${what}`),
  });
  const store = hooks.wrapStore?.(configured) ?? configured;
  await store.init();
  // Loaded only when configured: most runs have no cluster, and every node runs the DaemonSet.
  const cluster = config.cluster
    ? (await import('./cluster/cluster.js')).createCluster({
        config: { ...config, cluster: config.cluster },
        logger,
        metrics,
      })
    : null;
  await cluster?.start();
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
    peers: cluster?.peers,
    events: {
      fetched: (registry, bytes) => {
        metrics.fetchedBytes.inc({ registry }, bytes);
        traffic.fetched(registry, bytes);
      },
    },
    ...hooks,
  });
  metrics.observe({
    cacheStats: () => store.stats(),
    downloadsInFlight: () => puller.inflightCount(),
    upstreams: () => upstreams.status(),
    ...(cluster ? { clusterMembers: () => cluster.members().length } : {}),
  });
  const status = createStatusReport({
    store,
    registries: Object.keys(config.registries),
    traffic,
    errors: upstreamErrors,
    pulls,
    downloads: puller.downloads,
    upstreamHealth(registry) {
      const upstream = upstreams.status().find((u) => u.registry === registry);
      if (!upstream) return null;
      const reading = upstream.rateLimit;
      return {
        coolingDown: upstream.coolingDown,
        rateLimit: reading
          ? { limit: reading.limit, remaining: reading.remaining, windowSeconds: reading.windowSeconds }
          : null,
      };
    },
  });
  return {
    metrics,
    store,
    upstreams,
    puller,
    cluster,
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
      await cluster?.stop();
      await upstreams.close();
      await pulls.close();
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
