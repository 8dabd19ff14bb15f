/**
 * Replicas on one bucket (RADOS Gateway): 16 clients split across two replicas on one cold blob get
 * every byte verified, at most one upstream download per replica, and the bucket never lists an
 * unverified object meanwhile; a replica killed mid-upload leaves no object for the digest, the next
 * start on its host aborts its multipart upload, and the next pull succeeds.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bodyDigest, filesUnder, sha256Of } from '../support/storage.js';
import { type Rgw, startRgw } from './harness/ceph-rgw.js';
import { createCleanup } from './harness/cleanup.js';
import { generateImage } from './harness/images.js';
import { type Pullcache, startPullcache } from './harness/pullcache.js';
import { type Registry, startRegistry } from './harness/registry.js';
import { createS3Admin, rgwEnvironment, type S3Admin } from './harness/s3-admin.js';
import { pushImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';

const BUCKET = 'replicas';
const MiB = 1024 * 1024;
const blobKey = (prefix: string, digest: string) =>
  `${prefix}blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;

describe('replicas sharing one bucket', () => {
  const cleanup = createCleanup();
  let work: string;
  let rgw: Rgw;
  let admin: S3Admin;
  const proxies: Pullcache[] = [];

  async function replica(options: {
    host: string;
    prefix: string;
    upstreamUrl: string;
    storageDir?: string;
  }): Promise<Pullcache> {
    const proxy = cleanup.add(
      await startPullcache({
        host: options.host,
        registries: { 'docker.io': { url: options.upstreamUrl } },
        storage: {
          s3: { bucket: BUCKET, endpoint: rgw.endpoint, region: rgw.region, prefix: options.prefix },
        },
        env: rgwEnvironment(rgw),
        ...(options.storageDir ? { storageDir: options.storageDir } : {}),
      }),
      (p) => p.stop(),
    );
    proxies.push(proxy);
    return proxy;
  }

  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('s3-replicas'), removeDir);
    rgw = cleanup.add(await startRgw(), (r) => r.stop());
    admin = cleanup.add(createS3Admin(rgw), (a) => a.close());
    await admin.createBucket(BUCKET);
  });
  afterAll(() => cleanup.run());
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const proxy of proxies)
        console.error(`--- pullcache ${proxy.host} ---\n${proxy.output().slice(-4_000)}`);
    });
  });

  it('16 clients on two replicas, one cold blob: all verified, one download per replica, nothing unverified listed', async () => {
    const upstream: Registry = cleanup.add(await startRegistry(), (r) => r.stop());
    const image = await generateImage({ dir: join(work, 'big'), seed: 'replicas', largeLayerMiB: 32 });
    await pushImage(image, `${upstream.host}/library/big:1.0`);
    const layer = image.platforms[0]!.layers.find((l) => l.size >= 32 * MiB)!;
    const prefix = 'two/';
    const replicas = [
      await replica({ host: '127.0.0.2', prefix, upstreamUrl: upstream.url }),
      await replica({ host: '127.0.0.3', prefix, upstreamUrl: upstream.url }),
    ];

    // Poll the bucket while the clients download: any object listed must be the whole, verified blob.
    let downloading = true;
    let polls = 0;
    const seen: { key: string; size: number }[] = [];
    const poller = (async () => {
      while (downloading) {
        seen.push(...(await admin.objects(BUCKET, prefix)));
        polls++;
        await sleep(20); // this machine's two cores also run both replicas, RGW and the clients
      }
    })();
    const clients = Array.from({ length: 16 }, (_, i) =>
      fetch(`${replicas[i % 2]!.url}/v2/library/big/blobs/${layer.digest}`).then((response) => {
        expect(response.status).toBe(200);
        return bodyDigest(response);
      }),
    );
    const results = await Promise.all(clients).finally(() => {
      downloading = false;
    });
    await poller;

    for (const result of results) expect(result).toEqual({ digest: layer.digest, bytes: layer.size });
    const downloads = upstream.countRequests('GET', new RegExp(`/blobs/${layer.digest}`), 200);
    expect(downloads).toBeGreaterThanOrEqual(1);
    expect(downloads).toBeLessThanOrEqual(2); // one per replica at most (one in all needs peers)
    expect(polls).toBeGreaterThan(0);
    expect(seen.filter((o) => o.key !== blobKey(prefix, layer.digest))).toEqual([]);
    expect(seen.every((o) => o.size === layer.size)).toBe(true);
    await expect
      .poll(() => admin.objects(BUCKET, prefix), { timeout: 10_000 })
      .toEqual([{ key: blobKey(prefix, layer.digest), size: layer.size }]);
    expect(await admin.uploadKeys(BUCKET)).toEqual([]);

    // Either replica now serves it from the bucket, without the upstream.
    const again = await fetch(`${replicas[1]!.url}/v2/library/big/blobs/${layer.digest}`);
    expect(await bodyDigest(again)).toEqual({ digest: layer.digest, bytes: layer.size });
    expect(upstream.countRequests('GET', new RegExp(`/blobs/${layer.digest}`), 200)).toBe(downloads);
  });

  it('a replica killed mid-upload leaves no object, its next start aborts the upload, the next pull works', async () => {
    const blob = randomBytes(40 * MiB);
    const digest = sha256Of(blob);
    const slow = cleanup.add(await startStallingUpstream(blob, 20 * MiB), (u) => u.close());
    const prefix = 'killed/';
    const storageDir = join(work, 'killed-storage');
    const doomed = await replica({ host: '127.0.0.4', prefix, upstreamUrl: slow.url, storageDir });
    const client = fetch(`${doomed.url}/v2/library/slow/blobs/${digest}`)
      .then((response) => bodyDigest(response))
      .catch((error: unknown) => error);
    // Two parts are on their way once 16 MiB arrived; the upstream then stalls at 20 MiB.
    await expect
      .poll(() => admin.uploadKeys(BUCKET, prefix), { timeout: 20_000 })
      .toEqual([blobKey(prefix, digest)]);
    process.kill(doomed.process.pid, 'SIGKILL');
    await expect.poll(() => doomed.process.exitStatus(), { timeout: 10_000 }).toBe('SIGKILL');
    await expect(client).resolves.toBeInstanceOf(Error); // a broken transfer, never a short 200

    expect(await admin.objectKeys(BUCKET, prefix)).toEqual([]);
    expect(await admin.uploadKeys(BUCKET, prefix)).toEqual([blobKey(prefix, digest)]);
    const leftovers = filesUnder(storageDir).map((f) => f.slice(f.lastIndexOf('/') + 1));
    expect(leftovers.some((name) => name.startsWith('.tmp-upload-'))).toBe(true);

    // Same host, same folder: the start aborts the dead writer's upload before it serves.
    const next = await replica({ host: '127.0.0.4', prefix, upstreamUrl: slow.url, storageDir });
    expect(await admin.uploadKeys(BUCKET, prefix)).toEqual([]);
    expect(filesUnder(storageDir)).toEqual([]);

    const response = await fetch(`${next.url}/v2/library/slow/blobs/${digest}`);
    expect(await bodyDigest(response)).toEqual({ digest, bytes: blob.length });
    await expect
      .poll(() => admin.objects(BUCKET, prefix), { timeout: 10_000 })
      .toEqual([{ key: blobKey(prefix, digest), size: blob.length }]);
    expect(await admin.uploadKeys(BUCKET, prefix)).toEqual([]);
    expect(slow.requests()).toBe(2);
  });
});

/**
 * An upstream with one blob whose first download stops after `stallAt` bytes and never goes on
 * (a replica can be killed mid-upload at leisure); later downloads are whole.
 */
async function startStallingUpstream(blob: Buffer, stallAt: number) {
  let requests = 0;
  const stalled: ServerResponse[] = [];
  const server: Server = createServer((request, response) => {
    if (!request.url?.startsWith('/v2/library/slow/blobs/sha256:')) {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}');
      return;
    }
    requests++;
    response.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(blob.length),
      'docker-content-digest': sha256Of(blob),
    });
    if (requests > 1) {
      response.end(blob);
      return;
    }
    response.write(blob.subarray(0, stallAt));
    stalled.push(response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const response of stalled) response.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
