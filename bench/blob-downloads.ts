/** @module Blob downloads by curl processes (never in the bench's event loop), checked by status, length and sha256. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { run } from '../test/e2e/harness/command.js';

export interface Download {
  status: number;
  bytes: number;
  /** curl's time_total: connect to last byte. */
  seconds: number;
}

// A stalled peer must fail the bench, not hang it. 16 clients sharing 100 MB/s would still finish
// 256 MiB each in ~45 s.
const MAX_SECONDS = 180;

/**
 * One GET with curl to `outFile` (`/dev/null` to discard), following redirects with `follow`. curl exits non-zero on a connection that
 * breaks before Content-Length bytes arrived, which `run` turns into a thrown error.
 */
export async function curlDownload(url: string, outFile: string, follow = false): Promise<Download> {
  const args = [
    ...(follow ? ['--location'] : []), // a redirect to the bucket: the timing includes both requests
    '--silent',
    '--show-error',
    '--max-time',
    String(MAX_SECONDS),
    '--output',
    outFile,
    '--write-out',
    '%{http_code} %{size_download} %{time_total}',
    url,
  ];
  // run() kills by pid after its own timeout (110 s by default): leave curl's the one that fires.
  const { stdout } = await run('curl', args, { timeoutMs: (MAX_SECONDS + 10) * 1_000 });
  const [status, bytes, seconds] = stdout.trim().split(' ').map(Number);
  if (status === undefined || bytes === undefined || seconds === undefined || Number.isNaN(seconds)) {
    throw new Error(`curl ${url}: unreadable --write-out output ${JSON.stringify(stdout)}`);
  }
  return { status, bytes, seconds };
}

/** Throws unless the download was a 200 of exactly `size` bytes. */
export function checkDownload(what: string, download: Download, size: number): void {
  if (download.status !== 200) throw new Error(`${what}: HTTP ${download.status}, expected 200`);
  if (download.bytes !== size) throw new Error(`${what}: ${download.bytes} bytes, expected ${size}`);
}

/** Throws unless the file's sha256 is `digest` (`sha256:<hex>`); the file is removed either way. */
export async function verifyAndRemove(what: string, file: string, digest: string): Promise<void> {
  try {
    const hash = createHash('sha256');
    // 1 MiB reads: hashing 16 × 256 MiB with the 64 KiB default is noticeably slower.
    for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
      hash.update(chunk as Buffer);
    }
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== digest) throw new Error(`${what}: body has digest ${actual}, expected ${digest}`);
  } finally {
    await rm(file, { force: true });
  }
}
