/**
 * @module The S3 content store: blobs, manifests and tag records in one bucket that every replica
 * shares, so the cache outlives any machine and what one replica fetched every other serves.
 *
 *   <prefix>blobs/sha256/ab/abcdef…          blob bytes (visible only once the download verified them)
 *   <prefix>manifests/sha256/ab/abcdef…      "<media type>\n" + manifest bytes
 *   <prefix>tags/<registry>/<repository>/_tags/<tag>.json   { digest, mediaType, size, fetchedAt }
 *   <prefix>tags/<registry>/<repository>/_pulls/<tag>.json  { pulls, lastPulledAt }
 *   <prefix>referrers/<registry>/<repository>/_referrers/<alg>-<hex>[-<filter>].json
 *   <prefix>used/<content key>/<ms>          last-use markers, with maxSize only (s3-usage.ts)
 *
 * The local folder (`storage.path`) only holds spool files of downloads in flight (s3-blob-writer.ts)
 * and their upload records. Only S3's 404 for a key is a miss: any other failure is a 503 naming the
 * bucket, so a blob that is cached but cannot be read now is never downloaded again in its place.
 */
import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type ChunkSource, emptySource } from '../chunk-source.js';
import { ConfigError } from '../config-error.js';
import { type ByteRange, MANIFEST_MAX_BYTES, type Manifest } from '../content.js';
import { createDigester, type Digest, parseDigest } from '../digest.js';
import type { BlobWriter } from './blob-writer.js';
import {
  type CacheStats,
  type ContentStore,
  type OpenedBlob,
  parseReferrersRecord,
  type ReferrersRecord,
  type TagRecord,
} from './content-store.js';
import type { InventoryStore } from './inventory-store.js';
import { createS3BlobWriter, UPLOAD_RECORD_LABEL, type UploadRecord } from './s3-blob-writer.js';
import { createS3Bucket, type ObjectRead, type S3BucketOptions } from './s3-bucket.js';
import { createS3Inventory } from './s3-inventory.js';
import {
  contentKey,
  manifestObject,
  manifestOf,
  pullsKey,
  recordOf,
  referrersKey,
  tagKey,
  validTagRecord,
} from './s3-layout.js';
import { createObjectSource } from './s3-object-source.js';
import { createS3Usage } from './s3-usage.js';
import { VerificationError } from './temp-file.js';
import { TEMP_PREFIX, tempName, tempOwner, writerIsGone } from './temp-name.js';

export interface S3StoreOptions extends S3BucketOptions {
  /** The local folder for spool files (storage.path). */
  localPath: string;
  maxSize: number | null;
  /** Answer cached blob GETs with a presigned URL (blobUrl) instead of the bytes. */
  redirect?: boolean | undefined;
  now?: () => number;
  /** How often one content key's use is recorded at most, per replica (and the re-listing period). */
  touchIntervalMs?: number | undefined;
  /** Multipart uploads older than this, whoever started them, are aborted at start. */
  staleUploadMs?: number | undefined;
  onEvict?: (key: string, size: number) => void;
  /** Background failures (use markers, re-listing, eviction, cleanup): for the log. */
  onBackgroundError?: (error: unknown, what: string) => void;
}

// Ten minutes: LRU order to within ten minutes is plenty for a cache of hundreds of GiB, and a key
// served all day costs 6 marker PUTs an hour per replica (see the README's request costs).
const TOUCH_INTERVAL_MS = 10 * 60_000;
// A day: far longer than any download takes, so a live replica's upload is never aborted; a dead
// writer's upload on this host is aborted at once from its record, this only catches other hosts'.
const STALE_UPLOAD_MS = 24 * 60 * 60_000;
// A spool file untouched this long belongs to a dead writer (as the disk store's temp files).
const STALE_SPOOL_MS = 10 * 60_000;
const RECORD_MAX_BYTES = 64 * 1024; // a tag record is ~200 bytes; more is not one of ours

/** An upload record, or null for a file that is not a whole one (a crash while it was written). */
async function readRecord(path: string): Promise<UploadRecord | null> {
  try {
    const record = JSON.parse(await readFile(path, 'utf8')) as Partial<UploadRecord>;
    return typeof record.key === 'string' && typeof record.uploadId === 'string'
      ? { key: record.key, uploadId: record.uploadId }
      : null;
  } catch {
    return null;
  }
}

