/**
 * @module `pullcache import`: seeds the cache from an OCI image layout archive (`pullcache export`
 * or `skopeo copy … oci-archive:`). Every manifest and blob an image needs is checked against its
 * digest and size while it is written to a temp file; only when all of them verified are they
 * committed and the tags written, so a tampered or truncated archive imports nothing. Images are
 * named by the archive's annotations; a name without a registry host goes under `--registry`
 * (else the default registry).
 */
import { open } from 'node:fs/promises';
import type { BlobWriter } from '../cache/blob-writer.js';
import type { ConfiguredStore } from '../cache/store-from-config.js';
import type { Config } from '../config.js';
import {
  type Descriptor,
  INDEX_MEDIA_TYPES,
  MANIFEST_MAX_BYTES,
  type Manifest,
  platformOf,
} from '../content.js';
import { createDigester, digestOf, parseDigest } from '../digest.js';
import { assertTag, isRegistryComponent } from '../reference.js';
import { resolveRoute } from '../routing.js';
import { blobEntryName, IMAGE_NAME_ANNOTATIONS } from './oci-layout.js';
import { readExactly, readTarEntries, type TarEntry } from './tar.js';

export class ImportError extends Error {
  override name = 'ImportError';
}

export interface ImportedImage {
  /** `registry/repository:tag`, or null for an image the archive does not name (imported by digest). */
  reference: string | null;
  digest: string;
  platforms: string[];
}

export interface ImportResult {
  images: ImportedImage[];
  /** Blobs written, and those the cache had already. */
  blobs: { added: number; cached: number };
  manifests: number;
  bytes: number;
}

type ImportStore = Pick<
  ConfiguredStore,
  'peekManifest' | 'putManifest' | 'statBlob' | 'createBlobWriter' | 'putTag' | 'removeContent'
>;

export async function importArchive(
  deps: { store: ImportStore; config: Pick<Config, 'registries' | 'defaultRegistry'>; now?: () => number },
  file: string,
  options: { registry?: string },
): Promise<ImportResult> {
  const handle = await open(file, 'r');
  const writers: { digest: string; writer: BlobWriter }[] = [];
  try {
    const entries = new Map<string, TarEntry>();
    for await (const entry of readTarEntries(handle))
      if (entry.type === 'file') entries.set(entry.name, entry);
    const read = async (name: string, limit: number): Promise<Buffer> => {
      const entry = entries.get(name);
      if (!entry) throw new ImportError(`the archive has no ${name}`);
      if (entry.size > limit) throw new ImportError(`${name} is too large (${entry.size} bytes)`);
      const bytes = Buffer.alloc(entry.size);
      await readExactly(handle, bytes, entry.offset);
      return bytes;
    };
    const index = parseJson<{ manifests?: Descriptor[] }>(
      await read('index.json', MANIFEST_MAX_BYTES),
      'index.json',
    );

    // Every manifest of every image, verified in memory (they are small).
    const manifests = new Map<string, Manifest>();
    const blobs = new Map<string, number>();
    async function manifestOf(d: Descriptor, mediaType: string | undefined): Promise<Manifest> {
      const digest = parseDigest(d.digest).value;
      const bytes = await read(blobEntryName(digest), MANIFEST_MAX_BYTES);
      if (digestOf(bytes, parseDigest(digest).algorithm) !== digest || bytes.length !== d.size)
        throw new ImportError(`manifest ${digest} in the archive does not match its digest or size`);
      const document = parseJson<{ mediaType?: string }>(bytes, `manifest ${digest}`);
      const type = mediaType ?? document.mediaType;
      if (!type) throw new ImportError(`manifest ${digest} has no media type`);
      const manifest = { mediaType: type, digest, size: bytes.length, bytes };
      manifests.set(digest, manifest);
      return manifest;
    }
    function needBlobs(manifest: Manifest): void {
      const document = parseJson<{ config?: Descriptor; layers?: Descriptor[] }>(
        manifest.bytes,
        manifest.digest,
      );
      for (const d of [document.config, ...(document.layers ?? [])]) {
        if (!d) continue;
        const digest = parseDigest(d.digest).value;
        if (!entries.has(blobEntryName(digest)))
          throw new ImportError(`blob ${digest} of manifest ${manifest.digest} is not in the archive`);
        blobs.set(digest, d.size);
      }
    }

    const images: (ImportedImage & { route: ReturnType<typeof nameOf> })[] = [];
    for (const descriptor of index.manifests ?? []) {
      const route = nameOf(descriptor, deps.config, options.registry);
      const top = await manifestOf(descriptor, descriptor.mediaType);
      const platforms: string[] = [];
      if (INDEX_MEDIA_TYPES.has(top.mediaType)) {
        const children = parseJson<{ manifests?: Descriptor[] }>(top.bytes, top.digest).manifests ?? [];
        // An export for some platforms names the others without carrying them: those stay out.
        const present = children.filter((c) => entries.has(blobEntryName(parseDigest(c.digest).value)));
        if (present.length === 0)
          throw new ImportError(`${top.digest}: none of its platforms is in the archive`);
        for (const child of present) {
          needBlobs(await manifestOf(child, child.mediaType));
          if (platformOf(child) && platformOf(child) !== 'unknown/unknown') platforms.push(platformOf(child));
        }
      } else needBlobs(top);
      images.push({ reference: route?.reference ?? null, digest: top.digest, platforms, route });
    }
    if (images.length === 0) throw new ImportError('index.json names no image');

    // Blobs into temp files, each hashed as it is written; nothing is visible yet.
    let cached = 0;
    let bytes = 0;
    for (const [digest, size] of blobs) {
      if ((await deps.store.statBlob(digest)) !== null) {
        cached++;
        continue;
      }
      const entry = entries.get(blobEntryName(digest))!;
      if (entry.size !== size)
        throw new ImportError(`blob ${digest} has ${entry.size} bytes, its manifest says ${size}`);
      const parsed = parseDigest(digest);
      const writer = await deps.store.createBlobWriter(parsed);
      writers.push({ digest, writer });
      const hash = createDigester(parsed.algorithm);
      const buffer = Buffer.allocUnsafe(Math.min(1 << 20, Math.max(1, size)));
      for (let done = 0; done < size; ) {
        const chunk = buffer.subarray(0, Math.min(buffer.length, size - done));
        await readExactly(handle, chunk, entry.offset + done);
        hash.update(chunk);
        await writer.write([chunk]);
        done += chunk.length;
      }
      if (hash.digest('hex') !== parsed.hex)
        throw new ImportError(`blob ${digest} in the archive does not match its digest`);
      bytes += size;
    }

    // All verified: commit blobs, then manifests (children first), then tags.
    const committed: { kind: 'blob' | 'manifest'; digest: string }[] = [];
    try {
      for (const { digest, writer } of writers.splice(0)) {
        await writer.commit();
        await writer.release();
        committed.push({ kind: 'blob', digest });
      }
      let manifestsAdded = 0;
      for (const manifest of [...manifests.values()].reverse()) {
        if (await deps.store.peekManifest(manifest.digest)) continue;
        await deps.store.putManifest(manifest);
        committed.push({ kind: 'manifest', digest: manifest.digest });
        manifestsAdded++;
      }
      const fetchedAt = (deps.now ?? Date.now)();
      for (const image of images) {
        if (!image.route?.tag) continue;
        const top = manifests.get(image.digest)!;
        await deps.store.putTag(image.route.registry, image.route.repository, image.route.tag, {
          digest: top.digest,
          mediaType: top.mediaType,
          size: top.size,
          fetchedAt,
        });
      }
      return {
        images: images.map(({ route: _, ...image }) => image),
        blobs: { added: committed.filter((c) => c.kind === 'blob').length, cached },
        manifests: manifestsAdded,
        bytes,
      };
    } catch (error) {
      for (const { kind, digest } of committed) await deps.store.removeContent(kind, digest).catch(() => {});
      throw error;
    }
  } finally {
    for (const { writer } of writers) {
      await writer.abort();
      await writer.release();
    }
    await handle.close();
  }
}

