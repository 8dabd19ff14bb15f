import { describe, expect, it } from 'vitest';
import { createBufferPool } from './buffer-pool.js';

describe('createBufferPool', () => {
  it('hands back a buffer it was given, of the size asked for', () => {
    const pool = createBufferPool(1 << 20);
    const first = pool.take(256 * 1024);
    pool.give(first);
    expect(pool.take(256 * 1024)).toBe(first);
    expect(pool.take(256 * 1024)).not.toBe(first); // taken already: a new one
  });

  it('keeps buffers by size: a kept one is not handed out for another size', () => {
    const pool = createBufferPool(1 << 20);
    const small = pool.take(64 * 1024);
    pool.give(small);
    const large = pool.take(128 * 1024);
    expect(large).not.toBe(small);
    expect(large.length).toBe(128 * 1024);
    expect(pool.take(64 * 1024)).toBe(small);
  });

  it('keeps no more than its limit idle', () => {
    const pool = createBufferPool(512 * 1024);
    const buffers = [pool.take(256 * 1024), pool.take(256 * 1024), pool.take(256 * 1024)];
    for (const buffer of buffers) pool.give(buffer);
    const again = [pool.take(256 * 1024), pool.take(256 * 1024), pool.take(256 * 1024)];
    expect(again.filter((b) => buffers.includes(b))).toHaveLength(2);
  });

  it('never keeps a view into a larger allocation', () => {
    const pool = createBufferPool(1 << 20);
    const whole = Buffer.allocUnsafeSlow(2048);
    pool.give(whole.subarray(0, 1024));
    pool.give(Buffer.from('small, from the shared pool'));
    expect(pool.take(1024).buffer).not.toBe(whole.buffer);
  });
});
