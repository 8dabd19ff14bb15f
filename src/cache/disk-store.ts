/**
 * @module The on-disk content store: blobs and manifests content-addressed under `storage.path`,
 * tag records beside them, an LRU index rebuilt from disk at start (last use = file mtime, so it
 * survives restarts), and eviction down to `maxSize` that never touches content being served.
 *
 *   blobs/sha256/ab/abcdef…          blob bytes
 *   manifests/sha256/ab/abcdef…      "<media type>\n" + manifest bytes
 *   tags/<registry>/<repository>/_tags/<tag>.json   { digest, mediaType, size, fetchedAt }
 *   tags/<registry>/<repository>/_pulls/<tag>.json  { pulls, lastPulledAt }
 *   referrers/<registry>/<repository>/_referrers/<alg>-<hex>[-<sha256 of artifactType>].json
 *                                    { manifests, source, fetchedAt }
 *   .removals                        touched by `rm`/`prune`: other processes re-check their index
 *
 * `_tags`, `_pulls` and `_referrers` cannot be repository path components (those start with
 * [a-z0-9]), so record folders never collide with nested repositories. A referrers record's name
 * holds only the subject digest's parts and a hash of the artifactType filter, never the filter
 * itself. Pull counts live apart from the tag record so that the counter never races a
 * revalidation rewriting the record, and neither has to read the other first. The disk is the truth; the index is for sizes and eviction, so
 * several processes may share one folder.
 */
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../config-error.js';
import type { ByteRange, Manifest } from '../content.js';
import { DIGEST_ALGORITHMS, type Digest, parseDigest } from '../digest.js';
import { RegistryError, storageUnavailable } from '../errors.js';
import { type BlobWriter, isNoSpace } from './blob-writer.js';
import {
  type CacheStats,
  type ContentStore,
  type OpenedBlob,
  parseReferrersRecord,
  type ReferrersRecord,
  referrersRecordName,
  type TagRecord,
} from './content-store.js';
import { createDiskBlobWriter } from './disk-blob-writer.js';
import type { ContentFile, InventoryStore, TagEntry, TagPulls } from './inventory-store.js';
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
// The file `rm` and `prune` touch after removing content, so that a serve process sharing the
// folder drops what its index still counts (it would otherwise evict for room it already has).
const REMOVALS_MARK = '.removals';

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

  const contentPath = (kind: 'blobs' | 'manifests', digest: Digest) =>
    join(root, kind, digest.algorithm, digest.hex.slice(0, 2), digest.hex);
  const blobKey = (digest: string) => `blob:${digest}`;
  const manifestKey = (digest: string) => `manifest:${digest}`;
  const tagPath = (registry: string, repository: string, tag: string) =>
    join(root, 'tags', registry, repository, '_tags', `${tag}.json`);
  const tagPullsPath = (registry: string, repository: string, tag: string) =>
    join(root, 'tags', registry, repository, '_pulls', `${tag}.json`);
  const referrersPath = (
    registry: string,
    repository: string,
    subject: string,
    artifactType: string | null,
  ) => {
    return join(
      root,
      'referrers',
      registry,
      repository,
      '_referrers',
      referrersRecordName(subject, artifactType),
    );
  };

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
      const [kind, digest] = [victim.slice(0, victim.indexOf(':')), victim.slice(victim.indexOf(':') + 1)];
      const path = contentPath(kind === 'blob' ? 'blobs' : 'manifests', parseDigest(digest));
      await rm(path, { force: true });
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

  let removalsSeen = 0;
  /**
   * When another process (`pullcache rm`/`prune`) removed content since the last look, forgets the
   * index entries whose files are gone. One stat when nothing changed.
   */
  async function syncRemovals(): Promise<void> {
    const mark = await stat(join(root, REMOVALS_MARK)).catch(() => null);
    if (!mark || mark.mtimeMs === removalsSeen) return;
    removalsSeen = mark.mtimeMs;
    for (const key of index.keys()) {
      const colon = key.indexOf(':');
      const kind = key.slice(0, colon) === 'blob' ? 'blobs' : 'manifests';
      const gone = await stat(contentPath(kind, parseDigest(key.slice(colon + 1)))).then(
        () => false,
        (error: unknown) => isMissing(error),
      );
      if (gone) forget(key);
    }
  }

  async function readManifest(digest: string): Promise<Manifest | null> {
    const data = await readFile(contentPath('manifests', parseDigest(digest))).catch((error: unknown) => {
      if (isMissing(error)) return null;
      throw readFailure(`manifest ${digest}`, error);
    });
    if (!data) return null;
    const newline = data.indexOf(0x0a);
    const bytes = data.subarray(newline + 1);
    return { mediaType: data.subarray(0, newline).toString('utf8'), digest, size: bytes.length, bytes };
  }

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
      for (const kind of ['blobs', 'manifests'] as const) {
        for (const [algorithm, hexLength] of Object.entries(DIGEST_ALGORITHMS)) {
          for await (const file of walk(join(root, kind, algorithm), 1)) {
            const name = file.path.slice(file.path.lastIndexOf('/') + 1);
            if (name.startsWith(TEMP_PREFIX)) {
              if (leftover(name, file.mtime)) await rm(file.path, { force: true });
              continue;
            }
            if (name.length !== hexLength || !/^[a-f0-9]+$/.test(name)) continue;
            const key = `${kind === 'blobs' ? 'blob' : 'manifest'}:${algorithm}:${name}`;
            found.push({ key, size: file.size, mtime: file.mtime });
          }
        }
      }
      // Tag and referrers records, and the readiness probes at the top.
      for (const [dir, depth] of [
        [join(root, 'tags'), Number.POSITIVE_INFINITY],
        [join(root, 'referrers'), Number.POSITIVE_INFINITY],
        [root, 0],
      ] as const) {
        for await (const file of walk(dir, depth)) {
          const name = file.path.slice(file.path.lastIndexOf('/') + 1);
          if (name.startsWith(TEMP_PREFIX) && leftover(name, file.mtime))
            await rm(file.path, { force: true });
        }
      }
      // The walk above saw the folder as it is now: removals noted before it are accounted for.
      removalsSeen = (await stat(join(root, REMOVALS_MARK)).catch(() => null))?.mtimeMs ?? 0;
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

    blobPath: (digest: string) => contentPath('blobs', parseDigest(digest)),

    /** The cached blob's size; null when it is not there. Any other failure is a storage error (503). */
    async statBlob(digest: string): Promise<number | null> {
      const path = contentPath('blobs', parseDigest(digest));
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
      const path = contentPath('blobs', parseDigest(digest));
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
      createDiskBlobWriter(contentPath('blobs', digest), digest, (size) =>
        added(blobKey(digest.value), size),
      ),

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
      const path = contentPath('manifests', parseDigest(digest));
      used(manifestKey(digest), path, manifest.size + manifest.mediaType.length + 1);
      return manifest;
    },

    /** Stores a manifest under its digest, verified on the way like a blob. */
    async putManifest(manifest: Manifest): Promise<void> {
      const digest = parseDigest(manifest.digest);
      if (/[\r\n]/.test(manifest.mediaType)) throw new Error('media type with a line break');
      const header = Buffer.from(`${manifest.mediaType}\n`);
      const temp = await TempFile.create(contentPath('manifests', digest), digest, { header });
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

    // --- inventory (`ls`, `rm`, `prune`, the status page): listing and removal across processes ---

    /** Every tag record in the folder. */
    async *listTags(): AsyncGenerator<TagEntry> {
      const top = join(root, 'tags');
      for await (const file of walk(top, Number.POSITIVE_INFINITY)) {
        const parts = file.path.slice(top.length + 1).split('/');
        const name = parts.at(-1)!;
        if (parts.length < 4 || parts.at(-2) !== '_tags' || !name.endsWith('.json')) continue;
        if (name.startsWith(TEMP_PREFIX)) continue;
        const record = await readTagRecord(file.path).catch(() => null);
        if (!record) continue;
        const [registry, repository, tag] = [
          parts[0]!,
          parts.slice(1, -2).join('/'),
          name.slice(0, -'.json'.length),
        ];
        const pulls = await readPulls(tagPullsPath(registry, repository, tag)).catch(() => null);
        yield { registry, repository, tag, record, pulls };
      }
    },

    /** A cached manifest read without counting as a use (taking stock is not pulling). */
    peekManifest: readManifest,

    async peekBlob(digest: string, maxBytes: number): Promise<Buffer | null> {
      const path = contentPath('blobs', parseDigest(digest));
      const info = await stat(path).catch(() => null);
      if (!info?.isFile() || info.size > maxBytes) return null;
      return readFile(path).catch(() => null);
    },

    /** Every committed blob and manifest file, with its size and last use. */
    async *listContent(): AsyncGenerator<ContentFile> {
      for (const kind of ['blobs', 'manifests'] as const) {
        for (const [algorithm, hexLength] of Object.entries(DIGEST_ALGORITHMS)) {
          for await (const file of walk(join(root, kind, algorithm), 1)) {
            const name = file.path.slice(file.path.lastIndexOf('/') + 1);
            if (name.length !== hexLength || !/^[a-f0-9]+$/.test(name)) continue;
            yield {
              kind: kind === 'blobs' ? 'blob' : 'manifest',
              digest: `${algorithm}:${name}`,
              size: file.size,
              lastUsed: file.mtime,
            };
          }
        }
      }
    },

    /**
     * Removes a blob or manifest. Readers that opened it keep reading (the inode lives until their
     * descriptor closes); a write in progress is a temp file, never touched here. Call
     * noteRemovals() once done so that other processes sharing the folder update their index.
     */
    async removeContent(kind: 'blob' | 'manifest', digest: string): Promise<void> {
      await rm(contentPath(kind === 'blob' ? 'blobs' : 'manifests', parseDigest(digest)), { force: true });
      forget(kind === 'blob' ? blobKey(digest) : manifestKey(digest));
    },

    /** Tells processes sharing the folder that content was removed (they re-check their index). */
    async noteRemovals(): Promise<void> {
      const time = new Date(now());
      await writeFile(join(root, REMOVALS_MARK), '');
      await utimes(join(root, REMOVALS_MARK), time, time);
    },

    /**
     * Adds `count` pulls of a tag, last at `at`; nothing when the tag record is gone (removed).
     * A read and a rename: two processes adding at the same moment may lose one's count.
     */
    async addPulls(
      registry: string,
      repository: string,
      tag: string,
      count: number,
      at: number,
    ): Promise<void> {
      const exists = await stat(tagPath(registry, repository, tag)).then(
        () => true,
        (error: unknown) => {
          if (isMissing(error)) return false;
          throw error;
        },
      );
      if (!exists) return;
      const path = tagPullsPath(registry, repository, tag);
      const previous = await readPulls(path);
      const pulls: TagPulls = { pulls: (previous?.pulls ?? 0) + count, lastPulledAt: at };
      await writeAtomically(path, JSON.stringify(pulls));
    },

    /** Drops index entries whose files another process removed (before stats are read). */
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

/** A tag record; null when missing or unreadable (the next fetch rewrites it). Other errors throw. */
async function readTagRecord(path: string): Promise<TagRecord | null> {
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    if (isMissing(error)) return null;
    throw error;
  });
  if (text === null) return null;
  try {
    const record = JSON.parse(text) as TagRecord;
    parseDigest(record.digest);
    return record;
  } catch {
    return null;
  }
}

