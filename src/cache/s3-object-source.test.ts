/** A cached object's ranged read as a ChunkSource: byte order across overlapping reads, resumes, the pin. */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ByteRange } from '../content.js';
import type { ObjectRead } from './s3-bucket.js';
import { createObjectSource } from './s3-object-source.js';

const object = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));

/** A GET of `range` whose body breaks after `breakAfter` bytes (sent in 7-byte chunks). */
function get(range: ByteRange, breakAfter = Number.POSITIVE_INFINITY): ObjectRead {
  const bytes = object.subarray(range.start, range.end + 1);
  async function* chunks() {
    for (let i = 0; i < bytes.length; i += 7) {
      if (i >= breakAfter) throw new Error('ECONNRESET');
      yield bytes.subarray(i, Math.min(i + 7, bytes.length));
    }
  }
  return { body: Readable.from(chunks()), length: bytes.length, size: object.length };
}

async function drain(source: ReturnType<typeof createObjectSource>, size: number): Promise<Buffer> {
  const parts: Promise<Buffer>[] = [];
  // Two reads at a time, as the HTTP sender does: each must get the next bytes in call order.
  for (let i = 0; i < Math.ceil(source.length / size) + 1; i++) {
    const buffer = Buffer.alloc(size);
    parts.push(source.read(buffer).then((n) => buffer.subarray(0, n)));
  }
  return Buffer.concat(await Promise.all(parts));
}

describe('S3 object source', () => {
  it('yields the range in order to overlapping reads and lets go of its pin after the last byte', async () => {
    let released = 0;
    const source = createObjectSource({
      first: get({ start: 100, end: 899 }),
      start: 100,
      end: 899,
      reread: () => Promise.reject(new Error('not needed')),
      onClose: () => released++,
      what: 'blob x',
    });
    expect(source.length).toBe(800);
    expect((await drain(source, 64)).equals(object.subarray(100, 900))).toBe(true);
    expect(released).toBe(1);
    await source.close();
    expect(released).toBe(1);
  });

  it('resumes a broken body from the first byte it did not get', async () => {
    const rereads: ByteRange[] = [];
    const source = createObjectSource({
      first: get({ start: 0, end: 999 }, 300),
      start: 0,
      end: 999,
      reread: async (range) => {
        rereads.push(range);
        return get(range, rereads.length === 1 ? 200 : Number.POSITIVE_INFINITY);
      },
      onClose: () => {},
      what: 'blob x',
    });
    expect((await drain(source, 100)).equals(object)).toBe(true);
    expect(rereads).toEqual([
      { start: 301, end: 999 },
      { start: 504, end: 999 },
    ]);
  });

  it('fails the read once its resumes are spent, or when the object is gone', async () => {
    const broken = createObjectSource({
      first: get({ start: 0, end: 999 }, 0),
      start: 0,
      end: 999,
      reread: async (range) => get(range, 0),
      onClose: () => {},
      what: 'blob x',
      maxResumes: 2,
    });
    await expect(broken.read(Buffer.alloc(10))).rejects.toThrow('ECONNRESET');
    const vanished = createObjectSource({
      first: get({ start: 0, end: 999 }, 0),
      start: 0,
      end: 999,
      reread: async () => null,
      onClose: () => {},
      what: 'blob x',
    });
    await expect(vanished.read(Buffer.alloc(10))).rejects.toMatchObject({
      status: 503,
      message: expect.stringContaining('blob x vanished'),
    });
  });
});
