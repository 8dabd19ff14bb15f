/**
 * @module Body buffers kept from one response for the next. A response's buffers live as long as it
 * takes to send a blob, long enough to be promoted to V8's old generation, where a dead one waits
 * for a full collection, which a small heap runs rarely: allocating per response made the resident
 * size climb by megabytes over a few sequential downloads (bench/RESULTS.md). Taken from the pool,
 * the same few buffers serve them all.
 */

export interface BufferPool {
  /** A buffer of exactly `size` bytes, kept or new; its content is whatever it held before. */
  take(size: number): Buffer;
  /** Keeps `buffer` for a later take(); call only once nothing reads or writes it any more. */
  give(buffer: Buffer): void;
}

/** Keeps up to `maxIdleBytes` of buffers between responses, by size; beyond that they are dropped. */
export function createBufferPool(maxIdleBytes: number): BufferPool {
  const idle = new Map<number, Buffer[]>();
  let idleBytes = 0;
  return {
    take(size) {
      const buffer = idle.get(size)?.pop();
      if (!buffer) return Buffer.allocUnsafe(size);
      idleBytes -= size;
      return buffer;
    },
    give(buffer) {
      // A view into another allocation (Buffer's shared pool) must not be handed out as a whole.
      if (buffer.byteOffset !== 0 || buffer.byteLength !== buffer.buffer.byteLength) return;
      if (idleBytes + buffer.length > maxIdleBytes) return;
      const list = idle.get(buffer.length);
      if (list) list.push(buffer);
      else idle.set(buffer.length, [buffer]);
      idleBytes += buffer.length;
    },
  };
}
