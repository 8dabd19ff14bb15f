/**
 * @module `npm run bench`: pullcache against docker-registry's proxy mode on one large blob — a cold
 * burst of concurrent clients, warm sequential downloads, upstream bytes and peak RSS — on disk, and
 * with the cache in a bucket on a Ceph RADOS Gateway (pullcache proxied and redirecting, distribution
 * with its S3 driver); printed as markdown tables and written to bench/RESULTS.md. Exits non-zero
 * only when the bench itself fails.
 *
 * BENCH_BLOB_MIB=32 shrinks the layer for a quick run (default 256); BENCH_PEERS picks the peers,
 * comma-separated, of pullcache, distribution, pullcache-s3, pullcache-s3-redirect, distribution-s3
 * (default: all; BENCH_PEERS=pullcache-s3,pullcache-s3-redirect,distribution-s3 runs the S3 ones).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Rgw, startRgw } from '../test/e2e/harness/ceph-rgw.js';
import { createCleanup } from '../test/e2e/harness/cleanup.js';
import { generateImage } from '../test/e2e/harness/images.js';
import { startRegistry } from '../test/e2e/harness/registry.js';
import { createS3Admin } from '../test/e2e/harness/s3-admin.js';
import { pushImage } from '../test/e2e/harness/skopeo.js';
import { makeTempDir, removeDir } from '../test/e2e/harness/temp-dir.js';
import { machineInfo } from './machine-info.js';
import { type BlobUnderTest, measurePeer, type PeerResult } from './peer-measurement.js';
import { BENCH_BUCKET, PEER_NAMES, type PeerName, S3_PEERS, startPeer } from './peers.js';
import { resultsMarkdown, resultsTables } from './results-report.js';
import { measureStartCost } from './start-cost.js';

const CLIENTS = 16;
const WARM_RUNS = 5;
const REPOSITORY = 'library/bench';
const RESULTS_FILE = join(import.meta.dirname, 'RESULTS.md');

const cleanup = createCleanup();

async function main(): Promise<void> {
  const blobMiB = positiveInteger('BENCH_BLOB_MIB', process.env.BENCH_BLOB_MIB ?? '256');
  const peers = peerNames(process.env.BENCH_PEERS ?? PEER_NAMES.join(','));
  const machine = await machineInfo();
  if (machine.busyBeforeStart > 0.2) {
    log(
      `warning: CPU ${(machine.busyBeforeStart * 100).toFixed(0)}% busy before the start; numbers will be skewed`,
    );
  }

  // Before anything else runs: a fresh node importing each dependency in turn.
  const startCost = peers.includes('pullcache') ? await measureStartCost() : undefined;

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

  const report = {
    date: new Date(),
    machine,
    blob,
    settings: { clients: CLIENTS, warmRuns: WARM_RUNS },
    results,
    startCost,
  };
  process.stdout.write(`\n${resultsTables(report)}\n\n`);
  await writeFile(RESULTS_FILE, resultsMarkdown(report));
  log(`wrote ${RESULTS_FILE}`);
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
