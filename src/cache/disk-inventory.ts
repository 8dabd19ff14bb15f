/**
 * @module The disk store's inventory side (`ls`, `rm`, `prune`, the status page): listing tags and
 * content, removal, and the `.removals` mark through which processes sharing one folder learn that
 * another removed content (a serve process would otherwise evict for room it already has). The
 * content side, disk-store.ts, owns the index; this side forgets entries in it through `forget`.
 */
import { readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { parseDigest } from '../digest.js';
import {
  contentFiles,
  contentKey,
  type DiskLayout,
  isMissing,
  parseContentKey,
  readManifestFile,
  readPulls,
  readTagRecord,
  walk,
  writeAtomically,
} from './disk-layout.js';
import type { InventoryStore, TagEntry, TagPulls } from './inventory-store.js';
import { TEMP_PREFIX } from './temp-name.js';

export interface DiskInventoryDeps {
  layout: DiskLayout;
  now: () => number;
  /** The index keys the content side holds, and how to drop one whose file is gone. */
  indexKeys(): Iterable<string>;
  forget(key: string): void;
}

export interface DiskInventory extends InventoryStore {
  /** Records the `.removals` mark as seen: the caller's index was just read from the folder. */
  removalsSeenNow(): Promise<void>;
}

export function createDiskInventory({ layout, now, indexKeys, forget }: DiskInventoryDeps): DiskInventory {
  const { root } = layout;
  let removalsSeen = 0;
  const removalsMtime = async () => (await stat(layout.removalsMark).catch(() => null))?.mtimeMs ?? 0;

  return {
    async removalsSeenNow() {
      removalsSeen = await removalsMtime();
    },

    /**
     * When another process (`pullcache rm`/`prune`) removed content since the last look, forgets the
     * index entries whose files are gone. One stat when nothing changed.
     */
    async syncRemovals(): Promise<void> {
      const mark = await removalsMtime();
      if (mark === 0 || mark === removalsSeen) return;
      removalsSeen = mark;
      for (const key of [...indexKeys()]) {
        const { kind, digest } = parseContentKey(key);
        const gone = await stat(layout.contentPath(kind, digest)).then(
          () => false,
          (error: unknown) => isMissing(error),
        );
        if (gone) forget(key);
      }
    },

    /** Every tag record in the folder. */
    async *listTags(): AsyncGenerator<TagEntry> {
      const top = `${root}/tags`;
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
        const pulls = await readPulls(layout.tagPullsPath(registry, repository, tag)).catch(() => null);
        yield { registry, repository, tag, record, pulls };
      }
    },

    /** A cached manifest read without counting as a use (taking stock is not pulling). */
    peekManifest: (digest) => readManifestFile(layout, digest),

    async peekBlob(digest: string, maxBytes: number): Promise<Buffer | null> {
      const path = layout.contentPath('blob', parseDigest(digest));
      const info = await stat(path).catch(() => null);
      if (!info?.isFile() || info.size > maxBytes) return null;
      return readFile(path).catch(() => null);
    },

    /** Every committed blob and manifest file, with its size and last use. */
    async *listContent() {
      for await (const { kind, digest, size, mtime } of contentFiles(layout)) {
        yield { kind, digest, size, lastUsed: mtime };
      }
    },

    /**
     * Removes a blob or manifest. Readers that opened it keep reading (the inode lives until their
     * descriptor closes); a write in progress is a temp file, never touched here. Call
     * noteRemovals() once done so that other processes sharing the folder update their index.
     */
    async removeContent(kind: 'blob' | 'manifest', digest: string): Promise<void> {
      await rm(layout.contentPath(kind, parseDigest(digest)), { force: true });
      forget(contentKey(kind, digest));
    },

    /** Tells processes sharing the folder that content was removed (they re-check their index). */
    async noteRemovals(): Promise<void> {
      const time = new Date(now());
      await writeFile(layout.removalsMark, '');
      await utimes(layout.removalsMark, time, time);
    },

    /**
     * Adds `count` pulls of a tag, last at `at`; nothing when the tag record is gone (removed).
     * A read and a rename: two processes adding at the same moment may lose one's count.
     */
    async addPulls(registry, repository, tag, count, at): Promise<void> {
      const exists = await stat(layout.tagPath(registry, repository, tag)).then(
        () => true,
        (error: unknown) => {
          if (isMissing(error)) return false;
          throw error;
        },
      );
      if (!exists) return;
      const path = layout.tagPullsPath(registry, repository, tag);
      const previous = await readPulls(path);
      const pulls: TagPulls = { pulls: (previous?.pulls ?? 0) + count, lastPulledAt: at };
      await writeAtomically(path, JSON.stringify(pulls));
    },
  };
}