/** A tag's pull counts; null when none were written (or the file is unreadable). */
async function readPulls(path: string): Promise<TagPulls | null> {
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    if (isMissing(error)) return null;
    throw error;
  });
  if (text === null) return null;
  try {
    const pulls = JSON.parse(text) as TagPulls;
    return Number.isSafeInteger(pulls.pulls) && Number.isFinite(pulls.lastPulledAt) ? pulls : null;
  } catch {
    return null;
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf('/'));
  await mkdir(dir, { recursive: true });
  const temp = join(dir, tempName('tag'));
  try {
    await writeFile(temp, text);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Files below `dir`, up to `depth` folders down; a missing folder yields nothing. */
async function* walk(
  dir: string,
  depth: number,
): AsyncGenerator<{ path: string; size: number; mtime: number }> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (depth > 0) yield* walk(path, depth - 1);
    } else if (entry.isFile()) {
      const info = await stat(path).catch(() => null);
      if (info) yield { path, size: info.size, mtime: info.mtimeMs };
    }
  }
}

/** Only a missing file is a cache miss; every other failure (EIO, EACCES, EISDIR, ...) is an error. */
function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

function notAFile(): NodeJS.ErrnoException {
  return Object.assign(new Error('EISDIR: not a regular file'), { code: 'EISDIR' });
}

/** `EIO: i/o error` from Node's `EIO: i/o error, read '/path'`: the reason without the path. */
function reasonOf(error: unknown): string {
  const { code, message } = error as NodeJS.ErrnoException;
  const reason = String(message ?? error).split(', ')[0]!;
  return code && !reason.startsWith(code) ? `${code}: ${reason}` : reason;
}

function readFailure(what: string, error: unknown) {
  return storageUnavailable(`cannot read ${what}: ${reasonOf(error)}`, error);
}
