/**
 * The content-store contract against the S3 store on a real RADOS Gateway: one bucket, a key prefix
 * and a local spool folder per store; "what the store holds" is the objects and multipart uploads
 * under its prefix and the files in its local folder.
 */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, vi } from 'vitest';
import type { ContentStore } from '../../src/cache/content-store.js';
import { createS3Store } from '../../src/cache/s3-store.js';
import { describeContentStore, type StoreOptions } from '../contract/content-store.contract.js';
import { type Rgw, startRgw } from './harness/ceph-rgw.js';
import { createCleanup } from './harness/cleanup.js';
import { createS3Admin, rgwEnvironment, type S3Admin } from './harness/s3-admin.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';

const BUCKET = 'contract';
const cleanup = createCleanup();
let rgw: Rgw;
let admin: S3Admin;

beforeAll(async () => {
  rgw = cleanup.add(await startRgw(), (r) => r.stop());
  for (const [name, value] of Object.entries(rgwEnvironment(rgw))) vi.stubEnv(name, value);
  cleanup.defer(() => vi.unstubAllEnvs());
  admin = cleanup.add(createS3Admin(rgw), (a) => a.close());
  await admin.createBucket(BUCKET);
});
afterAll(() => cleanup.run());

/** Where each store keeps things: its prefix and its local folder. */
const places = new WeakMap<ContentStore, { prefix: string; localPath: string }>();
const folders: string[] = [];
let stores = 0;

function open(place: { prefix: string; localPath: string }, { maxSize, now }: StoreOptions): ContentStore {
  const store = createS3Store({
    bucket: BUCKET,
    endpoint: rgw.endpoint,
    region: rgw.region,
    prefix: place.prefix,
    localPath: place.localPath,
    maxSize,
    // The contract's clock moves in minutes: record uses at most once a minute, as the disk store.
    touchIntervalMs: 60_000,
    ...(now ? { now } : {}),
  });
  places.set(store, place);
  return store;
}

describeContentStore('S3 store on RADOS Gateway', {
  async create(options) {
    const localPath = await makeTempDir('s3-contract');
    folders.push(localPath);
    return open({ prefix: `store-${stores++}/`, localPath }, options);
  },
  async reopen(store, options) {
    return open(places.get(store)!, options);
  },
  async contents(store) {
    const { prefix, localPath } = places.get(store)!;
    const local = readdirSync(localPath, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => `local:${relative(localPath, join(entry.parentPath, entry.name))}`);
    const uploads = (await admin.uploadKeys(BUCKET, prefix)).map((key) => `upload:${key}`);
    return [...(await admin.objectKeys(BUCKET, prefix)), ...uploads, ...local].sort();
  },
  async cleanup() {
    for (const folder of folders.splice(0)) await removeDir(folder);
  },
});
