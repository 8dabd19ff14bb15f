/**
 * @module The cluster run: three pullcache replicas (separate processes on one port at 127.0.0.2,
 * .3, .4), each with its own burst of cold clients of one blob, either as one cluster (members from
 * dnsmasq, peers asked before the upstream) or as three independent caches, which is what replicas
 * of distribution or Harbor are: every replica downloads the blob itself.
 */
import { performance } from 'node:perf_hooks';
import { type ClusterHarness, startCluster } from '../test/e2e/harness/cluster.js';
import { run } from '../test/e2e/harness/command.js';
import { startDnsmasq } from '../test/e2e/harness/dnsmasq.js';
import { freePort } from '../test/e2e/harness/ports.js';
import { type Pullcache, startPullcache } from '../test/e2e/harness/pullcache.js';
import type { Registry } from '../test/e2e/harness/registry.js';
import { meterForeignCpu } from './foreign-cpu.js';
import type { BlobUnderTest } from './peer-measurement.js';
import { sampleRss } from './process-memory.js';
import { blobTraffic, settledTraffic, type Traffic, trafficSince } from './upstream-traffic.js';

export const CLUSTER_MODES = ['cluster', 'independent'] as const;
export type ClusterMode = (typeof CLUSTER_MODES)[number];

const ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
// A stalled replica must fail the bench, not hang it.
const MAX_SECONDS = 300;

export interface ClusterResult {
  mode: ClusterMode;
  replicas: number;
  clientsPerReplica: number;
  /** From starting the first client to the last one finishing. */
  wallSeconds: number;
  upstream: Traffic;
  /** Peak VmRSS of each replica during the burst, sampled every 50 ms. */
  peakRssBytes: number[];
  foreignCpuSeconds: number;
}

/** One burst of `clientsPerReplica` curl clients on every replica at once, each body's sha256 checked. */
export async function measureCluster(
  mode: ClusterMode,
  upstream: Registry,
  blob: BlobUnderTest,
  clientsPerReplica: number,
): Promise<ClusterResult> {
  const stops: (() => Promise<void>)[] = [];
  try {
    const replicas: Pullcache[] = [];
    if (mode === 'cluster') {
      const dns = await startDnsmasq();
      stops.push(() => dns.stop());
      const cluster: ClusterHarness = await startCluster({
        registries: { 'docker.io': { url: upstream.url } },
        dns,
      });
      stops.unshift(() => cluster.stop());
      await cluster.publish(ADDRESSES);
      for (const address of ADDRESSES) replicas.push(await cluster.start(address));
    } else {
      const port = await freePort('0.0.0.0');
      for (const address of ADDRESSES) {
        const replica = await startPullcache({
          registries: { 'docker.io': { url: upstream.url } },
          listen: `${address}:${port}`,
        });
        stops.unshift(() => replica.stop());
        replicas.push(replica);
      }
    }

    const traffic = () => blobTraffic(upstream, blob.repository, blob.digest);
    const before = await settledTraffic(traffic, { quietMs: 300 });
    const foreignCpu = meterForeignCpu([...replicas.map((r) => r.process.pid), upstream.process.pid]);
    const samplers = replicas.map((r) => sampleRss(r.process.pid));
    const started = performance.now();
    await Promise.all(
      replicas.flatMap((replica) =>
        Array.from({ length: clientsPerReplica }, (_, i) =>
          hashedDownload(
            `${replica.url}/v2/${blob.repository}/blobs/${blob.digest}`,
            blob,
            `${mode} ${replica.host} client ${i}`,
          ),
        ),
      ),
    );
    const wallSeconds = (performance.now() - started) / 1_000;
    const peakRssBytes = samplers.map((s) => s.stop());
    const foreignCpuSeconds = foreignCpu.stop();
    const upstreamTraffic = trafficSince(before, await settledTraffic(traffic));
    return {
      mode,
      replicas: replicas.length,
      clientsPerReplica,
      wallSeconds,
      upstream: upstreamTraffic,
      peakRssBytes,
      foreignCpuSeconds,
    };
  } finally {
    for (const stop of stops) await stop();
  }
}

/**
 * curl's body piped into sha256sum, never to disk (48 × 256 MiB would be 13 GB of files); curl's
 * status, length and time go to its stderr.
 */
async function hashedDownload(url: string, blob: BlobUnderTest, what: string): Promise<void> {
  const curl = `curl --silent --show-error --max-time ${MAX_SECONDS} --write-out '%{stderr}%{http_code} %{size_download}' '${url}'`;
  const { stdout, stderr } = await run('sh', ['-c', `${curl} | sha256sum`], {
    timeoutMs: (MAX_SECONDS + 10) * 1_000,
  });
  const [status, bytes] = stderr.trim().split(/\s+/).slice(-2).map(Number);
  if (status !== 200) throw new Error(`${what}: HTTP ${status}, expected 200 (${stderr.trim()})`);
  if (bytes !== blob.size) throw new Error(`${what}: ${bytes} bytes, expected ${blob.size}`);
  const digest = `sha256:${stdout.trim().split(/\s+/)[0]}`;
  if (digest !== blob.digest) throw new Error(`${what}: body has digest ${digest}, expected ${blob.digest}`);
}

/** The cluster run beside three independent replicas, as a markdown table. */
export function clusterTable(results: ClusterResult[], blob: BlobUnderTest): string {
  const cluster = results.find((r) => r.mode === 'cluster');
  const independent = results.find((r) => r.mode === 'independent');
  const upstreamTimes = (r: ClusterResult) => r.upstream.bytes / blob.size;
  const throughput = (r: ClusterResult) =>
    (r.replicas * r.clientsPerReplica * blob.size) / r.wallSeconds / 1e9;
  const rows: [string, (r: ClusterResult) => string, string, string][] = [
    ['Wall time, every client of every replica (s)', (r) => r.wallSeconds.toFixed(2), '', ''],
    [
      'Upstream bytes (× blob size)',
      (r) => `${(r.upstream.bytes / 1e6).toFixed(1)} MB (${upstreamTimes(r).toFixed(2)}×)`,
      'cluster = 1.00×',
      cluster ? (Math.abs(upstreamTimes(cluster) - 1) < 0.005 ? '✅ met' : '❌ not met') : 'n/a',
    ],
    ['Upstream requests for the blob (GET, HEAD)', (r) => `${r.upstream.gets}, ${r.upstream.heads}`, '', ''],
    ['Aggregate throughput to the clients (GB/s)', (r) => throughput(r).toFixed(2), '', ''],
    [
      'Peak RSS per replica, sampled every 50 ms (MB)',
      (r) => r.peakRssBytes.map((b) => (b / 1e6).toFixed(1)).join(' / '),
      '',
      '',
    ],
    [
      "Other processes' user CPU during the burst (s)",
      (r) => r.foreignCpuSeconds.toFixed(1),
      '≈ 0, else skewed',
      '',
    ],
  ];
  const lines = [
    '| Metric | one cluster (peers) | 3 independent replicas | target | |',
    '|---|--:|--:|---|---|',
  ];
  for (const [metric, show, target, mark] of rows) {
    lines.push(
      `| ${metric} | ${cluster ? show(cluster) : '—'} | ${independent ? show(independent) : '—'} | ${target} | ${mark} |`,
    );
  }
  return lines.join('\n');
}
