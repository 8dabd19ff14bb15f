/**
 * @module The upstream registries of the config, each client created on first use and kept for its
 * pool: the registry itself, or with `parent:` the parent pullcache (and, with `fallback: direct`,
 * the registry while the parent cannot serve).
 */
import type { LookupFunction } from 'node:net';
import type { Config, RegistryConfig } from '../config.js';
import { createParentClient } from './parent-client.js';
import { createParentHealth, withDirectFallback } from './parent-fallback.js';
import { createRegistryClient, type RegistryClient } from './registry-client.js';
import { createRemoteRegistry, type RemoteRegistry } from './remote-registry.js';

export interface Upstreams {
  /** The client of a configured registry (routing has already refused the others). */
  get(registry: string): RemoteRegistry;
  close(): Promise<void>;
}

export interface UpstreamHooks {
  /** A token realm got an anonymous request because it may not have the registry's credentials. */
  onCredentialsWithheld?: (registry: string, realmHost: string, reason: string) => void;
  /** DNS lookup for upstream connections (tests map names to loopback or forbidden addresses). */
  lookup?: LookupFunction | undefined;
  onTokenFetch?: (registry: string, scope: string) => void;
  onResponse?: (registry: string, status: number, seconds: number) => void;
  onError?: (registry: string, reason: string) => void;
  /** With `fallback: direct`: the parent pullcache cannot be reached, so requests go to the registries. */
  onParentDown?: (parent: string, reason: string) => void;
  onParentUp?: (parent: string) => void;
  /** One request went to its registry because the parent could not serve it. */
  onParentFallback?: (registry: string, reason: string) => void;
  /** Clock of the parent's cool-down (tests). */
  now?: () => number;
}

export function createUpstreams(
  config: Pick<Config, 'registries' | 'upstream' | 'parent'>,
  hooks: UpstreamHooks = {},
): Upstreams {
  const clients = new Map<string, RemoteRegistry>();
  const parentConfig = config.parent;
  const parent = parentConfig ? createParentClient(parentConfig, config.upstream, hooks) : null;
  const parentHealth =
    parentConfig?.fallback === 'direct'
      ? createParentHealth({
          ...(hooks.now ? { now: hooks.now } : {}),
          onDown: (reason) => hooks.onParentDown?.(parentConfig.url, reason),
          onUp: () => hooks.onParentUp?.(parentConfig.url),
        })
      : null;

  function clientOf(registry: string, entry: RegistryConfig): RegistryClient {
    if (!parent) return directClient(registry, entry);
    if (!parentHealth) return parent.forRegistry(registry); // fallback: none
    return withDirectFallback(parent.forRegistry(registry), directClient(registry, entry), parentHealth, {
      onFallback: hooks.onParentFallback,
    });
  }

  function directClient(registry: string, entry: RegistryConfig): RegistryClient {
    return createRegistryClient({
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
      onTokenFetch: (scope) => hooks.onTokenFetch?.(registry, scope),
      onResponse: (status, seconds) => hooks.onResponse?.(registry, status, seconds),
      onError: (reason) => hooks.onError?.(registry, reason),
      onCredentialsWithheld: (realmHost, reason) =>
        hooks.onCredentialsWithheld?.(registry, realmHost, reason),
    });
  }

  return {
    get(registry) {
      let remote = clients.get(registry);
      if (!remote) {
        const entry = config.registries[registry];
        if (!entry) throw new Error(`registry ${registry} is not configured`); // routing refuses these first
        const client = clientOf(registry, entry);
        const { minRate, minRateWindow } = config.upstream;
        remote = createRemoteRegistry(client, {
          minRate: minRate === null ? null : { bytesPerSecond: minRate, windowMs: minRateWindow },
        });
        clients.set(registry, remote);
      }
      return remote;
    },
    async close() {
      await Promise.all([...clients.values()].map((c) => c.close()));
      await parent?.close();
      clients.clear();
    },
  };
}
