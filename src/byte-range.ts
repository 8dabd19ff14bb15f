/** @module HTTP byte ranges (`Range: bytes=...`) for blobs: one range per request, as registries serve. */
import type { ByteRange } from './content.js';
import { rangeNotSatisfiable } from './errors.js';

/** A range as the client asked for it, before the blob's size is known. */
export type RangeSpec = { start: number; end: number | null } | { suffix: number };

/**
 * The client's single byte range, or null to send the whole blob. Malformed or multi-range headers
 * are ignored, as RFC 9110 allows: the client then gets a plain 200.
 */
export function parseRangeHeader(header: string | undefined): RangeSpec | null {
  if (!header) return null;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return null;
  const [, from, to] = match;
  if (from === '' && to === '') return null;
  if (from === '') return { suffix: Number(to) };
  const start = Number(from);
  const end = to === '' ? null : Number(to);
  if (!Number.isSafeInteger(start) || (end !== null && (!Number.isSafeInteger(end) || end < start)))
    return null;
  return { start, end };
}

/** The inclusive byte range for a blob of `size` bytes; 416 when nothing of it is asked for. */
export function resolveRange(spec: RangeSpec, size: number): ByteRange {
  if ('suffix' in spec) {
    if (spec.suffix === 0 || size === 0) throw rangeNotSatisfiable(size);
    return { start: Math.max(0, size - spec.suffix), end: size - 1 };
  }
  if (spec.start >= size) throw rangeNotSatisfiable(size);
  return { start: spec.start, end: Math.min(spec.end ?? size - 1, size - 1) };
}

/**
 * Parses `Content-Range: bytes start-end/size` from an upstream's 206 answer. An invalid one
 * (end before start, or not inside the size) is null: RFC 9110 forbids recombining its bytes.
 */
export function parseContentRange(
  header: string | undefined,
): { range: ByteRange; size: number | null } | null {
  const match = header ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim()) : null;
  if (!match) return null;
  const [start, end] = [Number(match[1]), Number(match[2])];
  const size = match[3] === '*' ? null : Number(match[3]);
  // A safe end at or after start makes start safe too.
  const invalid =
    !Number.isSafeInteger(end) ||
    end < start ||
    (size !== null && (!Number.isSafeInteger(size) || end >= size));
  return invalid ? null : { range: { start, end }, size };
}