/**
 * Registry, repository and tag from an entry's annotations; null when it has no name (its content
 * is still imported, and pulls by digest find it). A bare tag (skopeo's `oci-archive:FILE:1.0`)
 * names no repository and is refused.
 */
function nameOf(
  descriptor: Descriptor,
  config: Pick<Config, 'registries' | 'defaultRegistry'>,
  registry: string | undefined,
): { registry: string; repository: string; tag: string | null; reference: string } | null {
  const name = IMAGE_NAME_ANNOTATIONS.map((key) => descriptor.annotations?.[key]).find(Boolean);
  if (!name) return null;
  const at = name.indexOf('@');
  const nameAndTag = at < 0 ? name : name.slice(0, at);
  const colon = nameAndTag.indexOf(':', nameAndTag.lastIndexOf('/') + 1);
  if (colon < 0 && at < 0)
    throw new ImportError(
      `the archive names an image "${name}" without a tag or digest: name it REPOSITORY:TAG (skopeo copy … oci-archive:FILE:REPOSITORY:TAG)`,
    );
  const path = colon < 0 ? nameAndTag : nameAndTag.slice(0, colon);
  const tag = colon < 0 ? null : nameAndTag.slice(colon + 1);
  if (tag !== null) assertTag(tag);
  const first = path.slice(0, path.indexOf('/'));
  const hasHost = path.includes('/') && isRegistryComponent(first);
  const route = resolveRoute(path, hasHost ? undefined : (registry ?? config.defaultRegistry), config);
  const reference = `${route.registry}/${route.repository}${tag === null ? `@${descriptor.digest}` : `:${tag}`}`;
  return { registry: route.registry, repository: route.repository, tag, reference };
}

function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    const value = JSON.parse(bytes.toString('utf8')) as T;
    if (typeof value !== 'object' || value === null) throw new Error('not an object');
    return value;
  } catch {
    throw new ImportError(`${what} is not valid JSON`);
  }
}
