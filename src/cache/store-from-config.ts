/**
 * @module The store the config names: the bucket of `storage.s3` (its module, and the AWS SDK with
 * it, imported only then), else the folder `storage.path`. Serving, warming and the inventory
 * commands all open it here.
 */
import { resolve } from 'node:path';
import type { Config } from '../config.js';
import type { ContentStore } from './content-store.js';
import { createDiskStore } from './disk-store.js';
import type { InventoryStore } from './inventory-store.js';

/** What every command asks of a store: the pull layer's interface and the inventory's. */
export type ConfiguredStore = ContentStore & InventoryStore;

export interface StoreHooks {
  /** Test clock for tag TTLs and last-use times. */
  now?: () => number;
  /** Called with each evicted key. */
  onEvict?: (key: string, size: number) => void;
  /** The S3 store's background failures (use markers, re-listing, cleanup), for the log. */
  onBackgroundError?: (error: unknown, what: string) => void;
  /** Overrides `storage.maxSize` (the inventory commands open the store without evicting). */
  maxSize?: number | null;
}

/** The store, not yet initialised (init() checks it and loads its index). */
export async function createConfiguredStore(
  config: Pick<Config, 'storage'>,
  hooks: StoreHooks = {},
): Promise<ConfiguredStore> {
  const { storage } = config;
  const maxSize = hooks.maxSize === undefined ? storage.maxSize : hooks.maxSize;
  const common = {
    maxSize,
    ...(hooks.now ? { now: hooks.now } : {}),
    ...(hooks.onEvict ? { onEvict: hooks.onEvict } : {}),
  };
  if (storage.s3) {
    const { createS3Store } = await import('./s3-store.js');
    return createS3Store({
      ...storage.s3,
      ...common,
      localPath: resolve(storage.path),
      ...(hooks.onBackgroundError ? { onBackgroundError: hooks.onBackgroundError } : {}),
    });
  }
  return createDiskStore({ root: resolve(storage.path), ...common });
}
