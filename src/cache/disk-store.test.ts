/**
 * The content-store contract, run against every implementation (the disk store today; an object
 * store later): verified writes, manifests with their media type, tag records, index rebuild.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChunkSource, readAll } from '../chunk-source.js';
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

async function textOf(source: ChunkSource): Promise<string> {
  const chunks: Buffer[] = [];
  await readAll(source, (chunk) => chunks.push(Buffer.from(chunk)), 3);
  return Buffer.concat(chunks).toString('utf8');
}

const allFiles = (root: string) =>
  readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name);

describe.each([['disk store', diskStore]])('%s', (_, makeStore) => {
  it('stores a verified blob and streams it back, whole or in part', async () => {
    const store = makeStore();
    await store.init();
    const digest = await putBlob(store, 'hello blob');
    expect(await store.statBlob(digest)).toBe(10);
    const whole = await store.openBlob(digest, () => null);
    expect(await textOf(whole!.source)).toBe('hello blob');
    const part = await store.openBlob(digest, () => ({ start: 6, end: 9 }));
    expect(await textOf(part!.source)).toBe('blob');
    expect(await store.openBlob(digestOf(Buffer.from('other')), () => null)).toBeNull();
  });

  it('keeps an aborted blob invisible, leaves no file behind, and lets its readers finish', async () => {
    const store = makeStore();
    await store.init();
    const digest = digestOf(Buffer.from('abandoned'));
    const writer = await store.createBlobWriter(parseDigest(digest));
    await writer.write([Buffer.from('aban'), Buffer.from('doned')]);
    expect(writer.size).toBe(9);
    await writer.abort();
    expect(await store.statBlob(digest)).toBeNull();
    expect(allFiles(store.root)).toEqual([]);
    const buffer = Buffer.alloc(5);
    await writer.read(buffer, 5, 4); // a client behind the download still gets what was written
    expect(buffer.toString()).toBe('doned');
    await writer.release();
    await expect(writer.read(buffer, 1, 0)).rejects.toThrow();
  });

  it('reads a blob being written through its writer, before and after the commit', async () => {
    const store = makeStore();
    const digest = digestOf(Buffer.from('growing'));
    const writer = await store.createBlobWriter(parseDigest(digest));
    await writer.write([Buffer.from('grow')]);
    const buffer = Buffer.alloc(7);
    await writer.read(buffer, 4, 0);
    await writer.write([Buffer.from('ing')]);
    await writer.commit();
    await writer.read(buffer, 7, 0);
    expect(buffer.toString()).toBe('growing');
    expect(await store.statBlob(digest)).toBe(7);
    await writer.release();
  });

  it('refuses a manifest that does not match its digest and leaves no file behind', async () => {
    const store = makeStore();
    const bytes = Buffer.from('{}');
    await expect(
      store.putManifest({ mediaType: 'x/y', digest: digestOf(Buffer.from('other')), size: 2, bytes }),
    ).rejects.toBeInstanceOf(VerificationError);
    expect(allFiles(store.root)).toEqual([]);
  });

  it('keeps a manifest byte for byte with its media type, and refuses one that does not match its digest', async () => {
    const store = makeStore();
    const bytes = Buffer.from('{\n  "schemaVersion": 2\n}\n');
    const manifest = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: digestOf(bytes),
      size: bytes.length,
      bytes,
    };
    await store.putManifest(manifest);
    const read = await store.getManifest(manifest.digest);
    expect(read?.mediaType).toBe(manifest.mediaType);
    expect(read?.bytes.equals(bytes)).toBe(true);
    expect(read?.size).toBe(bytes.length);
    await expect(store.putManifest({ ...manifest, digest: digestOf(Buffer.from('x')) })).rejects.toThrow();
    expect(await store.getManifest(digestOf(Buffer.from('x')))).toBeNull();
  });

  it('keeps tag records per registry and repository, and deletes them', async () => {
    const store = makeStore();
    const record = { digest: digestOf(Buffer.from('m')), mediaType: 'x', size: 1, fetchedAt: 5 };
    await store.putTag('docker.io', 'library/nginx', 'latest', record);
    await store.putTag('quay.io', 'library/nginx', 'latest', { ...record, fetchedAt: 6 });
    expect(await store.getTag('docker.io', 'library/nginx', 'latest')).toEqual(record);
    expect((await store.getTag('quay.io', 'library/nginx', 'latest'))?.fetchedAt).toBe(6);
    // A nested repository and a tag of its parent do not collide.
    await store.putTag('docker.io', 'library/nginx/latest', 'x', record);
    expect(await store.getTag('docker.io', 'library/nginx', 'latest')).toEqual(record);
    await store.deleteTag('docker.io', 'library/nginx', 'latest');
    expect(await store.getTag('docker.io', 'library/nginx', 'latest')).toBeNull();
  });

  it('keeps referrers records per subject and artifactType filter, apart from tags and content', async () => {
    const store = makeStore();
    await store.init();
    const subject = digestOf(Buffer.from('image'));
    const signature = {
      mediaType: 'm',
      digest: digestOf(Buffer.from('sig')),
      size: 3,
      artifactType: 'a/sig',
    };
    const sbom = { mediaType: 'm', digest: digestOf(Buffer.from('sbom')), size: 4, artifactType: 'a/sbom' };
    const all = { manifests: [signature, sbom], source: 'api' as const, fetchedAt: 7 };
    const signatures = { manifests: [signature], source: 'tag' as const, fetchedAt: 8 };
    await store.putReferrers('docker.io', 'library/nginx', subject, null, all);
    await store.putReferrers('docker.io', 'library/nginx', subject, 'a/sig', signatures);
    expect(await store.getReferrers('docker.io', 'library/nginx', subject, null)).toEqual(all);
    expect(await store.getReferrers('docker.io', 'library/nginx', subject, 'a/sig')).toEqual(signatures);
    // Other filters, repositories, registries and subjects have nothing cached.
    expect(await store.getReferrers('docker.io', 'library/nginx', subject, 'a/sbom')).toBeNull();
    expect(await store.getReferrers('docker.io', 'library/nginx/x', subject, null)).toBeNull();
    expect(await store.getReferrers('quay.io', 'library/nginx', subject, null)).toBeNull();
    expect(await store.getReferrers('docker.io', 'library/nginx', signature.digest, null)).toBeNull();
    // The filter is in the file name only as a hash; a record is not a tag or content.
    const hex = parseDigest(subject).hex;
    expect(allFiles(store.root).sort()).toEqual(
      [`sha256-${hex}.json`, `sha256-${hex}-${digestOf(Buffer.from('a/sig')).slice(7)}.json`].sort(),
    );
    expect(await store.getTag('docker.io', 'library/nginx', `sha256-${hex}`)).toBeNull();
    expect(store.stats()).toMatchObject({ bytes: 0, blobs: 0, manifests: 0 });
  });

  it('treats an unreadable referrers record as absent', async () => {
    const store = makeStore();
    const subject = digestOf(Buffer.from('image'));
    const record = { manifests: [], source: 'api' as const, fetchedAt: 1 };
    await store.putReferrers('docker.io', 'library/nginx', subject, null, record);
    const path = join(store.root, 'referrers', 'docker.io', 'library/nginx', '_referrers');
    const file = join(path, readdirSync(path)[0]!);
    for (const text of [
      '{',
      '{"manifests":{},"source":"api","fetchedAt":1}',
      '{"manifests":[],"source":"x"}',
    ]) {
      writeFileSync(file, text);
      expect(await store.getReferrers('docker.io', 'library/nginx', subject, null)).toBeNull();
    }
  });

  it('rebuilds its index from disk in last-use order, so eviction survives a restart', async () => {
    const first = makeStore();
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

  it('does not evict a blob while it is being read', async () => {
    const store = makeStore(8);
    const a = await putBlob(store, 'aaaa');
    const reading = await store.openBlob(a, () => null);
    await putBlob(store, 'bbbb');
    const c = await putBlob(store, 'cccc'); // over the limit: the LRU entry is a, but it is pinned
    expect(existsSync(store.blobPath(a))).toBe(true);
    expect(await textOf(reading!.source)).toBe('aaaa');
    expect(existsSync(store.blobPath(c))).toBe(true);
    expect(store.stats().bytes).toBeLessThanOrEqual(8);
  });
});
