/**
 * Replicas as one cache, as real processes: three (or four) pullcache processes on one port at
 * 127.0.0.2, .3, ... found through dnsmasq, in front of docker-registry with token auth (through a
 * throttling relay where a download must last long enough to watch or break it). One upstream
 * download per blob for the cluster, the owner killed mid-download, members joining and leaving,
 * one upstream HEAD per tag per TTL for the cluster, and a peer endpoint closed to outsiders.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPeerSigner } from '../../src/cluster/peer-auth.js';
import { peerBlobTarget } from '../../src/cluster/peer-paths.js';
import { ownerOf } from '../../src/cluster/rendezvous.js';
import { largeLayer, startBurstUpstream } from './harness/burst-upstream.js';
import { createCleanup } from './harness/cleanup.js';
import { type ClusterHarness, type Replica, startCluster } from './harness/cluster.js';
import { type Dnsmasq, startDnsmasq } from './harness/dnsmasq.js';
import { type GeneratedImage, generateImage } from './harness/images.js';
import { waitUntil } from './harness/process.js';
import {
  killMidDownload,
  metric,
  printOutputOnFailure,
  pullBlob as pullFrom,
  settled,
} from './harness/replica-probes.js';
import { pushImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';
import type { ThrottleProxy } from './harness/throttle-proxy.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

const MiB = 1024 * 1024;
const REPOSITORY = 'library/big';
const THREE = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
const pullBlob = (replica: Replica, digest: string, repository = REPOSITORY) =>
  pullFrom(replica, digest, repository);

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** The blobs a replica's storage holds: committed files (with what they hash to) and temp files. */
async function storedBlobs(storageDir: string) {
  const root = join(storageDir, 'blobs');
  const files = existsSync(root)
    ? readdirSync(root, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => ({ name: e.name, path: join(e.parentPath, e.name) }))
    : [];
  const committed = [];
  for (const file of files.filter((f) => !f.name.startsWith('.tmp-')))
    committed.push({ name: `sha256:${file.name}`, hash: await sha256File(file.path) });
  return { committed, temp: files.filter((f) => f.name.startsWith('.tmp-')).map((f) => f.path) };
}

