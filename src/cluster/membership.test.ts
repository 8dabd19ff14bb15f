/** Membership over a scripted resolver: the list it builds, changes it reports, failures it rides out. */
import { getServers } from 'node:dns';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { captureLogs } from '../../test/support/proxy.js';
import { type AddressLookup, createAddressLookup, createMembership } from './membership.js';

const SELF = '10.0.0.1:5000';
const NAME = 'pullcache-peers.pullcache.svc';

type Answer = string[] | { code: string };

/** A resolver answering from `answers`, recording each question; `hold()` keeps the next ones pending. */
function scriptedLookup(initial: { a?: Answer; aaaa?: Answer } = {}) {
  const state = { a: initial.a ?? [], aaaa: initial.aaaa ?? ({ code: 'ENODATA' } as Answer) };
  const questions: string[] = [];
  let held: (() => void)[] | null = null;
  let cancelled = 0;
  const answer = (value: Answer): Promise<string[]> => {
    const settle = () =>
      Array.isArray(value)
        ? Promise.resolve([...value])
        : Promise.reject(Object.assign(new Error(value.code), { code: value.code }));
    if (held === null) return settle();
    const queue = held;
    return new Promise((resolve, reject) => queue.push(() => settle().then(resolve, reject)));
  };
  const lookup: AddressLookup = {
    resolve4: (name) => {
      questions.push(`A ${name}`);
      return answer(state.a);
    },
    resolve6: (name) => {
      questions.push(`AAAA ${name}`);
      return answer(state.aaaa);
    },
    cancel: () => {
      cancelled++;
    },
  };
  return {
    lookup,
    state,
    questions,
    cancelled: () => cancelled,
    hold: () => {
      held = [];
    },
    release: () => {
      const queue = held ?? [];
      held = null;
      for (const settle of queue) settle();
    },
  };
}

function dnsMembership(script: ReturnType<typeof scriptedLookup>, refresh = 5_000) {
  const logs = captureLogs();
  const membership = createMembership({
    self: SELF,
    cluster: { peers: { dns: NAME }, port: 5000, refresh },
    logger: logs.logger,
    lookup: script.lookup,
  });
  const changes: [readonly string[], readonly string[]][] = [];
  membership.onChange((members, previous) => changes.push([members, previous]));
  return { membership, changes, logs };
}

const messages = (logs: ReturnType<typeof captureLogs>) => logs.lines().map((l) => `${l.level} ${l.msg}`);

afterEach(() => {
  vi.useRealTimers();
});

describe('static membership', () => {
  it('is the configured list, sorted, without duplicates, and never looks anything up', async () => {
    const script = scriptedLookup();
    const membership = createMembership({
      self: '10.0.0.2:5000',
      cluster: {
        peers: { static: ['10.0.0.3:5000', '10.0.0.2:5000', '10.0.0.3:5000'] },
        port: 5000,
        refresh: 100,
      },
      logger: captureLogs().logger,
      lookup: script.lookup,
    });
    vi.useFakeTimers();
    await membership.start();
    await membership.refresh();
    expect(membership.members()).toEqual(['10.0.0.2:5000', '10.0.0.3:5000']);
    expect(vi.getTimerCount()).toBe(0);
    expect(script.questions).toEqual([]);
    membership.stop();
  });

  it('refuses a self that is not in the list: the members would disagree on owners', () => {
    expect(() =>
      createMembership({
        self: '10.0.0.9:5000',
        cluster: { peers: { static: ['10.0.0.2:5000', '10.0.0.3:5000'] }, port: 5000, refresh: 100 },
        logger: captureLogs().logger,
      }),
    ).toThrow(
      'cluster.self: 10.0.0.9:5000 is not one of cluster.peers.static (10.0.0.2:5000, 10.0.0.3:5000)',
    );
  });
});

