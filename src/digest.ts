/** @module Content digests (`algorithm:hex`): parsing, validation and streaming verification. */
import { createHash, type Hash } from 'node:crypto';
import { digestInvalid } from './errors.js';

/** Algorithms whose digests we can verify; the spec registers these two. */
export const DIGEST_ALGORITHMS = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

export interface Digest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** `algorithm:hex`, as it appears on the wire. */
  value: string;
}

// The grammar of the spec: algorithm-component(+separator)... ":" encoded
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Parses and checks a digest; throws DIGEST_INVALID for malformed or unverifiable ones. */
export function parseDigest(input: string): Digest {
  if (!DIGEST_GRAMMAR.test(input)) throw digestInvalid('invalid digest', { digest: input.slice(0, 200) });
  const colon = input.indexOf(':');
  const algorithm = input.slice(0, colon);
  const hex = input.slice(colon + 1);
  // Own keys only: `in` would take 'constructor' (it passes the grammar) for an algorithm.
  if (!Object.hasOwn(DIGEST_ALGORITHMS, algorithm)) {
    throw digestInvalid(`unsupported digest algorithm ${algorithm}`, { digest: input.slice(0, 200) });
  }
  const alg = algorithm as DigestAlgorithm;
  if (hex.length !== DIGEST_ALGORITHMS[alg] || !/^[a-f0-9]+$/.test(hex)) {
    throw digestInvalid(`invalid ${alg} digest`, { digest: input.slice(0, 200) });
  }
  return { algorithm: alg, hex, value: input };
}

export function createDigester(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}
