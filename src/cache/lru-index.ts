/**
 * @module The in-memory index of cached content: sizes in least-recently-used order (lru-cache),
 * the total, and pins on content being served, which eviction skips.
 */
import { LRUCache } from 'lru-cache';

export interface IndexEntry {
  size: number;
}

export class LruIndex {
  // Used for its ordering only: we evict ourselves so that pinned entries can be skipped.
  private readonly entries = new LRUCache<string, IndexEntry>({
    maxSize: Number.MAX_SAFE_INTEGER,
    sizeCalculation: (entry) => entry.size + 1, // lru-cache wants sizes > 0; empty blobs exist
  });
  private readonly pins = new Map<string, number>();
  private bytes = 0;

  get totalBytes(): number {
    return this.bytes;
  }

  get count(): number {
    return this.entries.size;
  }

  countWithPrefix(prefix: string): number {
    let n = 0;
    for (const key of this.entries.keys()) if (key.startsWith(prefix)) n++;
    return n;
  }

  /** Every key, most recently used first (a copy: entries may be removed while going through it). */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Adds or refreshes an entry as the most recently used. */
  add(key: string, size: number): void {
    const previous = this.entries.peek(key);
    if (previous) this.bytes -= previous.size;
    this.entries.set(key, { size });
    this.bytes += size;
  }

  /** Marks an entry as the most recently used. */
  touch(key: string): void {
    this.entries.get(key);
  }

  remove(key: string): void {
    const entry = this.entries.peek(key);
    if (!entry) return;
    this.entries.delete(key);
    this.bytes -= entry.size;
  }

  pin(key: string): () => void {
    this.pins.set(key, (this.pins.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.pins.get(key) ?? 1) - 1;
      if (left === 0) this.pins.delete(key);
      else this.pins.set(key, left);
    };
  }

  isPinned(key: string): boolean {
    return this.pins.has(key);
  }

  /**
   * Picks least-recently-used, unpinned entries until the total would be at most `limit`, removes
   * them from the index and returns them for the caller to delete from storage.
   */
  evictUntil(limit: number): { key: string; size: number }[] {
    const victims: { key: string; size: number }[] = [];
    let bytes = this.bytes;
    for (const key of this.entries.rkeys()) {
      if (bytes <= limit) break;
      if (this.pins.has(key)) continue;
      const { size } = this.entries.peek(key)!;
      bytes -= size;
      victims.push({ key, size });
    }
    for (const { key } of victims) this.remove(key);
    return victims;
  }
}
