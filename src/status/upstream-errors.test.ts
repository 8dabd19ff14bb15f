import { describe, expect, it } from 'vitest';
import { createUpstreamErrors } from './upstream-errors.js';

describe('upstream errors', () => {
  it('counts failures and error answers per registry, keeps the recent ones newest first', () => {
    let now = 1_000;
    const errors = createUpstreamErrors(() => now);
    errors.failed('docker.io', 'timeout');
    errors.answered('docker.io', 200);
    errors.answered('docker.io', 404); // an answer, not an outage
    errors.answered('docker.io', 429);
    now += 2 * 3_600_000;
    errors.answered('quay.io', 503);
    expect(errors.byRegistry()).toEqual({
      'docker.io': { lastHour: 0, sinceStart: 2, byReason: { timeout: 1, 'status 429': 1 }, lastAt: 1_000 },
      'quay.io': { lastHour: 1, sinceStart: 1, byReason: { 'status 503': 1 }, lastAt: now },
    });
    expect(errors.recent().map((e) => e.reason)).toEqual(['status 503', 'status 429', 'timeout']);
  });
});
