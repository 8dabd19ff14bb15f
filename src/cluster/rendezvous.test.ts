/** Rendezvous properties: one stable owner per key, minimal movement when members change, balance. */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { candidates, ownerOf, weight } from './rendezvous.js';

const ipv4Member = fc
  .tuple(
    fc.constant(10),
    fc.nat(255),
    fc.nat(255),
    fc.integer({ min: 1, max: 254 }),
    fc.constantFrom(5000, 5001),
  )
  .map(([a, b, c, d, port]) => `${a}.${b}.${c}.${d}:${port}`);
const ipv6Member = fc.nat(0xffff).map((n) => `[fd00::${n.toString(16)}]:5000`);
const member = fc.oneof(ipv4Member, ipv6Member);
const members = (min: number, max: number) => fc.uniqueArray(member, { minLength: min, maxLength: max });
const digest = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((bytes) => `sha256:${Buffer.from(bytes).toString('hex')}`);

const withShuffled = members(1, 12).chain((list) =>
  fc.tuple(fc.constant(list), fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length })),
);

/** `count` distinct digests, varied by `salt` so every run sees other keys. */
function digests(count: number, salt: number): string[] {
  return Array.from(
    { length: count },
    (_, i) => `sha256:${createHash('sha256').update(`${salt}:${i}`).digest('hex')}`,
  );
}

describe('rendezvous hashing', () => {
  it('gives a known weight (the same on every platform and version)', () => {
    const expected = createHash('sha256').update('10.0.0.11:5000\0sha256:abc').digest().readBigUInt64BE(0);
    expect(weight('10.0.0.11:5000', 'sha256:abc')).toBe(expected);
    expect(weight('10.0.0.1:15000', 'sha256:abc')).not.toBe(weight('10.0.0.11:5000', 'sha256:abc'));
  });

  it('is deterministic and ignores the order and duplicates of the member list', () => {
    fc.assert(
      fc.property(digest, withShuffled, (key, [list, shuffled]) => {
        expect(candidates(key, shuffled)).toEqual(candidates(key, list));
        expect(candidates(key, [...list, ...list])).toEqual(candidates(key, list));
        expect(ownerOf(key, shuffled)).toBe(ownerOf(key, list));
      }),
    );
  });

  it('gives every key exactly one owner among the members, first of a full list of candidates', () => {
    fc.assert(
      fc.property(digest, members(1, 12), (key, list) => {
        const ranked = candidates(key, list);
        expect([...ranked].sort()).toEqual([...list].sort());
        expect(ranked[0]).toBe(ownerOf(key, list));
        // Candidates are in falling weight: the owner has the highest.
        const weights = ranked.map((m) => weight(m, key));
        expect(weights.every((w, i) => i === 0 || weights[i - 1]! >= w)).toBe(true);
      }),
    );
  });

  it('moves only the keys the added member takes, about 1/(N+1) of them', () => {
    fc.assert(
      fc.property(members(2, 13), fc.nat(), (list, salt) => {
        const [added, ...before] = list as [string, ...string[]];
        const after = [...before, added];
        const keys = digests(2000, salt);
        let moved = 0;
        const elsewhere: string[] = [];
        for (const key of keys) {
          const now = ownerOf(key, after);
          if (now === ownerOf(key, before)) continue;
          moved++;
          if (now !== added) elsewhere.push(key);
        }
        expect(elsewhere, 'keys that moved between old members').toEqual([]);
        const expected = keys.length / after.length;
        expect(moved).toBeGreaterThan(expected * 0.5);
        expect(moved).toBeLessThan(expected * 1.5);
      }),
      { numRuns: 10 },
    );
  });

  it('moves only the removed member’s keys, each to its next candidate', () => {
    fc.assert(
      fc.property(members(2, 13), fc.nat(), (list, salt) => {
        const [removed, ...after] = list as [string, ...string[]];
        const keys = digests(2000, salt);
        let moved = 0;
        const wrong: string[] = [];
        for (const key of keys) {
          const ranked = candidates(key, list);
          if (ranked[0] === removed) moved++;
          const expected = ranked[0] === removed ? ranked[1] : ranked[0];
          if (ownerOf(key, after) !== expected) wrong.push(key);
        }
        expect(wrong, 'keys not with their old owner or, for the removed one, its next candidate').toEqual(
          [],
        );
        const expected = keys.length / list.length;
        expect(moved).toBeGreaterThan(expected * 0.5);
        expect(moved).toBeLessThan(expected * 1.5);
      }),
      { numRuns: 10 },
    );
  });

  it('balances keys across members within 20% of an even share', () => {
    fc.assert(
      fc.property(members(2, 12), fc.nat(), (list, salt) => {
        const counts = new Map(list.map((m) => [m, 0]));
        const keys = digests(10_000, salt);
        for (const key of keys) {
          const owner = ownerOf(key, list);
          counts.set(owner, counts.get(owner)! + 1);
        }
        const even = keys.length / list.length;
        for (const count of counts.values()) {
          expect(Math.abs(count - even)).toBeLessThan(even * 0.2);
        }
      }),
      { numRuns: 8 },
    );
  });

  it('balances near-identical member addresses too (consecutive pod IPs)', () => {
    const pods = Array.from({ length: 10 }, (_, i) => `10.0.0.${i + 1}:5000`);
    const counts = new Map(pods.map((m) => [m, 0]));
    for (const key of digests(20_000, 0)) {
      const owner = ownerOf(key, pods);
      counts.set(owner, counts.get(owner)! + 1);
    }
    for (const count of counts.values()) expect(Math.abs(count - 2_000)).toBeLessThan(300);
  });

  it('refuses an empty member list (there is always at least this replica)', () => {
    expect(() => ownerOf('sha256:abc', [])).toThrow(RangeError);
    expect(candidates('sha256:abc', [])).toEqual([]);
  });
});
