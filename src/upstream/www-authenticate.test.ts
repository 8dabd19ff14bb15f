import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Challenge, formatChallenge, parseWwwAuthenticate } from './www-authenticate.js';

describe('parseWwwAuthenticate', () => {
  it.each([
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.docker.io/token',
            service: 'registry.docker.io',
            scope: 'repository:library/nginx:pull',
          },
        },
      ],
    ],
    ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    ['basic realm=simple', [{ scheme: 'basic', params: { realm: 'simple' } }]],
    [
      'Basic realm="r", Bearer realm="https://a/token", service="s"',
      [
        { scheme: 'basic', params: { realm: 'r' } },
        { scheme: 'bearer', params: { realm: 'https://a/token', service: 's' } },
      ],
    ],
    [
      'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push"',
      [
        {
          scheme: 'bearer',
          params: { realm: 'https://ghcr.io/token', service: 'ghcr.io', scope: 'repository:a/b:pull,push' },
        },
      ],
    ],
    [
      'Bearer realm="with \\"quotes\\" inside"',
      [{ scheme: 'bearer', params: { realm: 'with "quotes" inside' } }],
    ],
    ['BEARER REALM="x" ,  SERVICE = "y"', [{ scheme: 'bearer', params: { realm: 'x', service: 'y' } }]],
    ['Negotiate abc123==', [{ scheme: 'negotiate', params: { token68: 'abc123==' } }]],
    [
      'Negotiate abc=, Basic realm="r"',
      [
        { scheme: 'negotiate', params: { token68: 'abc=' } },
        { scheme: 'basic', params: { realm: 'r' } },
      ],
    ],
    ['Bearer', [{ scheme: 'bearer', params: {} }]],
    ['', []],
    ['Bearer realm="unterminated', [{ scheme: 'bearer', params: { realm: 'unterminated' } }]],
  ])('%s', (header, expected) => {
    expect(parseWwwAuthenticate(header)).toEqual(expected);
  });

  it('reads every header line when several are sent', () => {
    expect(parseWwwAuthenticate(['Basic realm="a"', 'Bearer realm="b"']).map((c) => c.scheme)).toEqual([
      'basic',
      'bearer',
    ]);
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
  });
});

// --- Properties -------------------------------------------------------------------------------

const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const token = fc.string({ unit: fc.constantFrom(...TCHAR), minLength: 1, maxLength: 8 });
/** Printable ASCII and tab: what a quoted-string may hold, quotes and backslashes included. */
const text = fc.string({
  unit: fc.oneof(
    fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
    fc.constantFrom('\t', '"', '\\', ',', '='),
  ),
  maxLength: 20,
});
const token68 = fc
  .tuple(
    fc.string({ unit: fc.constantFrom(...'abcXYZ019-._~+/'), minLength: 1, maxLength: 12 }),
    fc.constantFrom('', '=', '=='),
  )
  .map(([body, pad]) => body + pad);
const challenge: fc.Arbitrary<{ scheme: string; params: Record<string, string> }> = fc.oneof(
  fc.record({
    scheme: token,
    params: fc
      .uniqueArray(fc.tuple(token, text), { selector: ([name]) => name.toLowerCase(), maxLength: 4 })
      .filter((pairs) => pairs.every(([name]) => name.toLowerCase() !== 'token68'))
      .map((pairs) => Object.fromEntries(pairs)),
  }),
  fc.record({ scheme: token, params: token68.map((t) => ({ token68: t })) }),
);
/** What the parser gives back: names lower-cased, values as they were. */
const parsedForm = (c: { scheme: string; params: Record<string, string> }): Challenge => ({
  scheme: c.scheme.toLowerCase(),
  params: Object.fromEntries(Object.entries(c.params).map(([k, v]) => [k.toLowerCase(), v])),
});

describe('WWW-Authenticate properties', () => {
  it('parses a formatted challenge back, however its values are quoted', () => {
    fc.assert(
      fc.property(challenge, (c) => {
        expect(parseWwwAuthenticate(formatChallenge(c.scheme, c.params))).toEqual([parsedForm(c)]);
      }),
      { numRuns: 2000 },
    );
  });

  it('parses several challenges in one header value, with any list separators between them', () => {
    const separator = fc.constantFrom(', ', ',', ' , ', ',\t', ', ,  ');
    fc.assert(
      fc.property(fc.array(fc.tuple(challenge, separator), { minLength: 1, maxLength: 4 }), (list) => {
        const header = list
          .map(([c, sep], i) => (i === 0 ? '' : sep) + formatChallenge(c.scheme, c.params))
          .join('');
        expect(parseWwwAuthenticate(header)).toEqual(list.map(([c]) => parsedForm(c)));
        // The same challenges as separate header lines.
        expect(parseWwwAuthenticate(list.map(([c]) => formatChallenge(c.scheme, c.params)))).toEqual(
          list.map(([c]) => parsedForm(c)),
        );
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws on arbitrary input, and gives only token schemes and string values', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: fc.constantFrom(...'Bb=", \\\tr='), maxLength: 30 }),
          fc.array(fc.string(), { maxLength: 3 }),
        ),
        (header) => {
          for (const c of parseWwwAuthenticate(header)) {
            expect(c.scheme).toMatch(/^[!#$%&'*+.^_`|~0-9a-z-]+$/);
            for (const [name, value] of Object.entries(c.params)) {
              expect(name).toBe(name.toLowerCase());
              expect(typeof value).toBe('string');
            }
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
