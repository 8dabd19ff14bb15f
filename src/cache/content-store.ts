/**
 * @module The one face every store gives the pull layer: blobs by digest (stat, a ranged read that
 * holds the blob against eviction until it is closed, a writer that commits only what the download
 * verified), manifests by digest with their media type, tag and referrers records, usage and
 * eviction, readiness.
 * The disk store (cache/disk-store.ts) and the S3 store implement it; one contract suite
 * (test/contract/content-store.contract.ts) runs against each. Nothing above this interface knows
 * about paths, temp files or object keys.
 */

import { createHash } from 'node:crypto';
import type { ChunkSource } from '../chunk-source.js';
import type { ByteRange, Manifest } from '../content.js';
import { type Digest, parseDigest } from '../digest.js';
import type { BlobWriter } from './blob-writer.js';

export interface TagRecord {
  digest: string;
  mediaType: string;
  size: number;
  /** When the upstream last confirmed this tag (ms since epoch). */
  fetchedAt: number;
}

/** A referrers answer: the descriptors listed, already filtered when the record is for an artifactType. */
export interface ReferrersRecord {
  /** The index's `manifests`, as the upstream listed them. */
  manifests: Record<string, unknown>[];
  /** Where they came from: the referrers API, or the fallback tag of a registry without it. */
  source: 'api' | 'tag';
  /** When the upstream last answered for them (ms since epoch). */
  fetchedAt: number;
}

/**
 * A referrers record's name within its repository's records: the subject digest's parts and a hash
 * of the artifactType filter, never the filter itself (`sha256-<hex>[-<sha256 of filter>].json`).
 */
export function referrersRecordName(subject: string, artifactType: string | null): string {
  const { algorithm, hex } = parseDigest(subject);
  const filter = artifactType === null ? '' : `-${createHash('sha256').update(artifactType).digest('hex')}`;
  return `${algorithm}-${hex}${filter}.json`;
}

/** A stored referrers record, or null when it is unreadable (the next fetch rewrites it). */
export function parseReferrersRecord(text: string): ReferrersRecord | null {
  try {
    const record = JSON.parse(text) as ReferrersRecord;
    const valid =
      Array.isArray(record.manifests) &&
      (record.source === 'api' || record.source === 'tag') &&
      Number.isFinite(record.fetchedAt);
    return valid ? record : null;
  } catch {
    return null;
  }
}

export interface CacheStats {
  bytes: number;
  maxSize: number | null;
  blobs: number;
  manifests: number;
  evictions: number;
}

/** A cached blob opened for reading: its size, the range asked for, and its bytes. */
export interface OpenedBlob {
  size: number;
  range: ByteRange | null;
  /** Holds the blob against eviction until it is closed (or read to its end). */
  source: ChunkSource;
}

/**
 * Every method answers null (or resolves) for content that is not there, and throws a
 * RegistryError (storage unavailable, 503) for a store that cannot answer: a store failure is
 * never taken for a miss that would re-download what is cached.
 */
export interface ContentStore {
  /** Where it keeps content, for logs and start-up errors (`/var/cache/pullcache`, `s3://bucket/prefix`). */
  readonly location: string;
  /**
   * Whether other replicas see what this one commits (a shared bucket): a blob streamed from its
   * owner peer is then already stored by the owner and need not be written again here.
   */
  readonly shared: boolean;
  /** Checks the store is usable (throws a ConfigError naming it otherwise) and loads its index. */
  init(): Promise<void>;

  /** The cached blob's size; null when it is not cached. */
  statBlob(digest: string): Promise<number | null>;
  /**
   * The cached blob, or the range `range(size)` picks of it (which may throw, e.g. 416); null when
   * it is not cached.
   */
  openBlob(digest: string, range: (size: number) => ByteRange | null): Promise<OpenedBlob | null>;
  /**
   * Only a store whose blobs clients may fetch themselves (a bucket with `redirect`): a short-lived
   * URL of the cached blob, and its size; null when it is not cached. The HTTP layer then answers a
   * cached blob GET with a redirect to it.
   */
  blobUrl?(digest: string): Promise<{ url: string; size: number } | null>;
  /** A writer for one download of the blob; nothing is visible under the digest until it commits. */
  createBlobWriter(digest: Digest): Promise<BlobWriter>;
  /**
   * Evicts least-recently-used content (never what is being read) to free `bytes` for a write that
   * found the store full; resolves the bytes freed (0 when the store has no `maxSize`).
   */
  makeRoom(bytes: number): Promise<number>;

  getManifest(digest: string): Promise<Manifest | null>;
  /** Stores a manifest under its digest; throws if its bytes do not hash to it. */
  putManifest(manifest: Manifest): Promise<void>;

  getTag(registry: string, repository: string, tag: string): Promise<TagRecord | null>;
  putTag(registry: string, repository: string, tag: string, record: TagRecord): Promise<void>;
  deleteTag(registry: string, repository: string, tag: string): Promise<void>;

  /** The referrers of `subject` cached for this artifactType filter (null: unfiltered). */
  getReferrers(
    registry: string,
    repository: string,
    subject: string,
    artifactType: string | null,
  ): Promise<ReferrersRecord | null>;
  putReferrers(
    registry: string,
    repository: string,
    subject: string,
    artifactType: string | null,
    record: ReferrersRecord,
  ): Promise<void>;

  /** Throws unless the store accepts writes now (readiness). */
  probeWritable(): Promise<void>;
  stats(): CacheStats;
  /** Stops background work and frees connections. */
  close(): Promise<void>;
}
