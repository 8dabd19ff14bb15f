/** @module Reads a pulled OCI layout or skopeo `dir:` folder into ImageDigests, verifying each file. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Descriptor, ImageDigests, PlatformImage } from './image-digests.js';

interface Manifest {
  mediaType?: string;
  manifests?: (Descriptor & { platform?: { os: string; architecture: string } })[];
  config?: Descriptor;
  layers?: Descriptor[];
}

/** Where a layout keeps a blob; each path's bytes are checked against the digest. */
type BlobPath = (digest: string) => Promise<string>;

/** An OCI layout written by `skopeo copy … oci:DIR:TAG`. */
export async function readOciLayout(dir: string, tag: string): Promise<ImageDigests> {
  return readImage(await taggedEntry(dir, tag), ociBlobPath(dir));
}

/**
 * The one platform's image that `skopeo copy` without `--all` writes to `oci:DIR:TAG`: its
 * manifest (tagged in index.json), config and layers, every file checked against its digest.
 */
export async function readOciImage(dir: string, tag: string): Promise<Omit<PlatformImage, 'platform'>> {
  const entry = await taggedEntry(dir, tag);
  const pathOf = ociBlobPath(dir);
  const manifest = JSON.parse(await readVerified(await pathOf(entry.digest), entry.digest)) as Manifest;
  if (!manifest.config) throw new Error(`${entry.digest}: not an image manifest`);
  const config = pick(manifest.config);
  const layers = (manifest.layers ?? []).map(pick);
  for (const blob of [config, ...layers]) await checkBlob(await pathOf(blob.digest), blob.digest);
  return { manifest: pick(entry), config, layers };
}

async function taggedEntry(dir: string, tag: string): Promise<Descriptor> {
  const top = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as Manifest;
  const entry = top.manifests?.find(
    (m) =>
      (m as { annotations?: Record<string, string> }).annotations?.['org.opencontainers.image.ref.name'] ===
      tag,
  );
  if (!entry) throw new Error(`${dir}: no manifest tagged ${tag} in index.json`);
  return entry;
}

function ociBlobPath(dir: string): BlobPath {
  return async (digest) => join(dir, 'blobs', ...digest.split(':'));
}

/**
 * A skopeo `dir:` folder: the top manifest in manifest.json, each instance manifest in
 * `<hex>.manifest.json`, every other blob in a file named by its bare hex digest.
 */
export async function readDirLayout(dir: string): Promise<ImageDigests> {
  const bytes = await readFile(join(dir, 'manifest.json'));
  const top = JSON.parse(bytes.toString('utf8')) as Manifest;
  const index: Descriptor = { mediaType: top.mediaType ?? '', digest: sha256(bytes), size: bytes.length };
  return readImage(index, async (digest) => {
    if (digest === index.digest) return join(dir, 'manifest.json');
    const hex = digest.replace(/^sha256:/, '');
    const manifest = join(dir, `${hex}.manifest.json`);
    return (await exists(manifest)) ? manifest : join(dir, hex);
  });
}

async function readImage(index: Descriptor, pathOf: BlobPath): Promise<ImageDigests> {
  const readJson = async (digest: string) =>
    JSON.parse(await readVerified(await pathOf(digest), digest)) as Manifest;
  const list = await readJson(index.digest);
  const platforms: PlatformImage[] = [];
  for (const m of list.manifests ?? []) {
    const manifest = await readJson(m.digest);
    if (!manifest.config || !m.platform) throw new Error(`${m.digest}: not a platform image manifest`);
    const config = pick(manifest.config);
    const layers = (manifest.layers ?? []).map(pick);
    // Hashing every blob proves the client stored the right bytes, not just the right names.
    for (const blob of [config, ...layers]) await checkBlob(await pathOf(blob.digest), blob.digest);
    platforms.push({
      platform: { os: m.platform.os, architecture: m.platform.architecture },
      manifest: pick(m),
      config,
      layers,
    });
  }
  return { index: pick(index), platforms };
}

/** Descriptors may carry annotations or platforms; compare only what identifies the bytes. */
function pick(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

async function readVerified(path: string, digest: string): Promise<string> {
  const bytes = await readFile(path);
  if (sha256(bytes) !== digest) throw new Error(`${path}: content does not hash to ${digest}`);
  return bytes.toString('utf8');
}

/** Streams the file through the hash: layers may be large. */
async function checkBlob(path: string, digest: string): Promise<void> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  if (`sha256:${hash.digest('hex')}` !== digest)
    throw new Error(`${path}: content does not hash to ${digest}`);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
