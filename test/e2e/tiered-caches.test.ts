/**
 * Tiered caches with real programs: containerd → node pullcache → central pullcache → two
 * docker-registry instances (docker.io behind htpasswd, registry.example.test open). Both caches
 * end up holding every blob, the registries send each blob once (to the central cache, which has
 * the credentials), and with the central cache stopped the node serves what it has and fetches the
 * rest from the registry itself.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCleanup } from './harness/cleanup.js';
import { type Containerd, startContainerd, writeHostsToml } from './harness/containerd.js';
import { allDigests, type ImageDigests } from './harness/image-digests.js';
import { type GeneratedImage, generateImage } from './harness/images.js';
import { type Pullcache, startPullcache } from './harness/pullcache.js';
import { type Registry, startRegistry } from './harness/registry.js';
import { pushImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

const OTHER_REGISTRY = 'registry.example.test';
const PARENT_TOKEN = 'e2e-node-to-central-token-0123456789';

/** Config and layer digests of every platform: what lands in blobs/. */
const blobDigests = (image: ImageDigests) => [
  ...new Set(image.platforms.flatMap((p) => [p.config.digest, ...p.layers.map((l) => l.digest)])),
];
const blobFile = (storage: string, digest: string) =>
  join(storage, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
/** Blob GETs a registry answered with 200. */
const blobGets = (registry: Registry, digest: string) =>
  registry.countRequests('GET', new RegExp(`/blobs/${digest}$`), 200);

describe('containerd → node pullcache → central pullcache → docker-registry', () => {
  const cleanup = createCleanup();
  let work: string;
  let hostsDir: string;
  let hub: Upstream;
  let other: Registry;
  let demo: GeneratedImage;
  let otherDemo: GeneratedImage;
  let later: GeneratedImage;
  let central: Pullcache;
  let centralStopped = false;
  let node: Pullcache;
  let containerd: Containerd;

  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('tiered'), removeDir);
    hub = cleanup.add(await startUpstream('htpasswd'), (u) => u.stop());
    other = cleanup.add(await startRegistry(), (r) => r.stop());
    demo = await generateImage({ dir: join(work, 'images', 'demo'), seed: 'tiered-hub' });
    otherDemo = await generateImage({ dir: join(work, 'images', 'other'), seed: 'tiered-other' });
    later = await generateImage({ dir: join(work, 'images', 'later'), seed: 'tiered-later' });
    await pushImage(demo, `${hub.registry.host}/library/demo:1.0`, hub.creds);
    await pushImage(later, `${hub.registry.host}/library/later:1.0`, hub.creds);
    await pushImage(otherDemo, `${other.host}/library/demo:1.0`);

    const registries = {
      'docker.io': { url: hub.registry.url, ...hub.creds },
      [OTHER_REGISTRY]: { url: other.url },
    };
    central = await startPullcache({
      registries,
      extraYaml: `auth: { tokens: [${JSON.stringify(PARENT_TOKEN)}] }`,
    });
    cleanup.defer(() => (centralStopped ? undefined : central.stop()));
    node = cleanup.add(
      await startPullcache({
        registries,
        extraYaml: `parent: { url: ${JSON.stringify(central.url)}, token: ${JSON.stringify(PARENT_TOKEN)}, fallback: direct }`,
      }),
      (p) => p.stop(),
    );
    containerd = cleanup.add(await startContainerd(), (c) => c.stop());
    hostsDir = join(work, 'hosts');
    await writeHostsToml(hostsDir, 'docker.io', node.url);
    await writeHostsToml(hostsDir, OTHER_REGISTRY, node.url);
  });
  afterAll(() => cleanup.run());

  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      console.error(`--- node pullcache output (tail) ---\n${node?.output().slice(-6_000)}`);
      if (!centralStopped)
        console.error(`--- central pullcache output (tail) ---\n${central?.output().slice(-6_000)}`);
    });
  });

  it('pulls both registries through the central cache; both caches hold every blob', async () => {
    for (const [ref, image] of [
      [`docker.io/library/demo:1.0`, demo],
      [`${OTHER_REGISTRY}/library/demo:1.0`, otherDemo],
    ] as const) {
      await containerd.pull(ref, { hostsDir, allPlatforms: true });
      expect(await containerd.imageTarget(ref)).toEqual({
        mediaType: image.index.mediaType,
        digest: image.index.digest,
      });
      expect(await containerd.contentDigests()).toEqual(expect.arrayContaining(allDigests(image)));
    }
    for (const digest of [...blobDigests(demo), ...blobDigests(otherDemo)]) {
      expect(existsSync(blobFile(node.storageDir, digest)), `node ${digest}`).toBe(true);
      expect(existsSync(blobFile(central.storageDir, digest)), `central ${digest}`).toBe(true);
    }
    // Each blob left each registry once: for the central cache, the only one with the credentials.
    for (const digest of blobDigests(demo)) expect(blobGets(hub.registry, digest), digest).toBe(1);
    for (const digest of blobDigests(otherDemo)) expect(blobGets(other, digest), digest).toBe(1);
  });

  it('with the central cache stopped, serves what the node has and fetches the rest directly', async () => {
    await central.stop();
    centralStopped = true;
    const ref = 'docker.io/library/demo:1.0';
    await containerd.removeImage(ref);
    await containerd.pull(ref, { hostsDir, allPlatforms: true });
    expect(await containerd.contentDigests()).toEqual(expect.arrayContaining(allDigests(demo)));
    for (const digest of blobDigests(demo)) expect(blobGets(hub.registry, digest), digest).toBe(1);

    const laterRef = 'docker.io/library/later:1.0';
    await containerd.pull(laterRef, { hostsDir, allPlatforms: true });
    expect(await containerd.imageTarget(laterRef)).toEqual({
      mediaType: later.index.mediaType,
      digest: later.index.digest,
    });
    expect(await containerd.contentDigests()).toEqual(expect.arrayContaining(allDigests(later)));
    for (const digest of blobDigests(later)) {
      expect(blobGets(hub.registry, digest), digest).toBe(1); // from the node itself, with its credentials
      expect(existsSync(blobFile(node.storageDir, digest)), digest).toBe(true);
    }
    expect(node.output()).toContain('parent pullcache unreachable');
  });
});
