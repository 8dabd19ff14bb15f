/**
 * @module A byte range of an open file as a stream, with the next read already under way while the
 * previous chunk is written to the socket. fs.ReadStream reads one chunk at a time, leaving the
 * socket idle during each read; overlapping them serves cached blobs markedly faster (bench/).
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';

export interface FileStreamOptions {
  /** Bytes per read. */
  chunkBytes: number;
  /** Reads in flight or buffered ahead of the consumer. */
  depth: number;
}

/** Streams bytes `start..end` (inclusive) of `handle`, closing it when done, failed or destroyed. */
export function createFileStream(
  handle: FileHandle,
  start: number,
  end: number,
  { chunkBytes, depth }: FileStreamOptions,
): Readable {
  let next = start; // offset of the next read to start
  const reads: Promise<Buffer>[] = []; // in order
  let pumping = false;

  const readAt = async (position: number): Promise<Buffer> => {
    const length = Math.min(chunkBytes, end + 1 - position);
    const buffer = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
      if (bytesRead === 0) throw new Error('file ended before the expected size');
      filled += bytesRead;
    }
    return buffer;
  };
  const fill = () => {
    while (reads.length < depth && next <= end) {
      const read = readAt(next);
      read.catch(() => {}); // handled when its turn comes
      reads.push(read);
      next += chunkBytes;
    }
  };

  const stream = new Readable({
    highWaterMark: chunkBytes,
    read() {
      if (pumping) return;
      pumping = true;
      fill();
      const read = reads.shift();
      if (!read) {
        pumping = false;
        this.push(null);
        return;
      }
      read.then(
        (chunk) => {
          pumping = false;
          fill(); // keep the next reads going while this chunk is written
          this.push(chunk);
        },
        (error: Error) => {
          pumping = false;
          this.destroy(error);
        },
      );
    },
    destroy(error, callback) {
      // Let reads in flight finish before closing the descriptor they use.
      Promise.allSettled(reads)
        .then(() => handle.close())
        .then(
          () => callback(error),
          () => callback(error),
        );
    },
  });
  return stream;
}
