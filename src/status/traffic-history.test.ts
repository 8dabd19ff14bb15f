import { describe, expect, it } from 'vitest';
import { createTrafficHistory } from './traffic-history.js';

describe('traffic history', () => {
  it('sums answers and bytes per registry over the hour, the day and since start', () => {
    let now = Date.UTC(2024, 0, 1, 12, 0, 30);
    const history = createTrafficHistory(() => now);
    history.answered('docker.io', false, 0);
    history.fetched('docker.io', 1000);
    history.answered('docker.io', true, 400);
    now += 2 * 3_600_000; // two hours later: out of the hour, still in the day
    history.answered('docker.io', true, 600);
    history.answered('quay.io', false, 0);
    const report = history.report(['ghcr.io']);
    expect(Object.keys(report)).toEqual(['docker.io', 'ghcr.io', 'quay.io']);
    const docker = report['docker.io']!;
    expect(docker.hour).toEqual({ hits: 1, misses: 0, hitRatio: 1, cacheBytes: 600, upstreamBytes: 0 });
    expect(docker.day).toEqual({
      hits: 2,
      misses: 1,
      hitRatio: 2 / 3,
      cacheBytes: 1000,
      upstreamBytes: 1000,
    });
    expect(docker.sinceStart).toEqual(docker.day);
    expect(docker.perMinute.at(-1)!.hits).toBe(1);
    expect(docker.perHour.map((h) => h.hits)).toEqual([...Array(21).fill(0), 1, 0, 1]);
    expect(report['ghcr.io']!.sinceStart.hitRatio).toBeNull();
  });

  it('forgets minutes older than a day but keeps them in the totals', () => {
    let now = 0;
    const history = createTrafficHistory(() => now);
    history.answered('docker.io', true, 10);
    now += 25 * 3_600_000;
    history.answered('docker.io', false, 0);
    const docker = history.report()['docker.io']!;
    expect(docker.day).toMatchObject({ hits: 0, misses: 1 });
    expect(docker.sinceStart).toMatchObject({ hits: 1, misses: 1, cacheBytes: 10 });
  });
});
