/** @module The upstream registries of the config, each client created on first use and kept for its pool. */
import type { LookupFunction } from 'node:net';
import type { Config } from '../config.js';
import { createRegistryClient } from './registry-client.js';
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
}

export function createUpstreams(
  config: Pick<Config, 'registries' | 'upstream'>,
  hooks: UpstreamHooks = {},
): Upstreams {
  const clients = new Map<string, RemoteRegistry>();
  return {
    get(registry) {
      let remote = clients.get(registry);
      if (!remote) {
        const entry = config.registries[registry];
        if (!entry) throw new Error(`registry ${registry} is not configured`); // routing refuses these first
        const client = createRegistryClient({
          name: registry,
          url: entry.url,
          credentials:
            entry.username && entry.password
              ? { username: entry.username, password: entry.password }
              : undefined,
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
      clients.clear();
    },
  };
}
