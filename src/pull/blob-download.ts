/**
 * @module One upstream download of one blob, shared by every client that wants it. Bytes go from
 * the upstream socket to a temp file (hashed as written); clients read that file as it grows, so
 * memory does not grow with blob size or client count and a slow client never slows the download.
 * A broken connection is resumed with a Range request; bytes that do not verify fail every reader
 * and nothing is stored. Clients going away never cancel it: the cache still wants the blob.
 */
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TempFile } from '../cache/temp-file.js';
import type { Digest } from '../digest.js';
import { RegistryError, upstreamUnavailable } from '../errors.js';

export interface UpstreamPart {
  /** Total blob size, when the upstream says (Content-Length of a 200, or the Content-Range total). */
  total: number | null;
  /** Offset of the first byte of `stream` in the blob (0 when the upstream ignored the Range). */
  startsAt: number;
  stream: Readable;
}

export interface DownloadDeps {
  digest: Digest;
  /** The registry it comes from, named in errors. */
  registry: string;
  /** Asks the upstream for the blob from `offset` on; throws a RegistryError for error answers. */
  fetch(offset: number): Promise<UpstreamPart>;
  createTemp(): Promise<TempFile>;
  commit(temp: TempFile): Promise<void>;
  onCommitError?: (error: unknown) => void;
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

export type DownloadState = 'running' | 'verified' | 'failed';

export class BlobDownload {
  readonly digest: Digest;
  /** Total size, once the upstream has answered (null if it never said). */
  size: number | null = null;
  /** Bytes in the temp file, readable by clients. */
  available = 0;
  state: DownloadState = 'running';
  error: Error | null = null;
  /** Where readers find the bytes while the download runs; after commit, `finalPath`. */
  tempPath = '';
  finalPath = '';
  /** Resolves once the upstream accepted the request (size known if it sent one); rejects with its error. */
  readonly ready: Promise<void>;
  /** Resolves when the bytes are verified, rejects when the download failed. */
  readonly finished: Promise<void>;
  /** Upstream requests made (1 + resumes), for tests and metrics. */
  attempts = 0;

  private current: Readable | null = null;
  // One promise shared by everyone waiting for the next change: many clients following one download
  // would otherwise each allocate a listener and a promise for every step of it.
  private nextChange: { promise: Promise<void>; resolve: () => void } | null = null;
  private aborted: Error | null = null;
  private markReady!: () => void;
  private failReady!: (error: Error) => void;
  private markFinished!: () => void;
  private failFinished!: (error: Error) => void;

  constructor(private readonly deps: DownloadDeps) {
    this.digest = deps.digest;
    this.ready = new Promise((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    this.finished = new Promise((resolve, reject) => {
      this.markFinished = resolve;
      this.failFinished = reject;
    });
    // Nobody may be listening when these settle: the download runs for the cache alone.
    this.ready.catch(() => {});
    this.finished.catch(() => {});
  }

  /** Resolves at the next change of `available` or `state`. */
  changed(): Promise<void> {
    if (!this.nextChange) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.nextChange = { promise, resolve };
    }
    return this.nextChange.promise;
  }

  /** Wakes everyone waiting in changed(). */
  notify(): void {
    const waiting = this.nextChange;
    this.nextChange = null;
    waiting?.resolve();
  }

  /** Stops the download (shutdown): readers fail, the temp file is removed, nothing is stored. */
  abort(reason: Error): void {
    if (this.state !== 'running') return;
    this.aborted = reason;
    this.current?.destroy(reason);
  }

  /** Runs the download to the end; never throws (failures are in `state`/`error`). */
  async run(): Promise<void> {
    let temp: TempFile | undefined;
    const release = await this.deps.acquireSlot?.();
    try {
      temp = await this.deps.createTemp();
      this.tempPath = temp.path;
      this.finalPath = temp.finalPath;
      await this.transfer(temp);
      if (this.aborted) throw this.aborted;
      await temp.verify(this.size);
    } catch (error) {
      release?.();
      await temp?.abort();
      this.fail(this.aborted ?? (error as Error));
      return;
    }
    release?.();
    this.size = temp.size;
    this.available = temp.size;
    this.state = 'verified';
    this.markReady();
    this.markFinished();
    this.notify();
    try {
      await this.deps.commit(temp);
    } catch (error) {
      // Readers have their bytes (open descriptors); only the cache entry is lost.
      this.deps.onCommitError?.(error);
    }
  }

  private async transfer(temp: TempFile): Promise<void> {
    const maxResumes = this.deps.maxResumes ?? DEFAULT_MAX_RESUMES;
    for (let resumes = 0; ; resumes++) {
      if (this.aborted) throw this.aborted;
      let part: UpstreamPart;
      this.attempts++;
      try {
        part = await this.deps.fetch(temp.size);
      } catch (error) {
        // Before any byte, the client should see the upstream's own answer (404, 401, 429, ...).
        if (this.attempts === 1 || resumes >= maxResumes || !isTransient(error)) throw error;
        await sleep(RESUME_BACKOFF_MS * resumes);
        continue;
      }
      if (this.attempts === 1) {
        this.size = part.total;
        this.markReady();
      } else if (part.total !== null && this.size !== null && part.total !== this.size) {
        part.stream.destroy();
        throw upstreamBroken(
          this.deps.registry,
          `changed size from ${this.size} to ${part.total} bytes on resume`,
        );
      }
      try {
        await this.copy(part, temp);
        if (this.size === null || temp.size >= this.size) return;
        // Ended cleanly but short: resume like a broken connection.
      } catch (error) {
        if (this.aborted || error instanceof RegistryError || resumes >= maxResumes) throw error;
      }
      if (resumes >= maxResumes)
        throw upstreamBroken(this.deps.registry, `connection broke ${resumes + 1} times`);
      await sleep(RESUME_BACKOFF_MS * (resumes + 1));
    }
  }

  private async copy(part: UpstreamPart, temp: TempFile): Promise<void> {
    this.current = part.stream;
    if (this.aborted) {
      part.stream.destroy();
      throw this.aborted;
    }
    // An upstream that ignores our Range resends from byte 0: skip what we already have.
    let skip = temp.size - part.startsAt;
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
      await temp.writeAll(chunks);
      this.deps.onBytes?.(chunks.reduce((sum, c) => sum + c.length, 0));
      this.available = temp.size;
      this.notify();
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
        if (this.size !== null && temp.size + batched + chunk.length > this.size) {
          part.stream.destroy();
          batch = []; // nothing of an over-long answer is kept
          batched = 0;
          throw upstreamBroken(this.deps.registry, `sent more than the ${this.size} bytes it announced`);
        }
        batch.push(chunk);
        batched += chunk.length;
        if (batched >= WRITE_BATCH_BYTES) await flush();
      }
    } finally {
      // Bytes received before a broken connection are good: keep them, the resume starts after them.
      await flush();
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
