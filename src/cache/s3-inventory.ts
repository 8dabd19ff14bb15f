/**
 * @module The inventory side of the S3 store (`ls`, `rm`, `prune`, the status page): listing tags and
 * content from the bucket, reads that do not count as a use, removal, pull counts beside tag records.
 */

// Removals need no signal between replicas: a replica that reads removed content gets S3's 404 (a
// miss, downloaded again), and its index forgets what a re-listing no longer finds.
import { MANIFEST_MAX_BYTES } from '../content.js';
import type { InventoryStore, TagPulls } from './inventory-store.js';
import type { S3Bucket } from './s3-bucket.js';
import {
  contentKey,
  manifestOf,
  parseContentKey,
  parseTagKey,
  pullsKey,
  recordOf,
  tagKey,
  validTagRecord,
} from './s3-layout.js';
import type { S3Usage } from './s3-usage.js';

const RECORD_MAX_BYTES = 64 * 1024; // tag records and pull counts are ~200 bytes
const MANIFEST_OBJECT_MAX_BYTES = MANIFEST_MAX_BYTES + 1024; // and its media type line

const validPulls = (pulls: TagPulls) =>
  Number.isSafeInteger(pulls.pulls) && Number.isFinite(pulls.lastPulledAt);

export function createS3Inventory(bucket: S3Bucket, usage: S3Usage): InventoryStore {
  return {
    async *listTags() {
      const records: string[] = [];
      const counted = new Set<string>();
      for await (const object of bucket.list('tags/')) {
        const parsed = parseTagKey(object.key);
        if (parsed?.kind === '_tags') records.push(object.key);
        else if (parsed?.kind === '_pulls') counted.add(object.key);
      }
      for (const key of records) {
        const { registry, repository, tag } = parseTagKey(key)!;
        const record = recordOf(await bucket.get(key, RECORD_MAX_BYTES), validTagRecord);
        if (!record) continue;
        const pulls = counted.has(pullsKey(registry, repository, tag))
          ? recordOf(await bucket.get(pullsKey(registry, repository, tag), RECORD_MAX_BYTES), validPulls)
          : null;
        yield { registry, repository, tag, record, pulls };
      }
    },

    async *listContent() {
      for (const prefix of ['blobs/', 'manifests/']) {
        for await (const object of bucket.list(prefix)) {
          const parsed = parseContentKey(object.key);
          if (!parsed) continue;
          const lastUsed = usage.lastUseOf(object.key) ?? object.lastModified?.getTime() ?? 0;
          yield { ...parsed, size: object.size, lastUsed };
        }
      }
    },

    async peekManifest(digest) {
      const data = await bucket.get(contentKey('manifests', digest), MANIFEST_OBJECT_MAX_BYTES);
      return data && manifestOf(data, digest);
    },

    async peekBlob(digest, maxBytes) {
      const key = contentKey('blobs', digest);
      const size = await bucket.head(key);
      return size === null || size > maxBytes ? null : bucket.get(key, maxBytes);
    },

    async removeContent(kind, digest) {
      const key = contentKey(kind === 'blob' ? 'blobs' : 'manifests', digest);
      await bucket.delete(key);
      usage.forget(key);
    },

    /** Nothing to tell: other replicas see a removal as a 404 at once, and at their next listing. */
    async noteRemovals() {},

    /** Nothing to do: a read of removed content finds S3's 404 and forgets it. */
    async syncRemovals() {},

    /** A read and a write: two replicas adding at the same moment may lose one's count. */
    async addPulls(registry, repository, tag, count, at) {
      if ((await bucket.head(tagKey(registry, repository, tag))) === null) return;
      const key = pullsKey(registry, repository, tag);
      const previous = recordOf(await bucket.get(key, RECORD_MAX_BYTES), validPulls);
      const pulls: TagPulls = { pulls: (previous?.pulls ?? 0) + count, lastPulledAt: at };
      await bucket.put(key, Buffer.from(JSON.stringify(pulls)), 'application/json');
    },
  };
}
