/**
 * @module `npm run bench`: pullcache against docker-registry's proxy mode on one large blob — a cold
 * burst of concurrent clients, warm sequential downloads, upstream bytes and peak RSS — on disk, and
 * with the cache in a bucket on a Ceph RADOS Gateway (pullcache proxied and redirecting, distribution
 * with its S3 driver); printed as markdown tables and written to bench/RESULTS.md. Exits non-zero
 * only when the bench itself fails.
 *
 * With pullcache among the peers, the blob scenario ends with the cluster run: three replicas with 16
 * clients each, as one cluster and as three independent caches (bench/cluster-measurement.ts).
 *
 * Then the prefetch scenario (bench/prefetch-pull.ts): a cold containerd pull through a throttled
 * upstream, with and without prefetch and through distribution.
 *
 * BENCH_BLOB_MIB=32 shrinks the layer for a quick run (default 256); BENCH_PEERS picks the peers of
 * the blob scenario, comma-separated, of pullcache, distribution, pullcache-s3,
 * pullcache-s3-redirect, distribution-s3 (default: all); BENCH_SCENARIOS=blob
 * or prefetch runs one scenario alone (default: both). The prefetch scenario alone rewrites only its
 * own section of RESULTS.md. BENCH_CLUSTER=0 skips the cluster run.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Rgw, startRgw } from '../test/e2e/harness/ceph-rgw.js';
import { createCleanup } from '../test/e2e/harness/cleanup.js';
import { generateImage } from '../test/e2e/harness/images.js';
import { startRegistry } from '../test/e2e/harness/registry.js';
import { createS3Admin } from '../test/e2e/harness/s3-admin.js';
import { pushImage } from '../test/e2e/harness/skopeo.js';
import { makeTempDir, removeDir } from '../test/e2e/harness/temp-dir.js';
import { CLUSTER_MODES, type ClusterResult, measureCluster } from './cluster-measurement.js';
import { type MachineInfo, machineInfo } from './machine-info.js';
import { type BlobUnderTest, measurePeer, type PeerResult } from './peer-measurement.js';
import { BENCH_BUCKET, PEER_NAMES, type PeerName, S3_PEERS, startPeer } from './peers.js';
import { DEFAULT_PREFETCH_SETTINGS, measurePrefetch, type PrefetchReport } from './prefetch-pull.js';
import { prefetchSection, prefetchTable, withPrefetchSection } from './prefetch-report.js';
import { resultsMarkdown, resultsTables } from './results-report.js';
import { measureStartCost } from './start-cost.js';

const CLIENTS = 16;
const WARM_RUNS = 5;
const REPOSITORY = 'library/bench';
const RESULTS_FILE = join(import.meta.dirname, 'RESULTS.md');
const SCENARIOS = ['blob', 'prefetch'] as const;
type Scenario = (typeof SCENARIOS)[number];

const cleanup = createCleanup();

async function main(): Promise<void> {
  const scenarios = scenarioNames(process.env.BENCH_SCENARIOS ?? SCENARIOS.join(','));
  const date = new Date();
  const machine = await machineInfo();
  if (machine.busyBeforeStart > 0.2) {
    log(
      `warning: CPU ${(machine.busyBeforeStart * 100).toFixed(0)}% busy before the start; numbers will be skewed`,
    );
  }
  const blobResults = scenarios.includes('blob') ? await blobScenario(date, machine) : undefined;
  let prefetch: PrefetchReport | undefined;
  if (scenarios.includes('prefetch')) {
    prefetch = await measurePrefetch(DEFAULT_PREFETCH_SETTINGS, log);
    process.stdout.write(`\n${prefetchTable(prefetch)}\n\n`);
  }
  const section = prefetch ? prefetchSection(prefetch, date, machine) : undefined;
  if (blobResults !== undefined) {
    await writeFile(RESULTS_FILE, section ? withPrefetchSection(blobResults, section) : blobResults);
  } else if (section) {
    await writeFile(RESULTS_FILE, withPrefetchSection(await readFile(RESULTS_FILE, 'utf8'), section));
  }
  log(`wrote ${RESULTS_FILE}`);
}

/** One large blob against each peer; returns RESULTS.md as its report makes it. */
async function blobScenario(date: Date, machine: MachineInfo): Promise<string> {
  const blobMiB = positiveInteger('BENCH_BLOB_MIB', process.env.BENCH_BLOB_MIB ?? '256');
  const peers = peerNames(process.env.BENCH_PEERS ?? PEER_NAMES.join(','));

  const work = cleanup.add(await makeTempDir('bench'), removeDir);
  const upstream = cleanup.add(await startRegistry(), (r) => r.stop());
  log(`upstream docker-registry at ${upstream.url}; generating a ${blobMiB} MiB layer`);
  const image = await generateImage({
    dir: join(work, 'image'),
    seed: `bench-${blobMiB}`,
    platforms: [{ os: 'linux', architecture: 'amd64' }],
    largeLayerMiB: blobMiB,
  });
  await pushImage(image, `${upstream.host}/${REPOSITORY}:${image.tag}`);
  const layer = image.platforms[0]!.layers.at(-1)!;
  const blob: BlobUnderTest = { repository: REPOSITORY, digest: layer.digest, size: layer.size };
  log(`pushed ${REPOSITORY}:${image.tag}; blob ${blob.digest} (${blob.size} bytes)`);

  // Started before the first S3 peer, so that the disk peers' runs do not share the cores with it.
  let rgw: Rgw | undefined;
  const results: PeerResult[] = [];
  for (const name of peers) {
    if (S3_PEERS.includes(name) && !rgw) {
      rgw = cleanup.add(await startRgw(), (r) => r.stop());
      const admin = createS3Admin(rgw);
      await admin.createBucket(BENCH_BUCKET).finally(() => admin.close());
      log(`RADOS Gateway at ${rgw.endpoint} (up in ${rgw.startupMs} ms), bucket ${BENCH_BUCKET}`);
    }
    // One peer at a time, stopped before the next starts: they would otherwise share the 2 cores.
    const downloads = cleanup.add(await makeTempDir(`bench-${name}`), removeDir);
    const peer = await startPeer(name, upstream, rgw);
    log(`${name}: serving at ${peer.url} (pid ${peer.process.pid})`);
    try {
      results.push(
        await measurePeer(peer, upstream, blob, {
          clients: CLIENTS,
          warmRuns: WARM_RUNS,
          workDir: downloads,
        }),
      );
    } finally {
      await peer.stop();
    }
    const result = results.at(-1)!;
    log(`${name}: done in ${result.seconds.toFixed(0)} s`);
    if (result.foreignCpuSeconds > 1) {
      log(
        `warning: other processes used ${result.foreignCpuSeconds.toFixed(1)} s of CPU meanwhile; ${name}'s numbers are skewed`,
      );
    }
  }

  const cluster: ClusterResult[] = [];
  if (peers.includes('pullcache') && process.env.BENCH_CLUSTER !== '0') {
    for (const mode of CLUSTER_MODES) {
      log(`cluster run: 3 replicas, ${CLIENTS} clients each, ${mode}`);
      cluster.push(await measureCluster(mode, upstream, blob, CLIENTS));
      log(`cluster run (${mode}): ${cluster.at(-1)!.wallSeconds.toFixed(1)} s`);
    }
  }

  // Last: its dozens of esbuild bundles and node processes, run first, slowed the cold run that
  // followed (pullcache's, 1.52× distribution's wall time against 0.94× without it, same tree and
  // hour: bench/RESULTS.md). Each of its processes is fresh, so what ran before does not change it.
  const startCost = peers.includes('pullcache') ? await measureStartCost() : undefined;

  const report = {
    date,
    machine,
    blob,
    settings: { clients: CLIENTS, warmRuns: WARM_RUNS },
    results,
    startCost,
    ...(cluster.length > 0 ? { cluster } : {}),
  };
  process.stdout.write(`\n${resultsTables(report)}\n\n`);
  return resultsMarkdown(report);
}

function scenarioNames(value: string): Scenario[] {
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = names.filter((n) => !(SCENARIOS as readonly string[]).includes(n));
  if (names.length === 0 || unknown.length > 0) {
    throw new Error(`BENCH_SCENARIOS must list ${SCENARIOS.join(' and/or ')}, got ${JSON.stringify(value)}`);
  }
  return [...new Set(names)] as Scenario[];
}

function positiveInteger(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

function peerNames(value: string): PeerName[] {
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = names.filter((n) => !(PEER_NAMES as readonly string[]).includes(n));
  if (names.length === 0 || unknown.length > 0) {
    throw new Error(`BENCH_PEERS must list ${PEER_NAMES.join(' and/or ')}, got ${JSON.stringify(value)}`);
  }
  return [...new Set(names)] as PeerName[];
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

// Ctrl-C or a TERM: stop what was started (by pid, in the cleanup steps) before exiting.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`);
    void cleanup.run().finally(() => process.exit(130));
  });
}

try {
  await main();
} catch (error) {
  process.stderr.write(
    `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
} finally {
  await cleanup.run().catch((error: unknown) => {
    process.stderr.write(`bench cleanup failed: ${String(error)}\n`);
    process.exitCode = 1;
  });
}
