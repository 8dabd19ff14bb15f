/**
 * @module A verifying upload to S3: bytes are hashed as they are written and sent as multipart parts
 * as they fill, but the object appears under its key only at commit, after size and digest matched.
 */

// The multipart upload is the S3 counterpart of the disk store's temp file: its parts are invisible
// to GET and LIST until CompleteMultipartUpload, and AbortMultipartUpload drops them. Memory per
// writer is bounded by (concurrency + 1) parts, whatever the blob's size. Content smaller than one
// part never starts a multipart upload: it is verified, then sent with one PutObject.
import type { CompletedPart } from '@aws-sdk/client-s3';
import { createDigester, type Digest } from '../digest.js';
import type { RegistryError } from '../errors.js';
import type { S3Connection } from './s3-connection.js';
import { VerificationError } from './temp-file.js';

export interface S3Writer {
  /** The object's full key (prefix included). */
  readonly key: string;
  /** Bytes written so far. */
  readonly size: number;
  /**
   * Takes the chunk (copied: the caller may reuse its buffer at once); resolves when the writer can
   * take more, which waits while `concurrency` parts are still uploading.
   */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Verifies digest and size (`null`: any size), then makes the object visible. Throws
   * VerificationError on a mismatch and a storageUnavailable when S3 fails; either way nothing is
   * left behind (the upload is aborted).
   */
  commit(expectedSize: number | null): Promise<void>;
  /** Drops what was uploaded; safe to call more than once and after a failed commit. */
  abort(): Promise<void>;
}

export interface S3UploadOptions {
  /** Bytes per part (S3 wants at least 5 MiB for all but the last). */
  partSize: number;
  /** Parts uploading at once per writer. */
  concurrency: number;
  /** The expected size when known: the part size grows so the upload stays within S3's 10,000 parts. */
  sizeHint?: number | undefined;
}

const MIN_PART_SIZE = 5 * 1024 * 1024; // S3's minimum for every part but the last
const MAX_PARTS = 10_000; // S3's limit per upload

export function createS3Writer(
  connection: S3Connection,
  key: string,
  digest: Digest,
  options: S3UploadOptions,
): S3Writer {
  const { bucket } = connection;
  const partSize = Math.max(
    MIN_PART_SIZE,
    options.partSize,
    Math.ceil((options.sizeHint ?? 0) / (MAX_PARTS - 1)),
  );
  const hash = createDigester(digest.algorithm);
  let written = 0;
  let part: Buffer | undefined; // the part being filled
  let filled = 0;
  let uploadId: Promise<string> | undefined;
  const completed: CompletedPart[] = [];
  const inFlight = new Set<Promise<void>>();
  let nextPartNumber = 1;
  let failure: RegistryError | undefined;
  let state: 'open' | 'committing' | 'done' = 'open';
  let aborting: Promise<void> | undefined;

  const startUpload = () =>
    connection.call('create multipart upload', async (sdk, client) => {
      const out = await client.send(new sdk.CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      if (!out.UploadId) throw new Error('no UploadId in the answer');
      return out.UploadId;
    });

  // Never rejects: a failed part is recorded and surfaces on the next write or at commit.
  const sendPart = (body: Buffer, partNumber: number): Promise<void> => {
    uploadId ??= startUpload();
    const upload = uploadId.then((id) =>
      connection.call(`upload part ${partNumber}`, async (sdk, client) => {
        const out = await client.send(
          new sdk.UploadPartCommand({
            Bucket: bucket,
            Key: key,
            UploadId: id,
            PartNumber: partNumber,
            Body: body,
            ContentLength: body.length,
          }),
        );
        completed.push({ PartNumber: partNumber, ETag: out.ETag });
      }),
    );
    const tracked: Promise<void> = upload
      .catch((error: unknown) => {
        failure ??= connection.failure(`upload part ${partNumber}`, error);
      })
      .finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    return tracked;
  };

  const settle = async () => {
    while (inFlight.size > 0) await Promise.all(inFlight);
  };

  const abort = (): Promise<void> => {
    state = 'done';
    part = undefined;
    aborting ??= (async () => {
      // Parts still uploading could land after the abort and keep storage: let them settle first.
      await settle();
      const id = await uploadId?.catch(() => undefined);
      if (id === undefined) return;
      await connection.call('abort multipart upload', (sdk, client) =>
        client.send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id })),
      );
    })();
    return aborting;
  };

  const failAndAbort = async (error: unknown): Promise<never> => {
    await abort().catch(() => {
      // The stale-upload cleanup takes what an abort could not; the first error is the one to report.
    });
    throw error;
  };

  return {
    key,
    get size() {
      return written;
    },

    async write(chunk) {
      if (state !== 'open') throw new Error(`write after ${state === 'done' ? 'commit or abort' : 'commit'}`);
      if (failure) throw failure;
      hash.update(chunk);
      written += chunk.length;
      let offset = 0;
      while (offset < chunk.length) {
        part ??= Buffer.allocUnsafe(partSize);
        const n = Math.min(chunk.length - offset, partSize - filled);
        part.set(chunk.subarray(offset, offset + n), filled);
        filled += n;
        offset += n;
        if (filled === partSize) {
          // Backpressure: at most `concurrency` parts in the air, one more filling.
          while (inFlight.size >= options.concurrency) await Promise.race(inFlight);
          if (failure) throw failure;
          if (nextPartNumber > MAX_PARTS) throw connection.failure('upload', new Error('too many parts'));
          void sendPart(part, nextPartNumber++);
          part = undefined;
          filled = 0;
        }
      }
    },

    async commit(expectedSize) {
      if (state !== 'open') throw new Error('commit after commit or abort');
      state = 'committing';
      const actual = hash.digest('hex');
      if (actual !== digest.hex || (expectedSize !== null && written !== expectedSize)) {
        return failAndAbort(
          new VerificationError(
            `content does not match ${digest.value}: got ${digest.algorithm}:${actual}, ${written} bytes`,
          ),
        );
      }
      try {
        if (uploadId === undefined) {
          const body = (part ?? Buffer.alloc(0)).subarray(0, filled);
          await connection.call('put object', (sdk, client) =>
            client.send(
              new sdk.PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length }),
            ),
          );
          state = 'done';
          return;
        }
        if (filled > 0 && part) void sendPart(part.subarray(0, filled), nextPartNumber++);
        part = undefined;
        await settle();
        if (failure) throw failure;
        // An abort() that came while the parts settled wins: it may have dropped the upload already.
        if (aborting) throw new Error('aborted during commit');
        const id = await uploadId;
        const parts = [...completed].sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
        // RGW answers with an empty ETag here (a known bug), so nothing relies on it.
        await connection.call('complete multipart upload', (sdk, client) =>
          client.send(
            new sdk.CompleteMultipartUploadCommand({
              Bucket: bucket,
              Key: key,
              UploadId: id,
              MultipartUpload: { Parts: parts },
            }),
          ),
        );
        state = 'done';
      } catch (error) {
        return failAndAbort(error);
      }
    },

    abort,
  };
}
