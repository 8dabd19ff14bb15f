/**
 * @module A client's view of a shared BlobDownload: streams bytes `start..end` from the growing temp
 * file as they arrive. A reader that ends at the blob's last byte holds that byte back until the
 * whole blob has verified, so a client of a download that fails verification gets an aborted
 * stream, never a complete-looking wrong body. A range ending earlier is a part the client
 * assembles and verifies itself (containerd's parallel range pulls): it is sent as soon as its
 * bytes are there, and aborted like the others if the download fails first.
 */
import { once } from 'node:events';
import { type FileHandle, open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { BlobDownload } from './blob-download.js';

const CHUNK_BYTES = 512 * 1024; // 512 KiB: a few of these per client bounds memory with many clients
// Wait for this much new data before reading: many clients following one download should not each
// read every small step of it.
const MIN_READ_BYTES = 256 * 1024;

export class DownloadReader extends Readable {
  private handle: FileHandle | null = null;
  private position: number;
  private reading = false;

  /** Reads `start..end` (inclusive) of the download's blob. */
  constructor(
    private readonly download: BlobDownload,
    start: number,
    private readonly end: number,
  ) {
    super({ highWaterMark: CHUNK_BYTES });
    this.position = start;
  }

  override _read(): void {
    if (this.reading) return;
    this.reading = true;
    this.pump().then(
      () => {
        this.reading = false;
      },
      (error: Error) => {
        this.reading = false;
        this.destroy(error);
      },
    );
  }

  /** Pushes one chunk (waiting for bytes if need be), or ends the stream. */
  private async pump(): Promise<void> {
    const download = this.download;
    for (;;) {
      if (this.destroyed) return;
      if (download.state === 'failed') throw download.error ?? new Error('download failed');
      const holdsLastByte = download.size === null || this.end === download.size - 1;
      if (this.position > this.end && (download.state === 'verified' || !holdsLastByte)) {
        this.push(null);
        return;
      }
      // Everything written is readable, except the blob's final byte before verification.
      const limit =
        download.state === 'verified'
          ? this.end + 1
          : Math.min(download.available, this.end + (holdsLastByte ? 0 : 1));
      const enough =
        download.state !== 'running' ||
        limit - this.position >= Math.min(MIN_READ_BYTES, this.end + 1 - this.position);
      if (this.position < limit && enough) {
        const length = Math.min(CHUNK_BYTES, limit - this.position);
        const buffer = Buffer.allocUnsafe(length);
        const handle = await this.openFile();
        const { bytesRead } = await handle.read(buffer, 0, length, this.position);
        if (bytesRead === 0) throw new Error('cached bytes vanished while reading');
        this.position += bytesRead;
        this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead));
        return;
      }
      await once(download, 'change');
    }
  }

  /** The temp file while the download runs; the final file if it was renamed before we opened it. */
  private async openFile(): Promise<FileHandle> {
    if (this.handle) return this.handle;
    try {
      this.handle = await open(this.download.tempPath, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      this.handle = await open(this.download.finalPath, 'r');
    }
    return this.handle;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const handle = this.handle;
    this.handle = null;
    if (!handle) {
      callback(error);
      return;
    }
    handle.close().then(
      () => callback(error),
      () => callback(error),
    );
  }
}
