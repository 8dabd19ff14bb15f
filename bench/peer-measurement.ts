/** @module One peer's run: a cold burst of concurrent clients, then timed sequential downloads once it has cached. */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Registry } from '../test/e2e/harness/registry.js';
import { checkDownload, curlDownload, verifyAndRemove } from './blob-downloads.js';
import { meterForeignCpu } from './foreign-cpu.js';
import { assertRunning, type Peer, type PeerName } from './peers.js';
import { readMemory, sampleRss } from './process-memory.js';
import { blobTraffic, settledTraffic, type Traffic, trafficSince } from './upstream-traffic.js';

export interface BlobUnderTest {
  repository: string;
  digest: string;
  size: number;
}

export interface BenchSettings {
  clients: number;
  warmRuns: number;
  /** Cold downloads land here (they are hashed, then removed). */
  workDir: string;
}

export interface PeerResult {
  peer: PeerName;
  /** VmRSS once the peer answers its readiness probe, before any request for content. */
  idleRssBytes: number;
  /** VmRSS after IDLE_SETTLE_MS more without requests: what an idle node keeps paying. */
  settledRssBytes: number;
  cold: {
    /** From starting the first client to the last one finishing. */
    wallSeconds: number;
    upstream: Traffic;
    peakRssBytes: number;
  };
  /** Whether a download after the cold burst was served without any upstream GET. */
  cached: boolean;
  warm: {
    bytesPerSecond: number[];
    medianBytesPerSecond: number;
    upstream: Traffic;
    peakRssBytes: number;
  };
  /** VmHWM after all runs: the process's lifetime peak. */
  hwmBytes: number;
  /** User CPU seconds other processes used meanwhile; well above 0 means the numbers are skewed. */
  foreignCpuSeconds: number;
  /** How long this peer's measurement took, for scale. */
  seconds: number;
}

// Attempts at a download that does not touch the upstream before the warm runs start anyway: a
// cache that commits asynchronously (distribution fills its store by a second, separate upstream
// download) gets a second chance.
export const CACHE_PROBES = 3;

// Long enough for V8's memory reducer (it starts 8 s after the last GC activity) to have run.
export const IDLE_SETTLE_MS = 12_000;

export async function measurePeer(
  peer: Peer,
  upstream: Registry,
  blob: BlobUnderTest,
  settings: BenchSettings,
): Promise<PeerResult> {
  const url = `${peer.url}/v2/${blob.repository}/blobs/${blob.digest}`;
  const traffic = () => blobTraffic(upstream, blob.repository, blob.digest);
  const idleRssBytes = readMemory(peer.process.pid).rssBytes;
  await new Promise((resolve) => setTimeout(resolve, IDLE_SETTLE_MS));
  const settledRssBytes = readMemory(peer.process.pid).rssBytes;
  const foreignCpu = meterForeignCpu([peer.process.pid, upstream.process.pid, ...peer.helperPids]);
  const measuring = performance.now();

  // Cold: every client starts at once, before anything is cached.
  let before = await settledTraffic(traffic, { quietMs: 300 });
  const files = Array.from({ length: settings.clients }, (_, i) => join(settings.workDir, `cold-${i}`));
  const started = performance.now();
  const cold = await serving(peer, 'the cold burst', () =>
    Promise.all(files.map((file) => curlDownload(url, file, peer.follow))),
  );
  const wallSeconds = (performance.now() - started) / 1_000;
  const coldUpstream = trafficSince(before, await settledTraffic(traffic));
  for (const [i, download] of cold.value.entries()) {
    checkDownload(`${peer.name} cold client ${i}`, download, blob.size);
    await verifyAndRemove(`${peer.name} cold client ${i}`, files[i]!, blob.digest);
  }

  // Wait until a download costs the upstream nothing; each probe's body is verified too.
  let cached = false;
  for (let probe = 0; probe < CACHE_PROBES && !cached; probe++) {
    before = await settledTraffic(traffic, { quietMs: 500 });
    const file = join(settings.workDir, `probe-${probe}`);
    const download = await serving(peer, 'a cache probe', () => curlDownload(url, file, peer.follow));
    checkDownload(`${peer.name} cache probe`, download.value, blob.size);
    await verifyAndRemove(`${peer.name} cache probe`, file, blob.digest);
    cached = trafficSince(before, await settledTraffic(traffic, { quietMs: 500 })).gets === 0;
  }

  // Warm: sequential, bodies discarded, so only the peer's serving path is timed.
  before = await settledTraffic(traffic, { quietMs: 300 });
  const warm = await serving(peer, 'the warm runs', async () => {
    const rates: number[] = [];
    for (let run = 0; run < settings.warmRuns; run++) {
      const download = await curlDownload(url, '/dev/null', peer.follow);
      checkDownload(`${peer.name} warm run ${run}`, download, blob.size);
      rates.push(download.bytes / download.seconds);
    }
    return rates;
  });
  const warmUpstream = trafficSince(before, await settledTraffic(traffic, { quietMs: 500 }));

  return {
    peer: peer.name,
    idleRssBytes,
    settledRssBytes,
    cold: {
      wallSeconds,
      upstream: coldUpstream,
      peakRssBytes: cold.peakRssBytes,
    },
    cached,
    warm: {
      bytesPerSecond: warm.value,
      medianBytesPerSecond: median(warm.value),
      upstream: warmUpstream,
      peakRssBytes: warm.peakRssBytes,
    },
    hwmBytes: readMemory(peer.process.pid).hwmBytes,
    foreignCpuSeconds: foreignCpu.stop(),
    seconds: (performance.now() - measuring) / 1_000,
  };
}

/**
 * Runs one phase of client requests while sampling the peer's RSS. When a client fails and the peer
 * has exited, the error names the crash and shows the peer's output instead of curl's complaint.
 */
async function serving<T>(
  peer: Peer,
  phase: string,
  clients: () => Promise<T>,
): Promise<{ value: T; peakRssBytes: number }> {
  const sampler = sampleRss(peer.process.pid);
  try {
    const value = await clients();
    assertRunning(peer, phase);
    return { value, peakRssBytes: sampler.stop() };
  } catch (error) {
    sampler.stop();
    // The peer's exit is reported by its 'close' event, which can trail the clients' broken transfers.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assertRunning(peer, phase);
    throw error;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
