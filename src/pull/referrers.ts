/**
 * @module Referrers (signatures, attestations, SBOMs), cached like tags: a record per registry,
 * repository, subject digest and artifactType filter, served while younger than `tagTTL`, then asked
 * again; when the upstream cannot answer, the cached list is served (stale-if-error). An upstream
 * without the referrers API (404) is answered from the spec's fallback tag (`sha256-<hex>`, read
 * through the tag path, so it is cached too), filtered here; no fallback tag is an empty list. Either
 * way the client gets one OCI image index with every page of the upstream's list in it.
 */
import type { Logger } from 'pino';
import type { ContentStore, ReferrersRecord } from '../cache/content-store.js';
import { MANIFEST_MAX_BYTES, MEDIA_TYPES } from '../content.js';
import { RegistryError, upstreamInvalid } from '../errors.js';
import type { Route } from '../routing.js';
import type { Upstreams } from '../upstream/upstreams.js';
import { createLocalRead } from './local-read.js';
import { isOutage } from './manifests.js';
import { pullFailure } from './pull-failure.js';
import {
  fallbackTag,
  filterReferrers,
  type ReferrerDescriptor,
  referrersIndex,
  referrersOf,
} from './referrers-index.js';
import { createSingleFlight } from './single-flight.js';
import type { CacheOutcome, ManifestAnswer, ReferrersAnswer } from './types.js';

// A referrers list spread over more pages than this is not one we can hold as one index.
const MAX_PAGES = 64;

export interface ReferrersDeps {
  upstreams: Upstreams;
  store: ContentStore;
  logger: Logger;
  /** The fallback tag goes through the manifests' tag path (its own record, TTL and stale-if-error). */
  manifest(
    route: Route,
    reference: string,
    options: { head: boolean; accept: string | undefined },
  ): Promise<ManifestAnswer>;
  tagTTL: number;
  now?: () => number;
}

interface Fetched {
  manifests: ReferrerDescriptor[];
  source: ReferrersRecord['source'];
  passed: Record<string, string>;
}

export function createReferrers(deps: ReferrersDeps) {
  const { upstreams, store, logger } = deps;
  const now = deps.now ?? Date.now;
  const localRead = createLocalRead(logger);
  const share = createSingleFlight<{
    record: ReferrersRecord;
    passed: Record<string, string>;
    cache: CacheOutcome;
  }>();

  /** Every page of the upstream's referrers API as one list; null when the upstream has no such API. */
  async function fromApi(
    route: Route,
    subject: string,
    artifactType: string | null,
  ): Promise<Fetched | null> {
    const remote = upstreams.get(route.registry);
    const manifests: ReferrerDescriptor[] = [];
    let query: URLSearchParams | null = new URLSearchParams(artifactType === null ? {} : { artifactType });
    let passed: Record<string, string> = {};
    let bytes = 0;
    for (let page = 0; query !== null; page++) {
      if (page === MAX_PAGES) throw invalid(route, `sent a referrers list of more than ${MAX_PAGES} pages`);
      let response: Awaited<ReturnType<typeof remote.referrers>>;
      try {
        response = await remote.referrers(route.repository, subject, query);
      } catch (error) {
        // The spec forbids a 404 from a registry that has the API: this one does not.
        if (page === 0 && error instanceof RegistryError && error.status === 404) return null;
        throw error;
      }
      bytes += response.body.length;
      if (bytes > MANIFEST_MAX_BYTES) throw invalid(route, 'sent a referrers list over 4 MiB');
      const listed = referrersOf(response.body);
      if (listed === null) throw invalid(route, 'sent a referrers answer that is not an image index');
      manifests.push(...listed);
      passed = response.passed;
      query = response.next;
    }
    // The filter is applied here too: an upstream may ignore it (and not say OCI-Filters-Applied).
    return { manifests: filterReferrers(manifests, artifactType), source: 'api', passed };
  }

  /** The fallback tag's index, filtered; none (404), or not an image index: no referrers. */
  async function fromFallbackTag(
    route: Route,
    subject: string,
    artifactType: string | null,
  ): Promise<Fetched> {
    let answer: ManifestAnswer;
    try {
      answer = await deps.manifest(route, fallbackTag(subject), {
        head: false,
        accept: MEDIA_TYPES.ociIndex,
      });
    } catch (error) {
      if (error instanceof RegistryError && error.status === 404)
        return { manifests: [], source: 'tag', passed: {} };
      throw error;
    }
    const isIndex = answer.mediaType.split(';')[0]!.trim() === MEDIA_TYPES.ociIndex;
    const listed = isIndex ? referrersOf(answer.bytes!) : null;
    return { manifests: filterReferrers(listed ?? [], artifactType), source: 'tag', passed: answer.passed };
  }

  async function refresh(
    route: Route,
    subject: string,
    artifactType: string | null,
    cached: ReferrersRecord | null,
  ) {
    const { registry, repository } = route;
    try {
      const fetched =
        (await fromApi(route, subject, artifactType)) ??
        (await fromFallbackTag(route, subject, artifactType));
      const record: ReferrersRecord = {
        manifests: fetched.manifests,
        source: fetched.source,
        fetchedAt: now(),
      };
      try {
        await store.putReferrers(registry, repository, subject, artifactType, record);
      } catch (error) {
        logger.warn(
          {
            registry,
            repository,
            subject,
            reason: (error as NodeJS.ErrnoException).code,
            error: (error as Error).message,
          },
          'cannot store referrers: serving them uncached',
        );
      }
      return { record, passed: fetched.passed, cache: cached ? ('revalidated' as const) : ('miss' as const) };
    } catch (caught) {
      const error = pullFailure(registry, caught);
      if (!cached || !(error instanceof RegistryError) || !isOutage(error)) throw error;
      logger.warn(
        { registry, repository, subject, artifactType, status: error.status, error: error.message },
        'serving cached referrers: upstream could not revalidate them',
      );
      return { record: cached, passed: {}, cache: 'stale' as const };
    }
  }

  return {
    async referrers(route: Route, subject: string, artifactType: string | null): Promise<ReferrersAnswer> {
      const { registry, repository } = route;
      const cached = await localRead(
        { referrers: `${registry}/${repository}@${subject}` },
        store.getReferrers(registry, repository, subject, artifactType),
      );
      const result =
        cached && now() - cached.fetchedAt < deps.tagTTL
          ? { record: cached, passed: {}, cache: 'hit' as const }
          : await share(`${registry}/${repository}@${subject} ${artifactType ?? ''}`, () =>
              refresh(route, subject, artifactType, cached),
            );
      return {
        contentType: MEDIA_TYPES.ociIndex,
        body: referrersIndex(result.record.manifests),
        next: null,
        headers: artifactType === null ? {} : { 'oci-filters-applied': 'artifactType' },
        passed: result.passed,
        cache: result.cache,
      };
    },
  };
}

const invalid = (route: Route, what: string) => upstreamInvalid(route.registry, what, 'UNKNOWN');
