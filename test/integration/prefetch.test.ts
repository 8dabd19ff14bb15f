/**
 * Prefetch against an upstream that holds blob answers until the test lets them go: one manifest
 * GET starts every config and layer download before the client asks, the client's blob requests
 * join them (one upstream GET per blob), the downloads finish and are stored with no client at all,
 * an index prefetches nothing (its platform's manifest does), and maxBytes and `layers: false` hold.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HttpResponse, http } from 'msw';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PrefetchOutcome } from '../../src/pull/prefetch.js';
import { rangedBlobAnswer } from '../support/blob-upstream.js';
import {
  OCI_INDEX,
  OCI_MANIFEST,
  RegistryContent,
  registryHandlers,
  sha256,
} from '../support/fake-registry.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { settled, startProxy, type TestProxy } from '../support/proxy.js';

const REPOSITORY = 'library/app';
const content = new RegistryContent();

/** An image with a config and layers of the given sizes, tagged `tag`. */
function addImage(tag: string, layerSizes: number[], platform = 'amd64') {
  const config = content.addBlob(JSON.stringify({ architecture: platform, os: 'linux', tag }));
  const layers = layerSizes.map((size) => content.addBlob(randomBytes(size)));
  const descriptor = (digest: string, mediaType: string) => ({
    mediaType,
    digest,
    size: content.blobs.get(digest)!.length,
  });
  const manifest = content.addManifest(
    REPOSITORY,
    OCI_MANIFEST,
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: descriptor(config, 'application/vnd.oci.image.config.v1+json'),
      layers: layers.map((l) => descriptor(l, 'application/vnd.oci.image.layer.v1.tar+gzip')),
    },
    tag,
  );
  return { manifest, blobs: [config, ...layers], layerBytes: layerSizes.reduce((a, b) => a + b, 0) };
}

const pulled = addImage('pulled', [300_000, 20_000, 1_000_000]);
const unattended = addImage('unattended', [50_000, 70_000]);
const amd64 = addImage('amd64', [40_000, 10_000], 'amd64');
const arm64 = addImage('arm64', [30_000], 'arm64');
const platformEntry = (digest: string, architecture: string) => ({
  mediaType: OCI_MANIFEST,
  digest,
  size: content.manifests.get(digest)!.bytes.length,
  platform: { os: 'linux', architecture },
});
const index = content.addManifest(
  REPOSITORY,
  OCI_INDEX,
  {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [platformEntry(amd64.manifest, 'amd64'), platformEntry(arm64.manifest, 'arm64')],
  },
  'multi',
);
const large = addImage('large', [60_000, 60_000]);
const plain = addImage('plain', [10_000, 20_000]);
const partly = addImage('partly', [25_000, 35_000]);
content.blobs.delete(partly.blobs[2]!); // the registry lost one layer

/** Blob answers wait while the gate is closed; arrivals are counted as they come in. */
let gate: { open: Promise<void>; release: () => void } | null = null;
const arrived = new Map<string, number>();
let onArrival: (() => void) | null = null;
const gatedBlobs = http.get(`/v2/${REPOSITORY}/blobs/:digest`, async ({ params, request }) => {
  const digest = String(params.digest);
  arrived.set(digest, (arrived.get(digest) ?? 0) + 1);
  onArrival?.();
  await gate?.open;
  const bytes = content.blobs.get(digest);
  if (!bytes)
    return HttpResponse.json({ errors: [{ code: 'BLOB_UNKNOWN', message: 'unknown' }] }, { status: 404 });
  const { start, status, headers } = rangedBlobAnswer(request, bytes.length);
  return new HttpResponse(bytes.subarray(start), { status, headers });
});

function closeGate() {
  let release!: () => void;
  gate = { open: new Promise<void>((resolve) => (release = resolve)), release };
  return release;
}

/** Resolves once the upstream has received a blob GET for each of `digests`. */
function allArrived(digests: string[]): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (digests.every((d) => (arrived.get(d) ?? 0) > 0)) {
        onArrival = null;
        resolve();
      }
    };
    onArrival = check;
    check();
  });
}

let registry: LoopbackServer;
beforeAll(async () => {
  registry = await startLoopback(gatedBlobs, ...registryHandlers(content, { auth: { kind: 'none' } }));
});
afterAll(() => registry.close());
afterEach(() => {
  gate?.release();
  gate = null;
});

const manifestGets = (digest: string) => registry.count('GET', `/v2/${REPOSITORY}/manifests/${digest}`);

/** A proxy recording what prefetch decided, manifest digest → outcomes. */
async function proxyWith(prefetch?: Record<string, unknown>) {
  const outcomes = new Map<string, PrefetchOutcome[]>();
  const waiting = new Map<string, (outcome: PrefetchOutcome) => void>();
  const proxy = await startProxy(
    { registries: { 'docker.io': { url: registry.url } }, ...(prefetch ? { prefetch } : {}) },
    {
      onPrefetch: (_route, manifest, outcome) => {
        outcomes.set(manifest, [...(outcomes.get(manifest) ?? []), outcome]);
        waiting.get(manifest)?.(outcome);
        waiting.delete(manifest);
      },
    },
  );
  const nextOutcome = (manifest: string) =>
    new Promise<PrefetchOutcome>((resolve) => waiting.set(manifest, resolve));
  return { proxy, outcomes, nextOutcome };
}

const blobUrl = (proxy: TestProxy, digest: string) => `${proxy.url}/v2/${REPOSITORY}/blobs/${digest}`;
const blobFile = (proxy: TestProxy, digest: string) =>
  join(proxy.storage, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));

