/**
 * pullcache with its cache in a bucket on a real RADOS Gateway: skopeo and containerd pull a
 * multi-platform image through it and the bucket holds exactly that image; a second process with an
 * empty local folder and no reachable upstream serves the same pull; `redirect: true` sends the
 * clients to the bucket with 307s they follow; and while the gateway is down clients get a 503
 * naming the store, until it is back (no restart).
 */
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { filesUnder } from '../support/storage.js';
import { type Rgw, startRgw } from './harness/ceph-rgw.js';
import { createCleanup } from './harness/cleanup.js';
import { run } from './harness/command.js';
import { type Containerd, startContainerd, writeHostsToml } from './harness/containerd.js';
import { DEMO_REF, type DemoImages, generateDemoImages, pushDemoImages } from './harness/demo-images.js';
import { allDigests, digestsOf } from './harness/image-digests.js';
import { freePort } from './harness/ports.js';
import { type Pullcache, type PullcacheOptions, startPullcache } from './harness/pullcache.js';
import { type Registry, startRegistry } from './harness/registry.js';
import { createS3Admin, rgwEnvironment, type S3Admin } from './harness/s3-admin.js';
import { pullImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';

const BUCKET = 'pullcache';
const PREFIX = 'cache/';
const REF = `docker.io/${DEMO_REF}`;
const CLI = resolve(import.meta.dirname, '..', '..', 'dist', 'cli.js');

describe('pull through pullcache with its cache on RADOS Gateway', () => {
  const cleanup = createCleanup();
  let work: string;
  let rgw: Rgw;
  let admin: S3Admin;
  let upstream: Registry;
  let images: DemoImages;
  let containerd: Containerd;
  const proxies: Pullcache[] = [];

  /** A pullcache on the bucket, with a fresh local folder; `upstreamUrl` defaults to the registry. */
  async function startOnBucket(
    s3: Record<string, unknown> = {},
    upstreamUrl = upstream.url,
  ): Promise<Pullcache> {
    const options: PullcacheOptions = {
      registries: { 'docker.io': { url: upstreamUrl } },
      storage: { s3: { bucket: BUCKET, endpoint: rgw.endpoint, region: rgw.region, prefix: PREFIX, ...s3 } },
      env: rgwEnvironment(rgw),
    };
    const proxy = cleanup.add(await startPullcache(options), (p) => p.stop());
    proxies.push(proxy);
    return proxy;
  }
  async function hostsFor(proxy: Pullcache): Promise<string> {
    const dir = join(work, 'hosts', String(proxy.port));
    await writeHostsToml(dir, 'docker.io', proxy.url);
    return dir;
  }
  const blobDigests = () => [
    ...new Set(images.demo.platforms.flatMap((p) => [p.config.digest, ...p.layers.map((l) => l.digest)])),
  ];
  const manifestDigests = () => [
    images.demo.index.digest,
    ...images.demo.platforms.map((p) => p.manifest.digest),
  ];
  const key = (kind: 'blobs' | 'manifests', digest: string) =>
    `${PREFIX}${kind}/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;
  const upstreamGets = () =>
    upstream.countRequests('GET', /^\/v2\/library\/demo\/(blobs|manifests)\/sha256:/, 200);
  /** The request log lines of a proxy (JSON), for statuses the clients never show. */
  const requests = (proxy: Pullcache) =>
    proxy
      .output()
      .split('\n')
      .filter((line) => line.includes('"msg":"request"'))
      .map((line) => JSON.parse(line) as { method: string; path: string; status: number });

  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('s3-pull'), removeDir);
    rgw = cleanup.add(await startRgw(), (r) => r.stop());
    admin = cleanup.add(createS3Admin(rgw), (a) => a.close());
    await admin.createBucket(BUCKET);
    images = await generateDemoImages(join(work, 'images'));
    upstream = cleanup.add(await startRegistry(), (r) => r.stop());
    await pushDemoImages(images, upstream.host);
    containerd = cleanup.add(await startContainerd(), (c) => c.stop());
  });
  afterAll(() => cleanup.run());
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const proxy of proxies)
        console.error(`--- pullcache ${proxy.host} ---\n${proxy.output().slice(-4_000)}`);
    });
  });

  it('skopeo and containerd pull the two-platform image; the bucket holds exactly it', async () => {
    const proxy = await startOnBucket();
    expect(await pullImage(`${proxy.host}/demo:1.0`, join(work, 'pulls', 'skopeo'))).toEqual(
      digestsOf(images.demo),
    );
    await containerd.pull(REF, { hostsDir: await hostsFor(proxy), allPlatforms: true, namespace: 'first' });
    expect(await containerd.imageTarget(REF, 'first')).toMatchObject({ digest: images.demo.index.digest });
    expect(await containerd.contentDigests('first')).toEqual(expect.arrayContaining(allDigests(images.demo)));

    // Each blob and manifest once from the upstream, whatever both clients asked.
    expect(upstreamGets()).toBe(blobDigests().length + manifestDigests().length - 1); // the index by tag
    expect(await admin.objectKeys(BUCKET, PREFIX)).toEqual(
      [
        ...blobDigests().map((d) => key('blobs', d)),
        ...manifestDigests().map((d) => key('manifests', d)),
        `${PREFIX}tags/docker.io/library/demo/_tags/1.0.json`,
      ].sort(),
    );
    expect(await admin.uploadKeys(BUCKET)).toEqual([]);
    expect(filesUnder(proxy.storageDir)).toEqual([]); // the local folder holds downloads in flight only
  });

  it('lists the image from the bucket with `pullcache ls`, and on the status page', async () => {
    const proxy = proxies[0]!;
    const { stdout } = await run(CLI, ['ls', '--json', '--config', proxy.configFile], {
      env: { ...process.env, ...rgwEnvironment(rgw) },
    });
    const listed = JSON.parse(stdout) as {
      images: { registry: string; repository: string; tag: string; digest: string; platforms: string[] }[];
    };
    expect(listed.images).toContainEqual(
      expect.objectContaining({
        registry: 'docker.io',
        repository: 'library/demo',
        tag: '1.0',
        digest: images.demo.index.digest,
        platforms: ['linux/amd64', 'linux/arm64'],
      }),
    );
    const status = await fetch(`${proxy.url}/_pullcache/api/status`);
    expect(status.status).toBe(200);
    const report = (await status.json()) as { cache: { blobs: number; manifests: number } };
    expect(report.cache).toMatchObject({ blobs: blobDigests().length, manifests: manifestDigests().length });
  });

  it('serves the same pulls from a second process with an empty local folder and no upstream', async () => {
    // Nothing listens at the upstream address: for pullcache, the same as a registry that is down.
    const offline = await startOnBucket({}, `http://127.0.0.1:${await freePort()}`);
    expect(await pullImage(`${offline.host}/demo:1.0`, join(work, 'pulls', 'offline'))).toEqual(
      digestsOf(images.demo),
    );
    const fresh = cleanup.add(await startContainerd('offline'), (c) => c.stop());
    await fresh.pull(REF, { hostsDir: await hostsFor(offline), allPlatforms: true });
    expect(await fresh.contentDigests()).toEqual(expect.arrayContaining(allDigests(images.demo)));
  });

  it('with redirect: true sends skopeo and containerd to the bucket for every blob, and they follow', async () => {
    const redirecting = await startOnBucket({ redirect: true });
    const direct = await fetch(`${redirecting.url}/v2/library/demo/blobs/${blobDigests()[0]}`, {
      redirect: 'manual',
    });
    expect(direct.status).toBe(307);
    const location = new URL(direct.headers.get('location')!);
    expect(`${location.protocol}//${location.host}`).toBe(rgw.endpoint);
    expect(location.searchParams.get('X-Amz-Expires')).toBe('60');

    expect(await pullImage(`${redirecting.host}/demo:1.0`, join(work, 'pulls', 'redirect'))).toEqual(
      digestsOf(images.demo),
    );
    const fresh = cleanup.add(await startContainerd('redirect'), (c) => c.stop());
    await fresh.pull(REF, { hostsDir: await hostsFor(redirecting), allPlatforms: true });
    expect(await fresh.contentDigests()).toEqual(expect.arrayContaining(allDigests(images.demo)));

    const blobGets = requests(redirecting).filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
    // Both clients took every blob from the bucket: pullcache sent none of their bytes itself.
    expect(blobGets.filter((r) => r.status === 307).length).toBeGreaterThanOrEqual(
      2 * blobDigests().length + 1,
    );
    expect(blobGets.filter((r) => r.status !== 307)).toEqual([]);
  });

  it('answers 503 naming the store while the gateway is down, and serves again once it is back', async () => {
    const proxy = await startOnBucket();
    const pid = proxy.process.pid;
    await rgw.stopGateway();
    try {
      for (const path of [
        `/v2/library/demo/blobs/${blobDigests()[0]}`,
        `/v2/library/demo/manifests/${manifestDigests()[1]}`,
      ]) {
        const started = Date.now();
        const response = await fetch(`${proxy.url}${path}`);
        expect(response.status, path).toBe(503);
        const body = (await response.json()) as { errors: { code: string; message: string }[] };
        expect(body.errors[0]?.code).toBe('UNAVAILABLE');
        expect(body.errors[0]?.message).toContain(`S3 bucket ${BUCKET} at ${rgw.endpoint}`);
        expect(Date.now() - started).toBeLessThan(15_000);
      }
      const head = await fetch(`${proxy.url}/v2/library/demo/blobs/${blobDigests()[0]}`, { method: 'HEAD' });
      expect(head.status).toBe(503);
    } finally {
      await rgw.startGateway();
    }
    const before = upstreamGets();
    expect(await pullImage(`${proxy.host}/demo:1.0`, join(work, 'pulls', 'after-outage'))).toEqual(
      digestsOf(images.demo),
    );
    expect(upstreamGets()).toBe(before); // from the bucket, not downloaded again
    expect(proxy.process.pid).toBe(pid);
    expect(proxy.process.exitStatus()).toBeUndefined();
  });
});
