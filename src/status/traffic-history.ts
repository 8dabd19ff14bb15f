/**
 * @module What the cache saved, per registry: manifest and blob answers from the cache (hit,
 * revalidated, stale) and from the upstream (miss), and bytes sent from the cache and fetched from
 * upstreams, in one-minute buckets for the last day and as totals since start. A fixed ring per
 * registry (1,440 minutes × 4 numbers, ~46 KB), whatever the traffic.
 */

const MINUTE_MS = 60_000;
const DAY_MINUTES = 1440;
const FIELDS = 4; // hits, misses, cacheBytes, upstreamBytes

export interface TrafficCounts {
  /** Answers from the cache (hit, revalidated, stale). */
  hits: number;
  /** Answers fetched from the upstream. */
  misses: number;
  /** hits / (hits + misses); null without answers. */
  hitRatio: number | null;
  /** Bytes sent to clients from the cache. */
  cacheBytes: number;
  /** Bytes fetched from the upstream. */
  upstreamBytes: number;
}

export interface RegistryTraffic {
  hour: TrafficCounts;
  day: TrafficCounts;
  sinceStart: TrafficCounts;
  /** The last 60 minutes, oldest first, one entry a minute. */
  perMinute: TrafficCounts[];
  /** The last 24 hours, oldest first, one entry an hour. */
  perHour: TrafficCounts[];
}

class Ring {
  readonly values = new Float64Array(DAY_MINUTES * FIELDS);
  /** The minute (since epoch) each slot holds; -1 when empty. */
  readonly minutes = new Float64Array(DAY_MINUTES).fill(-1);
  readonly total = [0, 0, 0, 0];

  add(minute: number, field: number, amount: number): void {
    const slot = minute % DAY_MINUTES;
    if (this.minutes[slot] !== minute) {
      this.minutes[slot] = minute;
      this.values.fill(0, slot * FIELDS, slot * FIELDS + FIELDS);
    }
    this.values[slot * FIELDS + field]! += amount;
    this.total[field]! += amount;
  }

  /** Sums of the minutes in [from, to]. */
  sum(from: number, to: number): number[] {
    const sums = [0, 0, 0, 0];
    for (let minute = Math.max(from, to - DAY_MINUTES + 1); minute <= to; minute++) {
      const slot = minute % DAY_MINUTES;
      if (this.minutes[slot] !== minute) continue;
      for (let f = 0; f < FIELDS; f++) sums[f]! += this.values[slot * FIELDS + f]!;
    }
    return sums;
  }
}

function counts([hits, misses, cacheBytes, upstreamBytes]: number[]): TrafficCounts {
  const answers = hits! + misses!;
  return {
    hits: hits!,
    misses: misses!,
    hitRatio: answers === 0 ? null : hits! / answers,
    cacheBytes: cacheBytes!,
    upstreamBytes: upstreamBytes!,
  };
}

export type TrafficHistory = ReturnType<typeof createTrafficHistory>;

export function createTrafficHistory(now: () => number = Date.now) {
  const rings = new Map<string, Ring>();
  const ringOf = (registry: string) => {
    const ring = rings.get(registry) ?? new Ring();
    rings.set(registry, ring);
    return ring;
  };
  const minuteNow = () => Math.floor(now() / MINUTE_MS);

  return {
    /** A manifest or blob answer: from the cache or not, and the bytes sent from the cache. */
    answered(registry: string, fromCache: boolean, bytes: number): void {
      const ring = ringOf(registry);
      const minute = minuteNow();
      ring.add(minute, fromCache ? 0 : 1, 1);
      if (fromCache) ring.add(minute, 2, bytes);
    },
    /** Bytes received from an upstream (manifests and blobs, whoever asked). */
    fetched(registry: string, bytes: number): void {
      ringOf(registry).add(minuteNow(), 3, bytes);
    },
    /** Every registry seen, and those of `include` (configured ones) even before their first answer. */
    report(include: string[] = []): Record<string, RegistryTraffic> {
      for (const registry of include) ringOf(registry);
      const minute = minuteNow();
      const report: Record<string, RegistryTraffic> = {};
      for (const [registry, ring] of [...rings.entries()].sort(([a], [b]) => a.localeCompare(b))) {
        report[registry] = {
          hour: counts(ring.sum(minute - 59, minute)),
          day: counts(ring.sum(minute - DAY_MINUTES + 1, minute)),
          sinceStart: counts(ring.total),
          perMinute: Array.from({ length: 60 }, (_, i) => counts(ring.sum(minute - 59 + i, minute - 59 + i))),
          perHour: Array.from({ length: 24 }, (_, i) => {
            const end = minute - (23 - i) * 60;
            return counts(ring.sum(end - 59, end));
          }),
        };
      }
      return report;
    },
  };
}
