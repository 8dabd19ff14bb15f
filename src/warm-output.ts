/** @module How `pullcache warm` shows progress: a bar on a terminal, JSON lines for machines. */
import type { WriteStream } from 'node:tty';
import { formatBytes } from './units.js';
import type { WarmReport } from './warm.js';

export interface WarmOutput {
  report(event: WarmReport): void;
  bytes(count: number): void;
  finish(): void;
}

/** One JSON object per line on stdout: what CI logs and scripts read. */
export function jsonLines(write: (line: string) => void = (l) => process.stdout.write(l)): WarmOutput {
  return {
    report: (event) => write(`${JSON.stringify(event)}\n`),
    bytes: () => {},
    finish: () => {},
  };
}

/** A single redrawn status line on a terminal (stderr), one summary line per image. */
export function progressBar(stream: WriteStream): WarmOutput {
  let reference = '';
  let total = 0;
  let done = 0;
  let last = 0;
  const draw = (force = false) => {
    const now = Date.now();
    if (!force && now - last < 100) return;
    last = now;
    const width = 30;
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    const filled = Math.round(fraction * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const line = `${reference} [${bar}] ${Math.round(fraction * 100)}% ${formatBytes(done)} / ${formatBytes(total)}`;
    stream.write(
      `\r${line.slice(0, Math.max(20, (stream.columns ?? 100) - 1)).padEnd(stream.columns ? stream.columns - 1 : 0)}`,
    );
  };
  return {
    report(event) {
      if (event.event === 'plan') {
        reference = event.reference;
        total = event.bytes ?? 0;
        done = 0;
        draw(true);
      } else if (event.event === 'done' || event.event === 'error') {
        draw(true);
        const summary =
          event.event === 'done'
            ? `done: ${event.blobs} blobs, ${formatBytes(event.bytes ?? 0)} in ${((event.ms ?? 0) / 1000).toFixed(1)}s`
            : `FAILED: ${event.message}`;
        stream.write(`\r${event.reference}: ${summary}\n`);
      }
    },
    bytes(count) {
      done += count;
      draw();
    },
    finish: () => {},
  };
}
