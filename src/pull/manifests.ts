/**
 * @module Manifests. By digest: local first, forever. By tag: served from the tag record while it is
 * younger than `tagTTL` (stretched while the registry's rate-limit budget runs low); after that
 * revalidated with an upstream HEAD (not counted by Docker Hub's pull limit); when the upstream cannot
 * answer (unreachable, cooling down, timeout, 5xx, 429 or a spent budget) the cached digest is served
 * (stale-if-error). A 404 means the tag was deleted upstream. Concurrent misses of one
 * manifest or tag share one upstream request. A store that cannot take writes (disk full, read-only)
 * costs the cache entry, never the answer: the upstream's bytes are served all the same. In a cluster
 * a manifest is fetched through its owner (a tag's is looked up and revalidated there), so the cluster
 * sends the upstream one GET per manifest and one HEAD per tag per TTL (Docker Hub counts manifest
 * GETs per address and account); an owner that cannot answer is skipped, and this replica asks the
 * upstream itself.
 */
import type { Logger } from 'pino';
import type { ContentStore, TagRecord } from '../cache/content-store.js';
import type { Manifest } from '../content.js';
import { RegistryError, refusedWithoutAsking } from '../errors.js';
import type { Route } from '../routing.js';
import type { Upstreams } from '../upstream/upstreams.js';
import { createLocalRead } from './local-read.js';
import type { Peers } from './peers.js';
import { createSingleFlight } from './single-flight.js';
import type { CacheOutcome, ManifestAnswer, PullEvents } from './types.js';

export interface ManifestOptions {
  head: boolean;
  accept: string | undefined;
  /** The member asking, for a peer request: answered here, never forwarded. */
  fromPeer?: string | undefined;
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
  /** The cluster's other members; absent: this replica is alone. */
  peers?: Peers | undefined;
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

  /**
   * The member to ask before the upstream, if any. A peer's request is answered here, never
   * forwarded; it never joins a lookup that asks a peer either (two members that disagree on the
   * owner would wait on each other), hence `via` in the single-flight keys.
   */
  function ownerFor(route: Route, reference: string, fromPeer: string | undefined) {
    const owner = fromPeer === undefined ? (deps.peers?.manifestOwner(route, reference) ?? null) : null;
    return { owner, via: owner === null ? '' : ` via ${owner}` };
  }

  /** Fetches a manifest by digest (from its owner, else the upstream) and stores it, once for concurrent callers. */
  function fetchByDigest(route: Route, digest: string, accept: string | undefined, fromPeer?: string) {
    const { owner, via } = ownerFor(route, digest, fromPeer);
    return shareManifest(`${route.registry}/${route.repository}@${digest}${via}`, async () => {
      const owned = await fromOwner(owner, route, digest, accept);
      const manifest = owned
        ? { ...owned, passed: {} }
        : await upstreams.get(route.registry).getManifest(route.repository, digest, accept);
      if (!owned) deps.events?.fetched(route.registry, manifest.size);
      await keep(store.putManifest(manifest), { digest: manifest.digest }, 'manifest');
      return manifest;
    });
  }

  /**
   * The manifest as its owner serves it (a tag from its record while fresh, else after its own
   * revalidation); null when there is no owner to ask or it cannot answer.
   */
  async function fromOwner(
    owner: string | null,
    route: Route,
    reference: string,
    accept: string | undefined,
  ) {
    if (owner === null) return null;
    try {
      return await deps.peers!.getManifest(owner, route, reference, accept);
    } catch (error) {
      deps.peers!.fellBack(owner, 'manifest', error);
      return null;
    }
  }

  async function byTag(route: Route, tag: string, accept: string | undefined, fromPeer?: string) {
    const { registry, repository } = route;
    const { owner, via } = ownerFor(route, tag, fromPeer);
    const record = await localRead(
      { tag: `${registry}/${repository}:${tag}` },
      store.getTag(registry, repository, tag),
    );
    if (!record || !acceptable(record.mediaType, accept)) {
      // Nothing usable cached: one GET by tag, stored under its digest (and as the tag if new).
      return shareTag(`${registry}/${repository}:${tag} ${accept ?? ''}${via}`, async () => {
        const owned = await fromOwner(owner, route, tag, accept);
        const manifest = owned
          ? { ...owned, passed: {} }
          : await upstreams.get(registry).getManifest(repository, tag, accept);
        if (!owned) deps.events?.fetched(registry, manifest.size);
        await keep(store.putManifest(manifest), { digest: manifest.digest }, 'manifest');
        if (!record)
          await keep(store.putTag(registry, repository, tag, recordOf(manifest, now())), { tag }, 'tag');
        return { manifest, passed: manifest.passed, cache: 'miss' as const };
      });
    }
    const cached = await localRead({ digest: record.digest }, store.getManifest(record.digest));
    if (cached && now() - record.fetchedAt < deps.tagTTL * upstreams.get(registry).tagTTLFactor())
      return { manifest: cached, passed: {}, cache: 'hit' as const };
    return shareTag(`${registry}/${repository}:${tag} revalidate${via}`, () =>
      revalidate(route, tag, record, cached, accept, owner),
    );
  }

  async function revalidate(
    route: Route,
    tag: string,
    record: TagRecord,
    cached: Manifest | null,
    accept: string | undefined,
    owner: string | null,
  ): Promise<{ manifest: Manifest; passed: Record<string, string>; cache: CacheOutcome }> {
    const { registry, repository } = route;
    const owned = await fromOwner(owner, route, tag, accept);
    if (owned) {
      const same = owned.digest === record.digest && cached !== null;
      const manifest = same ? cached : owned;
      if (!same) await keep(store.putManifest(owned), { digest: owned.digest }, 'manifest');
      await keep(store.putTag(registry, repository, tag, recordOf(manifest, now())), { tag }, 'tag');
      return { manifest, passed: {}, cache: same ? 'revalidated' : 'miss' };
    }
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
          : await fetchByDigest(route, reference, options.accept, options.fromPeer).then((m) => ({
              manifest: m,
              passed: m.passed,
              cache: 'miss' as const,
            }));
      } else {
        result = await byTag(route, reference, options.accept, options.fromPeer);
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
