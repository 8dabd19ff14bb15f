/** @module Where generated blobs go: an OCI image layout or a skopeo `dir:` folder (see images.ts). */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Descriptor } from './image-digests.js';

export type BlobKind = 'blob' | 'manifest';

export interface LayoutWriter {
  /** The file a blob with this hex digest belongs in. */
  pathOf(hex: string, kind: BlobKind): string;
  writeBlob(mediaType: string, bytes: Buffer, kind?: BlobKind): Promise<Descriptor>;
  /** Writes the top-level index (or list) and what names it; returns the skopeo source reference. */
  finish(mediaType: string, index: Buffer, tag: string): Promise<{ descriptor: Descriptor; source: string }>;
}

export async function createLayoutWriter(dir: string, layout: 'oci' | 'dir'): Promise<LayoutWriter> {
  const blobsDir = layout === 'oci' ? join(dir, 'blobs', 'sha256') : dir;
  await mkdir(blobsDir, { recursive: true });
  const pathOf = (hex: string, kind: BlobKind) =>
    layout === 'dir' && kind === 'manifest' ? join(dir, `${hex}.manifest.json`) : join(blobsDir, hex);
  const writeBlob = async (mediaType: string, bytes: Buffer, kind: BlobKind = 'blob') => {
    const hex = createHash('sha256').update(bytes).digest('hex');
    await writeFile(pathOf(hex, kind), bytes);
    return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
  };

  return {
    pathOf,
    writeBlob,
    async finish(mediaType, index, tag) {
      if (layout === 'dir') {
        // A dir: folder holds one image, so it has no tag; skopeo reads its version file first.
        await writeFile(join(dir, 'manifest.json'), index);
        await writeFile(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
        const hex = createHash('sha256').update(index).digest('hex');
        return {
          descriptor: { mediaType, digest: `sha256:${hex}`, size: index.length },
          source: `dir:${dir}`,
        };
      }
      const descriptor = await writeBlob(mediaType, index, 'manifest');
      const annotations = { 'org.opencontainers.image.ref.name': tag };
      await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
      await writeFile(
        join(dir, 'index.json'),
        JSON.stringify({ schemaVersion: 2, manifests: [{ ...descriptor, annotations }] }),
      );
      return { descriptor, source: `oci:${dir}:${tag}` };
    },
  };
}
