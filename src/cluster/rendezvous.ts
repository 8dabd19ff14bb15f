/**
 * @module Which member owns a key (a blob digest): rendezvous, or highest-random-weight, hashing.
 * Every replica computes the same owner from the same member list without talking to the others, and
 * a member joining or leaving moves only the keys it gains or held (about 1/N of them).
 */
import { createHash } from 'node:crypto';

/**
 * The weight of `member` for `key`: the first 64 bits of sha256(member NUL key).
 *
 * Why sha256: it is built into node (no package), identical on every platform and version, and
 * uniform even over inputs that differ in one character (`10.0.0.11:5000` vs `10.0.0.12:5000`), which
 * is what keeps the owners balanced. A 64-bit FNV over such near-identical inputs has a weak avalanche
 * and skews the shares; xxhash would need a package. The cost, about a microsecond per member for
 * these short inputs, is nothing beside the network fetch it routes. NUL cannot occur in a member
 * address, so (member, key) pairs never collide by concatenation.
 */
export function weight(member: string, key: string): bigint {
  return createHash('sha256').update(member).update('\0').update(key).digest().readBigUInt64BE(0);
}

/**
 * Every member, best first, for `key`: the owner, then who takes over if the owner is gone (the
 * same order every replica computes, so fallbacks agree too). Duplicates count once.
 */
export function candidates(key: string, members: Iterable<string>): string[] {
  return [...new Set(members)]
    .map((member) => ({ member, weight: weight(member, key) }))
    .sort((a, b) => {
      if (a.weight !== b.weight) return a.weight > b.weight ? -1 : 1;
      // Equal 64-bit weights are all but impossible; the member string still makes the order total.
      return a.member < b.member ? -1 : a.member > b.member ? 1 : 0;
    })
    .map(({ member }) => member);
}

/** The owner of `key`. A member list always holds at least this replica, so an empty one is a bug. */
export function ownerOf(key: string, members: Iterable<string>): string {
  let best: string | undefined;
  let bestWeight = -1n;
  for (const member of new Set(members)) {
    const w = weight(member, key);
    if (w > bestWeight || (w === bestWeight && best !== undefined && member < best)) {
      best = member;
      bestWeight = w;
    }
  }
  if (best === undefined) throw new RangeError('ownerOf: the member list is empty');
  return best;
}
