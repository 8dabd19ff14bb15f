/**
 * @module `pullcache export`: cached images as one OCI image layout archive (`oci-layout`,
 * `index.json`, `blobs/<algorithm>/<hex>`), pulling what is missing through the upstream first.
 * Each image is named in index.json by its full reference (`org.opencontainers.image.ref.name` and
 * containerd's `io.containerd.image.name`), so `skopeo copy oci-archive:FILE:docker.io/library/x:1`
 * finds it and `pullcache import` knows where it came from. Manifests keep their bytes and media
 * types (Docker ones included): digests do not change. Written to a temp file, renamed when whole.
 */
import { open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { InventoryStore } from '../cache/inventory-store.js';
import { tempName } from '../cache/temp-name.js';
import type { Config } from '../config.js';
import { type Descriptor, INDEX_MEDIA_TYPES, MEDIA_TYPES, platformOf } from '../content.js';
import { parseDigest } from '../digest.js';
import type { Puller } from '../pull/puller.js';
import { formatReference, parseReference } from '../reference.js';
import { type Route, resolveRoute } from '../routing.js';
import { warmImage } from '../warm.js';
import { blobEntryName, IMAGE_NAME_ANNOTATIONS, LAYOUT_VERSION } from './oci-layout.js';
import { TarWriter } from './tar.js';

export interface ExportOptions {
  /** `os/arch[/variant]`; empty: every platform of an index. */
  platforms: string[];
}

export interface ExportedImage {
  reference: string;
  digest: string;
  mediaType: string;
  /** Platforms written (for an index; one manifest: empty). */
  platforms: string[];
}

type ExportStore = Pick<InventoryStore, 'peekManifest'>;

/** Writes the images `references` name to `file`; returns what it wrote. */
export async function exportImages(
  deps: { puller: Puller; store: ExportStore; config: Pick<Config, 'registries' | 'defaultRegistry'> },
  references: string[],
  file: string,
  options: ExportOptions,
): Promise<{ images: ExportedImage[]; blobs: number; bytes: number }> {
  const images: ExportedImage[] = [];
  const manifests = new Map<string, { mediaType: string; bytes: Buffer }>();
  const blobs = new Map<string, { size: number; route: Route }>();
  for (const input of references) {
    let top: string | undefined;
    // Whatever is missing comes through the pull layer (verified, and stored for next time).
    await warmImage(
      deps.puller,
      deps.config,
      input,
      { platforms: options.platforms, allPlatforms: options.platforms.length === 0 },
      (event) => {
        if (event.event === 'manifest' && top === undefined) top = event.digest;
      },
    );
    const manifest = await deps.store.peekManifest(top!);
    if (!manifest) throw new Error(`${input}: its manifest left the cache during the export`);
    manifests.set(manifest.digest, manifest);
    const platforms: string[] = [];
    let children: { digest: string }[] = [manifest];
    if (INDEX_MEDIA_TYPES.has(manifest.mediaType)) {
      const index = JSON.parse(manifest.bytes.toString('utf8')) as { manifests?: Descriptor[] };
      const chosen = (index.manifests ?? []).filter(
        (d) =>
          platformOf(d) !== 'unknown/unknown' &&
          (options.platforms.length === 0 || options.platforms.includes(platformOf(d))),
      );
      children = chosen;
      for (const d of chosen) {
        const child = await deps.store.peekManifest(d.digest);
        if (!child) throw new Error(`${input}: manifest ${d.digest} left the cache during the export`);
        manifests.set(child.digest, child);
        platforms.push(platformOf(d));
      }
    }
    const ref = parseReference(input);
    const route = resolveRoute(`${ref.registry}/${ref.repository}`, undefined, deps.config);
    for (const { digest } of children) {
      const document = JSON.parse(manifests.get(digest)!.bytes.toString('utf8')) as {
        config?: Descriptor;
        layers?: Descriptor[];
      };
      for (const d of [document.config, ...(document.layers ?? [])])
        if (d) blobs.set(d.digest, { size: d.size, route });
    }
    images.push({
      reference: formatReference(ref),
      digest: manifest.digest,
      mediaType: manifest.mediaType,
      platforms,
    });
  }

  const temp = join(dirname(file), tempName('export'));
  const handle = await open(temp, 'wx', 0o644);
  let bytes = 0;
  try {
    const tar = new TarWriter(handle);
    await tar.bytes('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION })));
    const index = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: images.map((image) => ({
        mediaType: image.mediaType,
        digest: image.digest,
        size: manifests.get(image.digest)!.bytes.length,
        annotations: Object.fromEntries(IMAGE_NAME_ANNOTATIONS.map((key) => [key, image.reference])),
      })),
    };
    await tar.bytes('index.json', Buffer.from(JSON.stringify(index, null, 2)));
    await tar.directory('blobs');
    const algorithms = new Set([...manifests.keys(), ...blobs.keys()].map((d) => parseDigest(d).algorithm));
    for (const algorithm of algorithms) await tar.directory(`blobs/${algorithm}`);
    for (const [digest, manifest] of manifests) await tar.bytes(blobEntryName(digest), manifest.bytes);
    for (const [digest, { size, route }] of blobs) {
      // Through the pull layer: a blob warm just downloaded may still be committing, and the
      // download serves it meanwhile; one evicted since is fetched again.
      const answer = await deps.puller.blob(route, digest, { head: false, range: null });
      const source = answer.source!;
      try {
        if (answer.size !== size)
          throw new Error(`blob ${digest} has ${answer.size} bytes, its manifest says ${size}`);
        const buffer = Buffer.allocUnsafe(1 << 20);
        await tar.file(blobEntryName(digest), size, async (write) => {
          for (let n = await source.read(buffer); n > 0; n = await source.read(buffer))
            await write(buffer.subarray(0, n));
        });
      } finally {
        await source.close();
      }
      bytes += size;
    }
    await tar.end();
    await handle.sync();
    await handle.close();
    await rename(temp, file);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temp, { force: true });
    throw error;
  }
  return { images, blobs: blobs.size, bytes };
}
