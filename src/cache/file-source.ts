/**
 * @module A byte range of an open file as a ChunkSource or a stream (positional reads, so reads may
 * overlap and any number of them may share the descriptor, which they never close).
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ChunkSource } from '../chunk-source.js';

/** Fills `buffer[0..length)` from `position` of the file; a file shorter than that is an error. */
export async function readFully(
  handle: FileHandle,
  buffer: Buffer,
  length: number,
  position: number,
): Promise<void> {
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) throw new Error('cached file ended before its expected size');
    filled += bytesRead;
  }
}

/** Bytes `start..end` (inclusive) of `handle`; closing closes the handle and calls `onClose`. */
export function createFileSource(
  handle: FileHandle,
  start: number,
  end: number,
  onClose: () => void,
): ChunkSource {
  let next = start;
  let closed: Promise<void> | null = null;
  return {
    length: end + 1 - start,
    async read(buffer) {
      const position = next;
      const length = Math.max(0, Math.min(buffer.length, end + 1 - position));
      next += length;
      await readFully(handle, buffer, length, position);
      return length;
    },
    close() {
      // FileHandle.close waits for reads in flight, so a concurrent read never hits a reused descriptor.
      closed ??= handle.close().finally(onClose);
      return closed;
    },
  };
}

const STREAM_CHUNK_BYTES = 256 * 1024; // 256 KiB per read: few system calls, little held per stream

/**
 * Bytes `start..end` (inclusive) of `handle` as a stream that leaves the descriptor open (Node's own
 * FileHandle streams add a listener to the handle per stream, which a long upload would pile up).
 */
export function createRangeStream(handle: FileHandle, start: number, end: number): Readable {
  let next = start;
  return new Readable({
    highWaterMark: STREAM_CHUNK_BYTES,
    read() {
      const length = Math.min(STREAM_CHUNK_BYTES, end + 1 - next);
      if (length <= 0) {
        this.push(null);
        return;
      }
      const buffer = Buffer.allocUnsafe(length);
      readFully(handle, buffer, length, next).then(
        () => {
          next += length;
          this.push(buffer);
        },
        (error: Error) => this.destroy(error),
      );
    },
  });
}
