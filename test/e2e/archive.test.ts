/**
 * Carrying a cache into an air gap with real programs: `pullcache export` (pulling through a real
 * docker-registry) writes an archive skopeo reads as `oci-archive:`; `pullcache import` into an
 * empty folder, the upstream stopped, and containerd and skopeo pull both images (an OCI index and
 * a Docker manifest list) through the new pullcache; an archive with one layer byte changed is
 * refused and leaves the folder empty.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTarEntries } from '../../src/archive/tar.js';
import { filesUnder } from '../support/storage.js';
import { createCleanup } from './harness/cleanup.js';
import { CommandError, run } from './harness/command.js';
import { type Containerd, startContainerd, writeHostsToml } from './harness/containerd.js';
import {
  DEMO_REF,
  DEMOLIST_REF,
  type DemoImages,
  generateDemoImages,
  pushDemoImages,
} from './harness/demo-images.js';
import { digestsOf } from './harness/image-digests.js';
import { readOciLayout } from './harness/layout-reader.js';
import { type Pullcache, startPullcache } from './harness/pullcache.js';
import { pullImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

const CLI = resolve(import.meta.dirname, '..', '..', 'dist', 'cli.js');

describe('export, import into an air gap, pull', () => {
  const cleanup = createCleanup();
  let work: string;
  let images: DemoImages;
  let upstream: Upstream;
  let archive: string;
  let airGapped: Pullcache;
  let containerd: Containerd;

  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('archive'), removeDir);
    images = await generateDemoImages(join(work, 'images'));
    upstream = cleanup.add(await startUpstream('none'), (u) => u.stop());
    await pushDemoImages(images, upstream.registry.host);
    containerd = cleanup.add(await startContainerd(), (c) => c.stop());
  });
  afterAll(() => cleanup.run());

  it('export pulls both images through the upstream into one archive', async () => {
    const connected = await startPullcache({ registries: { 'docker.io': { url: upstream.registry.url } } });
    try {
      archive = join(work, 'cache.tar');
      const { stdout } = await run(CLI, [
        'export',
        '--config',
        connected.configFile,
        '--storage',
        connected.storageDir,
        `docker.io/${DEMO_REF}`,
        `docker.io/${DEMOLIST_REF}`,
        '-o',
        archive,
        '--json',
      ]);
      const result = JSON.parse(stdout) as { images: { reference: string; digest: string }[] };
      expect(result.images.map((i) => [i.reference, i.digest])).toEqual([
        [`docker.io/${DEMO_REF}`, images.demo.index.digest],
        [`docker.io/${DEMOLIST_REF}`, images.demolist.index.digest],
      ]);
    } finally {
      await connected.stop();
    }
  });

  it('skopeo reads the archive as oci-archive:FILE:NAME, every platform byte for byte', async () => {
    const out = join(work, 'from-archive');
    await run('skopeo', [
      '--insecure-policy',
      'copy',
      '--all',
      '--preserve-digests',
      '--quiet',
      `oci-archive:${archive}:docker.io/${DEMO_REF}`,
      `oci:${out}:1.0`,
    ]);
    expect(await readOciLayout(out, '1.0')).toEqual(digestsOf(images.demo));
  });

  it('import into an empty folder, upstream stopped: containerd and skopeo pull both images', async () => {
    await upstream.stop();
    const storageDir = join(work, 'air-gapped');
    await mkdir(storageDir);
    // The upstream's address stays in the config: nothing answers there any more.
    airGapped = cleanup.add(
      await startPullcache({ registries: { 'docker.io': { url: upstream.registry.url } }, storageDir }),
      (p) => p.stop(),
    );
    const { stdout } = await run(CLI, [
      'import',
      '--config',
      airGapped.configFile,
      '--storage',
      storageDir,
      archive,
    ]);
    expect(stdout).toContain(`imported docker.io/${DEMO_REF}`);
    expect(stdout).toContain(`imported docker.io/${DEMOLIST_REF}`);

    const hostsDir = join(work, 'hosts');
    await writeHostsToml(hostsDir, 'docker.io', airGapped.url);
    for (const [ref, image] of [
      [DEMO_REF, images.demo],
      [DEMOLIST_REF, images.demolist],
    ] as const) {
      await containerd.pull(`docker.io/${ref}`, { hostsDir, allPlatforms: true });
      expect(await containerd.imageTarget(`docker.io/${ref}`)).toEqual({
        mediaType: image.index.mediaType,
        digest: image.index.digest,
      });
    }
    expect(await pullImage(`${airGapped.host}/${DEMO_REF}`, join(work, 'pulls'))).toEqual(
      digestsOf(images.demo),
    );
    expect(
      await pullImage(`${airGapped.host}/${DEMOLIST_REF}`, join(work, 'pulls'), { layout: 'dir' }),
    ).toEqual(digestsOf(images.demolist));
  });

  it('refuses an archive with one byte changed in a layer, and imports nothing', async () => {
    const handle = await open(archive, 'r');
    const layer = images.demo.platforms[0]!.layers[0]!.digest;
    let offset = -1;
    for await (const entry of readTarEntries(handle))
      if (entry.name === `blobs/sha256/${layer.slice(7)}`) offset = entry.offset;
    await handle.close();
    expect(offset).toBeGreaterThan(0);
    const bytes = readFileSync(archive);
    bytes[offset + 20]! ^= 0x01;
    const tampered = join(work, 'tampered.tar');
    writeFileSync(tampered, bytes);

    const storageDir = join(work, 'refused');
    const failure = await run(CLI, [
      'import',
      '--config',
      airGapped.configFile,
      '--storage',
      storageDir,
      tampered,
    ]).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(CommandError);
    const { code, stderr } = (failure as CommandError).result;
    expect(code).toBe(1);
    expect(stderr).toContain(`blob ${layer} in the archive does not match its digest`);
    expect(filesUnder(storageDir)).toEqual([]);
  });
});
