/**
 * @module The upstream registries of the config, each client created on first use and kept for its
 * pool, with its health (fail fast) and rate-limit budget.
 */
import type { LookupFunction } from 'node:net';
import type { Config } from '../config.js';
import {
  type BudgetNotice,
  createRateLimitBudget,
  type RateLimitBudget,
  type RateLimitReading,
} from './rate-limit-budget.js';
import { createRegistryClient } from './registry-client.js';
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
}

export function createUpstreams(
  config: Pick<Config, 'registries' | 'upstream'>,
  hooks: UpstreamHooks = {},
): Upstreams {
  const clients = new Map<
    string,
    { remote: RemoteRegistry; health: UpstreamHealth; budget: RateLimitBudget }
  >();
  const now = hooks.now ?? Date.now;
  return {
    get(registry) {
      let entry = clients.get(registry);
      if (!entry) {
        const registryConfig = config.registries[registry];
        if (!registryConfig) throw new Error(`registry ${registry} is not configured`); // routing refuses these first
        const { failFast, rateLimit } = config.upstream;
        const health = createUpstreamHealth(failFast, now);
        // One client per registry, with that registry's one set of credentials: a budget per credential.
        const budget = createRateLimitBudget(rateLimit, now);
        const client = createRegistryClient({
          name: registry,
          url: registryConfig.url,
          credentials:
            registryConfig.username && registryConfig.password
              ? { username: registryConfig.username, password: registryConfig.password }
              : undefined,
          tokenRealms: registryConfig.tokenRealms,
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
        const { minRate, minRateWindow } = config.upstream;
        const remote = createRemoteRegistry(client, {
          minRate: minRate === null ? null : { bytesPerSecond: minRate, windowMs: minRateWindow },
        });
        entry = { remote, health, budget };
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
