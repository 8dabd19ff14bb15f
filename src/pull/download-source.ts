/**
 * @module A client's view of a shared BlobDownload: bytes `start..end` read through the download as
 * they arrive. A source that ends at the blob's last byte holds that byte back until the whole blob
 * has verified, so a client of a download that fails verification gets an aborted transfer, never a
 * complete-looking wrong body. A range ending earlier is a part the client assembles and verifies
 * itself (containerd's parallel range pulls): it is sent as soon as its bytes are there, and aborted
 * like the others if the download fails first.
 */
import type { ChunkSource } from '../chunk-source.js';
import type { BlobDownload } from './blob-download.js';

/** Attaches to the download at once; the caller checked `download.canServe(start)`. */
export function createDownloadSource(download: BlobDownload, start: number, end: number): ChunkSource {
  let next = start;
  let closed = false;
  const reader = download.attach(start);
  // Starts of reads in flight: the download may drop nothing at or after the lowest (pass-through).
  const pending = new Set<number>();
  const moved = () => {
    let lowest = next > end ? Number.POSITIVE_INFINITY : next;
    for (const position of pending) lowest = Math.min(lowest, position);
    reader.needsFrom = lowest;
    download.clientsMoved();
  };

  /** Waits until bytes up to `until` (exclusive) may be sent. */
  const waitFor = async (until: number) => {
    const holdsLastByte = download.size === null || end === download.size - 1;
    for (;;) {
      if (download.state === 'failed') throw download.error ?? new Error('download failed');
      if (closed) throw new Error('source closed');
      if (download.state === 'verified') return;
      if (download.available >= until && !(holdsLastByte && until > end)) return;
      await download.changed();
    }
  };

  return {
    length: end + 1 - start,
    // Clients of one download move in step with it: two small buffers each keep them fed, and many
    // of them at once (a rollout) cost little memory.
    buffering: { chunkBytes: 256 * 1024, buffers: 2 },
    async read(buffer) {
      const position = next;
      const length = Math.max(0, Math.min(buffer.length, end + 1 - position));
      next += length;
      if (length === 0) {
        await waitFor(end + 1); // the end of a whole blob is only told once it verified
        return 0;
      }
      pending.add(position);
      try {
        await waitFor(position + length);
        if (closed) throw new Error('source closed');
        await download.read(buffer, length, position);
      } finally {
        pending.delete(position);
        moved();
      }
      return length;
    },
    async close() {
      if (closed) return;
      closed = true;
      download.notify(); // wake a read waiting for bytes, so it sees the source is closed
      download.detach(reader);
    },
  };
}