export function createS3Store(options: S3StoreOptions): ContentStore & InventoryStore {
  const bucket = createS3Bucket(options);
  const now = options.now ?? Date.now;
  const spoolDir = join(options.localPath, 's3-spool');
  const location = `s3://${bucket.bucket}/${bucket.prefix}`;
  const reportError = options.onBackgroundError ?? (() => {});
  const usage = createS3Usage({
    bucket,
    maxSize: options.maxSize,
    now,
    touchIntervalMs: options.touchIntervalMs ?? TOUCH_INTERVAL_MS,
    onEvict: options.onEvict,
    onError: reportError,
  });

  const blobKey = (digest: string) => contentKey('blobs', digest);

  /** Aborts the uploads of this host's dead writers (from their records) and removes their spools. */
  async function cleanSpool(): Promise<void> {
    for (const name of await readdir(spoolDir)) {
      if (!name.startsWith(TEMP_PREFIX)) continue;
      const path = join(spoolDir, name);
      const owner = tempOwner(name);
      const info = await stat(path).catch(() => null);
      if (!info) continue;
      const isRecord = name.startsWith(`${TEMP_PREFIX}${UPLOAD_RECORD_LABEL}-`);
      // A record is written once and never touched again: only its writer's death makes it a leftover
      // (another host's is left to the age-based cleanup of uploads).
      const gone =
        (owner !== null && writerIsGone(owner)) || (!isRecord && now() - info.mtimeMs > STALE_SPOOL_MS);
      if (!gone) continue;
      if (isRecord) {
        const record = await readRecord(path);
        try {
          if (record) await bucket.abortUpload(record.key, record.uploadId);
        } catch (error) {
          // Kept: the next start tries again (and the age-based cleanup remains).
          reportError(error, `abort the upload of a writer that is gone (${record?.key})`);
          continue;
        }
      }
      await rm(path, { force: true });
    }
  }

  /** The object's first GET for `range(size)`: one request when the size is known, else at most two. */
  async function firstRead(
    key: string,
    range: (size: number) => ByteRange | null,
  ): Promise<{ read: ObjectRead; size: number; part: ByteRange | null } | null> {
    const known = usage.sizeOf(key);
    if (known !== undefined) {
      const part = range(known);
      const read = await bucket.read(key, known === 0 ? undefined : (part ?? undefined));
      if (read === null || read.size === known) return read && { read, size: known, part };
      read.body.destroy(); // the index was wrong about it: ask again without it
    }
    const whole = await bucket.read(key);
    if (whole === null) return null;
    let part: ByteRange | null;
    try {
      part = range(whole.size);
    } catch (error) {
      whole.body.destroy();
      throw error;
    }
    if (part === null || (part.start === 0 && part.end === whole.size - 1))
      return { read: whole, size: whole.size, part };
    whole.body.destroy();
    const read = await bucket.read(key, part);
    return read && { read, size: whole.size, part };
  }

  const store: ContentStore & InventoryStore = {
    ...createS3Inventory(bucket, usage),
    location,
    shared: true,

    /**
     * Checks the spool folder and the bucket (a ConfigError naming them if not usable), cleans what
     * crashed writers left (their uploads and spool files), lists the bucket into the index and
     * evicts down to `maxSize`.
     */
    async init(): Promise<void> {
      try {
        await mkdir(spoolDir, { recursive: true });
        const probe = join(spoolDir, tempName('start'));
        await (await open(probe, 'wx')).close();
        await rm(probe, { force: true });
      } catch (error) {
        throw new ConfigError(`storage.path: cannot use ${options.localPath} for spool files: ${error}`);
      }
      try {
        await bucket.checkBucket();
      } catch (error) {
        throw new ConfigError(`storage.s3: cannot use ${location}: ${(error as Error).message}`);
      }
      await cleanSpool();
      // A policy without s3:ListBucketMultipartUploads must not keep the cache from starting.
      await bucket
        .abortStaleUploads(options.staleUploadMs ?? STALE_UPLOAD_MS, new Date(now()))
        .catch((error: unknown) => reportError(error, 'abort stale multipart uploads'));
      await usage.load();
      await usage.enforce();
      usage.start();
    },

    // --- blobs ---

    async statBlob(digest: string): Promise<number | null> {
      const key = blobKey(digest);
      const size = await bucket.head(key);
      if (size === null) usage.forget(key);
      else usage.seen(key, size);
      return size;
    },

    async openBlob(digest: string, range: (size: number) => ByteRange | null): Promise<OpenedBlob | null> {
      const key = blobKey(digest);
      const release = usage.pin(key);
      let found: Awaited<ReturnType<typeof firstRead>>;
      try {
        found = await firstRead(key, range);
      } catch (error) {
        release();
        throw error;
      }
      if (found === null) {
        release();
        usage.forget(key);
        return null;
      }
      const { read, size, part } = found;
      usage.seen(key, size);
      const start = part?.start ?? 0;
      const end = part ? part.end : size - 1;
      let source: ChunkSource;
      if (end < start) {
        read.body.destroy();
        source = emptySource(release);
      } else {
        source = createObjectSource({
          first: read,
          start,
          end,
          reread: (rest) => bucket.read(key, rest),
          onClose: release,
          what: `blob ${digest}`,
        });
      }
      return { size, range: part, source };
    },

    createBlobWriter: (digest: Digest): Promise<BlobWriter> => {
      const key = contentKey('blobs', digest);
      return createS3BlobWriter({
        bucket,
        key,
        digest,
        spoolDir,
        onCommit: (size) => usage.added(key, size),
      });
    },

    makeRoom: (bytes: number) => usage.makeRoom(bytes),

    // --- manifests ---

    async getManifest(digest: string): Promise<Manifest | null> {
      const key = contentKey('manifests', digest);
      const data = await bucket.get(key, MANIFEST_MAX_BYTES + 1024);
      if (data === null) {
        usage.forget(key);
        return null;
      }
      usage.seen(key, data.length);
      return manifestOf(data, digest);
    },

    async putManifest(manifest: Manifest): Promise<void> {
      const digest = parseDigest(manifest.digest);
      const data = manifestObject(manifest);
      const actual = createDigester(digest.algorithm).update(manifest.bytes).digest('hex');
      if (actual !== digest.hex)
        throw new VerificationError(
          `content does not match ${digest.value}: got ${digest.algorithm}:${actual}`,
        );
      const key = contentKey('manifests', digest);
      await bucket.put(key, data);
      await usage.added(key, data.length);
    },

    // --- tags ---

    async getTag(registry: string, repository: string, tag: string): Promise<TagRecord | null> {
      // An unreadable record is absent: the next fetch rewrites it.
      return recordOf(await bucket.get(tagKey(registry, repository, tag), RECORD_MAX_BYTES), validTagRecord);
    },

    async putTag(registry: string, repository: string, tag: string, record: TagRecord): Promise<void> {
      await bucket.put(
        tagKey(registry, repository, tag),
        Buffer.from(JSON.stringify(record)),
        'application/json',
      );
    },

    /** Removes a tag record and its pull counts. */
    async deleteTag(registry: string, repository: string, tag: string): Promise<void> {
      await bucket.delete(tagKey(registry, repository, tag));
      await bucket.delete(pullsKey(registry, repository, tag));
    },

    // --- referrers ---

    async getReferrers(
      registry: string,
      repository: string,
      subject: string,
      artifactType: string | null,
    ): Promise<ReferrersRecord | null> {
      const data = await bucket.get(
        referrersKey(registry, repository, subject, artifactType),
        MANIFEST_MAX_BYTES,
      );
      return data === null ? null : parseReferrersRecord(data.toString('utf8'));
    },

    async putReferrers(
      registry: string,
      repository: string,
      subject: string,
      artifactType: string | null,
      record: ReferrersRecord,
    ): Promise<void> {
      const key = referrersKey(registry, repository, subject, artifactType);
      await bucket.put(key, Buffer.from(JSON.stringify(record)), 'application/json');
    },

    /** Throws unless the bucket takes a write now (readiness): one small PUT and its DELETE. */
    async probeWritable(): Promise<void> {
      const probe = `probes/${tempName('ready')}`;
      await bucket.put(probe, Buffer.from('ok'));
      await bucket.delete(probe);
    },

    stats(): CacheStats {
      const { bytes, blobs, manifests, evictions } = usage.stats();
      return { bytes, maxSize: options.maxSize, blobs, manifests, evictions };
    },

    async close(): Promise<void> {
      await usage.close();
      bucket.close();
    },
  };

  if (options.redirect) {
    store.blobUrl = async (digest: string) => {
      const key = blobKey(digest);
      const size = await store.statBlob(digest);
      return size === null ? null : { url: await bucket.presignGet(key), size };
    };
  }
  return store;
}
