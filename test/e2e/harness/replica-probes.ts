/**
 * @module What a test asks of a running replica: a blob pulled and hashed as it streams (with the
 * time of its first byte), one Prometheus series, downloads settled, its kill mid-download; and the
 * replicas' output printed when a test fails.
 */
import { createHash } from 'node:crypto';
import { beforeEach } from 'vitest';
import { metricSum } from '../../support/metrics-text.js';
import type { ClusterHarness, Replica } from './cluster.js';
import { waitUntil } from './process.js';

/** One client's pull of a blob: the digest of what it got, and when its first byte came. */
export interface Pulled {
  digest: string;
  firstByteAt: number;
}

export async function pullBlob(replica: Replica, digest: string, repository: string): Promise<Pulled> {
  const response = await fetch(`${replica.url}/v2/${repository}/blobs/${digest}`);
  if (response.status !== 200) throw new Error(`${replica.member} answered ${response.status}`);
  const hash = createHash('sha256');
  let firstByteAt = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    firstByteAt ||= performance.now();
    hash.update(chunk);
  }
  return { digest: `sha256:${hash.digest('hex')}`, firstByteAt };
}

/** The value of one Prometheus series of a replica (0 when absent; summed over unnamed labels). */
export async function metric(
  replica: Replica,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  return metricSum(await (await fetch(`${replica.url}/metrics`)).text(), name, labels);
}

/**
 * Starts the clients' pulls (`start`), then SIGKILLs `owner` once it has fetched a quarter of
 * `size` more from the upstream than before them (it may have downloaded other blobs earlier);
 * returns what `start` returned.
 */
export async function killMidDownload<T>(
  cluster: ClusterHarness,
  owner: Replica,
  size: number,
  start: () => T,
): Promise<T> {
  const fetched = () => metric(owner, 'pullcache_upstream_fetched_bytes_total');
  const before = await fetched();
  const started = start();
  await waitUntil('the owner to be a quarter through', async () => (await fetched()) - before > size / 4, {
    intervalMs: 50,
  });
  await cluster.stopReplica(owner.member, { kill: true });
  return started;
}

/** Waits until a replica has no download in flight (every verified blob committed). */
export async function settled(replica: Replica): Promise<void> {
  await waitUntil(`${replica.member} to finish its downloads`, async () => {
    const stats = (await (await fetch(`${replica.url}/_pullcache/stats`)).json()) as {
      downloadsInFlight: number;
    };
    return stats.downloadsInFlight === 0;
  });
}

/** Prints the tail of every replica's output when a test of the enclosing suite fails. */
export function printOutputOnFailure(cluster: () => ClusterHarness | undefined): void {
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const replica of cluster()?.replicas.values() ?? [])
        console.error(`--- pullcache ${replica.member} (tail) ---\n${replica.output().slice(-5_000)}`);
    });
  });
}
