import { describe, expect, it } from 'vitest';
import { LruIndex } from './lru-index.js';

describe('LruIndex', () => {
  it('evicts least recently used first, down to the limit', () => {
    const index = new LruIndex();
    index.add('a', 100);
    index.add('b', 100);
    index.add('c', 100);
    index.touch('a');
    expect(index.evictUntil(150)).toEqual([
      { key: 'b', size: 100 },
      { key: 'c', size: 100 },
    ]);
    expect(index.totalBytes).toBe(100);
    expect(index.has('a')).toBe(true);
  });

  it('never evicts pinned entries, and releases pins once', () => {
    const index = new LruIndex();
    index.add('a', 100);
    index.add('b', 100);
    const release = index.pin('a');
    const again = index.pin('a');
    expect(index.evictUntil(0)).toEqual([{ key: 'b', size: 100 }]);
    release();
    release(); // a second call of one release must not drop the other pin
    expect(index.isPinned('a')).toBe(true);
    again();
    expect(index.evictUntil(0)).toEqual([{ key: 'a', size: 100 }]);
    expect(index.count).toBe(0);
  });

  it('keeps the total right when an entry is replaced or removed, including empty ones', () => {
    const index = new LruIndex();
    index.add('a', 10);
    index.add('a', 30);
    index.add('empty', 0);
    expect(index.totalBytes).toBe(30);
    expect(index.count).toBe(2);
    index.remove('a');
    index.remove('missing');
    expect(index.totalBytes).toBe(0);
    expect(index.countWithPrefix('emp')).toBe(1);
  });
});
