/**
 * @module A parent pullcache as a registry's upstream: the registry's requests go to the parent
 * with `?ns=<registry>`, containerd's convention, which a pullcache routes by. The parent gets its
 * own client token and never the registry's credentials: those stay on the parent, which answers
 * the registry's challenges itself. Each registry has its own client, so its health and its pull
 * limit (the `ratelimit-*` headers the parent passes on) are its own.
 */
import type { LookupFunction } from 'node:net';
import type { Config, ParentConfig } from '../config.js';
import { upstreamUnavailable } from '../errors.js';
import type { BudgetNotice, RateLimitBudget } from './rate-limit-budget.js';
import { createRegistryClient, discard, type RegistryClient } from './registry-client.js';
import type { HealthNotice, UpstreamHealth } from './upstream-health.js';

/** How the metrics name requests to the parent. */
export const PARENT_LABEL = 'parent';

// A parent is a cache next to its nodes: one that has not accepted a connection within 3 s is
// down, and with `fallback: direct` the node should be on its way to the registry by then.
const PARENT_CONNECT_TIMEOUT_MS = 3_000;

export interface ParentClientOptions {
  health: UpstreamHealth;
  budget: RateLimitBudget;
  lookup?: LookupFunction | undefined;
  onResponse?: (status: number, seconds: number) => void;
  onError?: (reason: string) => void;
  onHealth?: (notice: HealthNotice) => void;
  onBudget?: (notice: BudgetNotice) => void;
}

export function createParentClient(
  registry: string,
  parent: ParentConfig,
  upstream: Config['upstream'],
  options: ParentClientOptions,
): { client: RegistryClient; health: UpstreamHealth } {
  const describe = `parent pullcache ${parent.url}`;
  const inner = createRegistryClient({
    // Errors the client makes itself (cooling down, a spent limit) name the registry and the parent.
    name: `${registry} through ${describe}`,
    url: parent.url,
    credentials: undefined, // the registry's credentials stay on the parent
    authorization: parent.token === undefined ? undefined : `Bearer ${parent.token}`,
    describe,
    lookup: options.lookup,
    connectTimeout: Math.min(upstream.connectTimeout, PARENT_CONNECT_TIMEOUT_MS),
    headersTimeout: upstream.headersTimeout,
    bodyTimeout: upstream.bodyTimeout,
    maxRedirects: upstream.maxRedirects,
    health: options.health,
    budget: options.budget,
    ...(options.onResponse ? { onResponse: options.onResponse } : {}),
    ...(options.onError ? { onError: options.onError } : {}),
    ...(options.onHealth ? { onHealth: options.onHealth } : {}),
    ...(options.onBudget ? { onBudget: options.onBudget } : {}),
  });

  const client: RegistryClient = {
    name: registry,
    budget: inner.budget,
    async send(req) {
      const query = new URLSearchParams(req.query);
      query.set('ns', registry);
      const response = await inner.send({ ...req, query });
      // A pullcache challenges only for its own client auth (an upstream's 401 comes without one):
      // the parent refused our token, which no client of ours can do anything about.
      if (response.status === 401 && response.headers['www-authenticate'] !== undefined) {
        await discard(response);
        throw upstreamUnavailable(
          registry,
          `${describe} refused this node's client credentials (parent.token)${parent.token === undefined ? ': none is configured' : ''}`,
          { reason: 'PARENT_UNAUTHORIZED', detail: { parent: parent.url } },
        );
      }
      return response;
    },
    close: () => inner.close(),
  };
  return { client, health: options.health };
}
