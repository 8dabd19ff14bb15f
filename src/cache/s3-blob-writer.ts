/**
 * @module The S3 store's blob writer: bytes go to a spool file in the local storage folder, which
 * the clients of the download read, and from which full parts are uploaded as they fill; the object
 * appears in the bucket only at commit, which the download calls after it verified every byte.
 */

// Memory per writer is a few stream buffers (parts are read back from the spool, not held), whatever
// the blob's size or the store's latency; the spool holds the blob on local disk until the last
// reader is done. The spool path is removed at commit or abort: readers keep their descriptor.
// A multipart upload that exists gets a small record file beside the spools, so that a crash leaves
// something to clean up by: the next start on this host aborts the uploads of writers that are gone.
import { type FileHandle, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../digest.js';
import { storageUnavailable } from '../errors.js';
import type { BlobWriter } from './blob-writer.js';
import { createRangeStream, readFully } from './file-source.js';
import type { S3Bucket } from './s3-bucket.js';
import { TempFile } from './temp-file.js';
import { tempName } from './temp-name.js';

export interface S3BlobWriterOptions {
  bucket: S3Bucket;
  /** The object's key, relative to the bucket's prefix. */
  key: string;
  digest: Digest;
  /** The local folder for spool files and upload records. */
  spoolDir: string;
  /** Called once the object is visible, with its size. */
  onCommit(size: number): Promise<void>;
}

/** What an upload record holds: enough to abort the upload of a writer that died. */
export interface UploadRecord {
  key: string;
  uploadId: string;
}

/** Upload records are temp files with this label; spool files have the digest's first hex digits. */
export const UPLOAD_RECORD_LABEL = 'upload';

export async function createS3BlobWriter(options: S3BlobWriterOptions): Promise<BlobWriter> {
  const { bucket, key, spoolDir } = options;
  const spool = await TempFile.create(join(spoolDir, options.digest.hex), options.digest, {
    hashed: false,
  }).catch((error: unknown) => {
    throw spoolFailure(spoolDir, error);
  });
  let reads: FileHandle;
  try {
    reads = await open(spool.path, 'r');
  } catch (error) {
    await spool.abort();
    throw spoolFailure(spoolDir, error);
  }
  const recordPath = join(spoolDir, tempName(UPLOAD_RECORD_LABEL));
  let recorded: Promise<void> | undefined;
  const upload = bucket.createUpload(key, {
    // One descriptor for every part (and every try of one), closed at release.
    readRange: (start, end) => createRangeStream(reads, start, end),
    onStarted(uploadId) {
      const record: UploadRecord = { key, uploadId };
      // Best effort: without the record a crash leaves the upload to the age-based cleanup.
      recorded = writeFile(recordPath, JSON.stringify(record)).catch(() => {});
    },
  });
  const forgetUpload = async () => {
    await recorded;
    if (recorded) await rm(recordPath, { force: true });
  };
  let released: Promise<void> | null = null;

  return {
    get size() {
      return spool.size;
    },
    async write(chunks) {
      try {
        await spool.writeAll(chunks);
      } catch (error) {
        // Not a "store full" error: evicting from the bucket would not free this disk.
        throw spoolFailure(spoolDir, error);
      }
      upload.extend(spool.size);
    },
    read: (buffer, length, position) => readFully(reads, buffer, length, position),
    async commit() {
      try {
        await upload.complete(spool.size);
      } finally {
        await spool.abort(); // the path only: readers keep their descriptor
      }
      await forgetUpload();
      await options.onCommit(spool.size);
    },
    async abort() {
      await spool.abort();
      await upload.abort();
      // Only once S3 took the abort: otherwise the record lets the next start retry it.
      await forgetUpload();
    },
    release() {
      // FileHandle.close waits for reads in flight.
      released ??= reads.close().catch(() => {});
      return released;
    },
  };
}

function spoolFailure(spoolDir: string, error: unknown) {
  const { code, message } = error as NodeJS.ErrnoException;
  return storageUnavailable(
    `cannot spool a blob in ${spoolDir}: ${code ?? String(message ?? error).split(', ')[0]}`,
    error,
  );
}