describe('prefetch on (the default)', () => {
  let proxy: TestProxy;
  let outcomes: Map<string, PrefetchOutcome[]>;
  let nextOutcome: (manifest: string) => Promise<PrefetchOutcome>;
  beforeAll(async () => {
    ({ proxy, outcomes, nextOutcome } = await proxyWith());
  });
  afterAll(() => proxy.close());

  it('starts every config and layer download after one manifest GET; the client joins them', async () => {
    const release = closeGate();
    const answer = await fetch(`${proxy.url}/v2/${REPOSITORY}/manifests/pulled`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('docker-content-digest')).toBe(pulled.manifest);
    // The upstream has every blob request before the client asked for any of them.
    await allArrived(pulled.blobs);
    const clients = pulled.blobs.map(async (digest) => {
      const response = await fetch(blobUrl(proxy, digest));
      return { status: response.status, digest: sha256(Buffer.from(await response.arrayBuffer())) };
    });
    release();
    expect(await Promise.all(clients)).toEqual(pulled.blobs.map((digest) => ({ status: 200, digest })));
    for (const digest of pulled.blobs) expect(arrived.get(digest), digest).toBe(1);
    await settled(proxy.url);
    for (const digest of pulled.blobs) expect(existsSync(blobFile(proxy, digest)), digest).toBe(true);
  });

  it('finishes and stores a prefetch that no client reads; the client later gets it from the cache', async () => {
    const outcome = nextOutcome(unattended.manifest);
    const answer = await fetch(`${proxy.url}/v2/${REPOSITORY}/manifests/${unattended.manifest}`);
    expect(answer.status).toBe(200);
    await answer.arrayBuffer();
    expect(await outcome).toEqual({ started: unattended.blobs, cached: 0, running: 0 });
    await settled(proxy.url);
    for (const digest of unattended.blobs) {
      expect(existsSync(blobFile(proxy, digest)), digest).toBe(true);
      const response = await fetch(blobUrl(proxy, digest));
      expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(digest);
      expect(arrived.get(digest), digest).toBe(1);
    }
  });

  it('starts nothing for a manifest whose blobs are all cached', async () => {
    const outcome = nextOutcome(unattended.manifest);
    await (await fetch(`${proxy.url}/v2/${REPOSITORY}/manifests/unattended`)).arrayBuffer();
    expect(await outcome).toEqual({ started: [], cached: unattended.blobs.length, running: 0 });
  });

  it('prefetches nothing for an index, and only the platform whose manifest the client fetches', async () => {
    const fromIndex = nextOutcome(index);
    const answer = await fetch(`${proxy.url}/v2/${REPOSITORY}/manifests/multi`, {
      headers: { accept: OCI_INDEX },
    });
    expect(answer.headers.get('content-type')).toBe(OCI_INDEX);
    await answer.arrayBuffer();
    expect(await fromIndex).toEqual({ skipped: 'not an image manifest' });

    const fromChild = nextOutcome(amd64.manifest);
    await (await fetch(`${proxy.url}/v2/${REPOSITORY}/manifests/${amd64.manifest}`)).arrayBuffer();
    expect(await fromChild).toEqual({ started: amd64.blobs, cached: 0, running: 0 });
    await settled(proxy.url);
    for (const digest of amd64.blobs) expect(existsSync(blobFile(proxy, digest)), digest).toBe(true);
    // The other platform: neither its manifest nor any of its blobs was asked for.
    expect(manifestGets(arm64.manifest)).toBe(0);
    for (const digest of arm64.blobs) expect(arrived.get(digest) ?? 0, digest).toBe(0);
    expect(outcomes.has(arm64.manifest)).toBe(false);
  });

  it('answers the manifest when a prefetch fails, and stores the blobs that did arrive', async () => {
    const outcome = nextOutcome(partly.manifest);
    const answer = await fetch(`${proxy.url}/v2/${REPOSITORY}/manifests/partly`);
    expect(answer.status).toBe(200);
    expect(sha256(Buffer.from(await answer.arrayBuffer()))).toBe(partly.manifest);
    expect(await outcome).toEqual({ started: partly.blobs, cached: 0, running: 0 });
    await settled(proxy.url);
    expect(partly.blobs.map((d) => existsSync(blobFile(proxy, d)))).toEqual([true, true, false]);
    // The client asking for the lost layer gets the upstream's own answer.
    const missing = await fetch(blobUrl(proxy, partly.blobs[2]!));
    expect(missing.status).toBe(404);
    await missing.arrayBuffer();
  });
});

describe('prefetch limits', () => {
  it('skips an image whose layers add up to more than maxBytes', async () => {
    const { proxy, nextOutcome } = await proxyWith({ maxBytes: large.layerBytes - 1 });
    try {
      const outcome = nextOutcome(large.manifest);
      await (await fetch(`${proxy.url}/v2/${REPOSITORY}/manifests/large`)).arrayBuffer();
      expect(await outcome).toEqual({
        skipped: `its layers (${large.layerBytes} bytes) are larger than prefetch.maxBytes`,
      });
      await settled(proxy.url);
      for (const digest of large.blobs) expect(arrived.get(digest) ?? 0, digest).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it('does nothing with `layers: false`: only what the client asks for is downloaded', async () => {
    const { proxy, outcomes } = await proxyWith({ layers: false });
    try {
      const answer = await fetch(`${proxy.url}/v2/${REPOSITORY}/manifests/plain`);
      expect(answer.status).toBe(200);
      await answer.arrayBuffer();
      const [config, ...layers] = plain.blobs;
      await (await fetch(blobUrl(proxy, config!))).arrayBuffer();
      await settled(proxy.url);
      expect(arrived.get(config!)).toBe(1);
      for (const digest of layers) expect(arrived.get(digest) ?? 0, digest).toBe(0);
      expect(outcomes.size).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});
