/**
 * Proves the e2e harness against the real tools, without the proxy: images generated here survive
 * a push to docker-registry and a pull back byte for byte (skopeo, containerd), under each auth mode.
 */
import { createHash } from 'node:crypto';
import { promises as dnsPromises } from 'node:dns';
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanup } from './harness/cleanup.js';
import { type Containerd, startContainerd, writeHostsToml } from './harness/containerd.js';
import {
  DEMO_REF,
  DEMOLIST_REF,
  type DemoImages,
  generateDemoImages,
  pushDemoImages,
} from './harness/demo-images.js';
import { startDnsmasq } from './harness/dnsmasq.js';
import { allDigests, digestsOf } from './harness/image-digests.js';
import { generateImage } from './harness/images.js';
import { basicAuth } from './harness/registry.js';
import { pullImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';
import { type AuthMode, startUpstream, type Upstream } from './harness/upstream.js';

describe('generated images', () => {
  const cleanup = createCleanup();
  let work: string;
  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('harness-images'), removeDir);
  });
  afterAll(() => cleanup.run());

  it('are deterministic given a seed and share nothing across seeds', async () => {
    const a = await generateImage({ dir: join(work, 'a'), seed: 'same' });
    const b = await generateImage({ dir: join(work, 'b'), seed: 'same' });
    const c = await generateImage({ dir: join(work, 'c'), seed: 'other' });
    expect(digestsOf(b)).toEqual(digestsOf(a));
    expect(allDigests(c).filter((d) => allDigests(a).includes(d))).toEqual([]);
    expect(a.platforms.map((p) => `${p.platform.os}/${p.platform.architecture}`)).toEqual([
      'linux/amd64',
      'linux/arm64',
    ]);
  });

  it('stream a large layer to disk with the size and digest they report', async () => {
    const image = await generateImage({ dir: join(work, 'large'), seed: 'large', largeLayerMiB: 3 });
    const large = image.platforms[0]?.layers.at(-1);
    expect(large?.size).toBeGreaterThan(3 * 1024 * 1024);
    // Shared by both platforms: one blob on disk, pulled once per cache.
    expect(image.platforms[1]?.layers.at(-1)).toEqual(large);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(
      join(image.layoutDir, 'blobs', 'sha256', large!.digest.slice(7)),
    )) {
      hash.update(chunk as Buffer);
    }
    expect(`sha256:${hash.digest('hex')}`).toBe(large?.digest);
  });
});

