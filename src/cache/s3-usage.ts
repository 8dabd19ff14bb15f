/**
 * @module Least recently used across every replica sharing a bucket: each replica keeps an index of
 * the bucket's content (size, last use) rebuilt from listings, records its uses as small marker
 * objects whose key holds the time, and evicts down to `maxSize` oldest first — never what it is
 * serving itself, and never what a marker says another replica used within the protection window.
 */

// Why markers with the time in their key: a listing (1,000 keys per request) is the only cheap way
// to learn every object's last use at start, and a listing shows keys, sizes and LastModified only
// (the server's clock, to the second, and unchangeable without rewriting the object). So a use is
// `used/<content key>/<ms>`: one PUT, and one DELETE of this replica's previous marker, at most once
// per `touchInterval` per content key and replica. A replica serving a blob refreshes its marker every
// half interval while the read lasts, so a marker younger than two intervals means "maybe being read
// elsewhere now": eviction checks the victim's markers (one LIST) right before deleting it. Without
// `maxSize` nothing is recorded and nothing evicted (lifecycle rules can do it instead: README).
import type { S3Bucket } from './s3-bucket.js';

export interface S3UsageOptions {
  bucket: S3Bucket;
  maxSize: number | null;
  now: () => number;
  /** How often a use of one content key is recorded at most, per replica; also the re-listing period. */
  touchIntervalMs: number;
  /** Called with each evicted key (`blobs/sha256/…`, `manifests/sha256/…`). */
  onEvict?: ((key: string, size: number) => void) | undefined;
  /** A background request failed (a marker, a listing, an eviction): logged, never thrown. */
  onError(error: unknown, what: string): void;
}

interface Entry {
  size: number;
  /** The last use this replica knows of, by anyone (ms since epoch). */
  lastUse: number;
  /** When this replica last wrote a marker for it (or learnt of a use as recent). */
  touched: number;
  /** The newest marker key known for it, which the next touch replaces. */
  marker: string | undefined;
}

export type S3Usage = ReturnType<typeof createS3Usage>;

const CONTENT_KEY = /^(blobs|manifests)\/(sha256|sha512)\/[0-9a-f]{2}\/[0-9a-f]{64,128}$/;
const MARKER_PREFIX = 'used/';

