/**
 * The status API and page (`/_pullcache/api/status`, `/_pullcache/`): after pulls from two
 * registries it reports answers from the cache and from the upstream with their bytes, the images
 * by size and pulls (pull counts reach the disk), a download in flight with its progress, upstream
 * errors and pull limits; and it is behind the same client rules as /v2.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HttpResponse, http } from 'msw';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusReport } from '../../src/status/status-report.js';
import { createBlobUpstream } from '../support/blob-upstream.js';
import { OCI_MANIFEST, RegistryContent, registryHandlers } from '../support/fake-registry.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { settled, startProxy, type TestProxy } from '../support/proxy.js';

const hub = new RegistryContent();
const quay = new RegistryContent();
const app = hub.addImage('library/app', '1.0', Buffer.alloc(5000, 'app layer '));
const tool = quay.addImage('team/tool', '2.0', Buffer.alloc(2000, 'tool layer '));
const big = createBlobUpstream('library/big');
const bigBlob = big.add(2 * 1024 * 1024);

let hubServer: LoopbackServer;
let quayServer: LoopbackServer;
let proxy: TestProxy;

beforeAll(async () => {
  hubServer = await startLoopback(
    big.handler,
    ...registryHandlers(hub, {
      auth: { kind: 'none' },
      headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '76;w=21600' },
    }),
  );
  quayServer = await startLoopback(
    http.get('/v2/team/broken/manifests/:ref', () =>
      HttpResponse.json({ errors: [{ code: 'UNAVAILABLE', message: 'down' }] }, { status: 503 }),
    ),
    ...registryHandlers(quay, { auth: { kind: 'none' } }),
  );
  proxy = await startProxy({
    registries: { 'docker.io': { url: hubServer.url }, 'quay.io': { url: quayServer.url } },
    // Without prefetch each blob is fetched when the client asks for it: a prefetched one could be
    // committed before the client's GET and count as a hit, or not, as the machine's load decides.
    prefetch: { layers: false },
  });
});
afterAll(async () => {
  await proxy?.close();
  await hubServer?.close();
  await quayServer?.close();
});

async function pull(name: string, tag: string, image: { config: string; layer: string }) {
  const manifest = await fetch(`${proxy.url}/v2/${name}/manifests/${tag}`, {
    headers: { accept: OCI_MANIFEST },
  });
  expect(manifest.status).toBe(200);
  await manifest.arrayBuffer();
  for (const digest of [image.config, image.layer]) {
    const blob = await fetch(`${proxy.url}/v2/${name}/blobs/${digest}`);
    expect(blob.status).toBe(200);
    await blob.arrayBuffer();
  }
}

async function status(): Promise<StatusReport> {
  const response = await fetch(`${proxy.url}/_pullcache/api/status`);
  expect(response.status).toBe(200);
  return (await response.json()) as StatusReport;
}

describe('the status API', () => {
  it('reports what the cache served and fetched per registry, and the images', async () => {
    await pull('app', '1.0', app); // misses
    await settled(proxy.url);
    await pull('app', '1.0', app); // hits
    await pull('app', '1.0', app);
    await pull('quay.io/team/tool', '2.0', tool);
    await settled(proxy.url);
    const report = await status();

    const hubBytes = hub.blobs.get(app.layer)!.length + hub.blobs.get(app.config)!.length;
    const docker = report.traffic['docker.io']!;
    // Three answers (manifest, config, layer) a pull: the first three from the upstream, then six hits.
    expect(docker.sinceStart).toMatchObject({ hits: 6, misses: 3, hitRatio: 6 / 9 });
    expect(docker.hour).toEqual(docker.sinceStart);
    expect(docker.sinceStart.upstreamBytes).toBe(hubBytes + hub.manifests.get(app.manifest)!.bytes.length);
    // Bytes sent count the response headers too, as the Prometheus metric does.
    expect(docker.sinceStart.cacheBytes).toBeGreaterThan(2 * hubBytes);
    expect(docker.perMinute).toHaveLength(60);
    expect(docker.perHour).toHaveLength(24);
    expect(docker.perMinute.at(-1)!.hits).toBe(6);
    expect(report.traffic['quay.io']!.sinceStart).toMatchObject({ hits: 0, misses: 3 });

    expect(report.images.count).toBe(2);
    expect(report.images.largest.map((i) => i.name)).toEqual([
      'docker.io/library/app:1.0',
      'quay.io/team/tool:2.0',
    ]);
    expect(report.images.mostPulled.map((i) => [i.name, i.pulls])).toEqual([
      ['docker.io/library/app:1.0', 3],
      ['quay.io/team/tool:2.0', 1],
    ]);
    expect(report.cache).toMatchObject({ blobs: 4, manifests: 2 });
    expect(Object.keys(report.upstreams)).toEqual(['docker.io', 'quay.io']);
    expect(report.upstreams['docker.io']).toEqual({
      errors: { lastHour: 0, sinceStart: 0, byReason: {}, lastAt: null },
      health: { coolingDown: false, rateLimit: { limit: 100, remaining: 76, windowSeconds: 21600 } },
    });
    expect(report.upstreams['quay.io']!.health).toEqual({ coolingDown: false, rateLimit: null });
  });

  it('writes the pull counts beside the tag records when the server stops', async () => {
    const storage = proxy.storage;
    await proxy.stop();
    const record = JSON.parse(
      readFileSync(join(storage, 'tags', 'docker.io', 'library', 'app', '_pulls', '1.0.json'), 'utf8'),
    ) as { pulls: number; lastPulledAt: number };
    expect(record.pulls).toBe(3);
    expect(Date.now() - record.lastPulledAt).toBeLessThan(60_000);
    proxy = await startProxy(
      { registries: { 'docker.io': { url: hubServer.url }, 'quay.io': { url: quayServer.url } } },
      { storage },
    );
    const again = await status();
    expect(again.images.mostPulled[0]).toMatchObject({ name: 'docker.io/library/app:1.0', pulls: 3 });
  });

  it('shows a download in flight with its progress', async () => {
    const held = big.holdLastChunk();
    const response = fetch(`${proxy.url}/v2/big/blobs/${bigBlob}`);
    await held.reached;
    // The upstream waits before its last chunk; what it sent reaches the store a batch at a time.
    let report = await status();
    for (let i = 0; i < 500 && (report.downloads[0]?.received ?? 0) === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      report = await status();
    }
    expect(report.downloads).toHaveLength(1);
    const download = report.downloads[0]!;
    expect(download).toMatchObject({
      digest: bigBlob,
      registry: 'docker.io',
      repository: 'library/big',
      size: 2 * 1024 * 1024,
      storing: true,
    });
    expect(download.received).toBeGreaterThan(0);
    expect(download.received).toBeLessThan(2 * 1024 * 1024);
    held.release();
    await (await response).arrayBuffer();
    await settled(proxy.url);
    expect((await status()).downloads).toEqual([]);
  });

  it('lists upstream errors, newest first, with counts per registry', async () => {
    const failed = await fetch(`${proxy.url}/v2/quay.io/team/broken/manifests/1.0`);
    expect(failed.status).toBe(503);
    const report = await status();
    expect(report.upstreams['quay.io']!.errors).toMatchObject({
      lastHour: 1,
      sinceStart: 1,
      byReason: { 'status 503': 1 },
    });
    expect(report.recentErrors[0]).toMatchObject({ registry: 'quay.io', reason: 'status 503' });
  });

  it('serves the page as HTML that reads the API', async () => {
    const page = await fetch(`${proxy.url}/_pullcache/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain("fetch('api/status'");
    const bare = await fetch(`${proxy.url}/_pullcache`, { redirect: 'manual' });
    expect(bare.status).toBe(301);
    expect(bare.headers.get('location')).toBe('/_pullcache/');
  });
});

describe('the status page behind client access rules', () => {
  it('asks for credentials like /v2, and answers with them', async () => {
    const token = 'a-status-page-token-of-32-chars!';
    const guarded = await startProxy({
      registries: { 'docker.io': { url: 'http://127.0.0.1:9' } },
      auth: { tokens: [token] },
    });
    try {
      for (const path of ['/_pullcache/', '/_pullcache/api/status']) {
        const anonymous = await fetch(`${guarded.url}${path}`);
        expect(anonymous.status).toBe(401);
        expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic /);
        const allowed = await fetch(`${guarded.url}${path}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        expect(allowed.status).toBe(200);
        await allowed.arrayBuffer();
      }
    } finally {
      await guarded.close();
    }
  });

  it('refuses addresses outside allowedClients', async () => {
    const fenced = await startProxy({
      registries: { 'docker.io': { url: 'http://127.0.0.1:9' } },
      allowedClients: ['10.0.0.0/8'],
    });
    try {
      expect((await fetch(`${fenced.url}/_pullcache/`)).status).toBe(403);
      expect((await fetch(`${fenced.url}/_pullcache/api/status`)).status).toBe(403);
    } finally {
      await fenced.close();
    }
  });
});
