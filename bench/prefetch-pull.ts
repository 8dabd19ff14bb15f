/**
 * @module The prefetch scenario: a cold containerd pull of a six-layer image (layers of different
 * sizes) through a throttled upstream, three downloads at a time as the CRI plugin does, directly
 * and through pullcache with and without prefetch and through docker-registry's proxy mode.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startContainerd, writeHostsToml } from '../test/e2e/harness/containerd.js';
import { allDigests } from '../test/e2e/harness/image-digests.js';
import { generateImage } from '../test/e2e/harness/images.js';
import { startPullcache } from '../test/e2e/harness/pullcache.js';
import { type Registry, startRegistry } from '../test/e2e/harness/registry.js';
import { pushImage } from '../test/e2e/harness/skopeo.js';
import { makeTempDir, removeDir } from '../test/e2e/harness/temp-dir.js';
import { startThrottledUpstream, type ThrottleSettings } from './throttled-upstream.js';
import { settledTraffic } from './upstream-traffic.js';

export const PREFETCH_SETUPS = ['direct', 'pullcache', 'pullcache, prefetch off', 'distribution'] as const;
export type PrefetchSetup = (typeof PREFETCH_SETUPS)[number];

export interface PrefetchSettings {
  layerSizesMiB: number[];
  throttle: ThrottleSettings;
  /** containerd's max_concurrent_downloads (the CRI plugin's default is 3). */
  concurrentDownloads: number;
  runs: number;
}

export interface PrefetchResult {
  setup: PrefetchSetup;
  /** Wall time of each `ctr images pull`, each with an empty cache and content store. */
  seconds: number[];
  medianSeconds: number;
  /** Blob GETs the registry answered, and the bytes it sent for them, per pull (means over the runs). */
  upstreamBlobGets: number;
  upstreamBlobBytes: number;
}

export interface PrefetchReport {
  settings: PrefetchSettings;
  image: { blobs: number; bytes: number };
  results: PrefetchResult[];
}

export const DEFAULT_PREFETCH_SETTINGS: PrefetchSettings = {
  // Not sorted by size: the large layers of real images are seldom the first three.
  layerSizesMiB: [6, 1, 3, 12, 2, 8],
  throttle: { latencyMs: 100, bytesPerSecond: 4 * 2 ** 20 }, // 100 ms per request, 4 MiB/s per download
  concurrentDownloads: 3,
  runs: 5,
};

const REPOSITORY = 'library/prefetch';

export async function measurePrefetch(
  settings: PrefetchSettings,
  log: (message: string) => void,
): Promise<PrefetchReport> {
  const work = await makeTempDir('bench-prefetch');
  const registry = await startRegistry();
  const throttled = await startThrottledUpstream(registry.url, settings.throttle);
  const containerd = await startContainerd('bench');
  try {
    const image = await generateImage({
      dir: join(work, 'image'),
      seed: 'bench-prefetch',
      platforms: [{ os: 'linux', architecture: 'amd64' }],
      layerSizesMiB: settings.layerSizesMiB,
    });
    await pushImage(image, `${registry.host}/${REPOSITORY}:${image.tag}`);
    const platform = image.platforms[0]!;
    const blobs = [platform.config, ...platform.layers];
    const ref = `docker.io/${REPOSITORY}:${image.tag}`;
    log(
      `prefetch: ${ref} with layers of ${settings.layerSizesMiB.join(', ')} MiB; upstream ${settings.throttle.latencyMs} ms per request, ${(settings.throttle.bytesPerSecond / 2 ** 20).toFixed(0)} MiB/s per download`,
    );

    const results: PrefetchResult[] = [];
    for (const setup of PREFETCH_SETUPS) {
      const seconds: number[] = [];
      let blobGets = 0;
      let blobBytes = 0;
      for (let run = 0; run < settings.runs; run++) {
        const mirror = await startMirror(setup, throttled.url);
        try {
          const hostsDir = join(work, 'hosts', `${results.length}-${run}`);
          await writeHostsToml(hostsDir, 'docker.io', mirror.url);
          const before = imageTraffic(registry);
          const namespace = `run-${results.length}-${run}`;
          const started = performance.now();
          await containerd.ctr(
            [
              'images',
              'pull',
              '--hosts-dir',
              hostsDir,
              '--platform',
              'linux/amd64',
              '--max-concurrent-downloads',
              String(settings.concurrentDownloads),
              ref,
            ],
            namespace,
          );
          seconds.push((performance.now() - started) / 1000);
          const target = await containerd.imageTarget(ref, namespace);
          const content = await containerd.contentDigests(namespace);
          const missing = allDigests(image).filter((d) => !content.includes(d));
          if (target?.digest !== image.index.digest || missing.length > 0) {
            throw new Error(`${setup}: containerd did not get the image (missing ${missing.join(', ')})`);
          }
          // A mirror may go on downloading after the client is done (distribution's second download).
          const after = await settledTraffic(() => imageTraffic(registry));
          blobGets += after.gets - before.gets;
          blobBytes += after.bytes - before.bytes;
          // containerd shares content between namespaces: only once it is gone is the next pull cold.
          await containerd.removeImage(ref, namespace);
          const left = await containerd.contentDigests(namespace);
          if (left.some((d) => allDigests(image).includes(d)))
            throw new Error(`${setup}: content outlived the image`);
        } finally {
          await mirror.stop();
        }
      }
      const sorted = [...seconds].sort((a, b) => a - b);
      results.push({
        setup,
        seconds,
        medianSeconds: sorted[Math.floor(sorted.length / 2)]!,
        upstreamBlobGets: blobGets / settings.runs,
        upstreamBlobBytes: blobBytes / settings.runs,
      });
      log(`prefetch: ${setup}: ${seconds.map((s) => s.toFixed(2)).join(', ')} s`);
    }
    return {
      settings,
      image: { blobs: blobs.length, bytes: blobs.reduce((sum, b) => sum + b.size, 0) },
      results,
    };
  } finally {
    await containerd.stop();
    await throttled.stop();
    await registry.stop();
    await removeDir(work);
  }
}

/** What containerd's hosts.toml names as its mirror: the throttled registry itself, or a cache in front of it. */
async function startMirror(setup: PrefetchSetup, upstream: string) {
  if (setup === 'direct') return { url: upstream, stop: async () => {} };
  if (setup === 'distribution') return startRegistry({ proxy: { remoteurl: upstream } });
  return startPullcache({
    registries: { 'docker.io': { url: upstream } },
    ...(setup === 'pullcache, prefetch off' ? { extraYaml: 'prefetch: { layers: false }' } : {}),
  });
}

// `127.0.0.1 - - [date] "GET /v2/library/prefetch/blobs/sha256:… HTTP/1.1" 200 6291968 "" "ua"`
const BLOB_LINE = new RegExp(`"GET /v2/${REPOSITORY}/blobs/\\S+ HTTP/[\\d.]+" (200|206) (\\d+)`);

/** Blob GETs the registry answered, with the bytes sent (a line is logged once its response is over). */
function imageTraffic(registry: Registry) {
  const traffic = { gets: 0, heads: 0, other: 0, bytes: 0 };
  for (const line of registry.accessLog()) {
    const m = BLOB_LINE.exec(line);
    if (!m) continue;
    traffic.gets++;
    traffic.bytes += Number(m[2]);
  }
  return traffic;
}
