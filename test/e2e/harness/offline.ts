/** @module An environment in which Go clients (dockerd, podman, skopeo, ctr) cannot reach the internet. */

// Docker, podman, skopeo and containerd fall back from a failing mirror to the real registry, so a
// broken mirror could pass a test by pulling from Docker Hub. They all take their proxy from
// HTTP(S)_PROXY, which Go never applies to loopback addresses: pointing it at a closed loopback
// port lets them reach the test servers on 127.0.0.1 and nothing else, and fail at once otherwise.
import { freePort } from './ports.js';

export interface OfflineEnv {
  env: NodeJS.ProcessEnv;
  /** The closed proxy address, which a blocked fallback names in its error. */
  proxy: string;
}

export async function offlineEnv(base: NodeJS.ProcessEnv = process.env): Promise<OfflineEnv> {
  const proxy = `127.0.0.1:${await freePort()}`;
  const url = `http://${proxy}`;
  return {
    proxy,
    env: {
      ...base,
      HTTP_PROXY: url,
      HTTPS_PROXY: url,
      http_proxy: url,
      https_proxy: url,
      NO_PROXY: '127.0.0.1,localhost',
      no_proxy: '127.0.0.1,localhost',
    },
  };
}
