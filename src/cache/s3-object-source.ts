/**
 * @module A cached object's bytes `start..end` as a ChunkSource over a GetObject body. A body that
 * breaks off (a reset, a gateway restart, an idle timeout while the client was slow) is resumed
 * with a ranged GET from the first byte not yet received, a few times, before the read fails.
 */
import type { ChunkSource } from '../chunk-source.js';
import type { ByteRange } from '../content.js';
import { storageUnavailable } from '../errors.js';
import type { ObjectRead } from './s3-bucket.js';

export interface ObjectSourceOptions {
  /** The first GET's answer, for bytes `start..end`. */
  first: ObjectRead;
  start: number;
  end: number;
  /** A ranged GET of the same object, to resume; null when the object is gone. */
  reread(range: ByteRange): Promise<ObjectRead | null>;
  /** Called once, at close or after the last byte (the eviction pin). */
  onClose(): void;
  /** Names the object in errors. */
  what: string;
  maxResumes?: number;
}

const DEFAULT_MAX_RESUMES = 2;

export function createObjectSource(options: ObjectSourceOptions): ChunkSource {
  const { end, what } = options;
  const maxResumes = options.maxResumes ?? DEFAULT_MAX_RESUMES;
  let body = options.first.body;
  let chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let received = options.start; // the next byte the body yields
  let leftover: Buffer | null = null;
  let resumes = 0;
  let closed = false;
  let queue: Promise<unknown> = Promise.resolve();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    options.onClose();
  };

  /** The next bytes of the object, resuming a broken body. */
  async function nextChunk(): Promise<Buffer> {
    for (;;) {
      try {
        const next = await chunks.next();
        if (next.done) throw new Error(`body ended at byte ${received} of ${end + 1}`);
        received += next.value.length;
        return next.value;
      } catch (error) {
        if (closed) throw new Error('source closed');
        if (resumes >= maxResumes) throw error;
        resumes++;
        body.destroy();
        const again = await options.reread({ start: received, end });
        if (again === null) throw storageUnavailable(`${what} vanished while it was being read`);
        body = again.body;
        chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      }
    }
  }

  async function fill(buffer: Buffer): Promise<number> {
    if (closed) throw new Error('source closed');
    let filled = 0;
    const position = received - (leftover?.length ?? 0);
    const want = Math.min(buffer.length, end + 1 - position);
    while (filled < want) {
      const chunk = leftover ?? (await nextChunk());
      const n = Math.min(chunk.length, want - filled);
      chunk.copy(buffer, filled, 0, n);
      filled += n;
      leftover = n < chunk.length ? chunk.subarray(n) : null;
    }
    if (position + filled > end) {
      release(); // read to its end: the object need not be held any longer
      body.destroy();
    }
    return filled;
  }

  return {
    length: end + 1 - options.start,
    read(buffer) {
      // Calls may overlap: each takes the next bytes, in the order of the calls.
      const filled = queue.then(() => fill(buffer));
      queue = filled.catch(() => {});
      return filled;
    },
    async close() {
      if (!closed) {
        closed = true;
        body.destroy();
      }
      release();
    },
  };
}
