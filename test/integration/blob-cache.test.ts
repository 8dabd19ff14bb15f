/**
 * Blob caching against an msw-described upstream over loopback: one upstream download however many
 * clients ask, streamed to them as it arrives; corrupted bytes abort every client and store nothing;
 * a dropped connection is resumed with Range; Range requests; restarts; eviction.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpResponse, http } from 'msw';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { rangedBlobAnswer } from '../support/blob-upstream.js';
import { RegistryContent, registryHandlers, sha256 } from '../support/fake-registry.js';
import { firstError, jsonOf } from '../support/http-client.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { settled, startProxy, type TestProxy } from '../support/proxy.js';

const CHUNK = 64 * 1024;

/** How the streaming upstream behaves for the next blob request. */
const upstream = {
  delayMs: 0,
  corrupt: false,
  /** Break the connection after this many bytes on the first request (then serve normally). */
  dropAfter: null as number | null,
  finishedAt: 0,
};

function streamBlob(bytes: Buffer, start: number): ReadableStream<Uint8Array> {
  let offset = start;
  const dropAt = upstream.dropAfter;
  upstream.dropAfter = null;
  const corrupt = upstream.corrupt;
  return new ReadableStream({
    async pull(controller) {
      if (upstream.delayMs) await sleep(upstream.delayMs);
      if (dropAt !== null && offset >= dropAt) {
        controller.error(new Error('connection dropped'));
        return;
      }
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      const chunk = Buffer.from(bytes.subarray(offset, Math.min(offset + CHUNK, bytes.length)));
      if (corrupt && offset === start) chunk[0] = (chunk[0]! + 1) % 256;
      offset += chunk.length;
      controller.enqueue(chunk);
      if (offset >= bytes.length) upstream.finishedAt = performance.now(); // the last byte is out
    },
  });
}

const content = new RegistryContent();
const blobs = new Map<string, Buffer>();
function addBig(size: number): string {
  const bytes = randomBytes(size);
  const digest = sha256(bytes);
  blobs.set(digest, bytes);
  return digest;
}

