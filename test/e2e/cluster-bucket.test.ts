/**
 * Central replicas on one bucket that are also one cluster, as deploy/kubernetes/central-s3.yaml
 * runs them: three pullcache processes on one port at 127.0.0.2-4, found through dnsmasq, each with
 * `storage.s3` on the same RADOS Gateway bucket and prefix, in front of docker-registry with token
 * auth (through a throttling relay where a download must last long enough to watch or break it).
 * The owner's download is the cluster's only one and lands in the bucket once; the owner killed
 * mid-download costs the others' clients nothing; one upstream HEAD per tag per TTL; the peer
 * endpoint is closed to outsiders.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPeerSigner } from '../../src/cluster/peer-auth.js';
import { peerBlobTarget } from '../../src/cluster/peer-paths.js';
import { ownerOf } from '../../src/cluster/rendezvous.js';
import { largeLayer, startBurstUpstream } from './harness/burst-upstream.js';
import { type Rgw, startRgw } from './harness/ceph-rgw.js';
import { createCleanup } from './harness/cleanup.js';
import { type ClusterHarness, type Replica, startCluster } from './harness/cluster.js';
import { type Dnsmasq, startDnsmasq } from './harness/dnsmasq.js';
import { type GeneratedImage, generateImage } from './harness/images.js';
import { waitUntil } from './harness/process.js';
import {
  killMidDownload,
  metric,
  printOutputOnFailure,
  pullBlob,
  settled,
} from './harness/replica-probes.js';
import { createS3Admin, rgwEnvironment, type S3Admin } from './harness/s3-admin.js';
import { pushImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';
import type { ThrottleProxy } from './harness/throttle-proxy.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

const MiB = 1024 * 1024;
const BUCKET = 'cluster';
const PREFIX = 'central/';
const REPOSITORY = 'library/big';
const THREE = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
// Longer than in cluster-peers: each answer reads the tag record and the manifest from the bucket
// (~50 ms here), and 3 × 20 of them must fit in one TTL.
const TTL_MS = 10_000;
const blobKey = (digest: string) => `${PREFIX}blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;

describe('three replicas on one bucket, as one cluster', () => {
  const cleanup = createCleanup();
  let upstream: Upstream;
  let throttle: ThrottleProxy;
  let rgw: Rgw;
  let admin: S3Admin;
  let dns: Dnsmasq;
  let cluster: ClusterHarness;
  let burst: GeneratedImage;
  let killed: GeneratedImage;
  let members: string[];
  let upstreamDownloads: (digest: string) => number;
  /** Every blob object in the bucket, with what its bytes hash to. */
  const bucketBlobs = async () => {
    const objects = await admin.objects(BUCKET, `${PREFIX}blobs/`);
    return Promise.all(
      objects.map(async (o) => ({
        key: o.key,
        size: o.size,
        hash: await admin.objectDigest(BUCKET, o.key),
        name: `sha256:${o.key.slice(o.key.lastIndexOf('/') + 1)}`,
      })),
    );
  };

  beforeAll(async () => {
    const work = cleanup.add(await makeTempDir('cluster-bucket'), removeDir);
    ({
      upstream,
      throttle,
      burst,
      killed,
      downloads: upstreamDownloads,
    } = await startBurstUpstream(cleanup, work, REPOSITORY, 'bucket'));
    rgw = cleanup.add(await startRgw(), (r) => r.stop());
    admin = cleanup.add(createS3Admin(rgw), (a) => a.close());
    await admin.createBucket(BUCKET);
    dns = cleanup.add(await startDnsmasq(), (d) => d.stop());
    cluster = cleanup.add(
      await startCluster({
        registries: { 'docker.io': { url: throttle.url, ...upstream.creds } },
        dns,
        storage: { s3: { bucket: BUCKET, endpoint: rgw.endpoint, region: rgw.region, prefix: PREFIX } },
        env: rgwEnvironment(rgw),
      }),
      (c) => c.stop(),
    );
    await cluster.publish(THREE);
    for (const address of THREE) await cluster.start(address);
    members = THREE.map(cluster.memberOf);
  });
  afterAll(() => cleanup.run());
  printOutputOnFailure(() => cluster);

  it('3 × 10 clients of one cold 64 MiB blob: one upstream download, one object in the bucket', async () => {
    const layer = largeLayer(burst);
    const owner = ownerOf(layer.digest, members);
    const started = performance.now();
    const results = await Promise.all(
      [...cluster.replicas.values()].map(async (replica) => ({
        replica,
        pulls: await Promise.all(
          Array.from({ length: 10 }, () => pullBlob(replica, layer.digest, REPOSITORY)),
        ),
      })),
    );
    for (const { pulls } of results) for (const p of pulls) expect(p.digest).toBe(layer.digest);
    expect(upstreamDownloads(layer.digest)).toBe(1);
    // A non-owner's clients start getting bytes soon after the owner's (they follow its download).
    const firstByte = (member: string) =>
      Math.min(...results.find((r) => r.replica.member === member)!.pulls.map((p) => p.firstByteAt)) -
      started;
    for (const member of members.filter((m) => m !== owner))
      expect(firstByte(member) - firstByte(owner)).toBeLessThan(2_000);
    for (const replica of cluster.replicas.values()) {
      await settled(replica);
      // The non-owners streamed it from the owner, which alone wrote it to the bucket.
      if (replica.member !== owner)
        expect(
          await metric(replica, 'pullcache_peer_bytes_total', { peer: owner, direction: 'fetched' }),
        ).toBe(layer.size);
    }
    expect(await bucketBlobs()).toEqual([
      { key: blobKey(layer.digest), size: layer.size, hash: layer.digest, name: layer.digest },
    ]);
    expect(await admin.uploadKeys(BUCKET, PREFIX)).toEqual([]);

    // Pulled again on a non-owner, it comes from the bucket: no peer request, no upstream request.
    const other = cluster.replicas.get(members.find((m) => m !== owner)!)!;
    const peerRequests = () => metric(other, 'pullcache_peer_requests_total', { direction: 'fetched' });
    const asked = await peerRequests();
    const logged = upstream.registry.accessLog().length;
    expect((await pullBlob(other, layer.digest, REPOSITORY)).digest).toBe(layer.digest);
    expect(await peerRequests()).toBe(asked);
    expect(upstream.registry.accessLog()).toHaveLength(logged);
  });

  it('the owner killed mid-download: the others’ clients complete and verify, ≤ 2 upstream downloads, the bucket holds only verified blobs', async () => {
    const layer = largeLayer(killed);
    throttle.rate = 16 * MiB; // four seconds: time to kill the owner in the middle
    const owner = cluster.replicas.get(ownerOf(layer.digest, members))!;
    const others = [...cluster.replicas.values()].filter((r) => r !== owner);
    const survivors = await killMidDownload(cluster, owner, layer.size, () =>
      others.map((replica) =>
        Promise.all(Array.from({ length: 10 }, () => pullBlob(replica, layer.digest, REPOSITORY))),
      ),
    );
    expect(await admin.uploadKeys(BUCKET, PREFIX)).toEqual([blobKey(layer.digest)]); // its parts so far
    for (const pulls of await Promise.all(survivors))
      for (const p of pulls) expect(p.digest).toBe(layer.digest);
    expect(upstreamDownloads(layer.digest)).toBeLessThanOrEqual(2);
    let broken = 0;
    for (const replica of others) {
      await settled(replica);
      broken += await metric(replica, 'pullcache_peer_fallbacks_total', { reason: 'broken' });
    }
    expect(broken).toBeGreaterThan(0); // it broke off under them, and they went on without it
    // Whatever the bucket lists is whole and verified; the dead owner's upload stays invisible.
    for (const blob of await bucketBlobs()) expect(blob.hash).toBe(blob.name);

    // The owner's record gone (the pod deleted), the survivors serve the blob, and it is stored.
    const left = THREE.filter((a) => cluster.memberOf(a) !== owner.member);
    await cluster.publish(left);
    for (const replica of others)
      await waitUntil(`${replica.member} to see 2 members`, async () => {
        return (await metric(replica, 'pullcache_cluster_members')) === 2;
      });
    for (const replica of others)
      expect((await pullBlob(replica, layer.digest, REPOSITORY)).digest).toBe(layer.digest);
    for (const replica of others) await settled(replica);
    const stored = await bucketBlobs();
    expect(stored.find((b) => b.name === layer.digest)).toMatchObject({
      hash: layer.digest,
      size: layer.size,
    });
    for (const blob of stored) expect(blob.hash).toBe(blob.name);
    // Put the owner back, on its host and local folder: its start aborts the upload it left.
    expect(await admin.uploadKeys(BUCKET, PREFIX)).toEqual([blobKey(layer.digest)]);
    await cluster.start(owner.member.slice(0, owner.member.lastIndexOf(':')), {
      storageDir: owner.storageDir,
    });
    await cluster.publish(THREE);
    await waitUntil('the dead owner’s upload to be aborted', async () => {
      return (await admin.uploadKeys(BUCKET, PREFIX)).length === 0;
    });
  });

  it('refuses the peer endpoint to a client without the secret, and nothing changes', async () => {
    const replica = [...cluster.replicas.values()][0]!;
    const layer = burst.platforms[0]!.layers[0]!; // a small layer nobody has pulled yet
    const target = peerBlobTarget({ registry: 'docker.io', repository: REPOSITORY }, layer.digest);
    const logged = upstream.registry.accessLog().length;
    const before = await admin.objects(BUCKET, PREFIX);
    expect((await fetch(`${replica.url}${target}`)).status).toBe(401);
    const forged = createPeerSigner({
      secret: 'not-the-cluster-secret-but-long-enough',
      self: replica.member,
    });
    expect((await fetch(`${replica.url}${target}`, { headers: forged('GET', target) })).status).toBe(403);
    const client = await fetch(`${replica.url}${target}`, { headers: { authorization: 'Bearer anything' } });
    expect(client.status).toBe(401);
    expect(upstream.registry.accessLog()).toHaveLength(logged);
    expect(await admin.objects(BUCKET, PREFIX)).toEqual(before);
  });
});

