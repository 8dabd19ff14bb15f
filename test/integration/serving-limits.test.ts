/**
 * Limits and shutdown: oversized headers, a manifest deadline, concurrent downloads per registry,
 * and SIGTERM-style graceful shutdown that lets transfers finish and leaves nothing half-written.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpResponse, http } from 'msw';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryContent, registryHandlers, sha256 } from '../support/fake-registry.js';
import { firstError, rawRequest } from '../support/http-client.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { settled, startProxy } from '../support/proxy.js';

const content = new RegistryContent();
const image = content.addImage('library/slow', '1.0');
const blobs = new Map<string, Buffer>();
let active = 0;
let peak = 0;
let manifestDelayMs = 0;

/** Blobs under library/slow trickle out in 64 KiB chunks, 20 ms apart; concurrency is recorded. */
const slowBlob = http.get('/v2/library/slow/blobs/:digest', ({ params }) => {
  const bytes = blobs.get(String(params.digest));
  if (!bytes) return undefined;
  active++;
  peak = Math.max(peak, active);
  let offset = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      await sleep(20);
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.subarray(offset, offset + 65536));
      offset += 65536;
      if (offset >= bytes.length) active--; // the last byte is out: the download is done
    },
    cancel() {
      if (offset < bytes.length) active--;
    },
  });
  return new HttpResponse(stream, { headers: { 'content-length': String(bytes.length) } });
});
const slowManifest = http.get('/v2/library/slow/manifests/:ref', async () => {
  if (manifestDelayMs > 0) await sleep(manifestDelayMs);
  return undefined; // fall through to the normal handler
});

let registry: LoopbackServer;
beforeAll(async () => {
  registry = await startLoopback(
    slowBlob,
    slowManifest,
    ...registryHandlers(content, { auth: { kind: 'none' } }),
  );
});
afterAll(() => registry.close());

function addBlob(size: number): string {
  const bytes = randomBytes(size);
  const digest = sha256(bytes);
  blobs.set(digest, bytes);
  return digest;
}

const filesUnder = (dir: string) =>
  existsSync(dir)
    ? readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => e.name)
    : [];

describe('limits', () => {
  it('refuses oversized request headers with 431', async () => {
    const proxy = await startProxy({
      registries: { 'docker.io': { url: registry.url } },
      limits: { maxHeaderSize: '4KiB' },
    });
    try {
      const response = await rawRequest(proxy.url, 'GET', '/v2/', { 'x-padding': 'x'.repeat(8000) });
      expect(response.status).toBe(431);
      expect((await rawRequest(proxy.url, 'GET', '/v2/')).status).toBe(200);
    } finally {
      await proxy.close();
    }
  });

  it('answers 504 when a manifest takes longer than manifestTimeout, and caches it when it arrives', async () => {
    const proxy = await startProxy({
      registries: { 'docker.io': { url: registry.url } },
      limits: { manifestTimeout: '300ms' },
    });
    try {
      manifestDelayMs = 1000;
      const started = performance.now();
      const response = await fetch(`${proxy.url}/v2/slow/manifests/1.0`);
      expect(response.status).toBe(504);
      expect((await firstError(response)).code).toBe('TIMEOUT');
      expect(performance.now() - started).toBeLessThan(900);
      await sleep(1000);
      manifestDelayMs = 0;
      registry.requests.length = 0;
      const retry = await fetch(`${proxy.url}/v2/slow/manifests/1.0`);
      expect(retry.headers.get('docker-content-digest')).toBe(image.manifest);
      expect(registry.requests).toHaveLength(0);
    } finally {
      manifestDelayMs = 0;
      await proxy.close();
    }
  });

  it('runs at most downloadsPerRegistry upstream downloads at once; the rest wait their turn', async () => {
    const proxy = await startProxy({
      registries: { 'docker.io': { url: registry.url } },
      limits: { downloadsPerRegistry: 2 },
    });
    try {
      peak = 0;
      const digests = [addBlob(300_000), addBlob(300_000), addBlob(300_000), addBlob(300_000)];
      const bodies = await Promise.all(
        digests.map(async (d) =>
          Buffer.from(await (await fetch(`${proxy.url}/v2/slow/blobs/${d}`)).arrayBuffer()),
        ),
      );
      expect(bodies.map((body) => sha256(body))).toEqual(digests);
      expect(peak).toBe(2);
    } finally {
      await proxy.close();
    }
  });
});

describe('slow clients', () => {
  it('cannot hold an upstream download hostage: it completes and is stored while one client stops reading', async () => {
    const proxy = await startProxy({ registries: { 'docker.io': { url: registry.url } } });
    try {
      const digest = addBlob(8 * 1024 * 1024); // ~2.5 s upstream, more than socket buffers hold
      const url = `${proxy.url}/v2/slow/blobs/${digest}`;
      // A client that takes its headers and then reads nothing more.
      const stalled = await new Promise<IncomingMessage>((resolve, reject) =>
        get(url, resolve).on('error', reject),
      );
      stalled.pause();
      const body = Buffer.from(await (await fetch(url)).arrayBuffer());
      expect(sha256(body)).toBe(digest);
      await settled(proxy.url);
      expect(filesUnder(join(proxy.storage, 'blobs'))).toContain(digest.slice(7));
      stalled.destroy();
    } finally {
      await proxy.close();
    }
  });
});

describe('graceful shutdown', () => {
  it('lets a running transfer finish, refuses new connections, and leaves no partial cache entry', async () => {
    const proxy = await startProxy({ registries: { 'docker.io': { url: registry.url } } });
    const served = addBlob(640 * 1024); // ~200 ms upstream
    const orphan = addBlob(6400 * 1024); // ~2 s upstream; its only client leaves early
    const transfer = fetch(`${proxy.url}/v2/slow/blobs/${served}`).then(async (r) =>
      Buffer.from(await r.arrayBuffer()),
    );
    const controller = new AbortController();
    const leaving = await fetch(`${proxy.url}/v2/slow/blobs/${orphan}`, { signal: controller.signal });
    await leaving.body!.getReader().read();
    controller.abort();
    await sleep(50);

    const stopping = proxy.shutdown(5000);
    await sleep(20);
    // Each kept-alive connection may still carry one request, answered with Connection: close;
    // new connections are refused.
    const late: (string | null)[] = [];
    for (let i = 0; i < 6; i++) {
      late.push(
        await fetch(`${proxy.url}/v2/`).then(
          (r) => r.headers.get('connection'),
          () => 'refused',
        ),
      );
    }
    expect(late.every((l) => l === 'close' || l === 'refused')).toBe(true);
    expect(late.at(-1)).toBe('refused');
    const body = await transfer;
    expect(createHash('sha256').update(body).digest('hex')).toBe(served.slice(7));
    await stopping;

    // The finished blob is stored; the orphaned download was aborted and left nothing behind.
    const files = filesUnder(join(proxy.storage, 'blobs'));
    expect(files).toContain(served.slice(7));
    expect(files.some((f) => f.includes(orphan.slice(7, 23)))).toBe(false);
    await proxy.close();
  });

  it('closes transfers still running when the grace period ends', async () => {
    const proxy = await startProxy({ registries: { 'docker.io': { url: registry.url } } });
    const big = addBlob(6400 * 1024);
    const response = await fetch(`${proxy.url}/v2/slow/blobs/${big}`);
    const started = performance.now();
    await proxy.shutdown(200);
    expect(performance.now() - started).toBeLessThan(2000);
    await expect(response.arrayBuffer()).rejects.toThrow();
    expect(filesUnder(join(proxy.storage, 'blobs'))).toEqual([]);
    await proxy.close();
  });
});
