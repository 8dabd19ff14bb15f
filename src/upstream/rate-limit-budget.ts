/**
 * @module What is left of a registry's pull limit, read from its `ratelimit-limit` /
 * `ratelimit-remaining` headers (Docker Hub: `100;w=21600`) and its 429 answers, and how to spend
 * it: tags are trusted longer as the budget runs low, and once it is spent (or the registry answered
 * 429) no manifest request is sent until the time the registry gave or its window implies. One
 * budget per registry client, i.e. per registry and credential. A state machine on an injected clock.
 */

export interface RateLimitPolicy {
  /** Shares of the limit (0.5 = half left), highest first: below each the tag TTL is stretched once more. */
  thresholds: readonly number[];
  /** The factor each threshold crossed multiplies the tag TTL by. */
  stretch: number;
  /** Milliseconds to wait after a 429 (or a spent budget) whose answer says neither Retry-After nor a window. */
  wait: number;
}

/** A registry's own account of its limit, as its last answer stated it. */
export interface RateLimitReading {
  limit: number;
  remaining: number;
  /** The window the limit is counted over (`w=`), in seconds, if stated. */
  windowSeconds: number | null;
  /** The headers as sent, to pass on with our own 429. */
  headers: Record<string, string>;
}

/** Changes worth a log line: each is reported once, when it happens. */
export type BudgetNotice =
  | { kind: 'low'; threshold: number; remaining: number; limit: number; tagTTLFactor: number }
  | { kind: 'spent'; status: number; retryAfterSeconds: number }
  | { kind: 'restored'; remaining: number; limit: number };

export interface RateLimitBudget {
  /** An answer from the registry itself (not a CDN it redirected to): its status and headers. */
  observe(status: number, headers: Record<string, string | string[] | undefined>): BudgetNotice[];
  /** Seconds until manifest requests may be sent again; null while they may go now. */
  retryAfter(): number | null;
  /** How many times longer a tag is served from cache before it is revalidated (1 with budget to spare). */
  tagTTLFactor(): number;
  /** The registry's last statement of its limit; null if it never sent one. */
  reading(): RateLimitReading | null;
}

type Headers = Record<string, string | string[] | undefined>;

const first = (headers: Headers, name: string): string | undefined => {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
};

/** `100;w=21600` (Docker Hub), `100` or `100, 100;w=60` (several policies: the first counts). */
function parseQuota(value: string | undefined): { count: number; window: number | null } | null {
  if (value === undefined) return null;
  const match = /^\s*(\d+)\s*(?:;([^,]*))?/.exec(value);
  if (!match) return null;
  const window = /(?:^|;)\s*w\s*=\s*(\d+)\s*(?:;|$)/.exec(match[2] ?? '');
  return { count: Number(match[1]), window: window ? Number(window[1]) : null };
}

/** The `ratelimit-limit` / `ratelimit-remaining` pair of an answer; null unless both are there. */
export function parseRateLimit(headers: Headers): RateLimitReading | null {
  const limitHeader = first(headers, 'ratelimit-limit');
  const remainingHeader = first(headers, 'ratelimit-remaining');
  const limit = parseQuota(limitHeader);
  const remaining = parseQuota(remainingHeader);
  if (!limit || !remaining || limit.count === 0) return null;
  return {
    limit: limit.count,
    remaining: Math.min(remaining.count, limit.count),
    windowSeconds: remaining.window ?? limit.window,
    headers: { 'ratelimit-limit': limitHeader!, 'ratelimit-remaining': remainingHeader! },
  };
}

/** Retry-After in milliseconds from now: delay-seconds or an HTTP date; null if absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

export function createRateLimitBudget(
  policy: RateLimitPolicy,
  now: () => number = Date.now,
): RateLimitBudget {
  const thresholds = [...policy.thresholds].sort((a, b) => b - a);
  let last: RateLimitReading | null = null;
  let spentUntil: number | null = null;
  // Thresholds warned about since the budget was last above all of them: each is told once per descent.
  const warned = new Set<number>();

  const crossed = (reading: RateLimitReading) =>
    thresholds.filter((share) => reading.remaining < share * reading.limit);

  return {
    observe(status, headers) {
      const at = now();
      const notices: BudgetNotice[] = [];
      const reading = parseRateLimit(headers);
      if (reading) {
        last = reading;
        const below = crossed(reading);
        if (below.length === 0 && warned.size > 0) {
          warned.clear();
          notices.push({ kind: 'restored', remaining: reading.remaining, limit: reading.limit });
        }
        for (const threshold of below) {
          if (warned.has(threshold)) continue;
          warned.add(threshold);
          notices.push({
            kind: 'low',
            threshold,
            remaining: reading.remaining,
            limit: reading.limit,
            tagTTLFactor: policy.stretch ** below.length,
          });
        }
      }
      if (status === 429 || reading?.remaining === 0) {
        // When the window frees a request again is the registry's secret: its Retry-After if it says,
        // else the whole window (the count made at its start may be the first to expire, or the last).
        const wait =
          parseRetryAfter(first(headers, 'retry-after'), at) ??
          (reading?.windowSeconds != null ? reading.windowSeconds * 1000 : null) ??
          policy.wait;
        const until = at + Math.max(1000, wait);
        const wasSpent = spentUntil !== null && spentUntil > at;
        spentUntil = wasSpent ? Math.max(spentUntil!, until) : until;
        if (!wasSpent)
          notices.push({ kind: 'spent', status, retryAfterSeconds: secondsUntil(spentUntil, at) });
      } else if (reading && spentUntil !== null) {
        spentUntil = null; // the registry says there is budget again
      }
      return notices;
    },

    retryAfter() {
      if (spentUntil === null) return null;
      const at = now();
      if (spentUntil <= at) {
        spentUntil = null;
        return null;
      }
      return secondsUntil(spentUntil, at);
    },

    tagTTLFactor() {
      return last ? policy.stretch ** crossed(last).length : 1;
    },

    reading: () => last,
  };
}

const secondsUntil = (until: number, at: number) => Math.max(1, Math.ceil((until - at) / 1000));
