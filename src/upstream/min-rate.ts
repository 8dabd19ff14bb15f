/**
 * @module A floor under the rate of an upstream blob body. bodyTimeout catches silence; this catches
 * a drip (a byte now and then), which would otherwise hold a download slot and its clients forever.
 */
import { pipeline, type Readable, Transform } from 'node:stream';
import { formatBytes } from '../units.js';

export interface MinRate {
  bytesPerSecond: number;
  windowMs: number;
}

/**
 * Deliberately not a RegistryError: to the download it is a broken connection like any other, so it
 * resumes with a Range request on a fresh connection (and gives up after its resume limit).
 */
export class TooSlowError extends Error {
  override name = 'TooSlowError';
  readonly code = 'PULLCACHE_UPSTREAM_TOO_SLOW';
}

const STEPS = 10; // the window slides in tenths: a stall is seen within 1.1 windows

/**
 * The body's bytes, unchanged, through a stream that fails with TooSlowError when fewer than
 * `bytesPerSecond × window` arrived over the last window. Destroying either end destroys both.
 */
export function guardMinRate(body: Readable, rate: MinRate): Readable {
  const needed = (rate.bytesPerSecond * rate.windowMs) / 1000;
  const steps: number[] = [];
  let current = 0;
  const guard = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      current += chunk.length;
      callback(null, chunk);
    },
  });
  const timer = setInterval(
    () => {
      // Bytes waiting for our reader mean the reader is the slow side (a stalled disk), not the
      // upstream: judge the upstream again only over a window in which it was read promptly.
      if (guard.readableLength > 0 || guard.writableLength > 0) {
        steps.length = 0;
        current = 0;
        return;
      }
      steps.push(current);
      current = 0;
      if (steps.length > STEPS) steps.shift();
      const received = steps.reduce((sum, n) => sum + n, 0);
      if (steps.length === STEPS && received < needed) {
        guard.destroy(
          new TooSlowError(
            `sent ${formatBytes(received)} in ${rate.windowMs / 1000}s, below the minimum of ${formatBytes(rate.bytesPerSecond)}/s`,
          ),
        );
      }
    },
    Math.max(1, rate.windowMs / STEPS),
  );
  timer.unref(); // a guard never keeps the process alive
  guard.once('close', () => clearInterval(timer));
  // Errors reach the reader through `guard`; the callback only keeps them from being unhandled.
  pipeline(body, guard, () => {});
  return guard;
}
