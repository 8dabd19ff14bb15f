/**
 * @module Manifests. By digest: local first, forever. By tag: served from the tag record while it is
 * younger than `tagTTL` (stretched while the registry's rate-limit budget runs low); after that
 * revalidated with an upstream HEAD (not counted by Docker Hub's pull limit); when the upstream cannot
 * answer (unreachable, cooling down, timeout, 5xx, 429 or a spent budget) the cached digest is served
 * (stale-if-error). A 404 means the tag was deleted upstream. Concurrent misses of one
 * manifest or tag share one upstream request. A store that cannot take writes (disk full, read-only)
 * costs the cache entry, never the answer: the upstream's bytes are served all the same.
 */
import type { Logger } from 'pino';
import type { ContentStore, TagRecord } from '../cache/content-store.js';
import type { Manifest } from '../content.js';
import { RegistryError, refusedWithoutAsking } from '../errors.js';
import type { Route } from '../routing.js';
import type { Upstreams } from '../upstream/upstreams.js';
import { createLocalRead } from './local-read.js';
import { createSingleFlight } from './single-flight.js';
import type { CacheOutcome, ManifestAnswer, PullEvents } from './types.js';

export interface ManifestOptions {
  head: boolean;
  accept: string | undefined;
}

export interface ManifestsDeps {
  upstreams: Upstreams;
  store: ContentStore;
  logger: Logger;
  tagTTL: number;
  /** Keep serving a cached tag that the upstream says no longer exists. */
  serveDeletedTags: boolean;
  now?: () => number;
  events?: PullEvents;
}

export function createManifests(deps: ManifestsDeps) {
  const { upstreams, store, logger } = deps;
  const now = deps.now ?? Date.now;
  const localRead = createLocalRead(logger);
  const shareManifest = createSingleFlight<Manifest & { passed: Record<string, string> }>();
  const shareTag = createSingleFlight<{
    manifest: Manifest;
    passed: Record<string, string>;
    cache: CacheOutcome;
  }>();

  /** Fetches a manifest by digest from the upstream and stores it (one request for concurrent callers). */
  function fetchByDigest(route: Route, digest: string, accept: string | undefined) {
    return shareManifest(`${route.registry}/${route.repository}@${digest}`, async () => {
      const manifest = await upstreams.get(route.registry).getManifest(route.repository, digest, accept);
      deps.events?.fetched(route.registry, manifest.size);
      await keep(store.putManifest(manifest), { digest: manifest.digest }, 'manifest');
      return manifest;
    });
  }

  async function byTag(route: Route, tag: string, accept: string | undefined) {
    const { registry, repository } = route;
    const record = await localRead(
      { tag: `${registry}/${repository}:${tag}` },
      store.getTag(registry, repository, tag),
    );
    if (!record || !acceptable(record.mediaType, accept)) {
      // Nothing usable cached: one GET by tag, stored under its digest (and as the tag if new).
      return shareTag(`${registry}/${repository}:${tag} ${accept ?? ''}`, async () => {
        const manifest = await upstreams.get(registry).getManifest(repository, tag, accept);
        deps.events?.fetched(registry, manifest.size);
        await keep(store.putManifest(manifest), { digest: manifest.digest }, 'manifest');
        if (!record)
          await keep(store.putTag(registry, repository, tag, recordOf(manifest, now())), { tag }, 'tag');
        return { manifest, passed: manifest.passed, cache: 'miss' as const };
      });
    }
    const cached = await localRead({ digest: record.digest }, store.getManifest(record.digest));
    if (cached && now() - record.fetchedAt < deps.tagTTL * upstreams.get(registry).tagTTLFactor())
      return { manifest: cached, passed: {}, cache: 'hit' as const };
    return shareTag(`${registry}/${repository}:${tag} revalidate`, () =>
      revalidate(route, tag, record, cached, accept),
    );
  }

  async function revalidate(
    route: Route,
    tag: string,
    record: TagRecord,
    cached: Manifest | null,
    accept: string | undefined,
  ): Promise<{ manifest: Manifest; passed: Record<string, string>; cache: CacheOutcome }> {
    const { registry, repository } = route;
    try {
      const head = await upstreams.get(registry).headManifest(repository, tag, accept);
      const manifest =
        head.digest === record.digest && cached ? cached : await fetchByDigest(route, head.digest, accept);
      await keep(store.putTag(registry, repository, tag, recordOf(manifest, now())), { tag }, 'tag');
      return { manifest, passed: head.passed, cache: head.digest === record.digest ? 'revalidated' : 'miss' };
    } catch (error) {
      if (!(error instanceof RegistryError) || !cached) throw error;
      if (error.status === 404) {
        if (deps.serveDeletedTags) return stale(route, tag, cached, error);
        await keep(store.deleteTag(registry, repository, tag), { tag }, 'tag deletion');
        throw error;
      }
      if (isOutage(error)) return stale(route, tag, cached, error);
      throw error; // 401/403 and other refusals are answers, not outages
    }
  }

  /** Waits for a store write; a failure is a warning, and the answer goes out without it. */
  async function keep(write: Promise<void>, about: Record<string, string>, what: string): Promise<void> {
    try {
      await write;
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      logger.warn(
        { ...about, reason, error: (error as Error).message },
        `cannot store ${what}: serving it uncached`,
      );
    }
  }

  function stale(route: Route, tag: string, manifest: Manifest, error: RegistryError) {
    // A refusal of our own (cooling down, budget spent) was logged once when it began: not per tag.
    logger[refusedWithoutAsking(error) ? 'debug' : 'warn'](
      {
        registry: route.registry,
        repository: route.repository,
        tag,
        digest: manifest.digest,
        status: error.status,
        error: error.message,
      },
      'serving a cached tag: upstream could not revalidate it',
    );
    return { manifest, passed: {}, cache: 'stale' as const };
  }

  return {
    async manifest(route: Route, reference: string, options: ManifestOptions): Promise<ManifestAnswer> {
      let result: { manifest: Manifest; passed: Record<string, string>; cache: CacheOutcome };
      if (reference.includes(':')) {
        const cached = await localRead({ digest: reference }, store.getManifest(reference));
        // By digest, HEAD or GET: fetch the whole manifest once, so the GET that follows is a hit.
        result = cached
          ? { manifest: cached, passed: {}, cache: 'hit' }
          : await fetchByDigest(route, reference, options.accept).then((m) => ({
              manifest: m,
              passed: m.passed,
              cache: 'miss' as const,
            }));
      } else {
        result = await byTag(route, reference, options.accept);
      }
      const { manifest } = result;
      return {
        mediaType: manifest.mediaType,
        digest: manifest.digest,
        size: manifest.size,
        bytes: options.head ? null : manifest.bytes,
        passed: result.passed,
        cache: result.cache,
      };
    },
  };
}

function recordOf(manifest: Manifest, fetchedAt: number): TagRecord {
  return { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.size, fetchedAt };
}

/** An upstream that could not answer (as opposed to one that answered no). */
export function isOutage(error: RegistryError): boolean {
  return error.status >= 500 || error.status === 429 || error.status === 408;
}

/** Whether a client's Accept header admits a media type (no header, or a wildcard, admits all). */
export function acceptable(mediaType: string, accept: string | undefined): boolean {
  if (!accept) return true;
  const wanted = mediaType.split(';')[0]!.trim().toLowerCase();
  return accept.split(',').some((part) => {
    const type = part.split(';')[0]!.trim().toLowerCase();
    return type === '*/*' || type === wanted || type === `${wanted.split('/')[0]}/*`;
  });
}
