import { PassThrough, type Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { guardMinRate, TooSlowError } from './min-rate.js';

const rate = { bytesPerSecond: 1000, windowMs: 1000 }; // 1000 bytes per second, judged over 1s

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Collects what a reader gets, and how the stream ended. */
function read(stream: Readable) {
  const chunks: Buffer[] = [];
  const ended = new Promise<Error | null>((resolve) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(null));
    stream.on('error', resolve);
  });
  return { bytes: () => Buffer.concat(chunks), ended };
}

/** Lets stream callbacks (next ticks) run between timer steps. */
const ticks = () => new Promise<void>((resolve) => setImmediate(resolve));

async function advance(ms: number, stepMs = 100, each: () => void = () => {}) {
  for (let t = 0; t < ms; t += stepMs) {
    each();
    await ticks();
    await vi.advanceTimersByTimeAsync(stepMs);
  }
}

describe('guardMinRate', () => {
  it('passes every byte of a body at or above the rate through unchanged', async () => {
    const body = new PassThrough();
    const guarded = guardMinRate(body, rate);
    const reader = read(guarded);
    const sent: Buffer[] = [];
    await advance(3000, 100, () => {
      const chunk = Buffer.alloc(100, sent.length);
      sent.push(chunk);
      body.write(chunk);
    });
    body.end();
    expect(await reader.ended).toBeNull();
    expect(reader.bytes().equals(Buffer.concat(sent))).toBe(true);
    expect(body.destroyed).toBe(true);
  });

  it('fails a drip with a plain TooSlowError once a whole window was too slow, and destroys the body', async () => {
    const body = new PassThrough();
    const guarded = guardMinRate(body, rate);
    const reader = read(guarded);
    let sent = 0;
    await advance(900, 100, () => {
      body.write(Buffer.alloc(1));
      sent++;
    });
    // Less than a window so far: not judged yet.
    expect(guarded.destroyed).toBe(false);
    await advance(300, 100, () => {
      body.write(Buffer.alloc(1));
      sent++;
    });
    const error = await reader.ended;
    expect(error).toBeInstanceOf(TooSlowError);
    expect(error?.message).toMatch(/below the minimum of 1000 B\/s/);
    expect(reader.bytes().length).toBeLessThanOrEqual(sent);
    expect(reader.bytes().length).toBeGreaterThan(0);
    expect(body.destroyed).toBe(true);
  });

  it('fails a body that stalls after a fast start within about one window', async () => {
    const body = new PassThrough();
    const reader = read(guardMinRate(body, rate));
    body.write(Buffer.alloc(5000));
    await advance(1000);
    expect(body.destroyed).toBe(false); // the first window had 5000 bytes
    await advance(1200);
    expect(await reader.ended).toBeInstanceOf(TooSlowError);
  });

  it('does not blame the upstream while its reader is the slow side', async () => {
    const body = new PassThrough();
    const guarded = guardMinRate(body, rate);
    guarded.pause();
    body.write(Buffer.alloc(64 * 1024)); // fills the guard's buffers: nobody reads them
    await advance(5000);
    expect(guarded.destroyed).toBe(false);
    const reader = read(guarded);
    guarded.resume();
    body.end();
    expect(await reader.ended).toBeNull();
    expect(reader.bytes().length).toBe(64 * 1024);
  });

  it('destroys the upstream body when its reader destroys the guard', async () => {
    const body = new PassThrough();
    const guarded = guardMinRate(body, rate);
    guarded.on('error', () => {});
    guarded.destroy(new Error('download aborted'));
    await ticks();
    expect(body.destroyed).toBe(true);
  });
});
