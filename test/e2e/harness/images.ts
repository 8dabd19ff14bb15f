/** @module Generated two-platform test images, deterministic given a seed, never downloaded. */

// The OCI index goes into an OCI image layout (oci-layout, index.json, blobs/sha256/…); the Docker
// list into a skopeo `dir:` folder, because skopeo 1.9's `oci:` source only finds index.json
// entries with OCI media types ("no descriptor found for reference"). A `dir:` folder holds
// manifest.json (the list), <hex>.manifest.json per platform and <hex> per other blob.
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createGzip, gzipSync } from 'node:zlib';
import {
  type Descriptor,
  type ImageDigests,
  type ImageFormat,
  MEDIA_TYPES,
  type Platform,
  type PlatformImage,
} from './image-digests.js';
import { createLayoutWriter, type LayoutWriter } from './layout-writer.js';
import { tarArchive, tarEnd, tarHeader, tarPadding } from './tar.js';

export interface GenerateOptions {
  /** The layout folder; created if missing. */
  dir: string;
  format?: ImageFormat;
  tag?: string;
  /** Same seed, same bytes, same digests; different seeds share no blob. */
  seed?: string;
  platforms?: Platform[];
  /** Adds one incompressible layer of this many MiB to every platform (streamed, never held in memory). */
  largeLayerMiB?: number;
  /** Instead of the small generated layers: one incompressible layer per entry, of that many MiB. */
  layerSizesMiB?: number[];
}

export interface GeneratedImage extends ImageDigests {
  format: ImageFormat;
  layoutDir: string;
  tag: string;
  /** The image as skopeo names it: `oci:DIR:TAG` or `dir:DIR`. */
  source: string;
}

interface Layer {
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar, for the config's rootfs.diff_ids. */
  diffId: string;
}

const DEFAULT_PLATFORMS: Platform[] = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64' },
];

export async function generateImage(options: GenerateOptions): Promise<GeneratedImage> {
  const { dir, format = 'oci', tag = '1.0', seed = 'demo', platforms = DEFAULT_PLATFORMS } = options;
  const types = MEDIA_TYPES[format];
  const out = await createLayoutWriter(dir, format === 'oci' ? 'oci' : 'dir');
  const large = options.largeLayerMiB
    ? await writeLargeLayer(out, types.layer, options.largeLayerMiB, seed)
    : undefined;

  const sized: Layer[] = [];
  for (const [n, mib] of (options.layerSizesMiB ?? []).entries()) {
    sized.push(await writeLargeLayer(out, types.layer, mib, `${seed}/layer-${n}`));
  }

  const images: PlatformImage[] = [];
  for (const [i, platform] of platforms.entries()) {
    const name = `${seed}/${platform.os}-${platform.architecture}`;
    // Platform i gets i + 1 small layers, so platforms differ in shape as well as content.
    const layers: Layer[] = [...sized];
    if (!options.layerSizesMiB) {
      for (let n = 0; n <= i; n++) layers.push(await writeSmallLayer(out, types.layer, `${name}/${n}`));
    }
    if (large) layers.push(large);
    const config = await out.writeBlob(
      types.config,
      json({
        architecture: platform.architecture,
        os: platform.os,
        created: '2024-01-01T00:00:00Z',
        config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/true'], Labels: { seed } },
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      }),
    );
    const manifest = await out.writeBlob(
      types.manifest,
      json({ schemaVersion: 2, mediaType: types.manifest, config, layers: layers.map((l) => l.descriptor) }),
      'manifest',
    );
    images.push({ platform, manifest, config, layers: layers.map((l) => l.descriptor) });
  }

  const { descriptor: index, source } = await out.finish(
    types.index,
    json({
      schemaVersion: 2,
      mediaType: types.index,
      manifests: images.map((p) => ({ ...p.manifest, platform: p.platform })),
    }),
    tag,
  );
  return { format, layoutDir: dir, tag, source, index, platforms: images };
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

async function writeSmallLayer(out: LayoutWriter, mediaType: string, label: string): Promise<Layer> {
  const tar = tarArchive([
    { name: 'pullcache-e2e' },
    { name: `pullcache-e2e/${label.replaceAll('/', '_')}.txt`, content: Buffer.from(`${label}\n`) },
  ]);
  const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
  return { descriptor: await out.writeBlob(mediaType, gzipSync(tar)), diffId };
}

const MiB = 1024 * 1024;

/** A tar holding one file of keystream bytes, gzip'd without compression (it would not shrink anyway). */
async function writeLargeLayer(
  out: LayoutWriter,
  mediaType: string,
  mib: number,
  seed: string,
): Promise<Layer> {
  const key = createHash('sha256').update(`large-layer/${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const size = mib * MiB;
  async function* tar() {
    yield tarHeader('pullcache-e2e/large.bin', size, 'file');
    const zeros = Buffer.alloc(MiB);
    for (let i = 0; i < mib; i++) yield cipher.update(zeros);
    yield tarPadding(size);
    yield tarEnd();
  }
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  let compressedSize = 0;
  const tmp = out.pathOf(`.large-${process.pid}.tmp`, 'blob');
  await pipeline(
    Readable.from(tar()),
    tap((chunk) => diff.update(chunk)),
    // 1 MiB output chunks: with the 16 KiB default, generating 256 MiB took 5× longer (7 s).
    createGzip({ level: constants.Z_NO_COMPRESSION, chunkSize: MiB }),
    tap((chunk) => {
      blob.update(chunk);
      compressedSize += chunk.length;
    }),
    createWriteStream(tmp),
  );
  const hex = blob.digest('hex');
  await rename(tmp, out.pathOf(hex, 'blob'));
  return {
    descriptor: { mediaType, digest: `sha256:${hex}`, size: compressedSize },
    diffId: `sha256:${diff.digest('hex')}`,
  };
}

function tap(observe: (chunk: Buffer) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      observe(chunk);
      callback(null, chunk);
    },
  });
}
