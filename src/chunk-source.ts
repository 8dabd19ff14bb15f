/**
 * @module Blob bytes as a source that fills buffers the caller owns. The HTTP layer recycles a few
 * buffers per response (reading the next chunk while the previous one is written), so serving many
 * clients allocates almost nothing per byte: memory stays flat and the garbage collector idle.
 */
import { Readable } from 'node:stream';

export interface ChunkSource {
  /** Bytes this source yields in all. */
  readonly length: number;
  /**
   * How a reader should buffer: chunk size and how many buffers. A download followed by many
   * clients at once wants less per client than a cached file served to a few.
   */
  readonly buffering?: { chunkBytes: number; buffers: number };
  /**
   * Fills `buffer` (up to its length) with the next bytes and resolves how many; 0 at the end.
   * Calls may overlap: each takes the next bytes in the order of the calls.
   */
  read(buffer: Buffer): Promise<number>;
  /** Releases what the source holds (descriptor, pin); safe to call more than once. */
  close(): Promise<void>;
}

/** A source of no bytes (an empty blob). */
export function emptySource(onClose: () => void = () => {}): ChunkSource {
  let closed = false;
  return {
    length: 0,
    read: async () => 0,
    async close() {
      if (!closed) onClose();
      closed = true;
    },
  };
}

/** Reads a whole source, a buffer at a time, for consumers that want every byte (tests, warm-up). */
export async function readAll(
  source: ChunkSource,
  onChunk: (chunk: Buffer) => void,
  chunkBytes = 1 << 20,
): Promise<void> {
  const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(chunkBytes, source.length)));
  try {
    for (let n = await source.read(buffer); n > 0; n = await source.read(buffer))
      onChunk(buffer.subarray(0, n));
  } finally {
    await source.close();
  }
}

/** The source as a Readable stream (fresh buffers: for callers without a Node response to write to). */
export function toReadable(source: ChunkSource, chunkBytes = 1 << 20): Readable {
  return new Readable({
    read() {
      const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(chunkBytes, source.length)));
      source.read(buffer).then(
        (n) => this.push(n === 0 ? null : buffer.subarray(0, n)),
        (error: Error) => this.destroy(error),
      );
    },
    destroy(error, callback) {
      source.close().then(
        () => callback(error),
        () => callback(error),
      );
    },
  });
}
