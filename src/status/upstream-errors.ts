/**
 * @module Upstream trouble as it happens, for the status page: requests that got no answer
 * (connect, timeout, reset) and answers that say the upstream cannot serve (5xx, 429 rate limits),
 * per registry (last hour, since start, by reason) and the most recent ones with their time.
 */

const RECENT_KEPT = 50;
const HOUR_MS = 3_600_000;

export interface UpstreamError {
  /** ms since epoch. */
  at: number;
  registry: string;
  /** `timeout`, `connect`, `reset`, … for failures; `status 503`, `status 429` for answers. */
  reason: string;
}

export interface RegistryErrors {
  lastHour: number;
  sinceStart: number;
  /** Counts since start by reason. */
  byReason: Record<string, number>;
  /** When the last one happened (ms since epoch). */
  lastAt: number | null;
}

export type UpstreamErrors = ReturnType<typeof createUpstreamErrors>;

export function createUpstreamErrors(now: () => number = Date.now) {
  const recent: UpstreamError[] = [];
  const registries = new Map<
    string,
    { times: number[]; byReason: Map<string, number>; total: number; lastAt: number }
  >();

  function record(registry: string, reason: string): void {
    const at = now();
    recent.push({ at, registry, reason });
    if (recent.length > RECENT_KEPT) recent.shift();
    const entry = registries.get(registry) ?? {
      times: [],
      byReason: new Map<string, number>(),
      total: 0,
      lastAt: 0,
    };
    registries.set(registry, entry);
    entry.total++;
    entry.lastAt = at;
    entry.byReason.set(reason, (entry.byReason.get(reason) ?? 0) + 1);
    entry.times.push(at);
    // Only the last hour's times are kept (a storm of errors costs at most an hour of numbers).
    while (entry.times.length > 0 && entry.times[0]! < at - HOUR_MS) entry.times.shift();
  }

  return {
    /** A request that got no answer. */
    failed(registry: string, reason: string): void {
      record(registry, reason);
    },
    /** An upstream answer; only those that mean the upstream cannot serve are errors. */
    answered(registry: string, status: number): void {
      if (status >= 500 || status === 429) record(registry, `status ${status}`);
    },
    /** Newest first. */
    recent(): UpstreamError[] {
      return [...recent].reverse();
    },
    byRegistry(): Record<string, RegistryErrors> {
      const since = now() - HOUR_MS;
      const report: Record<string, RegistryErrors> = {};
      for (const [registry, entry] of registries) {
        report[registry] = {
          lastHour: entry.times.filter((t) => t >= since).length,
          sinceStart: entry.total,
          byReason: Object.fromEntries(entry.byReason),
          lastAt: entry.lastAt,
        };
      }
      return report;
    },
  };
}
