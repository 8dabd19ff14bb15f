/**
 * @module Tag lists: never cached (they change with every push), passed through with the next
 * page's query kept for the HTTP layer to point back at the proxy. (Referrers are cached: referrers.ts.)
 */
import type { Route } from '../routing.js';
import type { Listing } from '../upstream/remote-registry.js';
import type { Upstreams } from '../upstream/upstreams.js';
import type { ListingAnswer } from './types.js';

export function createListings(upstreams: Upstreams) {
  return {
    async tags(route: Route, query: URLSearchParams): Promise<ListingAnswer> {
      return toListing(await upstreams.get(route.registry).tags(route.repository, query));
    },
  };
}

function toListing(response: Listing): ListingAnswer {
  return {
    contentType: response.contentType ?? 'application/json',
    body: response.body,
    next: response.next,
    headers: {},
    passed: response.passed,
  };
}
