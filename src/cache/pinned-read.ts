/** @module Opens a cached file for reading (whole or a range), holding a pin on it until the source closes. */
import { open } from 'node:fs/promises';
import { type ChunkSource, emptySource } from '../chunk-source.js';
import type { ByteRange } from '../content.js';
import { createFileSource } from './file-source.js';

/**
 * The file's size and a source of the asked range; null (pin released) when the file is missing
 * (ENOENT only: any other failure is thrown, never taken for a miss).
 * The descriptor is opened first, so a concurrent eviction or rename cannot cut the read short.
 * `range` may throw (416): the pin is released and the error passed on.
 */
export async function openPinnedRead(
  path: string,
  range: (size: number) => ByteRange | null,
  release: () => void,
): Promise<{ size: number; range: ByteRange | null; source: ChunkSource } | null> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    release();
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const info = await handle.stat();
    // A directory opens for reading too: only a regular file is a cached blob.
    if (!info.isFile()) throw Object.assign(new Error('EISDIR: not a regular file'), { code: 'EISDIR' });
    const { size } = info;
    const part = range(size);
    if (size === 0) {
      await handle.close();
      return { size, range: part, source: emptySource(release) };
    }
    return {
      size,
      range: part,
      source: createFileSource(handle, part?.start ?? 0, part ? part.end : size - 1, release),
    };
  } catch (error) {
    await handle.close().catch(() => {});
    release();
    throw error;
  }
}
