/**
 * @module The disk store's blob writer: a temp file beside the blob's final path, renamed into place
 * on commit. Reads go through a descriptor opened with the file, so they survive the rename and a
 * removal: the inode stays readable until release().
 */
import { type FileHandle, open } from 'node:fs/promises';
import type { Digest } from '../digest.js';
import type { BlobWriter } from './blob-writer.js';
import { readFully } from './file-source.js';
import { TempFile } from './temp-file.js';

export async function createDiskBlobWriter(
  finalPath: string,
  digest: Digest,
  onCommit: (size: number) => Promise<void>,
): Promise<BlobWriter> {
  const temp = await TempFile.create(finalPath, digest, { hashed: false });
  let reads: FileHandle;
  try {
    reads = await open(temp.path, 'r');
  } catch (error) {
    await temp.abort();
    throw error;
  }
  let released: Promise<void> | null = null;
  return {
    get size() {
      return temp.size;
    },
    write: (chunks) => temp.writeAll(chunks),
    read: (buffer, length, position) => readFully(reads, buffer, length, position),
    async commit() {
      await temp.commit();
      await onCommit(temp.size);
    },
    abort: () => temp.abort(),
    release() {
      // FileHandle.close waits for reads in flight.
      released ??= reads.close().catch(() => {});
      return released;
    },
  };
}
