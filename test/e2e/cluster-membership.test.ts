/**
 * Cluster membership over a real DNS server (dnsmasq): the members of a headless-Service-like name,
 * replicas at 127.0.0.2, .3, ... on one port, joining and leaving as the records change, and the last
 * good list kept when the DNS server goes away.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMembership, type Membership } from '../../src/cluster/membership.js';
import { parseConfig } from '../../src/config.js';
import { captureLogs } from '../support/proxy.js';
import { createCleanup } from './harness/cleanup.js';
import { type Dnsmasq, startDnsmasq } from './harness/dnsmasq.js';
import { waitUntil } from './harness/process.js';

const NAME = 'pullcache-peers.pullcache.test';
const PORT = 5000;
const REFRESH_MS = 300;
// "Within a refresh or two", with room for a loaded 2-core machine: two refreshes plus the
// lookup's own time.
const SEEN_WITHIN_MS = 2 * REFRESH_MS + 2_000;

const member = (host: string) => (host.includes(':') ? `[${host}]:${PORT}` : `${host}:${PORT}`);

/** The next list the membership reports, and how long after the call it came. */
function nextChange(membership: Membership): Promise<{ members: readonly string[]; afterMs: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const unsubscribe = membership.onChange((members) => {
      unsubscribe();
      resolve({ members, afterMs: performance.now() - started });
    });
  });
}

describe('cluster membership over dnsmasq', () => {
  const cleanup = createCleanup();
  const logs = captureLogs();
  let dns: Dnsmasq;
  let membership: Membership;

  beforeAll(async () => {
    dns = cleanup.add(await startDnsmasq({ [NAME]: ['127.0.0.2', '127.0.0.3', '127.0.0.4'] }), (d) =>
      d.stop(),
    );
    const config = parseConfig(
      {
        registries: { 'docker.io': { url: 'https://registry-1.docker.io' } },
        cluster: {
          peers: { dns: NAME, resolver: dns.server },
          port: PORT,
          self: '127.0.0.2:5000',
          secret: 'a-peer-secret-of-at-least-32-characters',
          refresh: `${REFRESH_MS}ms`,
        },
      },
      {},
    );
    // No lookup injected: node's own Resolver, pointed at dnsmasq by cluster.peers.resolver.
    membership = createMembership({
      self: config.cluster!.self!,
      cluster: config.cluster!,
      logger: logs.logger,
    });
    cleanup.add(membership, (m) => m.stop());
  });
  afterAll(() => cleanup.run());

  it('starts with the three replicas the name resolves to', async () => {
    await membership.start();
    expect(membership.members()).toEqual([member('127.0.0.2'), member('127.0.0.3'), member('127.0.0.4')]);
  });

  it('sees a fourth replica join within a refresh or two of the record appearing', async () => {
    const change = nextChange(membership);
    await dns.setRecords(NAME, ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']);
    const { members, afterMs } = await change;
    expect(members).toEqual([
      member('127.0.0.2'),
      member('127.0.0.3'),
      member('127.0.0.4'),
      member('127.0.0.5'),
    ]);
    expect(afterMs).toBeLessThan(SEEN_WITHIN_MS);
  });

  it('sees a replica leave within a refresh or two', async () => {
    const change = nextChange(membership);
    await dns.setRecords(NAME, ['127.0.0.2', '127.0.0.4', '127.0.0.5']);
    const { members, afterMs } = await change;
    expect(members).toEqual([member('127.0.0.2'), member('127.0.0.4'), member('127.0.0.5')]);
    expect(afterMs).toBeLessThan(SEEN_WITHIN_MS);
  });

  it('reads AAAA records as well', async () => {
    const change = nextChange(membership);
    await dns.setRecords(NAME, ['127.0.0.2', '127.0.0.4', 'fd00:0::5']);
    const { members } = await change;
    expect(members).toEqual([member('127.0.0.2'), member('127.0.0.4'), member('fd00::5')]);
  });

  it('keeps the last list when the DNS server is gone, and says so once', async () => {
    const before = membership.members();
    await dns.process.stop();
    const failed = () =>
      logs.lines().filter((l) => l.msg === 'cluster member lookup failed; keeping the last list');
    await waitUntil('a failed lookup to be logged', () => failed().length > 0, { timeoutMs: 20_000 });
    // More failed lookups after the first: still the same list, still one log line.
    await membership.refresh();
    await membership.refresh();
    expect(membership.members()).toEqual(before);
    expect(failed()).toHaveLength(1);
    expect(failed()[0]).toMatchObject({ level: 40, name: NAME, members: before });
  });
});