const streaming = http.get('/v2/library/big/blobs/:digest', ({ params, request }) => {
  const bytes = blobs.get(String(params.digest));
  if (!bytes)
    return HttpResponse.json(
      { errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown' }] },
      { status: 404 },
    );
  const { start, status, headers } = rangedBlobAnswer(request, bytes.length);
  return new HttpResponse(streamBlob(bytes, start), { status, headers });
});

let registry: LoopbackServer;
let proxy: TestProxy;

beforeAll(async () => {
  registry = await startLoopback(streaming, ...registryHandlers(content, { auth: { kind: 'none' } }));
  proxy = await startProxy({ registries: { 'docker.io': { url: registry.url } } });
});
afterAll(async () => {
  await proxy.close();
  await registry.close();
});
beforeEach(() => {
  Object.assign(upstream, { delayMs: 0, corrupt: false, dropAfter: null, finishedAt: 0 });
  registry.requests.length = 0;
});

const blobUrl = (digest: string, base = proxy.url) => `${base}/v2/library/big/blobs/${digest}`;
const blobFile = (storage: string, digest: string) =>
  join(storage, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
const upstreamGets = (digest: string) => registry.count('GET', `/v2/library/big/blobs/${digest}`);
const hashOf = (bytes: ArrayBuffer) =>
  `sha256:${createHash('sha256').update(Buffer.from(bytes)).digest('hex')}`;

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe('a cold blob', () => {
  it('is fetched once, stored verified, and then served from disk (GET and HEAD)', async () => {
    const digest = addBig(300_000);
    const first = await fetch(blobUrl(digest));
    expect(first.status).toBe(200);
    expect(first.headers.get('content-length')).toBe('300000');
    expect(hashOf(await first.arrayBuffer())).toBe(digest);
    await settled(proxy.url); // the commit (fsync + rename) follows the last byte
    expect(existsSync(blobFile(proxy.storage, digest))).toBe(true);
    const second = await fetch(blobUrl(digest));
    expect(hashOf(await second.arrayBuffer())).toBe(digest);
    const head = await fetch(blobUrl(digest), { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe('300000');
    expect(head.headers.get('docker-content-digest')).toBe(digest);
    expect(registry.requests).toHaveLength(1);
  });

  it('costs one upstream GET for 50 concurrent clients, each streaming before the download ends', async () => {
    const digest = addBig(2 * 1024 * 1024);
    upstream.delayMs = 10; // 32 chunks: about a third of a second upstream
    let firstByteAt = 0;
    const clients = Array.from({ length: 50 }, async (_, i) => {
      const response = await fetch(blobUrl(digest));
      expect(response.status).toBe(200);
      const reader = response.body!.getReader();
      const chunks: Uint8Array[] = [];
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (i === 0 && firstByteAt === 0) firstByteAt = performance.now();
        chunks.push(value);
      }
      return Buffer.concat(chunks);
    });
    const bodies = await Promise.all(clients);
    expect(upstreamGets(digest)).toBe(1);
    for (const body of bodies)
      expect(hashOf(body.buffer.slice(body.byteOffset, body.byteOffset + body.length) as ArrayBuffer)).toBe(
        digest,
      );
    expect(firstByteAt).toBeGreaterThan(0);
    expect(firstByteAt).toBeLessThan(upstream.finishedAt);
  });

  it('aborts every client and stores nothing when the upstream bytes do not verify', async () => {
    const digest = addBig(512 * 1024);
    upstream.corrupt = true;
    upstream.delayMs = 5;
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const response = await fetch(blobUrl(digest));
        try {
          await response.arrayBuffer();
          return 'complete';
        } catch {
          return 'aborted';
        }
      }),
    );
    expect(outcomes).toEqual(Array(10).fill('aborted'));
    expect(existsSync(blobFile(proxy.storage, digest))).toBe(false);
    expect(filesUnder(join(proxy.storage, 'blobs')).filter((f) => f.includes(digest.slice(7, 23)))).toEqual(
      [],
    );
  });

  it('resumes a dropped upstream connection with a Range request and verifies the whole', async () => {
    const digest = addBig(1024 * 1024);
    upstream.dropAfter = 5 * CHUNK;
    const response = await fetch(blobUrl(digest));
    expect(hashOf(await response.arrayBuffer())).toBe(digest);
    const gets = registry.requests.filter((r) => r.path.endsWith(digest));
    expect(gets).toHaveLength(2);
    expect(gets[0]!.headers.range).toBeUndefined();
    expect(gets[1]!.headers.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(String(gets[1]!.headers.range))![0])).toBeGreaterThan(0);
    await settled(proxy.url);
    expect(existsSync(blobFile(proxy.storage, digest))).toBe(true);
  });

  it('answers a Range request on a cold blob with 206 from the one shared download', async () => {
    const digest = addBig(400_000);
    const bytes = blobs.get(digest)!;
    const [part, whole] = await Promise.all([
      fetch(blobUrl(digest), { headers: { range: 'bytes=1000-1999' } }),
      fetch(blobUrl(digest)),
    ]);
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 1000-1999/400000');
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(1000, 2000))).toBe(true);
    expect(hashOf(await whole.arrayBuffer())).toBe(digest);
    expect(upstreamGets(digest)).toBe(1);
    expect(registry.requests.every((r) => r.headers.range === undefined)).toBe(true);
  });

  it('sends an early range of a cold blob as soon as its bytes are there, before the download ends', async () => {
    const digest = addBig(2 * 1024 * 1024);
    const bytes = blobs.get(digest)!;
    upstream.delayMs = 10;
    const whole = fetch(blobUrl(digest)).then(async (r) => hashOf(await r.arrayBuffer()));
    const part = await fetch(blobUrl(digest), { headers: { range: 'bytes=0-99999' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(0, 100_000))).toBe(true);
    const partDoneAt = performance.now();
    expect(await whole).toBe(digest);
    expect(partDoneAt).toBeLessThan(upstream.finishedAt);
    expect(upstreamGets(digest)).toBe(1);
  });

  it('keeps downloading for the cache when the only client goes away', async () => {
    const digest = addBig(1024 * 1024);
    upstream.delayMs = 5;
    const controller = new AbortController();
    const response = await fetch(blobUrl(digest), { signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    for (let i = 0; i < 100 && !existsSync(blobFile(proxy.storage, digest)); i++) await sleep(20);
    expect(existsSync(blobFile(proxy.storage, digest))).toBe(true);
    expect(upstreamGets(digest)).toBe(1);
  });

  it('passes an upstream 404 on to every concurrent client and stores nothing', async () => {
    const missing = `sha256:${'4'.repeat(64)}`;
    const responses = await Promise.all(Array.from({ length: 5 }, () => fetch(blobUrl(missing))));
    for (const response of responses) {
      expect(response.status).toBe(404);
      expect((await firstError(response)).code).toBe('BLOB_UNKNOWN');
    }
    expect(upstreamGets(missing)).toBe(1);
    expect(existsSync(blobFile(proxy.storage, missing))).toBe(false);
  });
});

describe('a cached blob', () => {
  it('answers ranges from disk: 206, suffix ranges, 416 past the end', async () => {
    const digest = addBig(10_000);
    const bytes = blobs.get(digest)!;
    await (await fetch(blobUrl(digest))).arrayBuffer();
    await settled(proxy.url);
    registry.requests.length = 0;
    const part = await fetch(blobUrl(digest), { headers: { range: 'bytes=9000-' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 9000-9999/10000');
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(9000))).toBe(true);
    const suffix = await fetch(blobUrl(digest), { headers: { range: 'bytes=-10' } });
    expect(Buffer.from(await suffix.arrayBuffer()).equals(bytes.subarray(9990))).toBe(true);
    const beyond = await fetch(blobUrl(digest), { headers: { range: 'bytes=10000-' } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe('bytes */10000');
    expect(registry.requests).toHaveLength(0);
  });

  it('verifies sha512 digests too', async () => {
    const bytes = randomBytes(50_000);
    const digest = `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
    blobs.set(digest, bytes);
    const response = await fetch(blobUrl(digest));
    expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
    await settled(proxy.url);
    expect(existsSync(join(proxy.storage, 'blobs', 'sha512', digest.slice(7, 9), digest.slice(7)))).toBe(
      true,
    );
  });

  it('sends every body intact while responses pass their buffers on, a client that left included', async () => {
    // Past 512 KiB: full-size response buffers, which go back to a pool for the next response.
    const digests = [addBig(3 * 1024 * 1024 + 123), addBig(2 * 1024 * 1024 + 7), addBig(1024 * 1024 + 1)];
    for (const digest of digests) await (await fetch(blobUrl(digest))).arrayBuffer();
    await settled(proxy.url);
    registry.requests.length = 0;

    // One client goes away after its first bytes: its buffers must not come back still in use.
    const controller = new AbortController();
    const leaving = await fetch(blobUrl(digests[0]!), { signal: controller.signal });
    await leaving.body!.getReader().read();
    controller.abort();
    for (let round = 0; round < 3; round++) {
      for (const digest of digests)
        expect(hashOf(await (await fetch(blobUrl(digest))).arrayBuffer())).toBe(digest);
      const together = digests.flatMap((digest) => [digest, digest]);
      const hashes = await Promise.all(
        together.map(async (digest) => hashOf(await (await fetch(blobUrl(digest))).arrayBuffer())),
      );
      expect(hashes).toEqual(together);
    }
    expect(registry.requests).toHaveLength(0); // all of it from the cache
  });
});

describe('restarts', () => {
  it('serves the cache of a previous process with no upstream at all', async () => {
    const own = await startLoopback(streaming, ...registryHandlers(content, { auth: { kind: 'none' } }));
    const image = content.addImage('library/big', 'restart', 'restart layer');
    const digest = addBig(100_000);
    const first = await startProxy({ registries: { 'docker.io': { url: own.url } } });
    await (await fetch(blobUrl(digest, first.url))).arrayBuffer();
    await (await fetch(`${first.url}/v2/big/manifests/restart`)).arrayBuffer();
    await settled(first.url);
    await first.stop();
    await own.close();

    const second = await startProxy(
      { registries: { 'docker.io': { url: own.url } } },
      { storage: first.storage },
    );
    try {
      const blob = await fetch(blobUrl(digest, second.url));
      expect(hashOf(await blob.arrayBuffer())).toBe(digest);
      const manifest = await fetch(`${second.url}/v2/big/manifests/restart`);
      expect(manifest.status).toBe(200);
      expect(manifest.headers.get('docker-content-digest')).toBe(image.manifest);
      const stats = await jsonOf<{ blobs: number; manifests: number; bytes: number }>(
        await fetch(`${second.url}/_pullcache/stats`),
      );
      expect(stats.blobs).toBe(1);
      expect(stats.manifests).toBe(1);
      expect(stats.bytes).toBeGreaterThan(100_000);
    } finally {
      await second.close();
    }
  });

  it('removes stale temp files left by a crash, and keeps recent ones (another writer may own them)', async () => {
    const own = await startProxy({ registries: { 'docker.io': { url: registry.url } } });
    await own.stop();
    const dir = join(own.storage, 'blobs', 'sha256', 'ab');
    mkdirSync(dir, { recursive: true });
    const stale = join(dir, '.tmp-abcdef-host-1-dead');
    const recent = join(dir, '.tmp-abcdef-host-2-live');
    writeFileSync(stale, 'partial');
    writeFileSync(recent, 'partial');
    const old = new Date(Date.now() - 3600_000);
    utimesSync(stale, old, old);
    const again = await startProxy(
      { registries: { 'docker.io': { url: registry.url } } },
      { storage: own.storage },
    );
    try {
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(recent)).toBe(true);
    } finally {
      await again.close();
    }
  });
});

describe('several processes on one storage folder', () => {
  it('never show each other a torn or unverified file', async () => {
    const second = await startProxy(
      { registries: { 'docker.io': { url: registry.url } } },
      { storage: proxy.storage },
    );
    try {
      const digest = addBig(1024 * 1024);
      upstream.delayMs = 5;
      const bodies = await Promise.all(
        [proxy.url, second.url, proxy.url, second.url].map(async (base) =>
          hashOf(await (await fetch(blobUrl(digest, base))).arrayBuffer()),
        ),
      );
      expect(bodies).toEqual(Array(4).fill(digest));
      await Promise.all([settled(proxy.url), settled(second.url)]);
      // Each process downloaded once; both committed the same verified bytes to the one final path.
      expect(upstreamGets(digest)).toBe(2);
      expect(
        createHash('sha256')
          .update(readFileSync(blobFile(proxy.storage, digest)))
          .digest('hex'),
      ).toBe(digest.slice(7));
      expect(filesUnder(join(proxy.storage, 'blobs')).filter((f) => f.includes('.tmp-'))).toEqual([]);
      // And the other's committed blob is a hit for each of them.
      registry.requests.length = 0;
      for (const base of [proxy.url, second.url])
        expect(hashOf(await (await fetch(blobUrl(digest, base))).arrayBuffer())).toBe(digest);
      expect(registry.requests).toHaveLength(0);
    } finally {
      await second.stop();
    }
  });
});

describe('eviction', () => {
  it('evicts least-recently-used blobs to stay under storage.maxSize', async () => {
    let clock = Date.parse('2026-11-30T12:00:00Z');
    const small = await startProxy(
      { registries: { 'docker.io': { url: registry.url } }, storage: { maxSize: 3500 } },
      { now: () => clock },
    );
    try {
      const [a, b, c, d] = [addBig(1000), addBig(1000), addBig(1000), addBig(1000)];
      for (const digest of [a, b, c]) {
        await (await fetch(blobUrl(digest!, small.url))).arrayBuffer();
        await settled(small.url);
        clock += 120_000;
      }
      await (await fetch(blobUrl(a!, small.url))).arrayBuffer(); // a is now the most recent
      clock += 120_000;
      await (await fetch(blobUrl(d!, small.url))).arrayBuffer();
      await settled(small.url);
      const present = [a, b, c, d].map((x) => existsSync(blobFile(small.storage, x!)));
      expect(present).toEqual([true, false, true, true]);
      const stats = await jsonOf<{ bytes: number; evictions: number }>(
        await fetch(`${small.url}/_pullcache/stats`),
      );
      expect(stats.bytes).toBeLessThanOrEqual(3500);
      expect(stats.evictions).toBe(1);
    } finally {
      await small.close();
    }
  });
});
