/**
 * @module What `ls`, `rm`, `prune`, `import` and the status page ask of a store beyond the pull
 * layer's ContentStore: listing tags and content with sizes and last use, reading a manifest
 * without counting a use, removal that other processes sharing the store learn of, pull counts.
 */
import type { Manifest } from '../content.js';
import type { TagRecord } from './content-store.js';

/** Client pulls of a tag (pull-counter.ts), kept beside its record, not in it. */
export interface TagPulls {
  pulls: number;
  /** ms since epoch; written at most once a minute. */
  lastPulledAt: number;
}

/** A cached blob or manifest, as the inventory sees it. */
export interface ContentFile {
  kind: 'blob' | 'manifest';
  digest: string;
  /** Bytes stored (a manifest's include its media type line on disk). */
  size: number;
  /** Last use (ms since epoch): touched on use, at most once a minute per process. */
  lastUsed: number;
}

/** A tag record with where it lives and its pull counts. */
export interface TagEntry {
  registry: string;
  repository: string;
  tag: string;
  record: TagRecord;
  pulls: TagPulls | null;
}

export interface InventoryStore {
  /** Every tag record. */
  listTags(): AsyncGenerator<TagEntry>;
  /** Every committed blob and manifest, with its size and last use. */
  listContent(): AsyncGenerator<ContentFile>;
  /** A cached manifest read without counting as a use (taking stock is not pulling). */
  peekManifest(digest: string): Promise<Manifest | null>;
  /** A small cached blob (an image config) read without counting as a use; null if absent or larger. */
  peekBlob(digest: string, maxBytes: number): Promise<Buffer | null>;
  /** Removes a blob or manifest; readers that opened it keep reading. Call noteRemovals() after. */
  removeContent(kind: 'blob' | 'manifest', digest: string): Promise<void>;
  /** Tells processes sharing the store that content was removed (they re-check their index). */
  noteRemovals(): Promise<void>;
  /** Drops index entries for content another process removed. */
  syncRemovals(): Promise<void>;
  /** Adds `count` pulls of a tag, last at `at`; nothing when the tag record is gone. */
  addPulls(registry: string, repository: string, tag: string, count: number, at: number): Promise<void>;
}
