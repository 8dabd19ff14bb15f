/**
 * Bucket-wide LRU between replicas, over an in-memory bucket that counts requests: what each use
 * costs, the order a fresh replica learns from markers, and what a replica never evicts.
 */
import { describe, expect, it } from 'vitest';
import type { S3Bucket } from './s3-bucket.js';
import { createS3Usage } from './s3-usage.js';

const MINUTE = 60_000;
const key = (kind: 'blobs' | 'manifests', n: number) =>
  `${kind}/sha256/${n.toString(16).padStart(2, '0')}/${n.toString(16).padStart(64, '0')}`;

function fakeBucket(clock: () => number) {
  const objects = new Map<string, { size: number; lastModified: Date }>();
  const requests: string[] = [];
  const bucket = {
    async put(k: string, bytes: Uint8Array) {
      requests.push(`PUT ${k}`);
      objects.set(k, { size: bytes.length, lastModified: new Date(clock()) });
    },
    async delete(k: string) {
      requests.push(`DELETE ${k}`);
      objects.delete(k);
    },
    async *list(prefix = '') {
      requests.push(`LIST ${prefix}`);
      for (const [k, o] of [...objects].sort(([a], [b]) => a.localeCompare(b)))
        if (k.startsWith(prefix)) yield { key: k, size: o.size, lastModified: o.lastModified };
    },
  };
  return { bucket: bucket as unknown as S3Bucket, objects, requests };
}

describe('S3 usage (bucket-wide LRU)', () => {
  const setup = (maxSize: number | null) => {
    let time = Date.UTC(2026, 0, 1);
    const clock = { now: () => time, advance: (ms: number) => (time += ms) };
    const fake = fakeBucket(clock.now);
    const replica = () =>
      createS3Usage({
        bucket: fake.bucket,
        maxSize,
        now: clock.now,
        touchIntervalMs: 10 * MINUTE,
        onError: (error) => {
          throw error;
        },
      });
    return { clock, fake, replica };
  };

  it('records a use at most once per interval and replaces its own marker', async () => {
    const { clock, fake, replica } = setup(1000);
    const a = replica();
    await fake.bucket.put(key('blobs', 1), new Uint8Array(10));
    await a.load();
    fake.requests.length = 0;
    clock.advance(11 * MINUTE);
    a.seen(key('blobs', 1), 10);
    a.seen(key('blobs', 1), 10);
    clock.advance(5 * MINUTE);
    a.seen(key('blobs', 1), 10);
    await a.close();
    const first = `used/${key('blobs', 1)}/${clock.now() - 5 * MINUTE}`;
    expect(fake.requests).toEqual([`PUT ${first}`]);

    const b = replica();
    await b.load();
    clock.advance(10 * MINUTE);
    b.seen(key('blobs', 1), 10);
    await b.close();
    expect([...fake.objects.keys()].filter((k) => k.startsWith('used/'))).toEqual([
      `used/${key('blobs', 1)}/${clock.now()}`,
    ]);
  });

  it('records nothing without a size limit', async () => {
    const { clock, fake, replica } = setup(null);
    const a = replica();
    await fake.bucket.put(key('blobs', 1), new Uint8Array(10));
    await a.load();
    fake.requests.length = 0;
    clock.advance(60 * MINUTE);
    a.seen(key('blobs', 1), 10);
    await a.close();
    expect(fake.requests).toEqual([]);
    expect(a.stats()).toMatchObject({ bytes: 10, blobs: 1 });
  });

  it('learns the last use of every key from the listing and evicts the least recently used', async () => {
    const { clock, fake, replica } = setup(25);
    const a = replica();
    for (const n of [1, 2, 3]) await fake.bucket.put(key('blobs', n), new Uint8Array(10));
    await a.load();
    clock.advance(30 * MINUTE);
    a.seen(key('blobs', 1), 10); // 1 used after 2 and 3
    clock.advance(30 * MINUTE);
    a.seen(key('blobs', 3), 10);
    await a.close();

    clock.advance(60 * MINUTE);
    const fresh = replica();
    await fresh.load();
    expect(fresh.stats()).toMatchObject({ bytes: 30, blobs: 3 });
    expect(await fresh.enforce()).toBe(10);
    expect(fake.objects.has(key('blobs', 2))).toBe(false);
    expect(fake.objects.has(key('blobs', 1))).toBe(true);
    await fresh.close();
  });

  it('never evicts what it is reading, nor what a marker says another replica used just now', async () => {
    const { clock, fake, replica } = setup(100);
    const a = replica();
    const b = replica();
    for (const n of [1, 2, 3]) await fake.bucket.put(key('blobs', n), new Uint8Array(10));
    await a.load();
    await b.load();
    clock.advance(60 * MINUTE);
    const reading = a.pin(key('blobs', 1));
    b.seen(key('blobs', 2), 10); // b serves blob 2 now: its marker says so
    await b.close();

    expect(await a.makeRoom(20)).toBe(10);
    expect([...fake.objects.keys()].filter((k) => k.startsWith('blobs/'))).toEqual([
      key('blobs', 1),
      key('blobs', 2),
    ]);
    // Once the read is over and the other replica's use is old, both may go.
    reading();
    clock.advance(30 * MINUTE);
    expect(await a.makeRoom(20)).toBe(20);
    expect([...fake.objects.keys()]).toEqual([]);
    await a.close();
  });
});
