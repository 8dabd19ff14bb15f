/**
 * @module A parent pullcache as every registry's upstream: one client (one connection pool) for
 * the parent, each registry's requests sent to it with `?ns=<registry>`, containerd's convention,
 * which a pullcache routes by. The parent gets its own client token and never a registry's
 * credentials: those stay on the parent, which answers their challenges itself.
 */
import type { LookupFunction } from 'node:net';
import type { Config, ParentConfig } from '../config.js';
import { upstreamUnavailable } from '../errors.js';
import { createRegistryClient, discard, type RegistryClient } from './registry-client.js';

/** How the metrics and logs name requests to the parent. */
export const PARENT_LABEL = 'parent';

// A parent is a cache next to its nodes: one that has not accepted a connection within 3 s is
// down, and with `fallback: direct` the node should be on its way to the registry by then.
const PARENT_CONNECT_TIMEOUT_MS = 3_000;

export interface ParentHooks {
  lookup?: LookupFunction | undefined;
  onResponse?: ((registry: string, status: number, seconds: number) => void) | undefined;
  onError?: ((registry: string, reason: string) => void) | undefined;
}

export interface ParentClient {
  /** What errors call the parent: `parent pullcache http://host:port`. */
  readonly describe: string;
  /** A client for one registry's requests, all sent to the parent with `?ns=<registry>`. */
  forRegistry(registry: string): RegistryClient;
  close(): Promise<void>;
}

export function createParentClient(
  parent: ParentConfig,
  upstream: Config['upstream'],
  hooks: ParentHooks = {},
): ParentClient {
  const describe = `parent pullcache ${parent.url}`;
  const client = createRegistryClient({
    name: new URL(parent.url).host,
    url: parent.url,
    credentials: undefined, // a registry's credentials stay on the parent
    authorization: parent.token === undefined ? undefined : `Bearer ${parent.token}`,
    describe,
    lookup: hooks.lookup,
    connectTimeout: Math.min(upstream.connectTimeout, PARENT_CONNECT_TIMEOUT_MS),
    headersTimeout: upstream.headersTimeout,
    bodyTimeout: upstream.bodyTimeout,
    maxRedirects: upstream.maxRedirects,
    onResponse: (status, seconds) => hooks.onResponse?.(PARENT_LABEL, status, seconds),
    onError: (reason) => hooks.onError?.(PARENT_LABEL, reason),
  });

  return {
    describe,
    forRegistry(registry) {
      return {
        name: registry,
        async send(req) {
          const query = new URLSearchParams(req.query);
          query.set('ns', registry);
          const response = await client.send({ ...req, query });
          // A pullcache challenges only for its own client auth (an upstream's 401 comes without
          // one): the parent refused our token, which no client of ours can do anything about.
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
        close: async () => {}, // the parent's one pool is closed with the parent client
      };
    },
    close: () => client.close(),
  };
}
