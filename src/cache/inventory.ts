/**
 * @module What the cache holds, as images: one per tag record and one per digest-only image (a
 * cached manifest that no tag and no cached index names), each with the blobs and manifests it
 * uses, the platforms cached completely, its bytes, last use and pulls. Read from the store's
 * listing, so it works on a folder a serve process is using.
 */
import { type Descriptor, MEDIA_TYPES, platformOf } from '../content.js';
import type { ContentFile, InventoryStore, TagEntry } from './inventory-store.js';

export interface CachedImage {
  /** Null for a digest-only image: the store keeps manifests by digest, not by repository. */
  registry: string | null;
  repository: string | null;
  tag: string | null;
  digest: string;
  mediaType: string | null;
  /** `os/arch[/variant]` of each platform whose manifest, config and layers are all cached. */
  platforms: string[];
  /** Bytes of this image's blobs and manifests in the cache (shared ones counted in each image). */
  bytes: number;
  /** Last pull (ms since epoch): the later of the tag's lastPulledAt and the manifest's last use. */
  lastPulled: number | null;
  /** Client pulls counted by the serve process; null for digest-only images. */
  pulls: number | null;
  /** Keys (`blob:<digest>`, `manifest:<digest>`) of the cached files it uses. */
  contents: string[];
}

export interface InventoryTotals {
  blobs: number;
  manifests: number;
  bytes: number;
  maxSize: number | null;
}

export interface Inventory {
  images: CachedImage[];
  /** Every cached file by key; those no image uses are orphans (prune takes them). */
  files: Map<string, ContentFile>;
  totals: InventoryTotals;
}

interface ManifestDocument {
  mediaType?: string;
  manifests?: Descriptor[];
  config?: Descriptor;
  layers?: Descriptor[];
}

type InventorySource = Pick<InventoryStore, 'listTags' | 'listContent' | 'peekManifest' | 'peekBlob'>;

// An image config is a few KiB; a blob named as one but larger is not read to find a platform.
const CONFIG_MAX_BYTES = 1024 * 1024;

const contentKey = (kind: 'blob' | 'manifest', digest: string) => `${kind}:${digest}`;

/** What a manifest's bytes name: child manifests (an index) or config and layers (an image). */
function parseManifest(bytes: Buffer): ManifestDocument | null {
  try {
    const document = JSON.parse(bytes.toString('utf8')) as ManifestDocument;
    return typeof document === 'object' && document !== null ? document : null;
  } catch {
    return null;
  }
}

/** Takes stock of the store. `maxSize` is the configured limit, shown with the totals. */
export async function takeInventory(store: InventorySource, maxSize: number | null): Promise<Inventory> {
  const files = new Map<string, ContentFile>();
  for await (const file of store.listContent()) files.set(contentKey(file.kind, file.digest), file);
  const tags: TagEntry[] = [];
  for await (const entry of store.listTags()) tags.push(entry);

  // Every cached manifest, parsed once.
  const manifests = new Map<string, { mediaType: string; document: ManifestDocument | null }>();
  const children = new Set<string>();
  for (const file of files.values()) {
    if (file.kind !== 'manifest') continue;
    const manifest = await store.peekManifest(file.digest).catch(() => null);
    if (!manifest) continue;
    const document = parseManifest(manifest.bytes);
    manifests.set(file.digest, { mediaType: manifest.mediaType, document });
    for (const child of document?.manifests ?? []) children.add(child.digest);
  }

  const configPlatforms = new Map<string, string>();
  /** The platform an image manifest's config names (read from the cached config blob). */
  async function configPlatform(config: Descriptor | undefined): Promise<string> {
    if (!config || !files.has(contentKey('blob', config.digest))) return '';
    const known = configPlatforms.get(config.digest);
    if (known !== undefined) return known;
    const bytes = await store.peekBlob(config.digest, CONFIG_MAX_BYTES).catch(() => null);
    const text = bytes?.toString('utf8') ?? '';
    let platform = '';
    try {
      const parsed = JSON.parse(text) as { os?: string; architecture?: string; variant?: string };
      platform = [parsed.os, parsed.architecture, parsed.variant].filter(Boolean).join('/');
    } catch {}
    configPlatforms.set(config.digest, platform);
    return platform;
  }

  /** The cached files an image manifest uses, and whether all of them are there. */
  function imageContents(digest: string, into: Set<string>): boolean {
    const key = contentKey('manifest', digest);
    const manifest = manifests.get(digest);
    if (!manifest) return false;
    into.add(key);
    let complete = true;
    const document = manifest.document;
    for (const d of [document?.config, ...(document?.layers ?? [])]) {
      if (!d) continue;
      const blob = contentKey('blob', d.digest);
      if (files.has(blob)) into.add(blob);
      else complete = false;
    }
    return complete;
  }

  async function describe(digest: string) {
    const contents = new Set<string>();
    const platforms: string[] = [];
    const top = manifests.get(digest);
    if (top) {
      const index = top.mediaType === MEDIA_TYPES.ociIndex || top.mediaType === MEDIA_TYPES.dockerList;
      if (index || top.document?.manifests) {
        contents.add(contentKey('manifest', digest));
        for (const child of top.document?.manifests ?? []) {
          if (imageContents(child.digest, contents) && platformOf(child) !== 'unknown/unknown')
            platforms.push(platformOf(child));
        }
      } else if (imageContents(digest, contents)) {
        const platform = await configPlatform(top.document?.config);
        if (platform) platforms.push(platform);
      }
    }
    let bytes = 0;
    for (const key of contents) bytes += sizeOf(key);
    return { contents: [...contents], platforms, bytes, mediaType: top?.mediaType ?? null };
  }

  /** Content bytes: a manifest file's media type line is not part of the manifest. */
  function sizeOf(key: string): number {
    const file = files.get(key)!;
    if (file.kind === 'blob') return file.size;
    return file.size - (manifests.get(file.digest)?.mediaType.length ?? 0) - 1;
  }

  const images: CachedImage[] = [];
  const tagged = new Set<string>();
  for (const { registry, repository, tag, record, pulls } of tags) {
    tagged.add(record.digest);
    const described = await describe(record.digest);
    const manifestUse = files.get(contentKey('manifest', record.digest))?.lastUsed ?? 0;
    images.push({
      registry,
      repository,
      tag,
      digest: record.digest,
      ...described,
      mediaType: described.mediaType ?? record.mediaType,
      lastPulled: Math.max(pulls?.lastPulledAt ?? 0, manifestUse) || null,
      pulls: pulls?.pulls ?? 0,
    });
  }
  for (const digest of manifests.keys()) {
    if (tagged.has(digest) || children.has(digest)) continue;
    images.push({
      registry: null,
      repository: null,
      tag: null,
      digest,
      ...(await describe(digest)),
      lastPulled: files.get(contentKey('manifest', digest))?.lastUsed ?? null,
      pulls: null,
    });
  }
  images.sort(
    (a, b) =>
      (a.registry ?? '\uffff').localeCompare(b.registry ?? '\uffff') ||
      (a.repository ?? '').localeCompare(b.repository ?? '') ||
      (a.tag ?? '').localeCompare(b.tag ?? '') ||
      a.digest.localeCompare(b.digest),
  );

  const totals: InventoryTotals = { blobs: 0, manifests: 0, bytes: 0, maxSize };
  for (const file of files.values()) {
    if (file.kind === 'blob') totals.blobs++;
    else totals.manifests++;
    totals.bytes += file.size;
  }
  return { images, files, totals };
}
