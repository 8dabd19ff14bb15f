/**
 * @module A registry blob endpoint that streams large generated blobs chunk by chunk (with Range),
 * tells the test when it has sent the last byte, and counts GETs: for tests where timing against
 * the upstream matters (signals, full disks).
 */
import { randomBytes } from 'node:crypto';
import { HttpResponse, http } from 'msw';
import { sha256 } from './fake-registry.js';

const CHUNK = 64 * 1024;

/**
 * What a registry answers to a blob GET with `Range: bytes=N-` (206 from N) or without one (200):
 * the first byte to send, the status and the headers.
 */
export function rangedBlobAnswer(request: Request, length: number) {
  const range = /^bytes=(\d+)-$/.exec(request.headers.get('range') ?? '');
  const start = range ? Number(range[1]) : 0;
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'content-length': String(length - start),
  };
  if (range) headers['content-range'] = `bytes ${start}-${length - 1}/${length}`;
  return { start, status: range ? 206 : 200, headers };
}

export function createBlobUpstream(repository = 'library/big') {
  const blobs = new Map<string, Buffer>();
  const gets = new Map<string, number>();
  let lastByteSent: (() => void) | null = null;
  let hold: { reached: () => void; released: Promise<void> } | null = null;

  const handler = http.get(`/v2/${repository}/blobs/:digest`, ({ params, request }) => {
    const digest = String(params.digest);
    const bytes = blobs.get(digest);
    if (!bytes)
      return HttpResponse.json(
        { errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown' }] },
        { status: 404 },
      );
    gets.set(digest, (gets.get(digest) ?? 0) + 1);
    const { start, status, headers } = rangedBlobAnswer(request, bytes.length);
    let offset = start;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (offset >= bytes.length) {
          controller.close();
          return;
        }
        if (hold && offset + CHUNK >= bytes.length) {
          const { reached, released } = hold;
          hold = null;
          reached();
          await released;
        }
        const chunk = bytes.subarray(offset, Math.min(offset + CHUNK, bytes.length));
        offset += chunk.length;
        controller.enqueue(new Uint8Array(chunk));
        if (offset >= bytes.length) {
          const notify = lastByteSent;
          lastByteSent = null;
          notify?.();
        }
      },
    });
    return new HttpResponse(body, { status, headers });
  });

  return {
    handler,
    /** A random blob of `size` bytes; returns its digest. */
    add(size: number): string {
      const bytes = randomBytes(size);
      const digest = sha256(bytes);
      blobs.set(digest, bytes);
      return digest;
    },
    bytes: (digest: string) => blobs.get(digest)!,
    gets: (digest: string) => gets.get(digest) ?? 0,
    /** Makes the next blob body wait before its last chunk: `reached` once it waits, until `release()`. */
    holdLastChunk() {
      let reached!: () => void;
      let release!: () => void;
      const waiting = new Promise<void>((resolve) => (reached = resolve));
      hold = { reached, released: new Promise<void>((resolve) => (release = resolve)) };
      return { reached: waiting, release };
    },
    /** Resolves when the next blob body has handed its last byte to the socket. */
    lastByteSent(): Promise<void> {
      return new Promise((resolve) => (lastByteSent = resolve));
    },
  };
}