describe('DNS membership', () => {
  it('is the A and AAAA records at the peer port, with this replica, sorted', async () => {
    const script = scriptedLookup({ a: ['10.0.0.3', '10.0.0.2', '10.0.0.1'], aaaa: ['fd00:0::2'] });
    const { membership, changes } = dnsMembership(script);
    expect(membership.members()).toEqual([SELF]); // before the first lookup: alone
    await membership.start();
    expect(script.questions).toEqual([`A ${NAME}`, `AAAA ${NAME}`]);
    const members = ['10.0.0.1:5000', '10.0.0.2:5000', '10.0.0.3:5000', '[fd00::2]:5000'];
    expect(membership.members()).toEqual(members);
    expect(changes).toEqual([[members, [SELF]]]);
    membership.stop();
  });

  it('includes this replica when DNS does not list it (not ready yet)', async () => {
    const script = scriptedLookup({ a: ['10.0.0.9'] });
    const { membership } = dnsMembership(script);
    await membership.start();
    expect(membership.members()).toEqual([SELF, '10.0.0.9:5000']);
    membership.stop();
  });

  it('reports a change once, with the previous list, and nothing for the same records in another order', async () => {
    const script = scriptedLookup({ a: ['10.0.0.1', '10.0.0.2'] });
    const { membership, changes } = dnsMembership(script);
    await membership.start();
    script.state.a = ['10.0.0.2', '10.0.0.3', '10.0.0.1'];
    await membership.refresh();
    script.state.a = ['10.0.0.3', '10.0.0.1', '10.0.0.2', '10.0.0.3'];
    await membership.refresh();
    expect(changes.slice(1)).toEqual([
      [
        ['10.0.0.1:5000', '10.0.0.2:5000', '10.0.0.3:5000'],
        ['10.0.0.1:5000', '10.0.0.2:5000'],
      ],
    ]);
    membership.stop();
  });

  it('keeps the last good list while lookups fail (either family), logging once, and again on recovery', async () => {
    const script = scriptedLookup({ a: ['10.0.0.1', '10.0.0.2'] });
    const { membership, changes, logs } = dnsMembership(script);
    await membership.start();
    const good = membership.members();
    script.state.a = { code: 'ETIMEOUT' };
    await membership.refresh();
    await membership.refresh();
    script.state.a = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
    script.state.aaaa = { code: 'ESERVFAIL' }; // half an answer is a failure too
    await membership.refresh();
    expect(membership.members()).toEqual(good);
    expect(changes).toHaveLength(1);
    const failures = logs
      .lines()
      .filter((l) => l.msg === 'cluster member lookup failed; keeping the last list');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ level: 40, name: NAME, errors: ['ETIMEOUT'], members: good });

    script.state.aaaa = { code: 'ENODATA' };
    await membership.refresh();
    expect(membership.members()).toEqual(['10.0.0.1:5000', '10.0.0.2:5000', '10.0.0.3:5000']);
    expect(messages(logs)).toContain('30 cluster member lookup works again');
    membership.stop();
  });

  it('works alone when the name has no records (NXDOMAIN), saying so once', async () => {
    const script = scriptedLookup({ a: ['10.0.0.1', '10.0.0.2'] });
    const { membership, logs } = dnsMembership(script);
    await membership.start();
    script.state.a = { code: 'ENOTFOUND' };
    script.state.aaaa = { code: 'ENOTFOUND' };
    await membership.refresh();
    await membership.refresh();
    expect(membership.members()).toEqual([SELF]);
    expect(messages(logs).filter((m) => m.includes('works alone'))).toEqual([
      '40 cluster name has no A/AAAA records: this replica works alone',
    ]);
    membership.stop();
  });

  it('shares one lookup between concurrent refreshes', async () => {
    const script = scriptedLookup({ a: ['10.0.0.2'] });
    const { membership } = dnsMembership(script);
    script.hold();
    const both = Promise.all([membership.refresh(), membership.refresh()]);
    script.release();
    await both;
    expect(script.questions).toEqual([`A ${NAME}`, `AAAA ${NAME}`]);
    expect(membership.members()).toEqual([SELF, '10.0.0.2:5000']);
    membership.stop();
  });

  it('re-reads every refresh and stops re-reading, cancelling a lookup in flight, on stop()', async () => {
    vi.useFakeTimers();
    const script = scriptedLookup({ a: ['10.0.0.2'] });
    const { membership, changes } = dnsMembership(script, 5_000);
    await membership.start();
    expect(script.questions).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(4_999);
    expect(script.questions).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(script.questions).toHaveLength(4);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(script.questions).toHaveLength(6);

    script.hold();
    script.state.a = ['10.0.0.2', '10.0.0.3'];
    await vi.advanceTimersByTimeAsync(5_000);
    expect(script.questions).toHaveLength(8);
    membership.stop();
    script.release();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(script.cancelled()).toBe(1);
    expect(script.questions).toHaveLength(8);
    expect(vi.getTimerCount()).toBe(0);
    expect(changes).toHaveLength(1); // the answer that arrived after stop() changed nothing
    expect(membership.members()).toEqual([SELF, '10.0.0.2:5000']);
  });

  it('tells the other listeners when one throws, and logs it', async () => {
    const script = scriptedLookup({ a: ['10.0.0.2'] });
    const { membership, changes, logs } = dnsMembership(script);
    membership.onChange(() => {
      throw new Error('listener bug');
    });
    const later: (readonly string[])[] = [];
    membership.onChange((members) => later.push(members));
    await membership.start();
    expect(changes).toHaveLength(1);
    expect(later).toEqual([[SELF, '10.0.0.2:5000']]);
    expect(messages(logs)).toContain('50 cluster members listener failed');
    membership.stop();
  });

  it('stops calling a listener that unsubscribed', async () => {
    const script = scriptedLookup({ a: ['10.0.0.2'] });
    const { membership } = dnsMembership(script);
    const calls: (readonly string[])[] = [];
    const unsubscribe = membership.onChange((members) => calls.push(members));
    await membership.start();
    unsubscribe();
    script.state.a = ['10.0.0.3'];
    await membership.refresh();
    expect(calls).toEqual([[SELF, '10.0.0.2:5000']]);
    membership.stop();
  });
});

describe('createAddressLookup', () => {
  it('asks the configured server, else the system resolver', () => {
    expect(createAddressLookup('127.0.0.1:5353').getServers()).toEqual(['127.0.0.1:5353']);
    expect(createAddressLookup().getServers()).toEqual(getServers());
  });
});
