/**
 * The disk cache as real clients see it: containerd and skopeo keep pulling a cached image while
 * the upstream is down (a tag within its TTL, and stale-if-error after it), a restarted pullcache
 * serves what the last one stored, and 20 curl clients of one cold blob cost one upstream download.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCleanup } from './harness/cleanup.js';
import { run } from './harness/command.js';
import { type Containerd, startContainerd, writeHostsToml } from './harness/containerd.js';
import { DEMO_REF, type DemoImages, generateDemoImages, pushDemoImages } from './harness/demo-images.js';
import { allDigests, type Descriptor, digestsOf } from './harness/image-digests.js';
import { type GeneratedImage, generateImage } from './harness/images.js';
import { type Pullcache, type PullcacheOptions, startPullcache } from './harness/pullcache.js';
import { pullImage, pushImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

/** What `GET /_pullcache/stats` answers. */
interface CacheStats {
  bytes: number;
  maxSize: number | null;
  blobs: number;
  manifests: number;
  evictions: number;
  downloadsInFlight: number;
}

async function cacheStats(proxy: Pullcache): Promise<CacheStats> {
  const response = await fetch(`${proxy.url}/_pullcache/stats`);
  expect(response.status).toBe(200);
  return (await response.json()) as CacheStats;
}

function dockerIo(upstream: Upstream): PullcacheOptions['registries'] {
  return { 'docker.io': { url: upstream.registry.url, ...upstream.creds } };
}

/** On a failed test, the tail of each proxy's output: what it logged is the first clue. */
function printProxyOutputOnFailure(proxies: () => (Pullcache | undefined)[]): void {
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const proxy of proxies()) {
        if (proxy)
          console.error(`--- pullcache ${proxy.host} output (tail) ---\n${proxy.output().slice(-6_000)}`);
      }
    });
  });
}

// pullcache's warning when it serves a cached tag it could not revalidate.
const STALE_WARNING = 'serving a cached tag: upstream could not revalidate it';

describe('an upstream outage', () => {
  const ref = `docker.io/${DEMO_REF}`;
  const cleanup = createCleanup();
  let work: string;
  let images: DemoImages;
  let upstream: Upstream;
  let containerd: Containerd;
  /** Default tag TTL (5 min): during the outage the tag is still fresh. Its storage outlives it. */
  let proxy: Pullcache;
  let storageDir: string;
  let hostsDir: string;
  /** A 1 s tag TTL: during the outage the tag needs revalidation, which fails. */
  let shortTtl: Pullcache;
  let shortTtlHostsDir: string;
  let shortTtlFilledAt = 0;
  let restarted: Pullcache | undefined;
  // What containerd got from the first pull, with the upstream up.
  let target: Pick<Descriptor, 'mediaType' | 'digest'> | undefined;
  let content: string[] = [];

  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('cache-outage'), removeDir);
    images = await generateDemoImages(join(work, 'images'));
    upstream = cleanup.add(await startUpstream('htpasswd'), (u) => u.stop());
    await pushDemoImages(images, upstream.registry.host, upstream.creds);

    storageDir = join(work, 'storage');
    await mkdir(storageDir);
    proxy = cleanup.add(await startPullcache({ registries: dockerIo(upstream), storageDir }), (p) =>
      p.stop(),
    );
    shortTtl = cleanup.add(
      await startPullcache({ registries: dockerIo(upstream), extraYaml: 'cache: { tagTTL: 1s }' }),
      (p) => p.stop(),
    );
    containerd = cleanup.add(await startContainerd(), (c) => c.stop());
    hostsDir = join(work, 'hosts');
    await writeHostsToml(hostsDir, 'docker.io', proxy.url);
    shortTtlHostsDir = join(work, 'hosts-short-ttl');
    await writeHostsToml(shortTtlHostsDir, 'docker.io', shortTtl.url);
  });
  afterAll(() => cleanup.run());
  printProxyOutputOnFailure(() => [proxy, shortTtl, restarted]);

  /**
   * Removes the image and every blob the first pull brought from containerd's content store, so
   * the next pull has to fetch each of them again, through the proxy: it is the only host.
   */
  async function forgetImage(): Promise<void> {
    await containerd.removeImage(ref);
    const left = (await containerd.contentDigests()).filter((d) => content.includes(d));
    if (left.length > 0) await containerd.ctr(['content', 'rm', ...left]);
    expect(await containerd.imageTarget(ref)).toBeUndefined();
    expect((await containerd.contentDigests()).filter((d) => content.includes(d))).toEqual([]);
  }

  it('containerd pulls docker.io/library/demo:1.0, all platforms, while the upstream is up', async () => {
    await containerd.pull(ref, { hostsDir, allPlatforms: true });
    target = await containerd.imageTarget(ref);
    content = (await containerd.contentDigests()).sort();
    expect(target).toEqual({ mediaType: images.demo.index.mediaType, digest: images.demo.index.digest });
    expect(content).toEqual(expect.arrayContaining(allDigests(images.demo)));

    // The short-TTL proxy gets the same image (skopeo, every platform) for the stale-if-error pull.
    const pulled = await pullImage(`${shortTtl.host}/${DEMO_REF}`, join(work, 'pulls', 'short-ttl-warm'));
    shortTtlFilledAt = Date.now();
    expect(pulled).toEqual(digestsOf(images.demo));
  });

  it('the upstream registry stops', async () => {
    await upstream.registry.process.stop();
    expect(upstream.registry.process.exitStatus()).toBeDefined();
    await expect(fetch(`${upstream.registry.url}/v2/`)).rejects.toThrow();
  });

  it('containerd pulls it again, every blob from the cache, with identical digests', async () => {
    await forgetImage();
    await containerd.pull(ref, { hostsDir, allPlatforms: true });
    expect(await containerd.imageTarget(ref)).toEqual(target);
    expect((await containerd.contentDigests()).sort()).toEqual(content);
    // Within the tag TTL the tag came from the cache without asking the upstream at all.
    expect(proxy.output()).not.toContain(STALE_WARNING);
  });

  it('skopeo copies every platform from the proxy with identical digests', async () => {
    const pulled = await pullImage(`${proxy.host}/${DEMO_REF}`, join(work, 'pulls', 'outage'));
    expect(pulled).toEqual(digestsOf(images.demo));
    expect(pulled.index.digest).toBe(target?.digest);
  });

  it('after the tag TTL, the failed revalidation serves the cached digest (stale-if-error)', async () => {
    // The tag record must be older than its 1 s TTL, so resolving it asks the (stopped) upstream.
    await sleep(Math.max(0, shortTtlFilledAt + 1_500 - Date.now()));
    expect(shortTtl.output()).not.toContain(STALE_WARNING);
    await forgetImage();
    await containerd.pull(ref, { hostsDir: shortTtlHostsDir, allPlatforms: true });
    expect(await containerd.imageTarget(ref)).toEqual(target);
    expect((await containerd.contentDigests()).sort()).toEqual(content);
    expect(shortTtl.output()).toContain(STALE_WARNING);
  });

  it('a pullcache restarted on the same storage serves the image with the upstream still down', async () => {
    const before = await cacheStats(proxy);
    await proxy.process.stop();
    restarted = cleanup.add(await startPullcache({ registries: dockerIo(upstream), storageDir }), (p) =>
      p.stop(),
    );
    // Its index is rebuilt from disk before it serves: the same content, nothing downloading.
    const after = await cacheStats(restarted);
    expect(after).toEqual({ ...before, downloadsInFlight: 0 });
    expect(after.manifests).toBeGreaterThan(0);

    const pulled = await pullImage(`${restarted.host}/${DEMO_REF}`, join(work, 'pulls', 'restarted'));
    expect(pulled).toEqual(digestsOf(images.demo));
    expect(pulled.index.digest).toBe(target?.digest);
  });
});