describe('a cluster of three replicas in front of a token-auth registry', () => {
  const cleanup = createCleanup();
  let upstream: Upstream;
  let throttle: ThrottleProxy;
  let dns: Dnsmasq;
  let cluster: ClusterHarness;
  let burst: GeneratedImage;
  let killed: GeneratedImage;
  let members: string[];
  let upstreamDownloads: (digest: string) => number;

  beforeAll(async () => {
    const work = cleanup.add(await makeTempDir('cluster'), removeDir);
    ({
      upstream,
      throttle,
      burst,
      killed,
      downloads: upstreamDownloads,
    } = await startBurstUpstream(cleanup, work, REPOSITORY, 'cluster'));
    dns = cleanup.add(await startDnsmasq(), (d) => d.stop());
    cluster = cleanup.add(
      await startCluster({ registries: { 'docker.io': { url: throttle.url, ...upstream.creds } }, dns }),
      (c) => c.stop(),
    );
    await cluster.publish(THREE);
    for (const address of THREE) await cluster.start(address);
    members = THREE.map(cluster.memberOf);
  });
  afterAll(() => cleanup.run());
  printOutputOnFailure(() => cluster);

  it('3 × 10 clients of one cold 64 MiB blob: one upstream download, every client verified', async () => {
    const layer = largeLayer(burst);
    const started = performance.now();
    const pulls = [...cluster.replicas.values()].map((replica) =>
      Promise.all(Array.from({ length: 10 }, () => pullBlob(replica, layer.digest))).then((p) => ({
        replica,
        pulls: p,
      })),
    );
    const results = await Promise.all(pulls);
    for (const { pulls } of results) for (const p of pulls) expect(p.digest).toBe(layer.digest);
    expect(upstreamDownloads(layer.digest)).toBe(1);
    // A non-owner's clients start getting bytes soon after the owner's (they follow its download).
    const owner = ownerOf(layer.digest, members);
    const firstByte = (member: string) =>
      Math.min(...results.find((r) => r.replica.member === member)!.pulls.map((p) => p.firstByteAt)) -
      started;
    for (const member of members.filter((m) => m !== owner))
      expect(firstByte(member) - firstByte(owner)).toBeLessThan(2_000);
    // Each replica keeps its own verified copy; the non-owners took it from the owner.
    for (const replica of cluster.replicas.values()) {
      await settled(replica);
      const stored = await storedBlobs(replica.storageDir);
      expect(stored.committed).toContainEqual({ name: layer.digest, hash: layer.digest });
      if (replica.member !== owner)
        expect(
          await metric(replica, 'pullcache_peer_bytes_total', { peer: owner, direction: 'fetched' }),
        ).toBe(layer.size);
    }
  });

  it('the owner killed mid-download: the other replicas’ clients complete and verify, ≤ 2 upstream downloads', async () => {
    const layer = largeLayer(killed);
    throttle.rate = 16 * MiB; // four seconds: time to kill the owner in the middle
    const owner = cluster.replicas.get(ownerOf(layer.digest, members))!;
    const others = [...cluster.replicas.values()].filter((r) => r !== owner);
    // Killed once its download is well under way (a quarter of the blob arrived).
    const { survivors, ownClients } = await killMidDownload(cluster, owner, layer.size, () => ({
      survivors: others.map((replica) =>
        Promise.all(Array.from({ length: 10 }, () => pullBlob(replica, layer.digest))),
      ),
      ownClients: Array.from({ length: 3 }, () => pullBlob(owner, layer.digest).catch((e: Error) => e)),
    }));
    const ownerStorage = owner.storageDir;
    for (const pulls of await Promise.all(survivors))
      for (const p of pulls) expect(p.digest).toBe(layer.digest);
    for (const outcome of await Promise.all(ownClients)) expect(outcome).toBeInstanceOf(Error);
    expect(upstreamDownloads(layer.digest)).toBeLessThanOrEqual(2);
    // It did break off under them (rather than finish first), and they went on without it.
    let broken = 0;
    for (const replica of others)
      broken += await metric(replica, 'pullcache_peer_fallbacks_total', { reason: 'broken' });
    expect(broken).toBeGreaterThan(0);
    // Nothing unverified stored anywhere: every committed file hashes to its name; the survivors
    // hold the blob and no temp file.
    for (const replica of others) {
      await settled(replica);
      const stored = await storedBlobs(replica.storageDir);
      for (const file of stored.committed) expect(file.hash).toBe(file.name);
      expect(stored.committed.map((f) => f.name)).toContain(layer.digest);
      expect(stored.temp).toEqual([]);
    }
    const left = await storedBlobs(ownerStorage);
    for (const file of left.committed) expect(file.hash).toBe(file.name);
    expect(left.committed.map((f) => f.name)).not.toContain(layer.digest);
  });

  it('refuses the peer endpoint to a client without the secret, and nothing changes', async () => {
    const replica = [...cluster.replicas.values()][0]!;
    const layer = burst.platforms[0]!.layers[0]!; // a small layer nobody has pulled yet
    const target = peerBlobTarget({ registry: 'docker.io', repository: REPOSITORY }, layer.digest);
    const logged = upstream.registry.accessLog().length;
    const unsigned = await fetch(`${replica.url}${target}`);
    expect(unsigned.status).toBe(401);
    const forged = createPeerSigner({
      secret: 'not-the-cluster-secret-but-long-enough',
      self: replica.member,
    });
    const wrong = await fetch(`${replica.url}${target}`, { headers: forged('GET', target) });
    expect(wrong.status).toBe(403);
    const client = await fetch(`${replica.url}${target}`, { headers: { authorization: 'Bearer anything' } });
    expect(client.status).toBe(401);
    expect(upstream.registry.accessLog()).toHaveLength(logged);
    for (const r of cluster.replicas.values()) {
      const stored = await storedBlobs(r.storageDir);
      expect(stored.committed.map((f) => f.name)).not.toContain(layer.digest);
    }
  });
});