export function createS3Usage(options: S3UsageOptions) {
  const { bucket, now, touchIntervalMs } = options;
  const tracking = options.maxSize !== null;
  const protectMs = 2 * touchIntervalMs;
  const entries = new Map<string, Entry>();
  const pins = new Map<string, number>();
  const writes = new Set<Promise<void>>();
  const counts = { bytes: 0, blobs: 0, manifests: 0, evictions: 0 };
  let evicting: Promise<number> = Promise.resolve(0);
  const timers: NodeJS.Timeout[] = [];

  function put(key: string, size: number, lastUse: number, touched = lastUse): Entry {
    const previous = entries.get(key);
    if (previous) counts.bytes -= previous.size;
    else counts[key.startsWith('blobs/') ? 'blobs' : 'manifests']++;
    const entry: Entry = {
      size,
      lastUse: Math.max(lastUse, previous?.lastUse ?? 0),
      touched: Math.max(touched, previous?.touched ?? 0),
      marker: previous?.marker,
    };
    entries.set(key, entry);
    counts.bytes += size;
    return entry;
  }

  function forget(key: string): void {
    const entry = entries.get(key);
    if (!entry) return;
    entries.delete(key);
    counts.bytes -= entry.size;
    counts[key.startsWith('blobs/') ? 'blobs' : 'manifests']--;
  }

  /** Runs a background request; close() waits for it. */
  function background(what: string, work: () => Promise<void>): void {
    const running: Promise<void> = work()
      .catch((error: unknown) => options.onError(error, what))
      .finally(() => writes.delete(running));
    writes.add(running);
  }

  /** Records a use in the bucket, unless this replica did within `minAgeMs`. */
  function touch(key: string, minAgeMs: number): void {
    const entry = entries.get(key);
    if (!tracking || !entry) return;
    const at = now();
    if (at - entry.touched < minAgeMs) return;
    entry.touched = at;
    const previous = entry.marker;
    const marker = `${MARKER_PREFIX}${key}/${at}`;
    entry.marker = marker;
    background(`record the use of ${key}`, async () => {
      await bucket.put(marker, new Uint8Array(0));
      if (previous !== undefined && previous !== marker) await bucket.delete(previous);
    });
  }

  /** Lists the bucket's content (and markers) into the index; what is gone from the bucket leaves it. */
  async function load(): Promise<void> {
    const found = new Map<string, { size: number; lastUse: number }>();
    for (const prefix of ['blobs/', 'manifests/']) {
      for await (const object of bucket.list(prefix)) {
        if (CONTENT_KEY.test(object.key))
          found.set(object.key, { size: object.size, lastUse: object.lastModified?.getTime() ?? 0 });
      }
    }
    const markers = new Map<string, string[]>(); // content key → its markers, oldest first
    if (tracking) {
      for await (const object of bucket.list(MARKER_PREFIX)) {
        const parsed = parseMarker(object.key);
        if (!parsed) continue;
        const list = markers.get(parsed.content) ?? [];
        list.push(object.key);
        markers.set(parsed.content, list);
      }
    }
    for (const key of entries.keys()) if (!found.has(key)) forget(key);
    for (const [key, { size, lastUse }] of found) {
      const own = markers.get(key)?.sort((a, b) => parseMarker(a)!.at - parseMarker(b)!.at) ?? [];
      const newest = own.at(-1);
      const markedAt = newest === undefined ? 0 : parseMarker(newest)!.at;
      // A marker counts as touched (a use of ours is recorded no sooner than an interval after it);
      // content without one gets a marker at its first use here, which is what protects a read.
      const entry = put(key, size, Math.max(lastUse, markedAt), markedAt);
      if (newest !== undefined) entry.marker = newest;
    }
    // Markers of content that is gone, and older markers of one key (several replicas, crashes),
    // are removed; a young one may belong to a commit this listing just missed, so it stays.
    for (const [key, list] of markers) {
      const stale = found.has(key) ? list.slice(0, -1) : list;
      for (const marker of stale) {
        if (now() - parseMarker(marker)!.at < protectMs) continue;
        background(`remove the stale marker ${marker}`, () => bucket.delete(marker));
      }
    }
  }

  /**
   * Whether a replica may be using the key right now: one of its markers is younger than the
   * protection window (markers do not say whose they are: a use of this replica's own counts too).
   * Learns the newest use either way; returns the markers to delete with the content.
   */
  async function usedElsewhere(key: string, entry: Entry): Promise<{ busy: boolean; markers: string[] }> {
    const markers: string[] = [];
    for await (const object of bucket.list(`${MARKER_PREFIX}${key}/`)) markers.push(object.key);
    let newest = 0;
    for (const marker of markers) newest = Math.max(newest, parseMarker(marker)?.at ?? 0);
    entry.lastUse = Math.max(entry.lastUse, newest);
    return { busy: now() - newest < protectMs, markers };
  }

  async function evictOnce(limit: number): Promise<number> {
    if (counts.bytes <= limit) return 0;
    // Stable sort: content used at the same moment goes in the order it was indexed.
    const candidates = [...entries].sort((a, b) => a[1].lastUse - b[1].lastUse);
    let freed = 0;
    for (const [key, entry] of candidates) {
      if (counts.bytes <= limit) break;
      if (pins.has(key) || entries.get(key) !== entry) continue;
      try {
        const { busy, markers } = tracking ? await usedElsewhere(key, entry) : { busy: false, markers: [] };
        if (busy || pins.has(key) || entries.get(key) !== entry) continue;
        await bucket.delete(key);
        forget(key);
        for (const marker of markers) background(`remove the marker ${marker}`, () => bucket.delete(marker));
      } catch (error) {
        options.onError(error, `evict ${key}`);
        break; // the store is failing: try again at the next commit or re-listing
      }
      counts.evictions++;
      freed += entry.size;
      options.onEvict?.(key, entry.size);
    }
    return freed;
  }

  /** Evicts (one pass at a time) until the index holds at most `limit`; the bytes freed. */
  function evictDownTo(limit: number): Promise<number> {
    const pass = evicting.then(() => evictOnce(limit));
    evicting = pass.catch(() => 0);
    return pass;
  }

  return {
    load,
    forget,

    sizeOf: (key: string): number | undefined => entries.get(key)?.size,

    /** The last use of the key this replica knows of (ms since epoch). */
    lastUseOf: (key: string): number | undefined => entries.get(key)?.lastUse,

    /** Content found in the bucket (by this replica's read or HEAD): indexed, and its use recorded. */
    seen(key: string, size: number): void {
      const entry = entries.get(key);
      if (!entry || entry.size !== size) put(key, size, now(), 0);
      else entry.lastUse = Math.max(entry.lastUse, now());
      touch(key, touchIntervalMs);
    },

    /** Content this replica just made visible; evicts if the bucket is now over `maxSize`. */
    async added(key: string, size: number): Promise<void> {
      // The object's own LastModified records this use: no marker needed.
      put(key, size, now(), now());
      if (options.maxSize !== null && counts.bytes > options.maxSize) await evictDownTo(options.maxSize);
    },

    /** Holds the key against eviction (and keeps its use recorded) until the release is called. */
    pin(key: string): () => void {
      pins.set(key, (pins.get(key) ?? 0) + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const left = (pins.get(key) ?? 1) - 1;
        if (left === 0) pins.delete(key);
        else pins.set(key, left);
      };
    },

    /** Frees `bytes` (at least) when there is a size limit; the bytes freed. */
    makeRoom(bytes: number): Promise<number> {
      if (options.maxSize === null) return Promise.resolve(0);
      return evictDownTo(Math.max(0, counts.bytes - bytes));
    },

    /** Evicts down to `maxSize` now (after start's listing). */
    enforce(): Promise<number> {
      return options.maxSize === null ? Promise.resolve(0) : evictDownTo(options.maxSize);
    },

    stats: () => ({ ...counts }),

    /**
     * With a size limit: refreshes the markers of what is being read every half interval, and
     * re-lists the bucket every interval (what other replicas stored and used), then evicts.
     */
    start(): void {
      if (!tracking) return;
      const heartbeat = setInterval(() => {
        for (const key of pins.keys()) touch(key, touchIntervalMs / 2);
      }, touchIntervalMs / 2);
      const relist = setInterval(() => {
        background('re-list the bucket', async () => {
          await load();
          await evictDownTo(options.maxSize!);
        });
      }, touchIntervalMs);
      for (const timer of [heartbeat, relist]) {
        timer.unref();
        timers.push(timer);
      }
    },

    /** Stops the timers and waits for the requests they started. */
    async close(): Promise<void> {
      for (const timer of timers.splice(0)) clearInterval(timer);
      await evicting;
      while (writes.size > 0) await Promise.all(writes);
    },
  };
}

function parseMarker(key: string): { content: string; at: number } | null {
  const slash = key.lastIndexOf('/');
  const content = key.slice(MARKER_PREFIX.length, slash);
  const at = Number(key.slice(slash + 1));
  if (!key.startsWith(MARKER_PREFIX) || !CONTENT_KEY.test(content) || !Number.isSafeInteger(at)) return null;
  return { content, at };
}
