/**
 * @module The upstream registries of the config, each client created on first use and kept for its
 * pool, with its health (fail fast) and rate-limit budget: the registry itself, or with `parent:`
 * the parent pullcache (and, with `fallback: direct`, the registry while the parent cannot serve).
 */
import type { LookupFunction } from 'node:net';
import type { Config, RegistryConfig } from '../config.js';
import { createParentClient, PARENT_LABEL } from './parent-client.js';
import { createParentHealth, withDirectFallback } from './parent-fallback.js';
import {
  type BudgetNotice,
  createRateLimitBudget,
  type RateLimitBudget,
  type RateLimitReading,
} from './rate-limit-budget.js';
import { createRegistryClient, type RegistryClient } from './registry-client.js';
import { createRemoteRegistry, type RemoteRegistry } from './remote-registry.js';
import { createUpstreamHealth, type HealthNotice, type UpstreamHealth } from './upstream-health.js';

export interface Upstreams {
  /** The client of a configured registry (routing has already refused the others). */
  get(registry: string): RemoteRegistry;
  /** The state of each registry contacted so far (metrics). */
  status(): UpstreamStatus[];
  close(): Promise<void>;
}

export interface UpstreamStatus {
  registry: string;
  /** Its last statement of its pull limit; null if it never sent one. */
  rateLimit: RateLimitReading | null;
  /** Whether requests to it are refused at once (it stopped answering). */
  coolingDown: boolean;
}

export interface UpstreamHooks {
  /** A token realm got an anonymous request because it may not have the registry's credentials. */
  onCredentialsWithheld?: (registry: string, realmHost: string, reason: string) => void;
  /** DNS lookup for upstream connections (tests map names to loopback or forbidden addresses). */
  lookup?: LookupFunction | undefined;
  /** Clock for cool-downs and rate-limit waits (tests). */
  now?: (() => number) | undefined;
  onTokenFetch?: (registry: string, scope: string) => void;
  onResponse?: (registry: string, status: number, seconds: number) => void;
  onError?: (registry: string, reason: string) => void;
  onHealth?: (registry: string, notice: HealthNotice) => void;
  onBudget?: (registry: string, notice: BudgetNotice) => void;
  /** With `fallback: direct`: the parent pullcache cannot be reached, so requests go to the registries. */
  onParentDown?: (parent: string, reason: string) => void;
  onParentUp?: (parent: string) => void;
  /** One request went to its registry because the parent could not serve it. */
  onParentFallback?: (registry: string, reason: string) => void;
}

export function createUpstreams(
  config: Pick<Config, 'registries' | 'upstream' | 'parent'>,
  hooks: UpstreamHooks = {},
): Upstreams {
  const clients = new Map<
    string,
    { remote: RemoteRegistry; health: UpstreamHealth; budget: RateLimitBudget }
  >();
  const now = hooks.now ?? Date.now;
  const { failFast, rateLimit } = config.upstream;
  const parentConfig = config.parent;
  const parentHealth =
    parentConfig?.fallback === 'direct'
      ? createParentHealth({
          now,
          onDown: (reason) => hooks.onParentDown?.(parentConfig.url, reason),
          onUp: () => hooks.onParentUp?.(parentConfig.url),
        })
      : null;

  /** The client that serves a registry, and the health that decides whether its clients get a 503 at once. */
  function clientOf(
    registry: string,
    entry: RegistryConfig,
  ): { client: RegistryClient; health: UpstreamHealth } {
    if (!parentConfig) return directClient(registry, entry);
    const parent = createParentClient(registry, parentConfig, config.upstream, {
      health: createUpstreamHealth(failFast, now),
      budget: createRateLimitBudget(rateLimit, now),
      lookup: hooks.lookup,
      onResponse: (status, seconds) => hooks.onResponse?.(PARENT_LABEL, status, seconds),
      onError: (reason) => hooks.onError?.(PARENT_LABEL, reason),
      onHealth: (notice) => hooks.onHealth?.(`${PARENT_LABEL} for ${registry}`, notice),
      onBudget: (notice) => hooks.onBudget?.(registry, notice),
    });
    if (!parentHealth) return parent; // fallback: none
    const direct = directClient(registry, entry);
    const client = withDirectFallback(parent.client, direct.client, parentHealth, {
      onFallback: hooks.onParentFallback,
    });
    return { client, health: direct.health };
  }

  function directClient(registry: string, entry: RegistryConfig) {
    const health = createUpstreamHealth(failFast, now);
    // One client per registry, with that registry's one set of credentials: a budget per credential.
    const budget = createRateLimitBudget(rateLimit, now);
    const client = createRegistryClient({
      name: registry,
      url: entry.url,
      credentials:
        entry.username && entry.password ? { username: entry.username, password: entry.password } : undefined,
      tokenRealms: entry.tokenRealms,
      lookup: hooks.lookup,
      connectTimeout: config.upstream.connectTimeout,
      headersTimeout: config.upstream.headersTimeout,
      bodyTimeout: config.upstream.bodyTimeout,
      maxRedirects: config.upstream.maxRedirects,
      budget,
      health,
      onTokenFetch: (scope) => hooks.onTokenFetch?.(registry, scope),
      onResponse: (status, seconds) => hooks.onResponse?.(registry, status, seconds),
      onError: (reason) => hooks.onError?.(registry, reason),
      onCredentialsWithheld: (realmHost, reason) =>
        hooks.onCredentialsWithheld?.(registry, realmHost, reason),
      onHealth: (notice) => hooks.onHealth?.(registry, notice),
      onBudget: (notice) => hooks.onBudget?.(registry, notice),
    });
    return { client, health };
  }

  return {
    get(registry) {
      let entry = clients.get(registry);
      if (!entry) {
        const registryConfig = config.registries[registry];
        if (!registryConfig) throw new Error(`registry ${registry} is not configured`); // routing refuses these first
        const { client, health } = clientOf(registry, registryConfig);
        const { minRate, minRateWindow } = config.upstream;
        const remote = createRemoteRegistry(client, {
          minRate: minRate === null ? null : { bytesPerSecond: minRate, windowMs: minRateWindow },
        });
        entry = { remote, health, budget: client.budget };
        clients.set(registry, entry);
      }
      return entry.remote;
    },
    status() {
      return [...clients].map(([registry, { health, budget }]) => ({
        registry,
        rateLimit: budget.reading(),
        coolingDown: health.coolingDown(),
      }));
    },
    async close() {
      await Promise.all([...clients.values()].map((c) => c.remote.close()));
      clients.clear();
    },
  };
}
