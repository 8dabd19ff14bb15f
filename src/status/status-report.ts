/**
 * @module The status page's data, also served as JSON (`GET /_pullcache/api/status`): cache size,
 * what the cache saved per registry (hour, day, since start, with per-minute and per-hour series),
 * downloads in flight, the largest and most pulled images, upstream errors, and each upstream's
 * health (fail fast) and pull-limit state.
 */
import type { CacheStats, ContentStore } from '../cache/content-store.js';
import { type CachedImage, type Inventory, takeInventory } from '../cache/inventory.js';
import type { InventoryStore } from '../cache/inventory-store.js';
import type { PullCounter } from '../cache/pull-counter.js';
import type { DownloadProgress } from '../pull/blobs.js';
import type { RegistryTraffic, TrafficHistory } from './traffic-history.js';
import type { RegistryErrors, UpstreamError, UpstreamErrors } from './upstream-errors.js';

// Taking stock reads every tag record and manifest: a page refreshing every few seconds, or several
// people looking, share one look this long.
const INVENTORY_TTL_MS = 10_000;
const TOP_IMAGES = 10;

export interface StatusSources {
  store: Pick<InventoryStore, 'listTags' | 'listContent' | 'peekManifest' | 'peekBlob' | 'syncRemovals'> &
    Pick<ContentStore, 'stats'>;
  /** The configured registries (each gets a row even before its first request). */
  registries: string[];
  traffic: TrafficHistory;
  errors: UpstreamErrors;
  pulls: PullCounter;
  downloads(): DownloadProgress[];
  /** Health and rate-limit state of one upstream (upstream/upstreams.ts); null before its first request. */
  upstreamHealth(registry: string): UpstreamHealth | null;
  now?: () => number;
}

export interface UpstreamHealth {
  /** Requests are refused at once: it stopped answering (fail fast), until a probe gets an answer. */
  coolingDown: boolean;
  /** Its last statement of its pull limit; null if it never sent one. */
  rateLimit: { limit: number; remaining: number; windowSeconds: number | null } | null;
}

export interface StatusImage {
  name: string;
  registry: string | null;
  repository: string | null;
  tag: string | null;
  digest: string;
  platforms: string[];
  bytes: number;
  pulls: number | null;
  lastPulled: string | null;
}

export interface StatusReport {
  generatedAt: string;
  startedAt: string;
  cache: CacheStats;
  traffic: Record<string, RegistryTraffic>;
  downloads: (Omit<DownloadProgress, 'startedAt'> & { startedAt: string })[];
  images: { count: number; largest: StatusImage[]; mostPulled: StatusImage[] };
  upstreams: Record<string, { errors: RegistryErrors; health: UpstreamHealth | null }>;
  recentErrors: (Omit<UpstreamError, 'at'> & { at: string })[];
}

const iso = (ms: number) => new Date(ms).toISOString();

export function createStatusReport(sources: StatusSources) {
  const now = sources.now ?? Date.now;
  const startedAt = now();
  let inventory: { at: number; taking: Promise<Inventory> } | null = null;

  function currentInventory(): Promise<Inventory> {
    if (!inventory || now() - inventory.at > INVENTORY_TTL_MS) {
      const taking = takeInventory(sources.store, null);
      inventory = { at: now(), taking };
      taking.catch(() => {
        inventory = null;
      });
    }
    return inventory.taking;
  }

  /** An image with the pulls the counter has not written to its tag record yet. */
  function withUnwritten(image: CachedImage): StatusImage {
    const unwritten =
      image.tag === null ? null : sources.pulls.unwritten(image.registry!, image.repository!, image.tag);
    const lastPulled = Math.max(image.lastPulled ?? 0, unwritten?.at ?? 0);
    return {
      name: image.tag === null ? `@${image.digest}` : `${image.registry}/${image.repository}:${image.tag}`,
      registry: image.registry,
      repository: image.repository,
      tag: image.tag,
      digest: image.digest,
      platforms: image.platforms,
      bytes: image.bytes,
      pulls: image.pulls === null ? null : image.pulls + (unwritten?.count ?? 0),
      lastPulled: lastPulled === 0 ? null : iso(lastPulled),
    };
  }

  return {
    syncRemovals: () => sources.store.syncRemovals(),
    async report(): Promise<StatusReport> {
      await sources.store.syncRemovals();
      const { images } = await currentInventory();
      const listed = images.map(withUnwritten);
      const traffic = sources.traffic.report(sources.registries);
      const errors = sources.errors.byRegistry();
      const registries = [
        ...new Set([...sources.registries, ...Object.keys(traffic), ...Object.keys(errors)]),
      ];
      return {
        generatedAt: iso(now()),
        startedAt: iso(startedAt),
        cache: sources.store.stats(),
        traffic,
        downloads: sources.downloads().map((d) => ({ ...d, startedAt: iso(d.startedAt) })),
        images: {
          count: listed.length,
          largest: [...listed].sort((a, b) => b.bytes - a.bytes).slice(0, TOP_IMAGES),
          mostPulled: listed
            .filter((i) => (i.pulls ?? 0) > 0)
            .sort((a, b) => b.pulls! - a.pulls! || a.name.localeCompare(b.name))
            .slice(0, TOP_IMAGES),
        },
        upstreams: Object.fromEntries(
          registries.sort().map((registry) => [
            registry,
            {
              errors: errors[registry] ?? { lastHour: 0, sinceStart: 0, byReason: {}, lastAt: null },
              health: sources.upstreamHealth(registry),
            },
          ]),
        ),
        recentErrors: sources.errors.recent().map((e) => ({ ...e, at: iso(e.at) })),
      };
    },
  };
}
