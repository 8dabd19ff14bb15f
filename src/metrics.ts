/**
 * @module Prometheus metrics (prom-client) on a registry of our own: requests, cache results, bytes
 * served and fetched, upstream latency and errors, token fetches, downloads in flight, cache size,
 * each upstream's rate-limit budget and whether it is cooling down, and in a cluster what went to and
 * came from each peer. Labels carry registry names, endpoint kinds and member addresses (as many as
 * the cluster has) only: never repositories (unbounded) or secrets.
 */
// prom-client's files by path: its index also loads its Pushgateway (node:https, tls, zlib) and its
// cluster aggregator (node:cluster), which pullcache does not use (src/prom-client-lib.d.ts).
import Counter from 'prom-client/lib/counter.js';
import collectDefaultMetrics from 'prom-client/lib/defaultMetrics.js';
import Gauge from 'prom-client/lib/gauge.js';
import Histogram from 'prom-client/lib/histogram.js';
import Registry from 'prom-client/lib/registry.js';
import type { CacheStats } from './cache/content-store.js';
import type { UpstreamStatus } from './upstream/upstreams.js';

export interface MetricsSources {
  cacheStats(): CacheStats;
  downloadsInFlight(): number;
  upstreams(): UpstreamStatus[];
  /** Members of the cluster this replica sees (itself included); absent without a cluster. */
  clusterMembers?(): number;
}

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'pullcache_' });
  let sources: MetricsSources | undefined;

  const metrics = {
    registry,
    httpRequests: new Counter({
      name: 'pullcache_http_requests_total',
      help: 'HTTP requests answered, by endpoint kind, method and status',
      labelNames: ['endpoint', 'method', 'status'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'pullcache_http_request_duration_seconds',
      help: 'Time to answer a request (headers sent), by endpoint kind',
      labelNames: ['endpoint'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers: [registry],
    }),
    cacheResults: new Counter({
      name: 'pullcache_cache_results_total',
      help: 'How manifests and blobs were served: hit, miss, revalidated, stale',
      labelNames: ['kind', 'result'] as const,
      registers: [registry],
    }),
    servedFromCacheBytes: new Counter({
      name: 'pullcache_served_from_cache_bytes_total',
      help: 'Blob and manifest bytes answered from the cache, by registry',
      labelNames: ['registry'] as const,
      registers: [registry],
    }),
    fetchedBytes: new Counter({
      name: 'pullcache_upstream_fetched_bytes_total',
      help: 'Blob and manifest bytes fetched from upstream registries, by registry',
      labelNames: ['registry'] as const,
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: 'pullcache_upstream_request_duration_seconds',
      help: 'Upstream request time to response headers, by registry and status',
      labelNames: ['registry', 'status'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    upstreamErrors: new Counter({
      name: 'pullcache_upstream_errors_total',
      help: 'Upstream requests that failed without an answer (connect, timeout, reset), by registry and reason',
      labelNames: ['registry', 'reason'] as const,
      registers: [registry],
    }),
    tokenFetches: new Counter({
      name: 'pullcache_token_fetches_total',
      help: 'Token endpoint requests, by registry',
      labelNames: ['registry'] as const,
      registers: [registry],
    }),
    evictions: new Counter({
      name: 'pullcache_cache_evictions_total',
      help: 'Blobs and manifests evicted to stay under storage.maxSize',
      registers: [registry],
    }),
    peerRequests: new Counter({
      name: 'pullcache_peer_requests_total',
      help: 'Peer requests, served to a peer or answered by one (fetched), by peer, direction and kind (blob, manifest)',
      labelNames: ['peer', 'direction', 'kind'] as const,
      registers: [registry],
    }),
    peerBytes: new Counter({
      name: 'pullcache_peer_bytes_total',
      help: 'Blob bytes sent to a peer (served) or received from one (fetched), by peer and direction',
      labelNames: ['peer', 'direction'] as const,
      registers: [registry],
    }),
    peerFallbacks: new Counter({
      name: 'pullcache_peer_fallbacks_total',
      help: 'Peers that could not serve, so the next peer or the upstream was asked, by kind and reason (unreachable, timeout, answer, invalid, broken)',
      labelNames: ['kind', 'reason'] as const,
      registers: [registry],
    }),
    /** Connects the gauges read at scrape time to the running cache. */
    observe(from: MetricsSources): void {
      sources = from;
    },
  };

  new Gauge({
    name: 'pullcache_downloads_in_flight',
    help: 'Blob downloads from upstreams in progress',
    registers: [registry],
    collect() {
      this.set(sources?.downloadsInFlight() ?? 0);
    },
  });
  new Gauge({
    name: 'pullcache_cluster_members',
    help: 'Cluster members this replica sees, itself included (0: no cluster)',
    registers: [registry],
    collect() {
      this.set(sources?.clusterMembers?.() ?? 0);
    },
  });
  new Gauge({
    name: 'pullcache_cache_size_bytes',
    help: 'Bytes of blobs and manifests in the cache',
    registers: [registry],
    collect() {
      this.set(sources?.cacheStats().bytes ?? 0);
    },
  });
  new Gauge({
    name: 'pullcache_cache_entries',
    help: 'Entries in the cache, by kind',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      const stats = sources?.cacheStats();
      this.set({ kind: 'blob' }, stats?.blobs ?? 0);
      this.set({ kind: 'manifest' }, stats?.manifests ?? 0);
    },
  });
  new Gauge({
    name: 'pullcache_cache_max_size_bytes',
    help: 'storage.maxSize (0: no limit)',
    registers: [registry],
    collect() {
      this.set(sources?.cacheStats().maxSize ?? 0);
    },
  });
  new Gauge({
    name: 'pullcache_upstream_ratelimit_remaining',
    help: 'Pulls left in the upstream pull limit, as its last ratelimit-remaining header said, by registry',
    labelNames: ['registry'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const upstream of sources?.upstreams() ?? []) {
        if (upstream.rateLimit) this.set({ registry: upstream.registry }, upstream.rateLimit.remaining);
      }
    },
  });
  new Gauge({
    name: 'pullcache_upstream_ratelimit_limit',
    help: 'The upstream pull limit per window, as its last ratelimit-limit header said, by registry',
    labelNames: ['registry'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const upstream of sources?.upstreams() ?? []) {
        if (upstream.rateLimit) this.set({ registry: upstream.registry }, upstream.rateLimit.limit);
      }
    },
  });
  new Gauge({
    name: 'pullcache_upstream_cooling_down',
    help: 'Whether requests to an upstream are refused at once (1) because it stopped answering, by registry',
    labelNames: ['registry'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const upstream of sources?.upstreams() ?? []) {
        this.set({ registry: upstream.registry }, upstream.coolingDown ? 1 : 0);
      }
    },
  });
  return metrics;
}
