import { describe, expect, it } from 'vitest';
import { createPullCounter } from './pull-counter.js';

describe('pull counter', () => {
  it('adds the counts of a tag in one write at flush, and keeps them when the write fails', async () => {
    const writes: [string, number, number][] = [];
    let failing = true;
    let now = 10;
    const counter = createPullCounter({
      now: () => now,
      store: {
        async addPulls(registry, repository, tag, count, at) {
          if (failing) throw new Error('EIO');
          writes.push([`${registry}/${repository}:${tag}`, count, at]);
        },
      },
    });
    counter.pulled('docker.io', 'library/a', '1');
    now = 20;
    counter.pulled('docker.io', 'library/a', '1');
    counter.pulled('quay.io', 'b', '2');
    expect(counter.unwritten('docker.io', 'library/a', '1')).toEqual({ count: 2, at: 20 });
    await counter.flush();
    expect(writes).toEqual([]);
    expect(counter.unwritten('docker.io', 'library/a', '1')).toEqual({ count: 2, at: 20 });
    failing = false;
    await counter.close();
    expect(writes).toEqual([
      ['docker.io/library/a:1', 2, 20],
      ['quay.io/b:2', 1, 20],
    ]);
    expect(counter.unwritten('docker.io', 'library/a', '1')).toBeNull();
  });
});