describe.each<AuthMode>(['none', 'htpasswd', 'token'])('docker-registry with auth %s', (mode) => {
  const cleanup = createCleanup();
  let work: string;
  let upstream: Upstream;
  let images: DemoImages;
  let containerd: Containerd;

  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('harness'), removeDir);
    upstream = cleanup.add(await startUpstream(mode), (u) => u.stop());
    images = await generateDemoImages(join(work, 'images'));
    await pushDemoImages(images, upstream.registry.host, upstream.creds);
    containerd = cleanup.add(await startContainerd(), (c) => c.stop());
  });
  afterAll(() => cleanup.run());

  // Tests that only apply to some modes are declared only there: nothing is ever skipped.
  if (mode !== 'none') {
    it('refuses anonymous clients', async () => {
      const response = await fetch(`${upstream.registry.url}/v2/`);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(
        mode === 'token' ? /^Bearer realm=/ : /^Basic realm=/,
      );
    });
  }

  if (mode === 'token') {
    it('accepts the JWTs the token server signs, and only for the right user', async () => {
      const server = upstream.tokenServer!;
      const scope = `scope=repository:library/demo:pull&service=${server.service}`;
      expect((await fetch(`${server.realm}?${scope}`)).status).toBe(401);
      const wrong = basicAuth({ username: upstream.creds!.username, password: 'wrong' });
      expect((await fetch(`${server.realm}?${scope}`, { headers: { authorization: wrong } })).status).toBe(
        401,
      );
      const answer = await fetch(`${server.realm}?${scope}`, {
        headers: { authorization: basicAuth(upstream.creds!) },
      });
      const { token, access_token, expires_in } = (await answer.json()) as Record<string, unknown>;
      expect(access_token).toBe(token);
      expect(expires_in).toBeGreaterThan(0);
      const manifest = await fetch(`${upstream.registry.url}/v2/library/demo/manifests/1.0`, {
        headers: { authorization: `Bearer ${token}`, accept: images.demo.index.mediaType },
      });
      expect(manifest.status).toBe(200);
      expect(manifest.headers.get('docker-content-digest')).toBe(images.demo.index.digest);
    });
  }

  it('skopeo pulls back the OCI index byte for byte', async () => {
    const pulled = await pullImage(`${upstream.registry.host}/${DEMO_REF}`, join(work, 'pulls'), {
      creds: upstream.creds,
    });
    expect(pulled).toEqual(digestsOf(images.demo));
  });

  it('skopeo pulls back the Docker manifest list byte for byte', async () => {
    const pulled = await pullImage(`${upstream.registry.host}/${DEMOLIST_REF}`, join(work, 'pulls'), {
      creds: upstream.creds,
      layout: 'dir',
    });
    expect(pulled).toEqual(digestsOf(images.demolist));
    expect(pulled.index.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
  });

  it('logs the downloads of the pull above in the access log', () => {
    const byDigest = allDigests(images.demo).slice(1);
    const gets = upstream.registry.countRequests(
      'GET',
      /^\/v2\/library\/demo\/(blobs|manifests)\/sha256:/,
      200,
    );
    // The index is fetched by tag; every platform manifest, config and layer once by digest.
    expect(gets).toBe(byDigest.length);
  });

  it('containerd pulls every platform through a hosts.toml mirror', async () => {
    const hostsDir = join(work, `hosts-${mode}`);
    // The registry itself stands in as the mirror; `server` is a dead port, so only the mirror can serve.
    const headers = mode === 'htpasswd' ? { Authorization: basicAuth(upstream.creds!) } : undefined;
    await writeHostsToml(hostsDir, 'docker.io', upstream.registry.url, { headers });
    const ref = `docker.io/${DEMO_REF}`;
    await containerd.pull(ref, {
      hostsDir,
      allPlatforms: true,
      user: mode === 'token' ? upstream.creds : undefined,
    });

    expect(await containerd.imageTarget(ref)).toEqual({
      mediaType: images.demo.index.mediaType,
      digest: images.demo.index.digest,
    });
    expect(await containerd.contentDigests()).toEqual(expect.arrayContaining(allDigests(images.demo)));
    // containerd names the registry it meant in ?ns=, which is how pullcache routes mirror requests.
    expect(
      upstream.registry.countRequests('HEAD', /^\/v2\/library\/demo\/manifests\/1\.0\?ns=docker\.io$/, 200),
    ).toBe(1);

    await containerd.removeImage(ref);
    expect(await containerd.imageTarget(ref)).toBeUndefined();
  });

  if (mode === 'token') {
    it('the token server counted who asked', () => {
      const requests = upstream.tokenServer!.requests();
      expect(upstream.tokenServer!.tokenRequests()).toBe(requests.length);
      expect(requests.filter((r) => r.username === upstream.creds!.username).length).toBeGreaterThan(0);
      // containerd with a password uses the OAuth2 form POST; skopeo uses GET.
      expect(new Set(requests.map((r) => r.method))).toEqual(new Set(['GET', 'POST']));
    });
  }
});

describe('dnsmasq', () => {
  it('answers A and AAAA from its records, NODATA and NXDOMAIN like a cluster DNS server, and is gone after stop', async () => {
    const dns = await startDnsmasq({ 'peers.test': ['127.0.0.2', '127.0.0.3'] });
    const resolver = new dnsPromises.Resolver({ timeout: 2_000, tries: 1 });
    resolver.setServers([dns.server]);
    const code = (promise: Promise<unknown>) =>
      promise.then(
        () => 'answered',
        (error: { code?: string }) => error.code,
      );
    try {
      expect((await resolver.resolve4('peers.test')).sort()).toEqual(['127.0.0.2', '127.0.0.3']);
      expect(await code(resolver.resolve6('peers.test'))).toBe('ENODATA');
      expect(await code(resolver.resolve4('other.test'))).toBe('ENOTFOUND');
      await dns.setRecords('peers.test', ['127.0.0.4', 'fd00::4']);
      expect(await resolver.resolve4('peers.test')).toEqual(['127.0.0.4']);
      expect(await resolver.resolve6('peers.test')).toEqual(['fd00::4']);
      await dns.setRecords('peers.test', []);
      expect(await code(resolver.resolve4('peers.test'))).toBe('ENOTFOUND');
    } finally {
      await dns.stop();
    }
    expect(dns.process.exitStatus()).toBeDefined();
    expect(() => process.kill(dns.process.pid, 0)).toThrow();
    expect(existsSync(dns.dir)).toBe(false);
  });
});
