/**
 * What is particular to the disk store (test/contract/ holds what every store does): file
 * modification times are the last-use record other processes and restarts read, a refused
 * write leaves no file, and a referrers record's file name holds its filter only as a hash.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { digestOf, parseDigest } from '../digest.js';
import { createDiskStore, type DiskStore } from './disk-store.js';
import { VerificationError } from './temp-file.js';

const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

function diskStore(maxSize: number | null = null, now?: () => number): DiskStore {
  const root = mkdtempSync(join(tmpdir(), 'pullcache-store-'));
  folders.push(root);
  return createDiskStore({ root, maxSize, ...(now ? { now } : {}) });
}

async function putBlob(store: DiskStore, bytes: string): Promise<string> {
  const digest = digestOf(Buffer.from(bytes));
  const writer = await store.createBlobWriter(parseDigest(digest));
  await writer.write([Buffer.from(bytes)]);
  await writer.commit();
  await writer.release();
  return digest;
}

const allFiles = (root: string) =>
  readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name);

describe('disk store', () => {
  it('refuses a manifest that does not match its digest and leaves no file behind', async () => {
    const store = diskStore();
    const bytes = Buffer.from('{}');
    await expect(
      store.putManifest({ mediaType: 'x/y', digest: digestOf(Buffer.from('other')), size: 2, bytes }),
    ).rejects.toBeInstanceOf(VerificationError);
    expect(allFiles(store.root)).toEqual([]);
  });

  it('rebuilds its index from disk in last-use order, so eviction survives a restart', async () => {
    const first = diskStore();
    const [a, b, c] = [
      await putBlob(first, 'aaaa'),
      await putBlob(first, 'bbbb'),
      await putBlob(first, 'cccc'),
    ];
    const time = (digest: string, seconds: number) => {
      const t = new Date(Date.parse('2026-01-01T00:00:00Z') + seconds * 1000);
      utimesSync(first.blobPath(digest), t, t);
    };
    time(a, 30); // a used last
    time(b, 10);
    time(c, 20);
    const second = createDiskStore({ root: first.root, maxSize: 8 });
    await second.init();
    expect(second.stats()).toMatchObject({ blobs: 2, bytes: 8, evictions: 1 });
    expect(existsSync(first.blobPath(b))).toBe(false);
    expect(existsSync(first.blobPath(a))).toBe(true);
    expect(existsSync(first.blobPath(c))).toBe(true);
  });

  it('names a referrers record by subject and a hash of the filter, apart from tags and content', async () => {
    const store = diskStore();
    await store.init();
    const subject = digestOf(Buffer.from('image'));
    const record = { manifests: [], source: 'api' as const, fetchedAt: 1 };
    await store.putReferrers('docker.io', 'library/nginx', subject, null, record);
    await store.putReferrers('docker.io', 'library/nginx', subject, '../../x/y', record);
    const hex = parseDigest(subject).hex;
    const filterHash = digestOf(Buffer.from('../../x/y')).slice('sha256:'.length);
    expect(allFiles(store.root).sort()).toEqual([`sha256-${hex}-${filterHash}.json`, `sha256-${hex}.json`]);
    expect(readdirSync(join(store.root, 'referrers', 'docker.io', 'library', 'nginx'))).toEqual([
      '_referrers',
    ]);
    expect(store.stats()).toMatchObject({ bytes: 0, blobs: 0, manifests: 0 });
  });

  it('treats an unreadable referrers record as absent', async () => {
    const store = diskStore();
    const subject = digestOf(Buffer.from('image'));
    await store.putReferrers('docker.io', 'library/nginx', subject, null, {
      manifests: [],
      source: 'api',
      fetchedAt: 1,
    });
    const folder = join(store.root, 'referrers', 'docker.io', 'library/nginx', '_referrers');
    const file = join(folder, readdirSync(folder)[0]!);
    for (const text of [
      '{',
      '{"manifests":{},"source":"api","fetchedAt":1}',
      '{"manifests":[],"source":"x"}',
    ]) {
      writeFileSync(file, text);
      expect(await store.getReferrers('docker.io', 'library/nginx', subject, null)).toBeNull();
    }
  });
});
