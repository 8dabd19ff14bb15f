import { describe, expect, it } from 'vitest';
import { parseContentRange, parseRangeHeader, resolveRange } from './byte-range.js';

describe('byte ranges', () => {
  it.each([
    ['bytes=0-99', { start: 0, end: 99 }],
    ['bytes=100-', { start: 100, end: null }],
    ['bytes=-500', { suffix: 500 }],
    ['BYTES = 5 - 9', { start: 5, end: 9 }],
    ['bytes=9-5', null],
    ['bytes=0-1,5-6', null],
    ['items=0-1', null],
    ['bytes=-', null],
    [undefined, null],
  ])('parses %s', (header, expected) => {
    expect(parseRangeHeader(header)).toEqual(expected);
  });

  it.each([
    [{ start: 0, end: 99 }, 1000, { start: 0, end: 99 }],
    [{ start: 900, end: 2000 }, 1000, { start: 900, end: 999 }],
    [{ start: 10, end: null }, 1000, { start: 10, end: 999 }],
    [{ suffix: 100 }, 1000, { start: 900, end: 999 }],
    [{ suffix: 5000 }, 1000, { start: 0, end: 999 }],
  ])('resolves %j against %d bytes', (spec, size, expected) => {
    expect(resolveRange(spec, size)).toEqual(expected);
  });

  it('answers 416 with the size for a range past the end', () => {
    expect(() => resolveRange({ start: 1000, end: null }, 1000)).toThrow(
      expect.objectContaining({ status: 416, headers: { 'content-range': 'bytes */1000' } }),
    );
    expect(() => resolveRange({ suffix: 0 }, 1000)).toThrow(expect.objectContaining({ status: 416 }));
  });

  it('parses an upstream Content-Range', () => {
    expect(parseContentRange('bytes 100-199/1000')).toEqual({ range: { start: 100, end: 199 }, size: 1000 });
    expect(parseContentRange('bytes 0-1/*')).toEqual({ range: { start: 0, end: 1 }, size: null });
    expect(parseContentRange('nonsense')).toBeNull();
  });
});
