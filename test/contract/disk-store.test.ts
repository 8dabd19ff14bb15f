/** The content-store contract against the disk store, in temp folders. */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createDiskStore, type DiskStore } from '../../src/cache/disk-store.js';
import { describeContentStore } from './content-store.contract.js';

const folders: string[] = [];

describeContentStore('disk store', {
  async create({ maxSize, now }) {
    const root = mkdtempSync(join(tmpdir(), 'pullcache-contract-'));
    folders.push(root);
    return createDiskStore({ root, maxSize, ...(now ? { now } : {}) });
  },
  async reopen(store, { maxSize, now }) {
    return createDiskStore({ root: (store as DiskStore).root, maxSize, ...(now ? { now } : {}) });
  },
  async contents(store) {
    const root = (store as DiskStore).root;
    return readdirSync(root, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => relative(root, join(entry.parentPath, entry.name)))
      .sort();
  },
  async cleanup() {
    for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
  },
});
