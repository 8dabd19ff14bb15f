/**
 * @module The upstream of the cluster suites' burst and kill tests: docker-registry with token auth
 * holding two one-platform images (`:a` for the burst, `:b` for the kill), each with a 64 MiB layer,
 * behind a throttling relay, so that a download lasts long enough to be joined or broken.
 */
import { join } from 'node:path';
import type { Cleanup } from './cleanup.js';
import { type GeneratedImage, generateImage } from './images.js';
import { pushImage } from './skopeo.js';
import { startThrottleProxy, type ThrottleProxy } from './throttle-proxy.js';
import { startUpstream, type Upstream } from './upstream.js';

const MiB = 1024 * 1024;

export interface BurstUpstream {
  upstream: Upstream;
  /** The relay replicas fetch through: 32 MiB/s to start with (64 MiB in about two seconds). */
  throttle: ThrottleProxy;
  burst: GeneratedImage;
  killed: GeneratedImage;
  /** Upstream downloads of a blob: answered GETs (200 whole, 206 resumed; 401 challenges aside). */
  downloads(digest: string): number;
}

/** The large layer of one of the images. */
export const largeLayer = (image: GeneratedImage) => image.platforms[0]!.layers.at(-1)!;

/** Starts it with images under `repository` generated in `work` from `seed`; stopped by `cleanup`. */
export async function startBurstUpstream(
  cleanup: Cleanup,
  work: string,
  repository: string,
  seed: string,
): Promise<BurstUpstream> {
  const upstream = cleanup.add(await startUpstream('token'), (u) => u.stop());
  const platforms = [{ os: 'linux', architecture: 'amd64' }];
  const [burst, killed] = [
    await generateImage({ dir: join(work, 'a'), seed: `${seed}-a`, platforms, largeLayerMiB: 64 }),
    await generateImage({ dir: join(work, 'b'), seed: `${seed}-b`, platforms, largeLayerMiB: 64 }),
  ];
  await pushImage(burst, `${upstream.registry.host}/${repository}:a`, upstream.creds);
  await pushImage(killed, `${upstream.registry.host}/${repository}:b`, upstream.creds);
  const throttle = cleanup.add(
    await startThrottleProxy({ host: '127.0.0.1', port: upstream.registry.port }, 32 * MiB),
    (t) => t.stop(),
  );
  const downloads = (digest: string) =>
    upstream.registry.countRequests('GET', new RegExp(`/blobs/${digest}$`), 200) +
    upstream.registry.countRequests('GET', new RegExp(`/blobs/${digest}$`), 206);
  return { upstream, throttle, burst, killed, downloads };
}
