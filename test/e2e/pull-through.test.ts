/**
 * The proxy's contract with real clients: skopeo and containerd pull multi-platform images through
 * pullcache from a docker-registry behind htpasswd or token auth, and get the pushed bytes exactly,
 * with each blob fetched upstream once and tokens fetched once per repository, not per request.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCleanup } from './harness/cleanup.js';
import { type Containerd, startContainerd, writeHostsToml } from './harness/containerd.js';
import { DEMO_REF, type DemoImages, generateDemoImages, pushDemoImages } from './harness/demo-images.js';
import { allDigests, digestsOf } from './harness/image-digests.js';
import { type GeneratedImage, generateImage } from './harness/images.js';
import { type Pullcache, startPullcache } from './harness/pullcache.js';
import { type Registry, startRegistry } from './harness/registry.js';
import { pullImage, pushImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

// The second registry name, which containerd announces as ?ns=registry.example.test.
const OTHER_REGISTRY = 'registry.example.test';
// Repositories the proxy pulls from the docker.io upstream; token requests are bounded by these.
const UPSTREAM_REPOSITORIES = ['library/demo', 'library/demolist'];

describe.each(['htpasswd', 'token'] as const)('pull-through from a registry with %s auth', (mode) => {
  const cleanup = createCleanup();
  let work: string;
  let hostsDir: string;
  let upstream: Upstream;
  let other: Registry;
  let images: DemoImages;
  let otherDemo: GeneratedImage;
  let proxy: Pullcache | undefined;
  let containerd: Containerd;
  let tokensBeforeProxy = 0;

  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('pull-through'), removeDir);
    images = await generateDemoImages(join(work, 'images'));
    upstream = cleanup.add(await startUpstream(mode), (u) => u.stop());
    await pushDemoImages(images, upstream.registry.host, upstream.creds);
    // A second, open upstream for registry.example.test holding a different library/demo:1.0, so
    // the digest containerd ends up with shows which upstream ?ns= routed to.
    other = cleanup.add(await startRegistry(), (r) => r.stop());
    otherDemo = await generateImage({ dir: join(work, 'images', 'other-demo'), seed: 'example-test' });
    await pushImage(otherDemo, `${other.host}/${DEMO_REF}`);
    tokensBeforeProxy = upstream.tokenServer?.tokenRequests() ?? 0;

    proxy = cleanup.add(
      await startPullcache({
        defaultRegistry: 'docker.io',
        registries: {
          'docker.io': { url: upstream.registry.url, ...upstream.creds },
          [OTHER_REGISTRY]: { url: other.url },
        },
      }),
      (p) => p.stop(),
    );
    containerd = cleanup.add(await startContainerd(), (c) => c.stop());
    hostsDir = join(work, 'hosts');
    await writeHostsToml(hostsDir, 'docker.io', proxy.url);
    await writeHostsToml(hostsDir, OTHER_REGISTRY, proxy.url);
  });
  afterAll(() => cleanup.run());

  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      console.error(`--- pullcache output (tail) ---\n${proxy?.output().slice(-6_000) ?? '(not started)'}`);
    });
  });

  /** Successful upstream GETs of this repository's content by digest (manifests and blobs). */
  const upstreamGets = (registry: Registry, repository: string, digest = 'sha256:') =>
    registry.countRequests('GET', new RegExp(`^/v2/${repository}/(blobs|manifests)/${digest}`), 200);

  it('skopeo pulls the OCI index by short name (demo → docker.io/library/demo) unchanged', async () => {
    const pulled = await pullImage(`${proxy!.host}/demo:1.0`, join(work, 'pulls', 'first'));
    expect(pulled).toEqual(digestsOf(images.demo));
    // One upstream download per blob and per manifest fetched by digest.
    for (const digest of allDigests(images.demo).slice(1)) {
      expect(upstreamGets(upstream.registry, 'library/demo', digest), digest).toBe(1);
    }
  });

  it('serves a second skopeo pull of the same image from its cache', async () => {
    const before = upstreamGets(upstream.registry, 'library/demo');
    const pulled = await pullImage(`${proxy!.host}/demo:1.0`, join(work, 'pulls', 'second'));
    expect(pulled).toEqual(digestsOf(images.demo));
    // Content by digest is immutable: only the tag may be revalidated upstream.
    expect(upstreamGets(upstream.registry, 'library/demo')).toBe(before);
  });

  it('skopeo pulls the Docker manifest list unchanged', async () => {
    const pulled = await pullImage(`${proxy!.host}/demolist:1.0`, join(work, 'pulls', 'list'), {
      layout: 'dir',
    });
    expect(pulled).toEqual(digestsOf(images.demolist));
  });

  it('containerd pulls docker.io/library/demo:1.0, all platforms, with pullcache as its mirror', async () => {
    const ref = `docker.io/${DEMO_REF}`;
    await containerd.pull(ref, { hostsDir, allPlatforms: true, namespace: 'via-docker-io' });
    expect(await containerd.imageTarget(ref, 'via-docker-io')).toEqual({
      mediaType: images.demo.index.mediaType,
      digest: images.demo.index.digest,
    });
    expect(await containerd.contentDigests('via-docker-io')).toEqual(
      expect.arrayContaining(allDigests(images.demo)),
    );
  });

  it('containerd pulls registry.example.test/library/demo:1.0 from the upstream ?ns= names', async () => {
    const ref = `${OTHER_REGISTRY}/${DEMO_REF}`;
    const dockerIoBefore = upstreamGets(upstream.registry, 'library/demo');
    await containerd.pull(ref, { hostsDir, allPlatforms: true, namespace: 'via-example-test' });
    expect(await containerd.imageTarget(ref, 'via-example-test')).toEqual({
      mediaType: otherDemo.index.mediaType,
      digest: otherDemo.index.digest,
    });
    expect(await containerd.contentDigests('via-example-test')).toEqual(
      expect.arrayContaining(allDigests(otherDemo)),
    );
    // Fetched from registry.example.test's upstream, each blob once; docker.io's was not asked.
    for (const digest of allDigests(otherDemo).slice(1)) {
      expect(upstreamGets(other, 'library/demo', digest), digest).toBe(1);
    }
    expect(upstreamGets(upstream.registry, 'library/demo')).toBe(dockerIoBefore);
  });

  // Only token mode has a token server; the test is declared where it applies, never skipped.
  if (mode === 'token') {
    it('fetched upstream tokens per repository, not per request', () => {
      const server = upstream.tokenServer!;
      const byProxy = server.requests().slice(tokensBeforeProxy);
      expect(byProxy.length).toBeGreaterThan(0);
      expect(byProxy.length).toBeLessThanOrEqual(UPSTREAM_REPOSITORIES.length * 2);
      // With the configured credentials: the token server refuses anonymous requests.
      expect(byProxy.every((r) => r.username === upstream.creds!.username)).toBe(true);
      // Each asked for pull access only, on one of the repositories it proxied.
      for (const request of byProxy) {
        for (const scope of request.scopes) {
          expect(UPSTREAM_REPOSITORIES.map((r) => `repository:${r}:pull`)).toContain(scope);
        }
      }
    });
  }
});
