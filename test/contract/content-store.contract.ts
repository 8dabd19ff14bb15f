/**
 * The content-store contract: what the pull layer relies on, through the ContentStore interface
 * alone, run against every implementation (disk here, S3 on a real RADOS Gateway in the e2e
 * suite). A store that passes it can be put behind the pull layer.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ContentStore } from '../../src/cache/content-store.js';
import { type ChunkSource, readAll } from '../../src/chunk-source.js';
import { digestOf, parseDigest } from '../../src/digest.js';
import { rangeNotSatisfiable } from '../../src/errors.js';

export interface StoreOptions {
  maxSize: number | null;
  now?: () => number;
}

export interface StoreHarness {
  /** A new, empty store (init() not yet called). */
  create(options: StoreOptions): Promise<ContentStore>;
  /** Another instance over the same content: a restart, or a second replica. */
  reopen(store: ContentStore, options: StoreOptions): Promise<ContentStore>;
  /** Everything the store holds (file paths, object keys), to check what a failure left. */
  contents(store: ContentStore): Promise<string[]>;
  /** Removes what the stores of one test created. */
  cleanup(): Promise<void>;
}

export function describeContentStore(name: string, harness: StoreHarness): void {
  describe(`${name} (content-store contract)`, () => {
    const opened: ContentStore[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
      await harness.cleanup();
    });
    async function newStore(options: StoreOptions = { maxSize: null }): Promise<ContentStore> {
      const store = await harness.create(options);
      opened.push(store);
      await store.init();
      return store;
    }
    async function reopen(store: ContentStore, options: StoreOptions): Promise<ContentStore> {
      await store.close();
      const again = await harness.reopen(store, options);
      opened.push(again);
      await again.init();
      return again;
    }

    it('stores a verified blob and streams it back, whole or in part', async () => {
      const store = await newStore();
      const digest = await putBlob(store, 'hello blob');
      expect(await store.statBlob(digest)).toBe(10);
      const whole = await store.openBlob(digest, () => null);
      expect(whole?.size).toBe(10);
      expect(await textOf(whole!.source)).toBe('hello blob');
      const part = await store.openBlob(digest, () => ({ start: 6, end: 9 }));
      expect(part?.range).toEqual({ start: 6, end: 9 });
      expect(await textOf(part!.source)).toBe('blob');
      const missing = digestOf(Buffer.from('other'));
      expect(await store.statBlob(missing)).toBeNull();
      expect(await store.openBlob(missing, () => null)).toBeNull();
    });

    it('passes on the error of a range it cannot serve, and the blob stays', async () => {
      const store = await newStore();
      const digest = await putBlob(store, 'ranged');
      const refused = rangeNotSatisfiable(6);
      await expect(
        store.openBlob(digest, (size) => {
          expect(size).toBe(6);
          throw refused;
        }),
      ).rejects.toBe(refused);
      expect(await textOf((await store.openBlob(digest, () => null))!.source)).toBe('ranged');
    });

    it('keeps an aborted blob invisible, leaves nothing behind, and lets its readers finish', async () => {
      const store = await newStore();
      const before = await harness.contents(store);
      const digest = digestOf(Buffer.from('abandoned'));
      const writer = await store.createBlobWriter(parseDigest(digest));
      await writer.write([Buffer.from('aban'), Buffer.from('doned')]);
      expect(writer.size).toBe(9);
      await writer.abort();
      expect(await store.statBlob(digest)).toBeNull();
      const buffer = Buffer.alloc(5);
      await writer.read(buffer, 5, 4); // a client behind the download still gets what was written
      expect(buffer.toString()).toBe('doned');
      await writer.release();
      await expect(writer.read(buffer, 1, 0)).rejects.toThrow();
      expect(await harness.contents(store)).toEqual(before);
    });

    it('reads a blob being written through its writer, before and after the commit', async () => {
      const store = await newStore();
      const digest = digestOf(Buffer.from('growing'));
      const writer = await store.createBlobWriter(parseDigest(digest));
      await writer.write([Buffer.from('grow')]);
      const buffer = Buffer.alloc(7);
      await writer.read(buffer, 4, 0);
      expect(buffer.subarray(0, 4).toString()).toBe('grow');
      expect(await store.statBlob(digest)).toBeNull(); // not visible until committed
      await writer.write([Buffer.from('ing')]);
      await writer.commit();
      await writer.read(buffer, 7, 0);
      expect(buffer.toString()).toBe('growing');
      expect(await store.statBlob(digest)).toBe(7);
      await writer.release();
    });

    it('lets two writers of one digest both commit: one blob, whole, nothing else left', async () => {
      const store = await newStore();
      const bytes = Buffer.from('written twice at once');
      const digest = parseDigest(digestOf(bytes));
      const writers = await Promise.all([store.createBlobWriter(digest), store.createBlobWriter(digest)]);
      await Promise.all(writers.map((w) => w.write([bytes.subarray(0, 7)])));
      await Promise.all(writers.map((w) => w.write([bytes.subarray(7)])));
      await Promise.all(writers.map((w) => w.commit()));
      await Promise.all(writers.map((w) => w.release()));
      expect(await textOf((await store.openBlob(digest.value, () => null))!.source)).toBe(bytes.toString());
      expect(store.stats()).toMatchObject({ blobs: 1, bytes: bytes.length });
      expect((await harness.contents(store)).length).toBe(1);
    });

    it('stores a large blob written in many chunks, readable while it grows and by range after', async () => {
      const store = await newStore();
      // 20 MiB: several parts for a store that uploads in parts, so reads cross part boundaries.
      const bytes = Buffer.alloc(20 * 1024 * 1024);
      for (let i = 0; i < bytes.length; i += 4) bytes.writeUInt32BE(i, i);
      const digest = parseDigest(digestOf(bytes));
      const writer = await store.createBlobWriter(digest);
      const chunk = 512 * 1024;
      const probe = Buffer.alloc(chunk);
      for (let offset = 0; offset < bytes.length; offset += chunk) {
        await writer.write([bytes.subarray(offset, offset + chunk)]);
        await writer.read(probe, chunk, offset);
        expect(probe.equals(bytes.subarray(offset, offset + chunk))).toBe(true);
      }
      expect(await store.statBlob(digest.value)).toBeNull();
      await writer.commit();
      await writer.release();
      expect(await store.statBlob(digest.value)).toBe(bytes.length);
      const seam = 8 * 1024 * 1024;
      const part = await store.openBlob(digest.value, () => ({ start: seam - 3, end: seam + 4 }));
      const got: Buffer[] = [];
      await readAll(part!.source, (c) => got.push(Buffer.from(c)));
      expect(Buffer.concat(got).equals(bytes.subarray(seam - 3, seam + 5))).toBe(true);
      const whole = await store.openBlob(digest.value, () => null);
      const hash = createHash('sha256');
      await readAll(whole!.source, (c) => hash.update(c));
      expect(`sha256:${hash.digest('hex')}`).toBe(digest.value);
    });

    it('shows what one instance commits to another over the same content at once', async () => {
      const first = await newStore();
      const second = await harness.reopen(first, { maxSize: null });
      opened.push(second);
      await second.init();
      const digest = await putBlob(first, 'seen by both');
      expect(await second.statBlob(digest)).toBe(12);
      expect(await textOf((await second.openBlob(digest, () => null))!.source)).toBe('seen by both');
      const record = { digest, mediaType: 'x', size: 12, fetchedAt: 1 };
      await second.putTag('docker.io', 'library/app', '1', record);
      expect(await first.getTag('docker.io', 'library/app', '1')).toEqual(record);
    });

    it('keeps a manifest byte for byte with its media type, and refuses one that does not match its digest', async () => {
      const store = await newStore();
      const bytes = Buffer.from('{\n  "schemaVersion": 2\n}\n');
      const manifest = {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: digestOf(bytes),
        size: bytes.length,
        bytes,
      };
      const before = await harness.contents(store);
      await expect(store.putManifest({ ...manifest, digest: digestOf(Buffer.from('x')) })).rejects.toThrow();
      expect(await store.getManifest(digestOf(Buffer.from('x')))).toBeNull();
      expect(await harness.contents(store)).toEqual(before);
      await store.putManifest(manifest);
      const read = await store.getManifest(manifest.digest);
      expect(read?.mediaType).toBe(manifest.mediaType);
      expect(read?.bytes.equals(bytes)).toBe(true);
      expect(read?.size).toBe(bytes.length);
    });

    it('keeps tag records per registry and repository, and deletes them', async () => {
      const store = await newStore();
      const record = { digest: digestOf(Buffer.from('m')), mediaType: 'x', size: 1, fetchedAt: 5 };
      await store.putTag('docker.io', 'library/nginx', 'latest', record);
      await store.putTag('quay.io', 'library/nginx', 'latest', { ...record, fetchedAt: 6 });
      expect(await store.getTag('docker.io', 'library/nginx', 'latest')).toEqual(record);
      expect((await store.getTag('quay.io', 'library/nginx', 'latest'))?.fetchedAt).toBe(6);
      // A nested repository and a tag of its parent do not collide.
      await store.putTag('docker.io', 'library/nginx/latest', 'x', record);
      expect(await store.getTag('docker.io', 'library/nginx', 'latest')).toEqual(record);
      await store.putTag('docker.io', 'library/nginx', 'latest', { ...record, fetchedAt: 7 });
      expect((await store.getTag('docker.io', 'library/nginx', 'latest'))?.fetchedAt).toBe(7);
      await store.deleteTag('docker.io', 'library/nginx', 'latest');
      expect(await store.getTag('docker.io', 'library/nginx', 'latest')).toBeNull();
      expect(await store.getTag('docker.io', 'library/nginx/latest', 'x')).toEqual(record);
    });

    it('keeps referrers records per subject and artifactType filter, apart from tags', async () => {
      const store = await newStore();
      const subject = digestOf(Buffer.from('image'));
      const sig = { mediaType: 'm', digest: digestOf(Buffer.from('sig')), size: 3, artifactType: 'a/sig' };
      const sbom = { mediaType: 'm', digest: digestOf(Buffer.from('sbom')), size: 4, artifactType: 'a/sbom' };
      const all = { manifests: [sig, sbom], source: 'api' as const, fetchedAt: 7 };
      const signatures = { manifests: [sig], source: 'tag' as const, fetchedAt: 8 };
      await store.putReferrers('docker.io', 'library/nginx', subject, null, all);
      await store.putReferrers('docker.io', 'library/nginx', subject, 'a/sig', signatures);
      expect(await store.getReferrers('docker.io', 'library/nginx', subject, null)).toEqual(all);
      expect(await store.getReferrers('docker.io', 'library/nginx', subject, 'a/sig')).toEqual(signatures);
      // Other filters, repositories, registries and subjects have nothing cached.
      expect(await store.getReferrers('docker.io', 'library/nginx', subject, 'a/sbom')).toBeNull();
      expect(await store.getReferrers('docker.io', 'library/nginx/x', subject, null)).toBeNull();
      expect(await store.getReferrers('quay.io', 'library/nginx', subject, null)).toBeNull();
      expect(await store.getReferrers('docker.io', 'library/nginx', sig.digest, null)).toBeNull();
      // A record is neither the fallback tag of its subject nor content.
      expect(await store.getTag('docker.io', 'library/nginx', subject.replace(':', '-'))).toBeNull();
      expect(store.stats()).toMatchObject({ bytes: 0, blobs: 0, manifests: 0 });
      // Rewritten in place, and still there after a restart.
      await store.putReferrers('docker.io', 'library/nginx', subject, null, { ...all, fetchedAt: 9 });
      const again = await reopen(store, { maxSize: null });
      expect((await again.getReferrers('docker.io', 'library/nginx', subject, null))?.fetchedAt).toBe(9);
      expect(await again.getReferrers('docker.io', 'library/nginx', subject, 'a/sig')).toEqual(signatures);
    });

    it('serves everything after a restart, and evicts in last-use order across it', async () => {
      let clock = Date.now();
      const now = () => clock;
      // With a size limit from the start: a store may record last use only when it will evict.
      const roomy = { maxSize: 1024 * 1024, now };
      const first = await newStore(roomy);
      const [a, b, c] = [
        await putBlob(first, 'aaaa'),
        await putBlob(first, 'bbbb'),
        await putBlob(first, 'cccc'),
      ];
      const bytes = Buffer.from('{"m":1}');
      await first.putManifest({ mediaType: 'x/y', digest: digestOf(bytes), size: bytes.length, bytes });
      const tag = { digest: digestOf(bytes), mediaType: 'x/y', size: bytes.length, fetchedAt: 1 };
      await first.putTag('docker.io', 'library/app', '1.0', tag);
      clock += 5 * 60_000;
      expect((await first.getManifest(digestOf(bytes)))?.size).toBe(bytes.length);
      clock += 5 * 60_000;
      expect(await first.statBlob(a)).toBe(4); // a used after b and the manifest
      clock += 10 * 60_000;
      expect(await first.statBlob(c)).toBe(4); // c used last

      const second = await reopen(first, roomy);
      expect(second.stats()).toMatchObject({ blobs: 3, manifests: 1 });
      expect((await second.getManifest(digestOf(bytes)))?.bytes.equals(bytes)).toBe(true);
      expect(await second.getTag('docker.io', 'library/app', '1.0')).toEqual(tag);

      // One byte over the limit: only the least recently used entry, b, goes.
      const limited = await reopen(second, { maxSize: second.stats().bytes - 1, now });
      expect(limited.stats()).toMatchObject({ blobs: 2, manifests: 1, evictions: 1 });
      expect(await limited.statBlob(b)).toBeNull();
      expect(await limited.statBlob(a)).toBe(4);
      expect(await limited.statBlob(c)).toBe(4);
    });

    it('does not evict a blob while it is being read', async () => {
      const store = await newStore({ maxSize: 8 });
      const a = await putBlob(store, 'aaaa');
      const reading = await store.openBlob(a, () => null);
      await putBlob(store, 'bbbb');
      const c = await putBlob(store, 'cccc'); // over the limit: the LRU entry is a, but it is pinned
      expect(await textOf(reading!.source)).toBe('aaaa');
      expect(await store.statBlob(c)).toBe(4);
      expect(store.stats().bytes).toBeLessThanOrEqual(8);
      expect(store.stats().evictions).toBe(1);
    });

    it('makes room on request only when it has a size limit', async () => {
      const unlimited = await newStore();
      await putBlob(unlimited, 'kept');
      expect(await unlimited.makeRoom(4)).toBe(0);
      expect(unlimited.stats().blobs).toBe(1);
      const limited = await newStore({ maxSize: 100 });
      const old = await putBlob(limited, 'old!');
      await putBlob(limited, 'new!');
      expect(await limited.makeRoom(4)).toBe(4);
      expect(await limited.statBlob(old)).toBeNull();
    });

    it('says it is writable, and where it keeps content', async () => {
      const store = await newStore();
      await expect(store.probeWritable()).resolves.toBeUndefined();
      expect(store.location.length).toBeGreaterThan(0);
    });
  });
}

async function putBlob(store: ContentStore, text: string): Promise<string> {
  const digest = digestOf(Buffer.from(text));
  const writer = await store.createBlobWriter(parseDigest(digest));
  await writer.write([Buffer.from(text)]);
  await writer.commit();
  await writer.release();
  return digest;
}

async function textOf(source: ChunkSource): Promise<string> {
  const chunks: Buffer[] = [];
  await readAll(source, (chunk) => chunks.push(Buffer.from(chunk)), 3);
  return Buffer.concat(chunks).toString('utf8');
}
