/**
 * @module The pull side of the OCI distribution API: `/v2/<name>/manifests|blobs|tags|referrers`.
 * Validates every name, reference and digest before anything reaches the pull layer or an upstream.
 */
import type { Context } from 'hono';
import { parseRangeHeader } from '../byte-range.js';
import type { Config } from '../config.js';
import { parseDigest } from '../digest.js';
import { badRequest, notFound, unsupported, upstreamTimeout } from '../errors.js';
import type { Puller } from '../pull/puller.js';
import { parseArtifactType } from '../pull/referrers-index.js';
import type { BlobAnswer, ListingAnswer } from '../pull/types.js';
import { assertTag } from '../reference.js';
import { type Route, resolveRoute } from '../routing.js';
import { mergeAccept } from './accept.js';
import type { Env, PullInfo } from './env.js';
import { headerValues, rawPath, sendSource } from './send.js';
import { parseV2Path } from './v2-path.js';

export const API_VERSION_HEADER = { 'docker-distribution-api-version': 'registry/2.0' };

export interface V2Deps {
  config: Pick<Config, 'registries' | 'defaultRegistry' | 'limits'>;
  puller: Puller;
}

/** Handles every `/v2` request; the caller maps thrown RegistryErrors to OCI error bodies. */
export function createV2Handler({ config, puller }: V2Deps) {
  return async function v2Handler(c: Context<Env>): Promise<Response> {
    const endpoint = parseV2Path(rawPath(c));
    if (!endpoint) throw notFound();
    const info: PullInfo = { endpoint: endpoint.kind };
    c.set('pull', info);
    const method = c.req.method;
    const head = method === 'HEAD';
    if (endpoint.kind === 'upload') throw unsupported('pushing is not supported by this pull-through cache');
    if (method !== 'GET' && !head) {
      throw unsupported(`${method} is not supported by this pull-through cache: it is read-only`);
    }
    if (endpoint.kind === 'base') return c.json({}, 200, API_VERSION_HEADER);
    if (endpoint.kind === 'catalog') {
      throw notFound('a pull-through cache has no catalog of its upstreams');
    }

    const route = resolveRoute(endpoint.name, c.req.query('ns'), config);
    const base: Record<string, string> = { ...API_VERSION_HEADER };
    // containerd's namespace proposal: say which registry answered a `?ns=` request.
    if (route.via === 'ns') base['oci-namespace'] = route.registry;
    info.registry = route.registry;
    info.repository = route.repository;

    switch (endpoint.kind) {
      case 'manifest': {
        const reference = endpoint.reference;
        info.reference = reference;
        if (reference.includes(':')) parseDigest(reference);
        else assertTag(reference);
        const answer = await within(
          config.limits.manifestTimeout,
          route,
          puller.manifest(route, reference, {
            head,
            accept: mergeAccept(headerValues(c, 'accept')),
          }),
        );
        info.cache = answer.cache;
        const headers = {
          ...base,
          ...answer.passed,
          'content-type': answer.mediaType,
          'content-length': String(answer.size),
          'docker-content-digest': answer.digest,
          etag: `"${answer.digest}"`,
        };
        return head ? c.body(null, 200, headers) : c.body(new Uint8Array(answer.bytes!), 200, headers);
      }
      case 'blob': {
        info.reference = endpoint.digest;
        parseDigest(endpoint.digest);
        const range = parseRangeHeader(c.req.header('range'));
        const answer = await puller.blob(route, endpoint.digest, { head, range });
        info.cache = answer.cache;
        if (answer.redirect !== undefined) {
          // As distribution's storage redirect: the client takes the bytes from the bucket itself.
          const headers = { ...base, location: answer.redirect, 'docker-content-digest': answer.digest };
          return c.body(null, 307, headers);
        }
        return sendSource(c, answer.range ? 206 : 200, { ...base, ...blobHeaders(answer) }, answer.source);
      }
      case 'tags': {
        const query = listingQuery(c, ['n', 'last']);
        const n = query.get('n');
        if (n !== null && !/^\d{1,9}$/.test(n)) {
          throw badRequest('invalid n parameter: expected a non-negative integer');
        }
        const last = query.get('last');
        if (last !== null && last !== '') assertTag(last);
        const answer = await within(config.limits.manifestTimeout, route, puller.tags(route, query));
        return listing(c, answer, base, `/v2/${endpoint.name}/tags/list`, route, head);
      }
      case 'referrers': {
        info.reference = endpoint.digest;
        parseDigest(endpoint.digest);
        const artifactType = parseArtifactType(c.req.query('artifactType'));
        const answer = await within(
          config.limits.manifestTimeout,
          route,
          puller.referrers(route, endpoint.digest, artifactType),
        );
        info.cache = answer.cache;
        return listing(c, answer, base, `/v2/${endpoint.name}/referrers/${endpoint.digest}`, route, head);
      }
    }
  };
}

export function blobHeaders(answer: BlobAnswer): Record<string, string> {
  const length = answer.range ? answer.range.end - answer.range.start + 1 : answer.size;
  const headers: Record<string, string> = {
    ...answer.passed,
    'content-type': 'application/octet-stream',
    'content-length': String(length),
    'docker-content-digest': answer.digest,
    'accept-ranges': 'bytes',
    etag: `"${answer.digest}"`,
  };
  if (answer.range)
    headers['content-range'] = `bytes ${answer.range.start}-${answer.range.end}/${answer.size}`;
  return headers;
}

/** Only the query parameters an endpoint defines are passed upstream. */
function listingQuery(c: Context<Env>, names: string[]): URLSearchParams {
  const query = new URLSearchParams();
  for (const name of names) {
    const value = c.req.query(name);
    if (value !== undefined) query.set(name, value);
  }
  return query;
}

function listing(
  c: Context<Env>,
  answer: ListingAnswer,
  base: Record<string, string>,
  selfPath: string,
  route: Route,
  head: boolean,
): Response {
  const headers: Record<string, string> = {
    ...base,
    ...answer.passed,
    ...answer.headers,
    'content-type': answer.contentType,
    'content-length': String(answer.body.length),
  };
  if (answer.next) {
    // Point the next page at this proxy, under the name the client used.
    const query = new URLSearchParams(answer.next);
    if (route.via === 'ns') query.set('ns', route.registry);
    headers.link = `<${selfPath}?${query}>; rel="next"`;
  }
  return head ? c.body(null, 200, headers) : c.body(new Uint8Array(answer.body), 200, headers);
}

/**
 * Answers 504 if `work` takes longer than `ms`. The work itself goes on: a manifest that arrives late
 * still fills the cache for the client's retry.
 */
async function within<T>(ms: number, route: Route, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(upstreamTimeout(route.registry, undefined, { detail: { timeoutMs: ms } })),
      ms,
    );
  });
  work.catch(() => {}); // a late failure after the timeout has nobody to tell
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