describe('a tag pulled through three replicas', () => {
  const cleanup = createCleanup();
  let upstream: Upstream;
  let cluster: ClusterHarness;
  let image: GeneratedImage;
  const TTL_MS = 4_000;

  beforeAll(async () => {
    const work = cleanup.add(await makeTempDir('cluster-tags'), removeDir);
    upstream = cleanup.add(await startUpstream('token'), (u) => u.stop());
    image = await generateImage({ dir: join(work, 'demo'), seed: 'cluster-tags' });
    await pushImage(image, `${upstream.registry.host}/library/demo:1.0`, upstream.creds);
    const dns = cleanup.add(await startDnsmasq(), (d) => d.stop());
    cluster = cleanup.add(
      await startCluster({
        registries: { 'docker.io': { url: upstream.registry.url, ...upstream.creds } },
        dns,
        extraYaml: `cache: { tagTTL: ${TTL_MS}ms }`,
      }),
      (c) => c.stop(),
    );
    await cluster.publish(THREE);
    for (const address of THREE) await cluster.start(address);
  });
  afterAll(() => cleanup.run());
  printOutputOnFailure(() => cluster);

  const pullTag = async (replica: Replica) => {
    const response = await fetch(`${replica.url}/v2/library/demo/manifests/1.0`, {
      headers: { accept: image.index.mediaType },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-content-digest')).toBe(image.index.digest);
    await response.arrayBuffer();
  };
  const byTag = (method: string) => upstream.registry.countRequests(method, /\/manifests\/1\.0$/, 200);

  it('costs the upstream one GET, then one HEAD per TTL, for the whole cluster', async () => {
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

describe('members joining and leaving', () => {
  const cleanup = createCleanup();
  let upstream: Upstream;
  let cluster: ClusterHarness;
  let before: GeneratedImage;
  let after: GeneratedImage;
  const FOUR = [...THREE, '127.0.0.5'];
  const AFTER = ['127.0.0.2', '127.0.0.3', '127.0.0.5']; // .4 leaves

  /** Configs and layers: what a registry serves at /blobs/ (manifests it serves at /manifests/ only). */
  const blobsOf = (image: GeneratedImage) => [
    ...new Set(image.platforms.flatMap((p) => [p.config.digest, ...p.layers.map((l) => l.digest)])),
  ];

  beforeAll(async () => {
    const work = cleanup.add(await makeTempDir('cluster-change'), removeDir);
    upstream = cleanup.add(await startUpstream('token'), (u) => u.stop());
    const platforms = ['amd64', 'arm64', 'ppc64le', 's390x'].map((architecture) => ({
      os: 'linux',
      architecture,
    }));
    before = await generateImage({ dir: join(work, 'before'), seed: 'change-before', platforms });
    after = await generateImage({ dir: join(work, 'after'), seed: 'change-after', platforms });
    await pushImage(before, `${upstream.registry.host}/library/demo:before`, upstream.creds);
    await pushImage(after, `${upstream.registry.host}/library/demo:after`, upstream.creds);
    const dns = cleanup.add(await startDnsmasq(), (d) => d.stop());
    cluster = cleanup.add(
      await startCluster({
        registries: { 'docker.io': { url: upstream.registry.url, ...upstream.creds } },
        dns,
      }),
      (c) => c.stop(),
    );
    await cluster.publish(THREE);
    for (const address of FOUR) await cluster.start(address); // .5 runs, not yet in the records
  });
  afterAll(() => cleanup.run());
  printOutputOnFailure(() => cluster);

  const seeing = async (count: number, addresses: string[]) => {
    for (const address of addresses) {
      const replica = cluster.replicas.get(cluster.memberOf(address))!;
      await waitUntil(`${replica.member} to see ${count} members`, async () => {
        return (await metric(replica, 'pullcache_cluster_members')) === count;
      });
    }
  };

  it('keeps pulls working while a fourth replica joins and one leaves; then the new set owns the digests', async () => {
    const digests = blobsOf(before);
    let changing = true;
    let pulls = 0;
    const failures: string[] = [];
    // Pulls through the replicas that stay, over and over, while the member list changes.
    const loop = (async () => {
      const staying = AFTER.slice(0, 2).map((a) => cluster.replicas.get(cluster.memberOf(a))!);
      for (let i = 0; changing || i < digests.length; i++) {
        const digest = digests[i % digests.length]!;
        const replica = staying[i % staying.length]!;
        try {
          const pulled = await pullBlob(replica, digest, 'library/demo');
          if (pulled.digest !== digest)
            failures.push(`${replica.member}: ${digest} came back as ${pulled.digest}`);
        } catch (error) {
          failures.push(`${replica.member}: ${digest}: ${(error as Error).message}`);
        }
        pulls++;
      }
    })();
    await cluster.publish(FOUR);
    await seeing(4, THREE);
    await cluster.publish(AFTER);
    await cluster.stopReplica(cluster.memberOf('127.0.0.4'));
    await seeing(3, AFTER);
    changing = false;
    await loop;
    expect(failures).toEqual([]);
    expect(pulls).toBeGreaterThanOrEqual(digests.length);

    // Cold digests now: each is fetched from its owner in the new set, the newcomer included.
    const newSet = AFTER.map(cluster.memberOf);
    const owners = new Set<string>();
    for (const digest of blobsOf(after)) {
      const owner = ownerOf(digest, newSet);
      owners.add(owner);
      const asker = cluster.replicas.get(newSet.find((m) => m !== owner)!)!;
      const fetched = () =>
        metric(asker, 'pullcache_peer_requests_total', { peer: owner, direction: 'fetched' });
      const was = await fetched();
      expect((await pullBlob(asker, digest, 'library/demo')).digest).toBe(digest);
      expect(await fetched()).toBe(was + 1);
    }
    expect(owners).toContain(cluster.memberOf('127.0.0.5'));
    for (const digest of blobsOf(after))
      expect(upstream.registry.countRequests('GET', new RegExp(`/blobs/${digest}$`), 200), digest).toBe(1);
  });
});
