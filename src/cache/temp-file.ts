/**
 * @module Verified atomic writes: bytes go to a temp file beside their final path, hashed as they are
 * written, and are renamed into place only if size and digest match. Any failure removes the temp
 * file, so readers of the final path never see a torn or unverified file — even across processes
 * sharing one storage folder.
 */
import { type FileHandle, mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createDigester, type Digest } from '../digest.js';
import { tempName } from './temp-name.js';

export class VerificationError extends Error {
  override name = 'VerificationError';
}

export interface TempFileOptions {
  /** Bytes before the content (a manifest's media type line): written, not hashed, not counted. */
  header?: Uint8Array;
  /** False when the caller hashes the bytes itself (a blob download): verify() is then unavailable. */
  hashed?: boolean;
}

export class TempFile {
  private readonly hash;
  private written = 0;
  private closed = false;

  private constructor(
    readonly path: string,
    readonly finalPath: string,
    private readonly handle: FileHandle,
    private readonly digest: Digest,
    readonly headerLength: number,
    hashed: boolean,
  ) {
    this.hash = hashed ? createDigester(digest.algorithm) : null;
  }

  /** A new temp file beside `finalPath`, named so that concurrent writers (and processes) never clash. */
  static async create(finalPath: string, digest: Digest, options: TempFileOptions = {}): Promise<TempFile> {
    const { header, hashed = true } = options;
    await mkdir(dirname(finalPath), { recursive: true });
    const path = join(dirname(finalPath), tempName(digest.hex.slice(0, 16)));
    const handle = await open(path, 'wx', 0o644);
    const file = new TempFile(path, finalPath, handle, digest, header?.length ?? 0, hashed);
    if (header)
      await file.writeAt(header, 0).catch(async (error) => {
        await file.abort();
        throw error;
      });
    return file;
  }

  get size(): number {
    return this.written;
  }

  /** Appends bytes; they are readable from `path` once the promise resolves. */
  async write(chunk: Uint8Array): Promise<void> {
    await this.writeAt(chunk, this.headerLength + this.written);
    this.hash?.update(chunk);
    this.written += chunk.length;
  }

  /** Appends several chunks with one system call where the kernel takes them all (writev). */
  async writeAll(chunks: Buffer[]): Promise<void> {
    const total = chunks.reduce((sum, c) => sum + c.length, 0);
    const { bytesWritten } = await this.handle.writev(chunks, this.headerLength + this.written);
    if (bytesWritten < total) {
      // A short writev: write what is left chunk by chunk.
      let skip = bytesWritten;
      let position = this.headerLength + this.written + bytesWritten;
      for (const chunk of chunks) {
        const rest = skip >= chunk.length ? null : chunk.subarray(skip);
        skip = Math.max(0, skip - chunk.length);
        if (!rest) continue;
        await this.writeAt(rest, position);
        position += rest.length;
      }
    }
    if (this.hash) for (const chunk of chunks) this.hash.update(chunk);
    this.written += total;
  }

  private async writeAt(chunk: Uint8Array, position: number): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const { bytesWritten } = await this.handle.write(
        chunk,
        offset,
        chunk.length - offset,
        position + offset,
      );
      offset += bytesWritten;
    }
  }

  /** Checks size and digest; throws VerificationError (and removes the file) on mismatch. */
  async verify(expectedSize: number | null): Promise<void> {
    if (!this.hash) throw new Error('verify() on a temp file whose caller hashes the bytes');
    const actual = this.hash.copy().digest('hex');
    if (actual !== this.digest.hex || (expectedSize !== null && this.written !== expectedSize)) {
      await this.abort();
      throw new VerificationError(
        `content does not match ${this.digest.value}: got ${this.digest.algorithm}:${actual}, ${this.written} bytes`,
      );
    }
  }

  /** Flushes and renames into place; call after verify(). On failure the temp file is removed. */
  async commit(): Promise<void> {
    try {
      await this.handle.sync();
      await this.close();
      await rename(this.path, this.finalPath);
    } catch (error) {
      await this.abort();
      throw error;
    }
  }

  /** Removes the temp file; safe to call more than once, and while a commit runs (it then fails). */
  async abort(): Promise<void> {
    await this.close().catch(() => {});
    await rm(this.path, { force: true });
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}
