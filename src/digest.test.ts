import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DIGEST_ALGORITHMS, digestOf, parseDigest } from './digest.js';
import { RegistryError } from './errors.js';

const refusal = (input: string): RegistryError | null => {
  try {
    parseDigest(input);
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    return err as RegistryError;
  }
};

describe('parseDigest', () => {
  it('reads back every digest it computes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.constantFrom('sha256', 'sha512') as fc.Arbitrary<'sha256' | 'sha512'>,
        (bytes, algorithm) => {
          const value = digestOf(bytes, algorithm);
          expect(parseDigest(value)).toEqual({ algorithm, hex: value.slice(algorithm.length + 1), value });
        },
      ),
    );
  });

  it('names an algorithm it does not know as unsupported, Object.prototype names included', () => {
    for (const algorithm of ['md5', 'sha1', 'sha384', 'constructor', 'blake3']) {
      const err = refusal(`${algorithm}:${'a'.repeat(64)}`);
      expect(err?.code).toBe('DIGEST_INVALID');
      expect(err?.message).toBe(`unsupported digest algorithm ${algorithm}`);
    }
  });

  it('accepts exactly lowercase hex of the algorithm length, and answers anything else with DIGEST_INVALID', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 8 }).map((bytes) => digestOf(bytes)),
          fc.string({ unit: 'binary', maxLength: 140 }),
          fc
            .tuple(
              fc.constantFrom('sha256', 'sha512', 'SHA256', 'sha256+b64', 'constructor', 'md5'),
              fc.constantFrom(':', '::', '', ' :'),
              fc.string({
                unit: fc.constantFrom(...'0123456789abcdefABCDEFg/.%\0'),
                minLength: 60,
                maxLength: 130,
              }),
            )
            .map(([a, sep, hex]) => a + sep + hex),
        ),
        (input) => {
          const err = refusal(input);
          const [algorithm, hex] = [input.slice(0, input.indexOf(':')), input.slice(input.indexOf(':') + 1)];
          const valid =
            Object.hasOwn(DIGEST_ALGORITHMS, algorithm) &&
            new RegExp(`^[a-f0-9]{${DIGEST_ALGORITHMS[algorithm as keyof typeof DIGEST_ALGORITHMS]}}$`).test(
              hex,
            );
          expect(err === null).toBe(valid);
          if (err) expect([err.code, err.status]).toEqual(['DIGEST_INVALID', 400]);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
