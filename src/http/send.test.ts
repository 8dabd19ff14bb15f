import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { setImmediate as tick } from 'node:timers/promises';
import type { Context } from 'hono';
import { describe, expect, it } from 'vitest';
import type { ChunkSource } from '../chunk-source.js';
import { type BufferPool, createBufferPool } from './buffer-pool.js';
import type { Env } from './env.js';
import { sendSource } from './send.js';

type Callback = (error?: Error | null) => void;

/**
 * A response whose socket takes chunks only when the test says so, copying them then (as the
 * kernel does): a buffer refilled before its bytes were taken shows up as wrong bytes received.
 */
class SlowResponse extends EventEmitter {
  destroyed = false;
  ended = false;
  readonly pending: { chunk: Buffer; callback: Callback | undefined }[] = [];
  readonly received: Buffer[] = [];
  writeHead(): void {}
  flushHeaders(): void {}
  write(chunk: Buffer, callback?: Callback): boolean {
    this.pending.push({ chunk, callback });
    return this.pending.length < 2;
  }
  end(chunk: Buffer, callback?: Callback): void {
    this.pending.push({ chunk, callback });
    this.ended = true;
  }
  /** The socket takes the oldest chunk waiting. */
  take(): void {
    const { chunk, callback } = this.pending.shift()!;
    this.received.push(Buffer.from(chunk));
    callback?.(null);
    if (this.pending.length === 0 && !this.ended) this.emit('drain');
  }
  /** The client went away: what was waiting is never sent, its writes fail. */
  destroy(): void {
    this.destroyed = true;
    for (const { callback } of this.pending.splice(0)) callback?.(new Error('socket destroyed'));
    this.emit('close');
  }
  holds(buffer: Buffer): boolean {
    return this.pending.some(({ chunk }) => chunk.buffer === buffer.buffer);
  }
}

function memorySource(bytes: Buffer): ChunkSource & { closed: boolean } {
  let next = 0;
  return {
    length: bytes.length,
    closed: false,
    async read(buffer) {
      await tick();
      const n = bytes.copy(buffer, 0, next, Math.min(bytes.length, next + buffer.length));
      next += n;
      return n;
    },
    async close() {
      this.closed = true;
    },
  };
}

/** A pool that records what comes back and fails the test if the socket still holds it. */
function watchedPool(response: () => SlowResponse[]): BufferPool & { given: Buffer[] } {
  const pool = createBufferPool(64 * 1024 * 1024);
  const given: Buffer[] = [];
  return {
    given,
    take: (size) => pool.take(size),
    give(buffer) {
      expect(response().some((r) => r.holds(buffer))).toBe(false);
      given.push(buffer);
      pool.give(buffer);
    },
  };
}

function send(response: SlowResponse, source: ChunkSource, pool: BufferPool): void {
  const c = { env: { outgoing: response as unknown as ServerResponse }, get: () => 'request-id' };
  sendSource(c as unknown as Context<Env>, 200, {}, source, pool);
}

describe('sendSource', () => {
  it('gives each buffer back to the pool only once the socket has taken its bytes, and the body is whole', async () => {
    const bodies = [randomBytes(3 * 512 * 1024 + 99), randomBytes(5 * 512 * 1024)];
    const responses = bodies.map(() => new SlowResponse());
    const pool = watchedPool(() => responses);
    // Two responses at once, the second taking buffers the first gave back.
    send(responses[0]!, memorySource(bodies[0]!), pool);
    await tick();
    send(responses[1]!, memorySource(bodies[1]!), pool);
    while (responses.some((r) => !r.ended || r.pending.length > 0)) {
      await tick();
      for (const response of responses) if (response.pending.length > 0) response.take();
    }
    for (const [i, response] of responses.entries()) {
      expect(Buffer.concat(response.received).equals(bodies[i]!)).toBe(true);
    }
    expect(pool.given.length).toBeGreaterThanOrEqual(3); // the first response's buffers came back
  });

  it('keeps the buffers of writes a departed client never took out of the pool', async () => {
    const response = new SlowResponse();
    const pool = watchedPool(() => [response]);
    const source = memorySource(randomBytes(8 * 512 * 1024));
    send(response, source, pool);
    while (response.pending.length < 2) await tick();
    const stranded = response.pending.map(({ chunk }) => chunk.buffer);
    response.destroy();
    while (!source.closed) await tick();
    expect(pool.given.some((b) => stranded.includes(b.buffer))).toBe(false);
    expect(pool.given.length).toBeGreaterThan(0); // the buffers no write held did come back
  });
});
