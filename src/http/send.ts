/**
 * @module Writes blob bodies straight to Node's response, with a few recycled buffers per response:
 * the next chunk is read while the previous one is written, and a buffer is reused once the socket
 * has taken its bytes; when the response is over they go back to a pool for the next one. When the
 * source fails mid-body the connection is destroyed, so the client sees a broken transfer, never a
 * complete-looking short one.
 */
import type { ServerResponse } from 'node:http';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';
import { type ChunkSource, toReadable } from '../chunk-source.js';
import { type BufferPool, createBufferPool } from './buffer-pool.js';
import type { Env } from './env.js';

const CHUNK_BYTES = 512 * 1024; // 512 KiB per write: big enough for throughput, small per client
// Body buffers kept between responses, for the whole process (/v2 and the peer endpoint): a cached
// blob's three 512 KiB buffers and a spare. What a burst of clients frees beyond that is left to the GC.
const RESPONSE_BUFFERS = createBufferPool(2 * 1024 * 1024);
const BUFFERS = 3; // one being read, one being written, one queued in the socket
const READ_AHEAD = 2;

export function sendSource(
  c: Context<Env>,
  status: number,
  headers: Record<string, string>,
  source: ChunkSource | null,
  pool: BufferPool = RESPONSE_BUFFERS,
): Response {
  const outgoing = c.env?.outgoing;
  if (!outgoing) {
    // In-process requests (app.request in unit tests) have no Node response to write to.
    const body = source ? (toReadable(source) as unknown as ReadableStream) : null;
    return new Response(body, { status, headers });
  }
  outgoing.writeHead(status, { ...headers, 'x-request-id': c.get('requestId') ?? '' });
  if (!source) {
    outgoing.end();
    return RESPONSE_ALREADY_SENT;
  }
  // Headers go out now, not with the first chunk: a client waiting on a download sees its answer
  // start, and a download that then fails verification is a visibly broken transfer.
  outgoing.flushHeaders();
  pump(source, outgoing, pool).then(
    () => {},
    () => {
      // A client that went away, or a source that failed: either way the socket must not look complete.
      if (!outgoing.destroyed) outgoing.destroy();
    },
  );
  return RESPONSE_ALREADY_SENT;
}

async function pump(source: ChunkSource, outgoing: ServerResponse, pool: BufferPool): Promise<void> {
  const { chunkBytes, buffers } = source.buffering ?? { chunkBytes: CHUNK_BYTES, buffers: BUFFERS };
  const size = Math.max(1, Math.min(chunkBytes, source.length));
  // Only full-size buffers are kept: a small body's odd sizes would crowd them out of the pool.
  const recycled = size === chunkBytes;
  const keep = (buffer: Buffer) => {
    if (recycled) pool.give(buffer);
  };
  const free: Buffer[] = Array.from({ length: Math.min(buffers, Math.ceil(source.length / size) + 1) }, () =>
    recycled ? pool.take(size) : Buffer.allocUnsafe(size),
  );
  const reads: Promise<[Buffer, number]>[] = [];
  let requested = 0;
  let written = 0;
  let over = false;
  let wake: (() => void) | null = null;
  const signal = () => {
    wake?.();
    wake = null;
  };
  // Only a buffer the socket is done with goes back: one whose write failed may still be held.
  const release = (buffer: Buffer) => (error?: Error | null) => {
    if (error) return;
    if (over) return keep(buffer);
    free.push(buffer); // the socket has the bytes: the buffer can be filled again
    signal();
  };
  const gone = new Promise<never>((_, reject) => {
    outgoing.once('close', () => reject(new Error('client went away')));
  });
  gone.catch(() => {});
  outgoing.on('drain', signal);

  try {
    for (;;) {
      while (reads.length < READ_AHEAD && requested < source.length && free.length > 0) {
        const buffer = free.pop()!;
        requested += Math.min(buffer.length, source.length - requested);
        const read = source.read(buffer).then((n): [Buffer, number] => [buffer, n]);
        read.catch(() => {});
        reads.push(read);
      }
      const next = reads.shift();
      if (!next) {
        await Promise.race([new Promise<void>((resolve) => (wake = resolve)), gone]);
        continue;
      }
      const [buffer, n] = await Promise.race([next, gone]);
      if (n === 0) throw new Error('source ended early');
      written += n;
      const bytes = n === buffer.length ? buffer : buffer.subarray(0, n);
      if (written === source.length) {
        // The last chunk ends the response in the same call: the client may close as soon as it
        // has the bytes, and the response must be complete (not aborted) by then.
        outgoing.end(bytes, () => keep(buffer));
        return;
      }
      if (!outgoing.write(bytes, release(buffer))) {
        await Promise.race([new Promise<void>((resolve) => (wake = resolve)), gone]);
      }
    }
  } finally {
    over = true;
    outgoing.off('drain', signal);
    // Buffers filled but never written are free too, once their reads have settled.
    for (const read of await Promise.allSettled(reads)) {
      if (read.status === 'fulfilled') free.push(read.value[0]);
    }
    for (const buffer of free) keep(buffer);
    await source.close();
  }
}

/** The request path exactly as the client sent it (the URL parser would resolve `..` silently). */
export function rawPath(c: Context<Env>): string {
  const raw = c.env?.incoming?.url ?? new URL(c.req.url).pathname + new URL(c.req.url).search;
  const path = raw.startsWith('/') ? raw : new URL(raw).pathname;
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}

/** Every value of a header the client may have sent several times (Docker sends one Accept per type). */
export function headerValues(c: Context<Env>, name: string): string[] {
  const distinct = c.env?.incoming?.headersDistinct?.[name];
  if (distinct) return distinct;
  const value = c.req.header(name);
  return value === undefined ? [] : [value];
}
