/**
 * @module Tag lists: never cached (they change with every push), passed through with the pagination
 * link kept for the HTTP layer to point back at the proxy. (Referrers are cached: referrers.ts.)
 */
import type { Route } from '../routing.js';
import type { RawResponse } from '../upstream/remote-registry.js';
import type { Upstreams } from '../upstream/upstreams.js';
import type { ListingAnswer } from './types.js';

export function createListings(upstreams: Upstreams) {
  return {
    async tags(route: Route, query: URLSearchParams): Promise<ListingAnswer> {
      return toListing(await upstreams.get(route.registry).tags(route.repository, query));
    },
  };
}

function toListing(response: RawResponse): ListingAnswer {
  const link = response.headers.link;
  return {
    contentType: response.contentType ?? 'application/json',
    body: response.body,
    next: nextPageQuery(Array.isArray(link) ? link.join(', ') : link),
    headers: {},
    passed: response.passed,
  };
}

/** The query of the `rel="next"` target of a Link header (`</v2/x/tags/list?n=10&last=b>; rel="next"`). */
export function nextPageQuery(link: string | undefined): URLSearchParams | null {
  if (!link) return null;
  for (const part of link.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (match && /\brel\s*=\s*"?next"?/i.test(match[2]!)) {
      return new URL(match[1]!, 'http://upstream.invalid').searchParams;
    }
  }
  return null;
}
