/**
 * @module The on-disk content store: blobs and manifests content-addressed under `storage.path`
 * (disk-layout.ts says where each thing lives), tag and referrers records beside them, an LRU index
 * rebuilt from disk at start (last use = file mtime, so it survives restarts), and eviction down to
 * `maxSize` that never touches content being served. Its inventory side (listing, removal across
 * processes) is disk-inventory.ts. The disk is the truth; the index is for sizes and eviction, so
 * several processes may share one folder.
 */
import { mkdir, open, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../config-error.js';
import type { ByteRange, Manifest } from '../content.js';
import { type Digest, parseDigest } from '../digest.js';
import { RegistryError } from '../errors.js';
import { type BlobWriter, isNoSpace } from './blob-writer.js';
import {
  type CacheStats,
  type ContentStore,
  type OpenedBlob,
  parseReferrersRecord,
  type ReferrersRecord,
  type TagRecord,
} from './content-store.js';
import { createDiskBlobWriter } from './disk-blob-writer.js';
import { createDiskInventory } from './disk-inventory.js';
import {
  contentFiles,
  contentKey,
  diskLayout,
  isMissing,
  parseContentKey,
  readFailure,
  readManifestFile,
  readTagRecord,
  reasonOf,
  walk,
  writeAtomically,
} from './disk-layout.js';
import type { InventoryStore } from './inventory-store.js';
import { LruIndex } from './lru-index.js';
import { openPinnedRead } from './pinned-read.js';
import { TempFile } from './temp-file.js';
import { TEMP_PREFIX, tempName, tempOwner, writerIsGone } from './temp-name.js';

export interface DiskStoreOptions {
  root: string;
  maxSize: number | null;
  now?: () => number;
  /** Called with each evicted key (`blob:sha256:…`, `manifest:sha256:…`). */
  onEvict?: (key: string, size: number) => void;
}

// A temp file untouched this long belongs to a dead writer, wherever it ran: active ones write
// continuously and upstream body timeouts are shorter than this. (This host's dead writers are
// recognised by pid at once.)
const STALE_TEMP_MS = 10 * 60_000;
// Persisting last use costs a syscall; once a minute per entry is plenty for LRU ordering.
const TOUCH_INTERVAL_MS = 60_000;

export interface DiskStore extends ContentStore, InventoryStore {
  readonly root: string;
  /** Where a blob's file is (tests, and tools working on the folder). */
  blobPath(digest: string): string;
}

export function createDiskStore(options: DiskStoreOptions): DiskStore {
  const { root } = options;
  const now = options.now ?? Date.now;
  const index = new LruIndex();
  const touchedAt = new Map<string, number>();
  // Last-use writes in flight: close() waits for them, so a restart reads the order they recorded.
  const touches = new Set<Promise<void>>();
  let evictions = 0;

  const layout = diskLayout(root);
  const { contentPath, tagPath, tagPullsPath, referrersPath } = layout;
  const blobKey = (digest: string) => contentKey('blob', digest);
  const manifestKey = (digest: string) => contentKey('manifest', digest);

  function used(key: string, path: string, size: number): void {
    if (!index.has(key)) index.add(key, size);
    else index.touch(key);
    const last = touchedAt.get(key) ?? 0;
    if (now() - last >= TOUCH_INTERVAL_MS) {
      touchedAt.set(key, now());
      const time = new Date(now());
      const touch = utimes(path, time, time).catch(() => {});
      touches.add(touch);
      void touch.finally(() => touches.delete(touch));
    }
  }

  function forget(key: string): void {
    index.remove(key);
    touchedAt.delete(key);
  }

  /** Evicts least-recently-used, unpinned content until the index holds at most `limit`; the bytes freed. */
  async function evictDownTo(limit: number): Promise<number> {
    await syncRemovals();
    let freed = 0;
    for (const { key: victim, size } of index.evictUntil(limit)) {
      const { kind, digest } = parseContentKey(victim);
      await rm(contentPath(kind, digest), { force: true });
      touchedAt.delete(victim);
      evictions++;
      freed += size;
      options.onEvict?.(victim, size);
    }
    return freed;
  }

  async function added(key: string, size: number): Promise<void> {
    index.add(key, size);
    touchedAt.set(key, now());
    if (options.maxSize === null || index.totalBytes <= options.maxSize) return;
    await evictDownTo(options.maxSize);
  }

  const inventory = createDiskInventory({
    layout,
    now,
    indexKeys: () => index.keys(),
    forget,
  });
  const { syncRemovals } = inventory;
  const readManifest = (digest: string): Promise<Manifest | null> => readManifestFile(layout, digest);

  /** Whether a temp file found at start is a leftover: its writer is gone, or it is too old to be alive. */
  const leftover = (name: string, mtime: number) => {
    const owner = tempOwner(name);
    return (owner !== null && writerIsGone(owner)) || now() - mtime > STALE_TEMP_MS;
  };

  /**
   * Makes sure the folder exists and takes new files: a cache that can never store must not start.
   * A full disk is not that (eviction or an operator frees it, and meanwhile blobs pass through).
   */
  async function checkUsable(): Promise<void> {
    try {
      await mkdir(root, { recursive: true });
      const probe = join(root, tempName('start'));
      await (await open(probe, 'wx')).close();
      await rm(probe, { force: true });
    } catch (error) {
      if (isNoSpace(error)) return;
      throw new ConfigError(`storage.path: cannot use ${root}: ${reasonOf(error)}`);
    }
  }

  return {
    root,
    location: root,
    shared: false,

    /**
     * Checks the folder is writable (a ConfigError naming it if not), rebuilds the index from disk
     * (oldest first) and removes crash leftovers; run before serving.
     */
    async init(): Promise<void> {
      await checkUsable();
      const found: { key: string; size: number; mtime: number }[] = [];
      const removeLeftover = async (path: string, name: string, mtime: number) => {
        if (name.startsWith(TEMP_PREFIX) && leftover(name, mtime)) await rm(path, { force: true });
      };
      for await (const file of contentFiles(layout, removeLeftover)) {
        found.push({ key: contentKey(file.kind, file.digest), size: file.size, mtime: file.mtime });
      }
      // Tag and referrers records, and the readiness probes at the top.
      for (const [dir, depth] of [
        [join(root, 'tags'), Number.POSITIVE_INFINITY],
        [join(root, 'referrers'), Number.POSITIVE_INFINITY],
        [root, 0],
      ] as const) {
        for await (const file of walk(dir, depth)) {
          await removeLeftover(file.path, file.path.slice(file.path.lastIndexOf('/') + 1), file.mtime);
        }
      }
      // The walk above saw the folder as it is now: removals noted before it are accounted for.
      await inventory.removalsSeenNow();
      found.sort((a, b) => a.mtime - b.mtime);
      for (const entry of found) {
        index.add(entry.key, entry.size);
        touchedAt.set(entry.key, entry.mtime);
      }
      if (options.maxSize !== null && index.totalBytes > options.maxSize && found.length > 0) {
        const newest = found[found.length - 1]!;
        await added(newest.key, newest.size); // runs eviction
      }
    },

    // --- blobs ---

    blobPath: (digest: string) => contentPath('blob', parseDigest(digest)),

    /** The cached blob's size; null when it is not there. Any other failure is a storage error (503). */
    async statBlob(digest: string): Promise<number | null> {
      const path = contentPath('blob', parseDigest(digest));
      let size: number;
      try {
        const info = await stat(path);
        if (!info.isFile()) throw notAFile();
        size = info.size;
      } catch (error) {
        if (isMissing(error)) {
          forget(blobKey(digest));
          return null;
        }
        throw readFailure(`blob ${digest}`, error);
      }
      used(blobKey(digest), path, size);
      return size;
    },

    /** The cached blob (or a range of it), pinned against eviction until the source closes. */
    async openBlob(digest: string, range: (size: number) => ByteRange | null): Promise<OpenedBlob | null> {
      const path = contentPath('blob', parseDigest(digest));
      const key = blobKey(digest);
      const release = index.pin(key);
      const opened = await openPinnedRead(path, range, release).catch((error: unknown) => {
        throw error instanceof RegistryError ? error : readFailure(`blob ${digest}`, error);
      });
      if (!opened) {
        forget(key);
        return null;
      }
      used(key, path, opened.size);
      return opened;
    },

    /** A writer for a blob download: a temp file renamed into place (and indexed) on commit. */
    createBlobWriter: (digest: Digest): Promise<BlobWriter> =>
      createDiskBlobWriter(contentPath('blob', digest), digest, (size) => added(blobKey(digest.value), size)),

    /**
     * Evicts least-recently-used content (never what is being read) to free `bytes` for a write that
     * found the disk full; resolves the bytes freed. Only with `maxSize` set: without it the operator
     * has not agreed to content being dropped.
     */
    async makeRoom(bytes: number): Promise<number> {
      if (options.maxSize === null) return 0;
      return evictDownTo(Math.max(0, index.totalBytes - bytes));
    },

    // --- manifests ---

    async getManifest(digest: string): Promise<Manifest | null> {
      const manifest = await readManifest(digest);
      if (!manifest) {
        forget(manifestKey(digest));
        return null;
      }
      const path = contentPath('manifest', parseDigest(digest));
      used(manifestKey(digest), path, manifest.size + manifest.mediaType.length + 1);
      return manifest;
    },

    /** Stores a manifest under its digest, verified on the way like a blob. */
    async putManifest(manifest: Manifest): Promise<void> {
      const digest = parseDigest(manifest.digest);
      if (/[\r\n]/.test(manifest.mediaType)) throw new Error('media type with a line break');
      const header = Buffer.from(`${manifest.mediaType}\n`);
      const temp = await TempFile.create(contentPath('manifest', digest), digest, { header });
      try {
        await temp.write(manifest.bytes);
        await temp.verify(manifest.bytes.length);
      } catch (error) {
        await temp.abort();
        throw error;
      }
      await temp.commit();
      await added(manifestKey(manifest.digest), manifest.bytes.length + manifest.mediaType.length + 1);
    },

    // --- tags ---

    async getTag(registry: string, repository: string, tag: string): Promise<TagRecord | null> {
      return readTagRecord(tagPath(registry, repository, tag)).catch((error: unknown) => {
        throw readFailure(`tag ${registry}/${repository}:${tag}`, error);
      });
    },

    async putTag(registry: string, repository: string, tag: string, record: TagRecord): Promise<void> {
      await writeAtomically(tagPath(registry, repository, tag), JSON.stringify(record));
    },

    /** Removes a tag record and its pull counts. */
    async deleteTag(registry: string, repository: string, tag: string): Promise<void> {
      await rm(tagPath(registry, repository, tag), { force: true });
      await rm(tagPullsPath(registry, repository, tag), { force: true });
    },

    // --- referrers ---

    /** The referrers answer cached for a subject digest and artifactType filter (null: none). */
    async getReferrers(
      registry: string,
      repository: string,
      subject: string,
      artifactType: string | null,
    ): Promise<ReferrersRecord | null> {
      const path = referrersPath(registry, repository, subject, artifactType);
      const text = await readFile(path, 'utf8').catch((error: unknown) => {
        if (isMissing(error)) return null;
        throw readFailure(`referrers of ${registry}/${repository}@${subject}`, error);
      });
      return text === null ? null : parseReferrersRecord(text);
    },

    async putReferrers(
      registry: string,
      repository: string,
      subject: string,
      artifactType: string | null,
      record: ReferrersRecord,
    ): Promise<void> {
      await writeAtomically(
        referrersPath(registry, repository, subject, artifactType),
        JSON.stringify(record),
      );
    },

    /** Throws unless the storage folder accepts writes (readiness). */
    async probeWritable(): Promise<void> {
      const probe = join(root, tempName('ready'));
      await writeFile(probe, 'ok');
      await rm(probe, { force: true });
    },

    // --- inventory (`ls`, `rm`, `prune`, the status page): disk-inventory.ts ---

    listTags: inventory.listTags,
    listContent: inventory.listContent,
    peekManifest: inventory.peekManifest,
    peekBlob: inventory.peekBlob,
    removeContent: inventory.removeContent,
    noteRemovals: inventory.noteRemovals,
    addPulls: inventory.addPulls,
    syncRemovals,

    stats(): CacheStats {
      return {
        bytes: index.totalBytes,
        maxSize: options.maxSize,
        blobs: index.countWithPrefix('blob:'),
        manifests: index.countWithPrefix('manifest:'),
        evictions,
      };
    },

    async close(): Promise<void> {
      await Promise.all(touches);
    },
  };
}

function notAFile(): NodeJS.ErrnoException {
  return Object.assign(new Error('EISDIR: not a regular file'), { code: 'EISDIR' });
}
