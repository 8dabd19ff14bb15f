/** @module Merges the media types of repeated `Accept` header lines into one header value. */

/** One comma-separated Accept value from several lines, each media type once, in first-seen order. */
export function mergeAccept(lines: string[]): string | undefined {
  const seen = new Set<string>();
  const merged: string[] = [];
  for (const line of lines) {
    for (const part of line.split(',')) {
      const type = part.trim();
      if (type === '') continue;
      const key = type.toLowerCase();
      if (seen.has(key)) continue;
      seen.add(key);
      merged.push(type);
    }
  }
  return merged.length === 0 ? undefined : merged.join(', ');
}
