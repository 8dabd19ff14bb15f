import { describe, expect, it } from 'vitest';
import { createRateLimitBudget, parseRateLimit, parseRetryAfter } from './rate-limit-budget.js';

const policy = { thresholds: [0.5, 0.25, 0.1], stretch: 4, wait: 60_000 };
const hub = (remaining: number, limit = 100, window = 21600) => ({
  'ratelimit-limit': `${limit};w=${window}`,
  'ratelimit-remaining': `${remaining};w=${window}`,
});

function setup() {
  let clock = Date.parse('2026-11-30T12:00:00Z');
  const budget = createRateLimitBudget(policy, () => clock);
  return { budget, advance: (ms: number) => (clock += ms), now: () => clock };
}

describe('parseRateLimit', () => {
  it("reads Docker Hub's headers, window included", () => {
    expect(parseRateLimit(hub(76))).toEqual({
      limit: 100,
      remaining: 76,
      windowSeconds: 21600,
      headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '76;w=21600' },
    });
  });

  it('reads plain counts without a window, and the first of several policies', () => {
    expect(parseRateLimit({ 'ratelimit-limit': '50', 'ratelimit-remaining': '7' })).toMatchObject({
      limit: 50,
      remaining: 7,
      windowSeconds: null,
    });
    expect(
      parseRateLimit({ 'ratelimit-limit': '100, 100;w=60, 1000;w=3600', 'ratelimit-remaining': '3' }),
    ).toMatchObject({ limit: 100, remaining: 3 });
  });

  it('needs both headers, as numbers, and a limit above 0', () => {
    expect(parseRateLimit({ 'ratelimit-limit': '100;w=21600' })).toBeNull();
    expect(parseRateLimit({ 'ratelimit-remaining': '5' })).toBeNull();
    expect(parseRateLimit({ 'ratelimit-limit': 'lots', 'ratelimit-remaining': '5' })).toBeNull();
    expect(parseRateLimit({ 'ratelimit-limit': '0', 'ratelimit-remaining': '0' })).toBeNull();
    expect(parseRateLimit({})).toBeNull();
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-30T12:00:00Z');
  it('reads delay-seconds and HTTP dates', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Mon, 30 Nov 2026 12:01:30 GMT', now)).toBe(90_000);
    expect(parseRetryAfter('Mon, 30 Nov 2026 11:00:00 GMT', now)).toBe(0);
  });
  it('ignores what it cannot read', () => {
    expect(parseRetryAfter(undefined, now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
  });
});

describe('rate-limit budget', () => {
  it('stays out of the way while the registry states no limit, or has plenty left', () => {
    const { budget } = setup();
    expect(budget.observe(200, {})).toEqual([]);
    expect(budget.tagTTLFactor()).toBe(1);
    expect(budget.observe(200, hub(76))).toEqual([]);
    expect(budget.tagTTLFactor()).toBe(1);
    expect(budget.retryAfter()).toBeNull();
    expect(budget.reading()).toMatchObject({ limit: 100, remaining: 76 });
  });

  it('stretches the tag TTL once more below each threshold, and tells each threshold once', () => {
    const { budget } = setup();
    expect(budget.observe(200, hub(49))).toEqual([
      { kind: 'low', threshold: 0.5, remaining: 49, limit: 100, tagTTLFactor: 4 },
    ]);
    expect(budget.tagTTLFactor()).toBe(4);
    expect(budget.observe(200, hub(40))).toEqual([]);
    expect(budget.observe(200, hub(24))).toEqual([
      { kind: 'low', threshold: 0.25, remaining: 24, limit: 100, tagTTLFactor: 16 },
    ]);
    expect(budget.tagTTLFactor()).toBe(16);
    expect(budget.observe(200, hub(30))).toEqual([]); // back above a quarter: no new warning...
    expect(budget.tagTTLFactor()).toBe(4);
    expect(budget.observe(200, hub(20))).toEqual([]); // ...nor when it falls below again
    expect(budget.observe(200, hub(9))).toEqual([
      { kind: 'low', threshold: 0.1, remaining: 9, limit: 100, tagTTLFactor: 64 },
    ]);
    expect(budget.tagTTLFactor()).toBe(64);
    expect(budget.retryAfter()).toBeNull(); // low, not spent
  });

  it('tells every threshold a sudden drop crosses, and warns again after the budget recovered', () => {
    const { budget } = setup();
    expect(budget.observe(200, hub(5)).map((n) => n.kind === 'low' && n.threshold)).toEqual([0.5, 0.25, 0.1]);
    expect(budget.observe(200, hub(80))).toEqual([{ kind: 'restored', remaining: 80, limit: 100 }]);
    expect(budget.tagTTLFactor()).toBe(1);
    expect(budget.observe(200, hub(45)).map((n) => n.kind)).toEqual(['low']);
  });

  it('at 0 left refuses manifest requests for the window, as the registry did not say when', () => {
    const { budget, advance } = setup();
    const notices = budget.observe(200, hub(0, 100, 3600));
    expect(notices.at(-1)).toEqual({ kind: 'spent', status: 200, retryAfterSeconds: 3600 });
    expect(budget.retryAfter()).toBe(3600);
    advance(3_000_000);
    expect(budget.retryAfter()).toBe(600);
    advance(600_000);
    expect(budget.retryAfter()).toBeNull();
  });

  it('after a 429 waits for its Retry-After, which wins over the window', () => {
    const { budget, advance } = setup();
    budget.observe(200, hub(30));
    const notices = budget.observe(429, { ...hub(0), 'retry-after': '120' });
    expect(notices.at(-1)).toEqual({ kind: 'spent', status: 429, retryAfterSeconds: 120 });
    advance(119_500);
    expect(budget.retryAfter()).toBe(1);
    advance(500);
    expect(budget.retryAfter()).toBeNull();
  });

  it('after a bare 429 (no headers at all) waits the policy wait', () => {
    const { budget } = setup();
    expect(budget.observe(429, {})).toEqual([{ kind: 'spent', status: 429, retryAfterSeconds: 60 }]);
    expect(budget.retryAfter()).toBe(60);
    expect(budget.reading()).toBeNull();
    expect(budget.tagTTLFactor()).toBe(1);
  });

  it('tells spent once, and a later 429 only extends the wait', () => {
    const { budget, advance } = setup();
    budget.observe(429, { 'retry-after': '100' });
    advance(50_000);
    expect(budget.observe(429, { 'retry-after': '10' })).toEqual([]);
    expect(budget.retryAfter()).toBe(50);
    expect(budget.observe(429, { 'retry-after': '300' })).toEqual([]);
    expect(budget.retryAfter()).toBe(300);
  });

  it('lets requests go again at once when the registry says there is budget again', () => {
    const { budget } = setup();
    budget.observe(200, hub(0));
    expect(budget.retryAfter()).toBe(21600);
    budget.observe(200, hub(3)); // e.g. an answer to a request that does not count (a blob HEAD)
    expect(budget.retryAfter()).toBeNull();
    expect(budget.tagTTLFactor()).toBe(64);
  });

  it('waits at least a second, whatever the answer says', () => {
    const { budget } = setup();
    budget.observe(429, { 'retry-after': '0' });
    expect(budget.retryAfter()).toBe(1);
  });
});
