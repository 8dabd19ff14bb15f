/**
 * A store that lets clients fetch cached blobs themselves (`blobUrl`, the S3 store with `redirect`):
 * cached blob GETs, Range ones included, are 307s to its URL; HEADs are answered directly; a blob
 * not cached yet is downloaded and streamed as always, and only then redirected. Runs over the disk
 * store with the capability added, and a fake upstream; the real one is in test/e2e/s3-pull.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContentStore } from '../../src/cache/content-store.js';
import { createDiskStore } from '../../src/cache/disk-store.js';
import { parseConfig } from '../../src/config.js';
import { createApp } from '../../src/http/app.js';
import { createMetrics } from '../../src/metrics.js';
import { createPuller } from '../../src/pull/puller.js';
import { createUpstreams } from '../../src/upstream/upstreams.js';
import { RegistryContent, registryHandlers } from '../support/fake-registry.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';

const content = new RegistryContent();
const layer = Buffer.from('a layer that clients fetch from the bucket');
const digest = content.addBlob(layer);
const urlOf = (d: string) => `http://bucket.example/blobs/${d.slice(7)}?X-Amz-Signature=x`;

let registry: LoopbackServer;
let folder: string;
let app: ReturnType<typeof createApp>;
let upstreams: ReturnType<typeof createUpstreams>;
let store: ContentStore;
const asked: string[] = [];

beforeAll(async () => {
  registry = await startLoopback(...registryHandlers(content, { auth: { kind: 'none' } }));
  folder = mkdtempSync(join(tmpdir(), 'pullcache-redirect-'));
  const disk = createDiskStore({ root: folder, maxSize: null });
  await disk.init();
  store = {
    ...disk,
    async blobUrl(d) {
      asked.push(d);
      const size = await disk.statBlob(d);
      return size === null ? null : { url: urlOf(d), size };
    },
  };
  const config = parseConfig({ registries: { 'docker.io': { url: registry.url } } }, {});
  const logger = pino({ level: 'silent' });
  upstreams = createUpstreams(config);
  const puller = createPuller({ config, upstreams, store, logger });
  app = createApp({
    config,
    puller,
    logger,
    metrics: createMetrics(),
    probeStorage: async () => {},
    // Not asked here: the status page has its own tests.
    status: { report: () => Promise.reject(new Error('no status page here')), syncRemovals: async () => {} },
  });
});
afterAll(async () => {
  await upstreams.close();
  await registry.close();
  rmSync(folder, { recursive: true, force: true });
});

const blobPath = `/v2/library/app/blobs/${digest}`;
const upstreamGets = () => registry.count('GET', `/v2/library/app/blobs/${digest}`);

describe('blob redirects', () => {
  it('streams a blob that is not cached yet, then redirects every GET of it, Range included', async () => {
    const cold = await app.request(blobPath);
    expect(cold.status).toBe(200);
    expect(Buffer.from(await cold.arrayBuffer()).equals(layer)).toBe(true);
    expect(upstreamGets()).toBe(1);
    await expect.poll(() => store.statBlob(digest), { timeout: 10_000 }).toBe(layer.length);

    const warm = await app.request(blobPath);
    expect(warm.status).toBe(307);
    expect(warm.headers.get('location')).toBe(urlOf(digest));
    expect(warm.headers.get('docker-content-digest')).toBe(digest);
    expect(await warm.text()).toBe('');

    const ranged = await app.request(blobPath, { headers: { range: 'bytes=2-7' } });
    expect(ranged.status).toBe(307);
    expect(ranged.headers.get('location')).toBe(urlOf(digest));
    expect(upstreamGets()).toBe(1);
  });

  it('answers a HEAD itself, with the size', async () => {
    asked.length = 0;
    const head = await app.request(blobPath, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(layer.length));
    expect(head.headers.get('location')).toBeNull();
    expect(asked).toEqual([]);
  });

  it('never redirects to a blob that is not in the store', async () => {
    const missing = content.addBlob('another layer');
    content.blobs.delete(missing); // unknown upstream too
    const response = await app.request(`/v2/library/app/blobs/${missing}`);
    expect(response.status).toBe(404);
    expect(response.headers.get('location')).toBeNull();
    expect(asked).toEqual([missing]);
  });
});
