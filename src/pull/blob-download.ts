/**
 * @module One upstream download of one blob, shared by every client that wants it. Bytes go from
 * the upstream socket into the store's writer (hashed here as they arrive); clients read through
 * the download as it grows, so memory does not grow with blob size or client count and a slow
 * client never slows the download. A broken upstream connection is resumed with a Range request;
 * bytes that do not verify fail every reader and nothing is stored. Clients going away never cancel
 * it: the cache still wants the blob.
 *
 * When the store fails (disk full, EIO, read-only), the upstream is not asked again: the download
 * goes on without storing (pass-through), handing the attached clients the upstream bytes from a
 * small memory window; the upstream is read only as fast as the slowest of them takes the bytes.
 */
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type BlobWriter, isNoSpace } from '../cache/blob-writer.js';
import type { BlobPart } from '../content.js';
import { createDigester, type Digest } from '../digest.js';
import { RegistryError, storageUnavailable, upstreamInvalid, upstreamUnavailable } from '../errors.js';
import { DownloadClients, type DownloadReader } from './download-clients.js';
import { MemoryWindow } from './memory-window.js';
import { createSignal, type Signal } from './signal.js';

export interface DownloadDeps {
  digest: Digest;
  /** The registry it comes from, named in errors. */
  registry: string;
  /** Asks the upstream for the blob from `offset` on; throws a RegistryError for error answers. */
  fetch(offset: number): Promise<BlobPart>;
  /**
   * Where the bytes are stored; created once the upstream has answered. Null: this replica does not
   * store the blob (its owner commits it to a store they share), the bytes pass through.
   */
  createWriter(): Promise<BlobWriter | null>;
  /** Frees room in the store after a write found it full; resolves the bytes freed (0: none). */
  makeRoom?: (bytes: number) => Promise<number>;
  /** The store failed: the blob is passed through (or, at commit, just not kept). For the log. */
  onStoreError?: (error: unknown, during: 'create' | 'write' | 'commit') => void;
  /** Called with each chunk's size as it arrives from the upstream (metrics). */
  onBytes?: (bytes: number) => void;
  /** How many times a broken upstream connection is resumed before giving up. */
  maxResumes?: number;
  /** Waits for a download slot of the registry; returns its release. */
  acquireSlot?: () => Promise<() => void>;
}

const DEFAULT_MAX_RESUMES = 3;
const WRITE_BATCH_BYTES = 512 * 1024; // 512 KiB per write: few system calls, little held in memory
const RESUME_BACKOFF_MS = 200;
// Passing through, the upstream waits once a client is this far behind: more than the two 256 KiB
// reads a download client has in flight, so none of them waits on the window itself.
const PASS_WINDOW_BYTES = 1024 * 1024;

export type DownloadState = 'running' | 'verified' | 'failed';

export class BlobDownload {
  readonly digest: Digest;
  /** Total size, once the upstream has answered (null if it never said). */
  size: number | null = null;
  /** Bytes received that clients can read (from the store's writer or the memory window). */
  available = 0;
  state: DownloadState = 'running';
  error: Error | null = null;
  /** True once the blob is committed to the store. */
  stored = false;
  /** Resolves once the upstream accepted the request (size known if it sent one); rejects with its error. */
  readonly ready: Promise<void>;
  /** Resolves when the bytes are verified, rejects when the download failed. */
  readonly finished: Promise<void>;
  /** Resolves when the download is over: verified and committed (or not), or failed; never rejects. */
  readonly done: Promise<void>;
  /** Resolves once the download is over and nothing reads it any more (what it held is freed). */
  readonly released: Promise<void>;
  /** Upstream requests made (1 + resumes), for tests and metrics. */
  attempts = 0;

