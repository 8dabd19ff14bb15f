/** @module Opens a cached file for streaming (whole or a range) and holds a pin on it until the stream closes. */
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ByteRange } from '../content.js';
import { createFileStream } from './file-stream.js';

// Two reads ahead: one being written to the socket, one being read from disk.
const READ_AHEAD = 2;

/**
 * The file's size and a stream of the asked range; null (pin released) when the file is gone.
 * The descriptor is opened first, so a concurrent eviction or rename cannot cut the stream short.
 * `range` may throw (416): the pin is released and the error passed on.
 */
export async function openPinnedRead(
  path: string,
  range: (size: number) => ByteRange | null,
  chunkBytes: number,
  release: () => void,
): Promise<{ size: number; range: ByteRange | null; stream: Readable } | null> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    release();
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const { size } = await handle.stat();
    const part = range(size);
    if (size === 0) {
      // createReadStream cannot express "no bytes" (end is inclusive).
      await handle.close();
      const stream = Readable.from([]);
      stream.once('close', release);
      return { size, range: part, stream };
    }
    const stream = createFileStream(handle, part?.start ?? 0, part ? part.end : size - 1, {
      chunkBytes,
      depth: READ_AHEAD,
    });
    stream.once('close', release);
    return { size, range: part, stream };
  } catch (error) {
    await handle.close().catch(() => {});
    release();
    throw error;
  }
}