describe('20 curl clients of one cold large blob', () => {
  const CLIENTS = 20;
  const cleanup = createCleanup();
  let work: string;
  let image: GeneratedImage;
  let upstream: Upstream;
  let proxy: Pullcache | undefined;

  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('cache-concurrent'), removeDir);
    // 64 MiB, incompressible: big enough that every client joins while the download is running.
    image = await generateImage({ dir: join(work, 'image'), seed: 'large-blob', largeLayerMiB: 64 });
    upstream = cleanup.add(await startUpstream('htpasswd'), (u) => u.stop());
    await pushImage(image, `${upstream.registry.host}/library/large:1.0`, upstream.creds);
    proxy = cleanup.add(await startPullcache({ registries: dockerIo(upstream) }), (p) => p.stop());
  });
  afterAll(() => cleanup.run());
  printProxyOutputOnFailure(() => [proxy]);

  it('each get the whole blob, from one upstream download', async () => {
    const layer = image.platforms[0]!.layers.at(-1)!;
    const p = proxy!;
    expect(await cacheStats(p)).toMatchObject({ blobs: 0, manifests: 0, downloadsInFlight: 0 });

    const url = `${p.url}/v2/library/large/blobs/${layer.digest}`;
    const dir = join(work, 'downloads');
    await mkdir(dir);
    const files = Array.from({ length: CLIENTS }, (_, i) => join(dir, `client-${i}`));
    // `run` spawns in the Promise executor, so all 20 curls exist before this loop yields.
    const spawnStart = performance.now();
    const clients = files.map((file) =>
      run('curl', ['-sS', '--fail', '-o', file, '-w', '%{http_code} %{time_total}', url]),
    );
    const spawnMs = performance.now() - spawnStart;
    const answers = (await Promise.all(clients)).map(({ stdout }) => stdout.split(' '));

    expect(answers.map(([status]) => status)).toEqual(files.map(() => '200'));
    // Every curl started within spawnMs of the first and ran longer than that: they all overlapped.
    const shortestMs = Math.min(...answers.map(([, seconds]) => Number(seconds) * 1_000));
    expect(shortestMs).toBeGreaterThan(spawnMs);
    for (const file of files) {
      expect((await stat(file)).size, file).toBe(layer.size);
      expect(await sha256File(file), file).toBe(layer.digest);
    }

    // One upstream download; behind htpasswd at most one unauthenticated first try, answered 401.
    const blobPath = new RegExp(`^/v2/library/large/blobs/${layer.digest}$`);
    expect(upstream.registry.countRequests('GET', blobPath, 200)).toBe(1);
    expect(upstream.registry.countRequests('GET', blobPath, 401)).toBeLessThanOrEqual(1);

    // Committed once, verified, with no temp file left: one file in the whole storage, named by
    // its digest (whatever the folder layout) and holding exactly those bytes.
    expect(await cacheStats(p)).toMatchObject({ blobs: 1, downloadsInFlight: 0 });
    const stored = await filesUnder(p.storageDir);
    expect(stored.map((f) => f.slice(f.lastIndexOf('/') + 1))).toEqual([
      layer.digest.slice('sha256:'.length),
    ]);
    expect(await sha256File(stored[0]!)).toBe(layer.digest);
  });
});

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** Every file below `dir`, at any depth. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}