  private readonly hash;
  private writer: BlobWriter | null = null;
  /** Bytes the writer holds (readable through it), until it is released. */
  private written = 0;
  private writerReleased = false;
  /** Set once the store failed: later bytes live here until every client has them. */
  private window: MemoryWindow | null = null;
  private readonly clients = new DownloadClients(() => {
    if (this.window) this.trimWindow();
    this.releaseIfUnused();
  });
  private over = false;
  private unused = false;
  private current: Readable | null = null;
  // One promise shared by everyone waiting for the next change: many clients following one download
  // would otherwise each allocate a listener and a promise for every step of it.
  private nextChange: Signal | null = null;
  private aborted: Error | null = null;
  private discarded = false;
  private markReady!: () => void;
  private failReady!: (error: Error) => void;
  private markFinished!: () => void;
  private failFinished!: (error: Error) => void;
  private markDone!: () => void;
  private markReleased!: () => void;

  constructor(private readonly deps: DownloadDeps) {
    this.digest = deps.digest;
    this.hash = createDigester(deps.digest.algorithm);
    this.ready = new Promise((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    this.finished = new Promise((resolve, reject) => {
      this.markFinished = resolve;
      this.failFinished = reject;
    });
    this.done = new Promise((resolve) => (this.markDone = resolve));
    this.released = new Promise((resolve) => (this.markReleased = resolve));
    // Nobody may be listening when these settle: the download runs for the cache alone.
    this.ready.catch(() => {});
    this.finished.catch(() => {});
  }

  /** Whether the blob is being stored (false once the store failed and the bytes pass through). */
  get storing(): boolean {
    return this.window === null;
  }

  /** The most pass-through bytes held in memory at once (0 while storing). */
  get peakBuffered(): number {
    return this.window?.peak ?? 0;
  }

  /** Resolves at the next change of `available` or `state`. */
  changed(): Promise<void> {
    this.nextChange ??= createSignal();
    return this.nextChange.promise;
  }

  /** Wakes everyone waiting in changed(). */
  notify(): void {
    const waiting = this.nextChange;
    this.nextChange = null;
    waiting?.resolve();
  }

  /**
   * Keeps what the download holds (and its place among in-flight downloads) while a new client
   * waits for the size before attaching; returns the release.
   */
  hold(): () => void {
    return this.clients.hold();
  }

  /** Whether a new client can read from `start` on: all of it is still held or still to come. */
  canServe(start: number): boolean {
    if (this.state === 'failed') return false;
    if (!this.window) return !this.writerReleased;
    // Passing through: from the memory window on, or from the writer's part while nothing after it
    // has been dropped yet.
    return start >= this.window.start || (this.window.start === this.written && !this.writerReleased);
  }

  /** Attaches a client reading from `start`; detach() when it is done. Check canServe first. */
  attach(start: number): DownloadReader {
    return this.clients.attach(start);
  }

  detach(reader: DownloadReader): void {
    this.clients.detach(reader);
  }

  /** A client moved on (its `needsFrom` grew). */
  clientsMoved(): void {
    this.clients.moved();
  }

  /** Fills `buffer[0..length)` with the blob's bytes at `position`; they must be `available`. */
  async read(buffer: Buffer, length: number, position: number): Promise<void> {
    let done = 0;
    if (position < this.written) {
      if (!this.writer || this.writerReleased) throw new Error('download bytes are no longer held');
      done = Math.min(length, this.written - position);
      await this.writer.read(buffer, done, position);
    }
    if (done < length) {
      if (!this.window) throw new Error('download bytes are not there yet');
      this.window.copy(buffer, done, length - done, position + done);
    }
  }

  /** Whether the download is over (stored or not, or failed). */
  get isOver(): boolean {
    return this.over;
  }

  /** Stops the transfer: readers fail, nothing is stored. No effect once every byte is in. */
  abort(reason: Error): void {
    if (this.state !== 'running' || (this.size !== null && this.available >= this.size)) return;
    this.aborted = reason;
    this.current?.destroy(reason);
    this.clientsMoved(); // a pass-through waiting for clients sees the abort
  }

  /**
   * Gives up (shutdown past its grace): a transfer still receiving stops, and the writer's temp data
   * is removed, even mid-commit (which then fails, storing nothing).
   */
  async discard(): Promise<void> {
    this.discarded = true;
    this.abort(new Error('pullcache is shutting down'));
    await this.writer?.abort().catch(() => {});
  }

  /** Runs the download to the end; never throws (failures are in `state`/`error`). */
  async run(): Promise<void> {
    const release = await this.deps.acquireSlot?.();
    try {
      await this.transfer();
      if (this.aborted) throw this.aborted;
      this.verify();
    } catch (error) {
      release?.();
      await this.writer?.abort().catch(() => {});
      this.fail(this.aborted ?? (error as Error));
      this.end();
      return;
    }
    release?.();
    this.size = this.available;
    this.state = 'verified';
    this.markReady();
    this.markFinished();
    this.notify();
    if (this.writer && this.storing && !this.discarded) {
      try {
        await this.writer.commit();
        this.stored = true;
      } catch (error) {
        // Readers have their bytes (the writer keeps them readable); only the cache entry is lost.
        if (!this.discarded) this.deps.onStoreError?.(error, 'commit');
      }
    }
    this.end();
  }

  private end(): void {
    this.over = true;
    this.markDone();
    this.releaseIfUnused();
  }

  private releaseIfUnused(): void {
    if (!this.over || !this.clients.none || this.unused) return;
    this.unused = true;
    const freed = this.writerReleased ? undefined : this.writer?.release();
    this.writerReleased = true;
    void (freed ?? Promise.resolve()).finally(() => this.markReleased());
  }

  private async transfer(): Promise<void> {
    const maxResumes = this.deps.maxResumes ?? DEFAULT_MAX_RESUMES;
    for (let resumes = 0; ; resumes++) {
      if (this.aborted) throw this.aborted;
      let part: BlobPart;
      this.attempts++;
      try {
        part = await this.deps.fetch(this.available);
      } catch (error) {
        // Before any byte, the client should see the upstream's own answer (404, 401, 429, ...).
        if (this.attempts === 1 || resumes >= maxResumes || !isTransient(error)) throw error;
        await sleep(RESUME_BACKOFF_MS * resumes);
        continue;
      }
      if (this.attempts === 1) {
        this.size = part.total;
        await this.openWriter();
        this.markReady();
      } else if (part.total !== null && this.size !== null && part.total !== this.size) {
        part.stream.destroy();
        throw upstreamBroken(
          this.deps.registry,
          `changed size from ${this.size} to ${part.total} bytes on resume`,
        );
      }
      try {
        await this.copy(part);
        if (this.size === null || this.available >= this.size) return;
        // Ended cleanly but short: resume like a broken connection.
      } catch (error) {
        if (this.aborted || error instanceof RegistryError || resumes >= maxResumes) throw error;
      }
      if (resumes >= maxResumes)
        throw upstreamBroken(this.deps.registry, `connection broke ${resumes + 1} times`);
      await sleep(RESUME_BACKOFF_MS * (resumes + 1));
    }
  }

  private async openWriter(): Promise<void> {
    for (;;) {
      if (this.aborted) throw this.aborted;
      try {
        this.writer = await this.deps.createWriter();
        if (this.writer === null) this.passThrough(null, 'create');
        return;
      } catch (error) {
        if (await this.roomMade(error)) continue;
        this.passThrough(error, 'create');
        return;
      }
    }
  }

  private async copy(part: BlobPart): Promise<void> {
    this.current = part.stream;
    if (this.aborted) {
      part.stream.destroy();
      throw this.aborted;
    }
    // An upstream that ignores our Range resends from byte 0: skip what we already have.
    let skip = this.available - part.startsAt;
    if (skip < 0) {
      part.stream.destroy();
      throw upstreamBroken(this.deps.registry, 'resumed at the wrong offset');
    }
    // Socket chunks are small (tens of KiB): gather them into one write system call each.
    let batch: Buffer[] = [];
    let batched = 0;
    const flush = async () => {
      if (batched === 0) return;
      const chunks = batch;
      batch = [];
      batched = 0;
      await this.keep(chunks);
    };
    try {
      for await (const data of part.stream as AsyncIterable<Buffer>) {
        let chunk = data;
        if (skip > 0) {
          const dropped = Math.min(skip, chunk.length);
          skip -= dropped;
          chunk = chunk.subarray(dropped);
          if (chunk.length === 0) continue;
        }
        if (this.size !== null && this.available + batched + chunk.length > this.size) {
          part.stream.destroy();
          batch = []; // nothing of an over-long answer is kept
          batched = 0;
          throw upstreamBroken(this.deps.registry, `sent more than the ${this.size} bytes it announced`);
        }
        this.hash.update(chunk);
        this.deps.onBytes?.(chunk.length);
        batch.push(chunk);
        batched += chunk.length;
        if (batched >= WRITE_BATCH_BYTES || this.window) await flush();
      }
    } finally {
      // Bytes received before a broken connection are good: keep them, the resume starts after them.
      await flush();
    }
  }

  /** Stores the chunks, or passes them through once the store has failed; never throws a store error. */
  private async keep(chunks: Buffer[]): Promise<void> {
    while (this.writer && !this.window) {
      try {
        await this.writer.write(chunks);
        this.written = this.writer.size;
        this.available = this.written;
        this.notify();
        return;
      } catch (error) {
        if (await this.roomMade(error)) continue;
        this.passThrough(error, 'write');
        await this.writer.abort().catch(() => {}); // nothing of it will be stored
      }
    }
    for (const chunk of chunks) {
      this.window!.push(chunk);
      this.available += chunk.length;
      this.notify();
      // The upstream waits while a client is far behind: memory stays bounded, the blob is not buffered.
      await this.clients.whileBehind(
        () => this.available,
        PASS_WINDOW_BYTES,
        () => this.aborted !== null,
      );
      if (this.aborted) throw this.aborted;
      if (this.clients.none) {
        // Nothing will be stored and nobody reads: the upstream bytes would go nowhere.
        this.aborted = new Error('nobody is left to pass the blob to');
        throw this.aborted;
      }
    }
  }

  /** After a full-disk error, asks the store to evict; true if it freed anything (then try again). */
  private async roomMade(error: unknown): Promise<boolean> {
    if (!isNoSpace(error) || !this.deps.makeRoom) return false;
    const needed = this.size !== null ? this.size - this.written : WRITE_BATCH_BYTES * 16;
    return (await this.deps.makeRoom(needed).catch(() => 0)) > 0;
  }

  /** From now on the bytes pass through; `error` is the store's failure (null: not to be stored here). */
  private passThrough(error: unknown, during: 'create' | 'write'): void {
    if (error !== null) this.deps.onStoreError?.(error, during);
    // Clients cannot be answered before the size is known, and without the store nothing can wait
    // for the end: a clear error is all that is left.
    if (this.size === null)
      throw storageUnavailable('cannot store a blob whose upstream sent no length', error);
    this.window = new MemoryWindow(this.written);
  }

  private trimWindow(): void {
    const window = this.window!;
    const lowest = this.clients.lowest();
    window.dropBefore(lowest === Number.POSITIVE_INFINITY ? window.end : lowest);
    // Once nobody needs the written part and no newcomer can use it (bytes after it are gone),
    // let its space go: on a full disk that is the space other writes are waiting for.
    if (lowest >= this.written && window.start > this.written && !this.writerReleased && this.writer) {
      this.writerReleased = true;
      void this.writer.release();
    }
  }

  private verify(): void {
    const actual = this.hash.digest('hex');
    if (actual !== this.digest.hex || (this.size !== null && this.available !== this.size)) {
      throw upstreamInvalid(
        this.deps.registry,
        `sent a blob that does not verify: not ${this.digest.value} but ${this.digest.algorithm}:${actual}, ${this.available} bytes`,
        'DIGEST_INVALID',
      );
    }
  }

  private fail(error: Error): void {
    this.state = 'failed';
    this.error = error;
    this.failReady(error);
    this.failFinished(error);
    this.notify();
  }
}

function isTransient(error: unknown): boolean {
  return !(error instanceof RegistryError) || error.status >= 500;
}

function upstreamBroken(registry: string, what: string): RegistryError {
  return upstreamUnavailable(registry, `upstream blob download from ${registry} ${what}`);
}
