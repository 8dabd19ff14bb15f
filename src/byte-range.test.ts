import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseContentRange, parseRangeHeader, type RangeSpec, resolveRange } from './byte-range.js';
import { RegistryError } from './errors.js';

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
    expect(parseContentRange('bytes 5-3/10')).toBeNull();
    expect(parseContentRange('bytes 0-10/10')).toBeNull();
  });
});

// --- Properties -------------------------------------------------------------------------------

const position = fc.oneof(fc.nat({ max: 2000 }), fc.maxSafeNat());
const spec: fc.Arbitrary<RangeSpec> = fc.oneof(
  fc
    .tuple(position, fc.option(position))
    .map(([a, b]) => (b === null ? { start: a, end: null } : { start: Math.min(a, b), end: Math.max(a, b) })),
  position.map((suffix) => ({ suffix })),
);
const size = fc.oneof(fc.nat({ max: 2000 }), fc.maxSafeNat());
const format = (r: RangeSpec) => ('suffix' in r ? `bytes=-${r.suffix}` : `bytes=${r.start}-${r.end ?? ''}`);

/** The outcome of resolveRange: the range, or the 416 error it must throw. */
function outcome(r: RangeSpec, n: number) {
  try {
    return resolveRange(r, n);
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ status: 416, headers: { 'content-range': `bytes */${n}` } });
    return null;
  }
}

describe('byte range properties', () => {
  it('parses a formatted range back, in any letter case and spacing', () => {
    fc.assert(
      fc.property(
        spec,
        fc.constantFrom('bytes', 'BYTES', 'Bytes'),
        fc.constantFrom('', ' ', '\t', '  '),
        (r, unit, ows) => {
          expect(parseRangeHeader(format(r))).toEqual(r);
          const spaced = format(r)
            .replace('bytes', unit)
            .replace('=', `${ows}=${ows}`)
            .replace('-', `${ows}-${ows}`);
          expect(parseRangeHeader(`${ows}${spaced}${ows}`)).toEqual(r);
        },
      ),
    );
  });

  it('resolves within [0, size) to the length asked for, or throws the 416 error exactly when nothing is asked for', () => {
    fc.assert(
      fc.property(spec, size, (r, n) => {
        const range = outcome(r, n);
        const satisfiable = 'suffix' in r ? r.suffix > 0 && n > 0 : r.start < n;
        expect(range !== null).toBe(satisfiable);
        if (range === null) return;
        expect(range.start).toBeGreaterThanOrEqual(0);
        expect(range.end).toBeGreaterThanOrEqual(range.start);
        expect(range.end).toBeLessThan(n);
        const length = range.end - range.start + 1;
        if ('suffix' in r) {
          expect(length).toBe(Math.min(r.suffix, n));
          expect(range.end).toBe(n - 1); // a suffix is the last bytes
        } else {
          expect(range.start).toBe(r.start);
          expect(length).toBe(Math.min(r.end ?? n - 1, n - 1) - r.start + 1);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on an arbitrary header, and what it returns resolves like any range', () => {
    const header = fc.oneof(
      fc.string(),
      fc.string({ unit: fc.constantFrom(...'bytes=-,0123456789 \t'), maxLength: 30 }),
      fc.tuple(spec, spec).map(([a, b]) => `${format(a)},${format(b).slice('bytes='.length)}`),
    );
    fc.assert(
      fc.property(header, size, (h, n) => {
        const r = parseRangeHeader(h);
        if (r === null) return;
        if ('suffix' in r) expect(r.suffix).toBeGreaterThanOrEqual(0);
        else {
          expect(Number.isSafeInteger(r.start)).toBe(true);
          if (r.end !== null) expect(Number.isSafeInteger(r.end) && r.end >= r.start).toBe(true);
        }
        outcome(r, n);
      }),
      { numRuns: 2000 },
    );
  });

  it('ignores multiple ranges (the client then gets a plain 200)', () => {
    fc.assert(
      fc.property(spec, spec, (a, b) => {
        expect(parseRangeHeader(`${format(a)},${format(b).slice('bytes='.length)}`)).toBeNull();
      }),
    );
  });

  it('parses an upstream Content-Range it formats, and refuses one that is not a range of the size', () => {
    fc.assert(
      fc.property(position, position, fc.option(size), (a, b, total) => {
        const [start, end] = [Math.min(a, b), Math.max(a, b)];
        const parsed = parseContentRange(`bytes ${start}-${end}/${total ?? '*'}`);
        // RFC 9110 §14.4: last-pos < first-pos or complete-length <= last-pos is invalid.
        expect(parsed).toEqual(total === null || end < total ? { range: { start, end }, size: total } : null);
        if (start < end) expect(parseContentRange(`bytes ${end}-${start}/${total ?? '*'}`)).toBeNull();
      }),
    );
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.string({ unit: fc.constantFrom(...'bytes -/*0123456789'), maxLength: 30 })),
        (h) => {
          const parsed = parseContentRange(h);
          if (!parsed) return;
          expect(parsed.range.end).toBeGreaterThanOrEqual(parsed.range.start);
          if (parsed.size !== null) expect(parsed.range.end).toBeLessThan(parsed.size);
        },
      ),
    );
  });
});