// Its own cluster, straight to the registry: the relay above is for blobs that must last, and a tag
// revalidated through it was seen failing as "unreachable" (the relay, not the registry), which sent
// the asking replica to the registry itself.
describe('a tag pulled through three replicas on one bucket', () => {
  const cleanup = createCleanup();
  let upstream: Upstream;
  let cluster: ClusterHarness;
  let image: GeneratedImage;

  beforeAll(async () => {
    const work = cleanup.add(await makeTempDir('cluster-bucket-tags'), removeDir);
    upstream = cleanup.add(await startUpstream('token'), (u) => u.stop());
    image = await generateImage({ dir: join(work, 'demo'), seed: 'bucket-tags' });
    await pushImage(image, `${upstream.registry.host}/library/demo:1.0`, upstream.creds);
    const rgw = cleanup.add(await startRgw(), (r) => r.stop());
    const admin = cleanup.add(createS3Admin(rgw), (a) => a.close());
    await admin.createBucket(BUCKET);
    const dns = cleanup.add(await startDnsmasq(), (d) => d.stop());
    cluster = cleanup.add(
      await startCluster({
        registries: { 'docker.io': { url: upstream.registry.url, ...upstream.creds } },
        dns,
        storage: { s3: { bucket: BUCKET, endpoint: rgw.endpoint, region: rgw.region, prefix: PREFIX } },
        env: rgwEnvironment(rgw),
        extraYaml: `cache: { tagTTL: ${TTL_MS}ms }`,
      }),
      (c) => c.stop(),
    );
    await cluster.publish(THREE);
    for (const address of THREE) await cluster.start(address);
  });
  afterAll(() => cleanup.run());
  printOutputOnFailure(() => cluster);

  it('costs the upstream one GET, then one HEAD per TTL, for the whole cluster', async () => {
    const byTag = (method: string) => upstream.registry.countRequests(method, /\/manifests\/1\.0$/, 200);
    const pullTag = async (replica: Replica) => {
      const response = await fetch(`${replica.url}/v2/library/demo/manifests/1.0`, {
        headers: { accept: image.index.mediaType },
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('docker-content-digest')).toBe(image.index.digest);
      await response.arrayBuffer();
    };
    const round = async () => {
      for (let i = 0; i < 20; i++) for (const replica of cluster.replicas.values()) await pullTag(replica);
    };
    const started = Date.now();
    await round();
    expect(Date.now() - started).toBeLessThan(TTL_MS); // all within the TTL
    expect({ get: byTag('GET'), head: byTag('HEAD') }).toEqual({ get: 1, head: 0 });
    await sleep(TTL_MS + 500);
    await round();
    expect({ get: byTag('GET'), head: byTag('HEAD') }).toEqual({ get: 1, head: 1 });
  });
});
