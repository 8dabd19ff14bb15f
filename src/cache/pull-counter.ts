/**
 * @module Pulls per tag, for `ls` and the status page: counted in memory as clients pull (a
 * manifest request by tag that succeeded), and added to the tag's pull counts on disk at most once
 * a minute (and when the process stops), so a busy tag costs one small write a minute, not one per
 * pull.
 */
import type { InventoryStore } from './inventory-store.js';

// Often enough for "last pulled" to be right to the minute; rare enough to cost nothing.
const PULLS_FLUSH_MS = 60_000;

interface Pending {
  registry: string;
  repository: string;
  tag: string;
  count: number;
  at: number;
}

export interface PullCounterOptions {
  store: Pick<InventoryStore, 'addPulls'>;
  now?: () => number;
  /** A record that could not be updated (the disk): for the log; the counts are kept for the next flush. */
  onError?: (error: unknown) => void;
}

export type PullCounter = ReturnType<typeof createPullCounter>;

export function createPullCounter(options: PullCounterOptions) {
  const now = options.now ?? Date.now;
  const pending = new Map<string, Pending>();
  let flushing: Promise<void> | null = null;
  const timer = setInterval(() => void flush(), PULLS_FLUSH_MS);
  timer.unref();

  async function writeAll(): Promise<void> {
    const batch = [...pending.values()];
    pending.clear();
    for (const entry of batch) {
      try {
        await options.store.addPulls(entry.registry, entry.repository, entry.tag, entry.count, entry.at);
      } catch (error) {
        options.onError?.(error);
        const key = keyOf(entry.registry, entry.repository, entry.tag);
        const later = pending.get(key);
        pending.set(key, { ...entry, count: entry.count + (later?.count ?? 0), at: later?.at ?? entry.at });
      }
    }
  }

  /** Writes what was counted since the last flush into the tag records. */
  function flush(): Promise<void> {
    flushing ??= writeAll().finally(() => {
      flushing = null;
    });
    return flushing;
  }

  return {
    /** One pull of `registry/repository:tag`. */
    pulled(registry: string, repository: string, tag: string): void {
      const key = keyOf(registry, repository, tag);
      const entry = pending.get(key);
      if (entry) {
        entry.count++;
        entry.at = now();
      } else pending.set(key, { registry, repository, tag, count: 1, at: now() });
    },
    /** Pulls counted but not written yet (the status page adds them to the records'). */
    unwritten(registry: string, repository: string, tag: string): { count: number; at: number } | null {
      const entry = pending.get(keyOf(registry, repository, tag));
      return entry ? { count: entry.count, at: entry.at } : null;
    },
    flush,
    /** Stops the timer and writes what is left. */
    async close(): Promise<void> {
      clearInterval(timer);
      await flush();
      if (pending.size > 0) await flush();
    },
  };
}

const keyOf = (registry: string, repository: string, tag: string) => `${registry}/${repository}:${tag}`;
