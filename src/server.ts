/** @module Wires config → upstreams → pull layer → HTTP app, and serves it on the configured address. */
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { serve } from '@hono/node-server';
import type { Logger } from 'pino';
import { createDiskStore } from './cache/disk-store.js';
import type { Config } from './config.js';
import { createApp } from './http/app.js';
import { createPuller, type PullerDeps } from './pull/puller.js';
import { createUpstreams } from './upstream/upstreams.js';

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:5000 */
  url: string;
  close(): Promise<void>;
}

export function splitHostPort(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? '0.0.0.0' : host, port: Number(listen.slice(colon + 1)) };
}

export interface ServerHooks {
  /** Test clock for tag TTLs and last-use times. */
  now?: () => number;
  onDownload?: PullerDeps['onDownload'];
}

export async function startServer(
  config: Config,
  logger: Logger,
  hooks: ServerHooks = {},
): Promise<RunningServer> {
  const store = createDiskStore({
    root: resolve(config.storage.path),
    maxSize: config.storage.maxSize,
    ...(hooks.now ? { now: hooks.now } : {}),
    onEvict: (key, size) => logger.debug({ key, size }, 'evicted'),
  });
  await store.init();
  const upstreams = createUpstreams(config);
  const puller = createPuller({ config, upstreams, store, logger, ...hooks });
  const app = createApp({ config, puller, logger });
  const { host, port } = splitHostPort(config.listen);
  const server = await new Promise<ReturnType<typeof serve>>((done, fail) => {
    const s = serve({ fetch: app.fetch, hostname: host, port }, () => done(s));
    s.once('error', fail);
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  logger.info({ address: url, registries: Object.keys(config.registries) }, 'listening');
  return {
    url,
    async close() {
      await new Promise<void>((done) => server.close(() => done()));
      await upstreams.close();
    },
  };
}
