/**
 * The S3 store's operations against a real S3 server (Ceph RADOS Gateway 16 on a one-node cluster):
 * what an upload of a growing local file leaves in the bucket before and after complete, what an
 * aborted one leaves (nothing), ranged reads, presigned URLs, and a gateway that stops and comes back.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createS3Bucket, type S3Bucket } from '../../src/cache/s3-bucket.js';
import { RegistryError } from '../../src/errors.js';
import { type Rgw, startRgw } from './harness/ceph-rgw.js';
import { createCleanup } from './harness/cleanup.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';

const MiB = 1024 * 1024;
const BUCKET = 'pullcache-e2e';
const PREFIX = 'cache/';
// Parts upload in the background: on a busy 2-core machine the first can take seconds to land.
const PARTS_ON_THE_WAY = { timeout: 20_000, interval: 100 };

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const blobKey = (digest: string) => `blobs/sha256/${digest.slice(7)}`;

describe('S3 bucket operations on RADOS Gateway', () => {
  const cleanup = createCleanup();
  let rgw: Rgw;
  /** The SDK used directly, to look at the bucket behind the module's back. */
  let admin: S3Client;
  let bucket: S3Bucket;
  let spoolDir: string;
  let spools = 0;

  /** An upload of bytes appended to a local file, as the S3 store's spool does it. */
  const fileUpload = async (key: string) => {
    const path = join(spoolDir, `spool-${spools++}`);
    await writeFile(path, '');
    let size = 0;
    const upload = bucket.createUpload(key, {
      readRange: (start, end) => createReadStream(path, { start, end }),
    });
    return {
      async write(chunk: Uint8Array) {
        await appendFile(path, chunk);
        size += chunk.length;
        upload.extend(size);
      },
      complete: () => upload.complete(size),
      abort: () => upload.abort(),
    };
  };

  beforeAll(async () => {
    rgw = cleanup.add(await startRgw(), (r) => r.stop());
    console.info(`RADOS Gateway one-node cluster up in ${rgw.startupMs} ms`);
    // The module takes its credentials from the SDK's standard chain, as in production.
    vi.stubEnv('AWS_ACCESS_KEY_ID', rgw.accessKeyId);
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', rgw.secretAccessKey);
    // Node 20 is supported until 2027; the SDK's notice about it is noise in the test output.
    vi.stubEnv('AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED', 'true');
    cleanup.defer(() => vi.unstubAllEnvs());
    admin = new S3Client({
      endpoint: rgw.endpoint,
      region: rgw.region,
      forcePathStyle: true,
      credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    cleanup.defer(() => admin.destroy());
    await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
    bucket = createS3Bucket({ bucket: BUCKET, endpoint: rgw.endpoint, region: rgw.region, prefix: PREFIX });
    cleanup.defer(() => bucket.close());
    spoolDir = await makeTempDir('s3-spool');
    cleanup.defer(() => removeDir(spoolDir));
  });
  afterAll(() => cleanup.run());

  const objectKeys = async (prefix = '') =>
    (await admin.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }))).Contents?.map(
      (o) => o.Key,
    ) ?? [];
  const openUploads = async (prefix = '') =>
    (await admin.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }))).Uploads?.map(
      (u) => u.Key,
    ) ?? [];
  const readAll = async (read: Awaited<ReturnType<S3Bucket['read']>>) => {
    const chunks: Buffer[] = [];
    for await (const chunk of read!.body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  };

  it('makes a 40 MiB multipart upload visible only at complete', async () => {
    const blob = randomBytes(40 * MiB);
    const digest = sha256(blob);
    const key = blobKey(digest);
    const writer = await fileUpload(key);

    for (let offset = 0; offset < blob.length; offset += MiB) {
      await writer.write(blob.subarray(offset, offset + MiB));
      if (offset === 24 * MiB) {
        await vi.waitFor(
          async () => expect(await openUploads(PREFIX)).toEqual([PREFIX + key]),
          PARTS_ON_THE_WAY,
        );
        // Three parts filled: parts are on their way (read back from the file), yet nothing is visible.
        expect(await objectKeys(PREFIX)).not.toContain(PREFIX + key);
        expect(await bucket.head(key)).toBeNull();
        const uploads = await admin.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: PREFIX }));
        await vi.waitFor(async () => {
          const parts = await admin.send(
            new ListPartsCommand({
              Bucket: BUCKET,
              Key: PREFIX + key,
              UploadId: uploads.Uploads?.[0]?.UploadId,
            }),
          );
          expect(parts.Parts?.length).toBeGreaterThanOrEqual(1);
        }, PARTS_ON_THE_WAY);
      }
    }
    expect(await objectKeys(PREFIX)).not.toContain(PREFIX + key);

    await writer.complete();

    expect(await objectKeys(PREFIX)).toContain(PREFIX + key);
    expect(await openUploads(PREFIX)).toEqual([]);
    expect(await bucket.head(key)).toBe(blob.length);
    const read = await bucket.read(key);
    expect(read?.size).toBe(blob.length);
    expect(sha256(await readAll(read))).toBe(digest);
  });

  describe('an aborted upload leaves nothing behind', () => {
    const cases = [
      // Three parts and more: the third waits for one of the first two, so the upload surely exists.
      { name: 'multipart', size: 25 * MiB },
      { name: 'smaller than a part', size: 100_000 },
    ] as const;
    it.each(cases)('$name', async ({ size }) => {
      const blob = randomBytes(size);
      const key = blobKey(sha256(blob));
      const writer = await fileUpload(key);
      for (let offset = 0; offset < blob.length; offset += MiB)
        await writer.write(blob.subarray(offset, offset + MiB));
      if (size > 8 * MiB)
        await vi.waitFor(
          async () => expect(await openUploads(PREFIX + key)).toEqual([PREFIX + key]),
          PARTS_ON_THE_WAY,
        );

      await writer.abort();
      await writer.abort();

      expect(await objectKeys(PREFIX + key)).toEqual([]);
      expect(await openUploads(PREFIX)).toEqual([]);
      expect(await bucket.head(key)).toBeNull();
      await expect(writer.complete()).rejects.toThrow(/after/);
    });
  });

  it('reads byte ranges: first byte, last byte, across a part boundary, whole', async () => {
    const blob = randomBytes(20 * MiB + 123);
    const digest = sha256(blob);
    const writer = await fileUpload(blobKey(digest));
    await writer.write(blob);
    await writer.complete();

    for (const range of [
      { start: 0, end: 0 },
      { start: blob.length - 1, end: blob.length - 1 },
      { start: 8 * MiB - 100, end: 8 * MiB + 100 },
      { start: 0, end: blob.length - 1 },
    ]) {
      const read = await bucket.read(blobKey(digest), range);
      expect(read?.size).toBe(blob.length);
      expect(read?.length).toBe(range.end - range.start + 1);
      expect((await readAll(read)).equals(blob.subarray(range.start, range.end + 1))).toBe(true);
    }
  });

  it('answers null for a key that is not there (head, read, get)', async () => {
    expect(await bucket.head('no/such/key')).toBeNull();
    expect(await bucket.read('no/such/key')).toBeNull();
    expect(await bucket.read('no/such/key', { start: 0, end: 9 })).toBeNull();
    expect(await bucket.get('no/such/key', 1024)).toBeNull();
  });

  it('a bucket that does not exist is an error, not a miss', async () => {
    const missing = createS3Bucket({ bucket: 'no-such-bucket', endpoint: rgw.endpoint, region: rgw.region });
    try {
      await expect(missing.checkBucket()).rejects.toMatchObject({ status: 503, code: 'UNAVAILABLE' });
      await expect(missing.get('x', 10)).rejects.toMatchObject({ detail: { reason: 'NoSuchBucket' } });
    } finally {
      missing.close();
    }
    await bucket.checkBucket();
  });

  it('stores, lists (page by page) and deletes small objects under its prefix only', async () => {
    const other = createS3Bucket({
      bucket: BUCKET,
      endpoint: rgw.endpoint,
      region: rgw.region,
      prefix: 'other',
    });
    try {
      for (let i = 0; i < 5; i++)
        await bucket.put(`tags/demo/${i}`, Buffer.from(`record ${i}`), 'application/json');
      await other.put('tags/demo/x', Buffer.from('elsewhere'));

      expect((await bucket.get('tags/demo/3', 1024))?.toString()).toBe('record 3');
      const listed: string[] = [];
      for await (const object of bucket.list('tags/', 2)) listed.push(`${object.key}:${object.size}`);
      expect(listed).toEqual([0, 1, 2, 3, 4].map((i) => `tags/demo/${i}:8`));
      expect(await objectKeys('other/')).toEqual(['other/tags/demo/x']);

      await expect(bucket.get('tags/demo/3', 4)).rejects.toMatchObject({ status: 503 });

      await bucket.delete('tags/demo/3');
      await bucket.delete('tags/demo/3');
      expect(await bucket.get('tags/demo/3', 1024)).toBeNull();
      expect(await objectKeys(`${PREFIX}tags/`)).toHaveLength(4);
    } finally {
      other.close();
    }
  });

  it('aborts multipart uploads older than the bound, under its prefix only', async () => {
    // What a crashed writer leaves: an upload with a part, never completed nor aborted.
    const leftOver = async (key: string) => {
      const { UploadId } = await admin.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
      await admin.send(
        new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: randomBytes(1024) }),
      );
      return UploadId;
    };
    await leftOver(`${PREFIX}blobs/sha256/crashed`);
    const outsideId = await leftOver('elsewhere/crashed');
    cleanup.defer(() =>
      admin.send(
        new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'elsewhere/crashed', UploadId: outsideId }),
      ),
    );
    const hour = 3_600_000;

    expect(await bucket.abortStaleUploads(hour)).toEqual([]);
    expect(await openUploads(PREFIX)).toEqual([`${PREFIX}blobs/sha256/crashed`]);

    expect(await bucket.abortStaleUploads(hour, new Date(Date.now() + 2 * hour))).toEqual([
      'blobs/sha256/crashed',
    ]);
    expect(await openUploads(PREFIX)).toEqual([]);
    expect(await openUploads('elsewhere/')).toEqual(['elsewhere/crashed']);
  });

  it('presigns a GET that plain fetch can follow; the unsigned URL is refused', async () => {
    const bytes = randomBytes(300_000);
    await bucket.put('presigned', bytes);
    const url = await bucket.presignGet('presigned', 30);
    expect(url).toContain('X-Amz-Expires=30');

    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);

    const unsigned = await fetch(`${rgw.endpoint}/${BUCKET}/${PREFIX}presigned`);
    await unsigned.body?.cancel();
    expect(unsigned.status).toBe(403);
  });

  it('fails fast with a clear storage error while the gateway is down, and works again after, same client', async () => {
    const bytes = randomBytes(10 * MiB);
    const digest = sha256(bytes);
    await bucket.put('before-stop', Buffer.from('still here'));
    const large = randomBytes(48 * MiB);
    const largeWriter = await fileUpload('large');
    await largeWriter.write(large);
    await largeWriter.complete();
    // A read under way when the gateway goes: its body fails with the store's error, not a short end.
    const reading = await bucket.read('large');
    const body = reading!.body[Symbol.asyncIterator]();
    expect((await body.next()).done).toBe(false);
    await rgw.stopGateway();
    const broken = await (async () => {
      let received = 0;
      for (;;) {
        const next = await body.next();
        if (next.done) return received;
        received += (next.value as Buffer).length;
      }
    })().then(
      (received) => `ended after ${received} bytes`,
      (e: unknown) => e,
    );
    expect(broken).toBeInstanceOf(RegistryError);
    expect(broken).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    try {
      const started = Date.now();
      const error = await bucket.head('before-stop').then(
        () => undefined,
        (e: unknown) => e,
      );
      // Generous: three tries of a refused connection, with the SDK's backoff between them.
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(error).toBeInstanceOf(RegistryError);
      const e = error as RegistryError;
      expect(e).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
      expect(e.message).toContain(`S3 bucket ${BUCKET} at ${rgw.endpoint}`);
      expect(e.detail).toMatchObject({ reason: 'ECONNREFUSED', bucket: BUCKET, endpoint: rgw.endpoint });
      const shown = `${e.message} ${JSON.stringify(e.detail)} ${JSON.stringify(e.toBody())}`;
      expect(shown).not.toContain(rgw.secretAccessKey);
      expect(shown).not.toContain(rgw.accessKeyId);

      // A writer cannot commit either, and says so the same way.
      const writer = await fileUpload(blobKey(digest));
      await writer.write(bytes);
      await expect(writer.complete()).rejects.toMatchObject({ status: 503, code: 'UNAVAILABLE' });
      await expect(bucket.list().next()).rejects.toMatchObject({ status: 503 });
    } finally {
      await rgw.startGateway();
    }

    expect((await bucket.get('before-stop', 100))?.toString()).toBe('still here');
    const writer = await fileUpload(blobKey(digest));
    await writer.write(bytes);
    await writer.complete();
    expect(await bucket.head(blobKey(digest))).toBe(bytes.length);
    expect(await openUploads(PREFIX)).toEqual([]);
  });
});
