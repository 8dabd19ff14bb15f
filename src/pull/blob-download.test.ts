/**
 * BlobDownload against a scripted upstream and store writer: local write errors are never retried
 * against the upstream (pass-through), a full store is asked for room first, memory stays bounded
 * while passing through to a slow client, and a shutdown past its grace removes a commit's temp data.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { BlobWriter } from '../cache/blob-writer.js';
import { readAll } from '../chunk-source.js';
import { parseDigest } from '../digest.js';
import { BlobDownload, type DownloadDeps } from './blob-download.js';
import { createDownloadSource } from './download-source.js';

const KiB = 1024;

/** A writer keeping bytes in memory; `fail(n)` makes the n-th write (1-based) reject with `code`. */
function memoryWriter(
  options: { failWrites?: (n: number) => string | null; commit?: () => Promise<void> } = {},
) {
  const chunks: Buffer[] = [];
  let writes = 0;
  const calls = { aborted: 0, committed: 0, released: 0 };
  const writer: BlobWriter = {
    get size() {
      return chunks.reduce((sum, c) => sum + c.length, 0);
    },
    async write(more) {
      const code = options.failWrites?.(++writes);
      if (code) throw Object.assign(new Error(`${code}: simulated`), { code });
      chunks.push(...more.map((c) => Buffer.from(c)));
    },
    async read(buffer, length, position) {
      Buffer.concat(chunks).copy(buffer, 0, position, position + length);
    },
    async commit() {
      calls.committed++;
      await options.commit?.();
    },
    async abort() {
      calls.aborted++;
    },
    async release() {
      calls.released++;
    },
  };
  return { writer, calls };
}

function blob(size: number) {
  const bytes = randomBytes(size);
  return { bytes, digest: parseDigest(`sha256:${createHash('sha256').update(bytes).digest('hex')}`) };
}

/** An upstream answering every fetch with the bytes from the asked offset, in 16 KiB chunks. */
function upstreamOf(bytes: Buffer) {
  const offsets: number[] = [];
  const fetch: DownloadDeps['fetch'] = async (offset) => {
    offsets.push(offset);
    const chunks: Buffer[] = [];
    for (let i = offset; i < bytes.length; i += 16 * KiB) chunks.push(bytes.subarray(i, i + 16 * KiB));
    return { total: bytes.length, startsAt: offset, stream: Readable.from(chunks) };
  };
  return { fetch, offsets };
}

async function readWhole(download: BlobDownload): Promise<Buffer> {
  await download.ready;
  const source = createDownloadSource(download, 0, download.size! - 1);
  const parts: Buffer[] = [];
  await readAll(source, (chunk) => parts.push(Buffer.from(chunk)), 256 * KiB);
  return Buffer.concat(parts);
}

describe('BlobDownload', () => {
  it.each(['EIO', 'ENOSPC', 'EROFS'])(
    'passes the blob through after a local %s, with one upstream request and nothing committed',
    async (code) => {
      const { bytes, digest } = blob(3 * 1024 * KiB);
      const upstream = upstreamOf(bytes);
      const { writer, calls } = memoryWriter({ failWrites: (n) => (n === 2 ? code : null) });
      const errors: string[] = [];
      const download = new BlobDownload({
        digest,
        registry: 'r',
        fetch: upstream.fetch,
        createWriter: async () => writer,
        onStoreError: (error) => errors.push((error as NodeJS.ErrnoException).code!),
      });
      const running = download.run();
      const body = await readWhole(download);
      await running;
      expect(body.equals(bytes)).toBe(true);
      expect(upstream.offsets).toEqual([0]);
      expect(download.state).toBe('verified');
      expect(download.stored).toBe(false);
      expect(calls).toMatchObject({ committed: 0, aborted: 1 });
      expect(errors).toEqual([code]);
    },
  );

  it('asks the store for room after ENOSPC and stores the blob when it made some', async () => {
    const { bytes, digest } = blob(2 * 1024 * KiB);
    const { writer, calls } = memoryWriter({ failWrites: (n) => (n === 2 ? 'ENOSPC' : null) });
    const asked: number[] = [];
    const download = new BlobDownload({
      digest,
      registry: 'r',
      fetch: upstreamOf(bytes).fetch,
      createWriter: async () => writer,
      makeRoom: async (needed) => {
        asked.push(needed);
        return needed;
      },
    });
    await download.run();
    expect(download.stored).toBe(true);
    expect(calls.committed).toBe(1);
    expect(asked).toEqual([bytes.length - 512 * KiB]); // what was still to be written
  });

  it('holds only a small window in memory while passing through to a slow client', async () => {
    const { bytes, digest } = blob(8 * 1024 * KiB);
    const download = new BlobDownload({
      digest,
      registry: 'r',
      fetch: upstreamOf(bytes).fetch,
      createWriter: async () => {
        throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
      },
    });
    const running = download.run();
    await download.ready;
    const source = createDownloadSource(download, 0, bytes.length - 1);
    const buffer = Buffer.alloc(256 * KiB);
    const hash = createHash('sha256');
    for (let n = await source.read(buffer); n > 0; n = await source.read(buffer)) {
      hash.update(buffer.subarray(0, n));
      await new Promise((resolve) => setImmediate(resolve)); // a client slower than the upstream
      if (n < buffer.length) break;
    }
    await source.close();
    await running;
    expect(`sha256:${hash.digest('hex')}`).toBe(digest.value);
    expect(download.peakBuffered).toBeGreaterThan(0);
    expect(download.peakBuffered).toBeLessThanOrEqual(1024 * KiB + 2 * 16 * KiB); // the window and a chunk or two
  });

  it('stops when nobody is left to pass the blob to', async () => {
    const { bytes, digest } = blob(4 * 1024 * KiB);
    const upstream = upstreamOf(bytes);
    const download = new BlobDownload({
      digest,
      registry: 'r',
      fetch: upstream.fetch,
      createWriter: async () => {
        throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
      },
    });
    const running = download.run();
    await download.ready;
    const source = createDownloadSource(download, 0, bytes.length - 1);
    await source.read(Buffer.alloc(64 * KiB));
    await source.close();
    await running;
    expect(download.state).toBe('failed');
    expect(download.error?.message).toBe('nobody is left to pass the blob to');
  });

  it('removes the temp data of a commit that outlasts a shutdown, and ignores a stop once every byte is in', async () => {
    const { bytes, digest } = blob(600 * KiB);
    let finishCommit!: () => void;
    const { writer, calls } = memoryWriter({
      commit: () => new Promise((resolve) => (finishCommit = resolve)),
    });
    const download = new BlobDownload({
      digest,
      registry: 'r',
      fetch: upstreamOf(bytes).fetch,
      createWriter: async () => writer,
    });
    const running = download.run();
    await download.finished;
    download.abort(new Error('too late to stop'));
    expect(download.state).toBe('verified');
    await download.discard();
    expect(calls.aborted).toBe(1);
    finishCommit();
    await running;
    expect(download.isOver).toBe(true);
  });
});
