/**
 * Replicas as one cache, in process on one port at 127.0.0.2, .3, .4 (all of 127/8 is loopback),
 * against an msw upstream: one upstream download per blob for the cluster, each replica with its own
 * verified copy (or, with a shared store, only the owner's); tags through their owner; the peer
 * endpoint refusing everyone but members; and members that fail in every way a peer can (gone,
 * silent, broken off, lying) costing the client nothing but the upstream's bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpResponse, http } from 'msw';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DiskStore } from '../../src/cache/disk-store.js';
import { createPeerSigner } from '../../src/cluster/peer-auth.js';
import { peerBlobTarget, peerManifestTarget } from '../../src/cluster/peer-paths.js';
import { ownerOf } from '../../src/cluster/rendezvous.js';
import { rangedBlobAnswer } from '../support/blob-upstream.js';
import { type Certificate, selfSignedCertificate } from '../support/certificate.js';
import { OCI_MANIFEST, RegistryContent, registryHandlers, sha256 } from '../support/fake-registry.js';
import { metricSum } from '../support/metrics-text.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { settled, startProxy, type TestProxy } from '../support/proxy.js';

const SECRET = 'the-cluster-secret-of-these-tests-0123456789';
// Long enough that a live member on a loaded test machine is never taken for a silent one.
const PEER_TIMEOUT_MS = 1_000;
const TAG_TTL_MS = 60_000;
const REFRESH_MS = 300;
const CHUNK = 64 * 1024;
const ROUTE = { registry: 'docker.io', repository: 'library/big' };

/** The upstream's blob answers: a delay before the headers and between chunks. */
const upstream = { headersDelayMs: 0, chunkDelayMs: 0 };
const blobs = new Map<string, Buffer>();
const content = new RegistryContent();

// GET and HEAD (the loopback server sends no body for a HEAD).
const streaming = http.all('/v2/library/big/blobs/:digest', async ({ params, request }) => {
  const bytes = blobs.get(String(params.digest));
  if (!bytes) return HttpResponse.json({ errors: [{ code: 'BLOB_UNKNOWN', message: 'x' }] }, { status: 404 });
  if (upstream.headersDelayMs) await sleep(upstream.headersDelayMs);
  const { start, status, headers } = rangedBlobAnswer(request, bytes.length);
  let offset = start;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (upstream.chunkDelayMs) await sleep(upstream.chunkDelayMs);
      if (offset >= bytes.length) return controller.close();
      const chunk = bytes.subarray(offset, Math.min(offset + CHUNK, bytes.length));
      offset += chunk.length;
      controller.enqueue(new Uint8Array(chunk));
    },
  });
  return new HttpResponse(body, { status, headers });
});

/** A new random blob the upstream has; with `owner`, one whose owner among `members` is `owner`. */
function addBlob(size: number, owner?: { is: string; among: string[] }): string {
  for (;;) {
    const bytes = randomBytes(size);
    const digest = sha256(bytes);
    if (owner && ownerOf(digest, owner.among) !== owner.is) continue;
    blobs.set(digest, bytes);
    return digest;
  }
}

const hashOf = (bytes: ArrayBuffer) =>
  `sha256:${createHash('sha256').update(Buffer.from(bytes)).digest('hex')}`;
const blobFile = (storage: string, digest: string) =>
  join(storage, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
/** Files of this blob (committed, or a temp file named after its digest's first 16 hex digits). */
const filesOf = (storage: string, digest: string) =>
  filesUnder(join(storage, 'blobs')).filter((f) => f.includes(digest.slice(7, 23)));
const filesUnder = (dir: string): string[] =>
  existsSync(dir)
    ? readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name))
    : [];

/** A port free on every address (a replica listens on it at several loopback addresses). */
async function freePortEverywhere(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The value of one Prometheus series (0 when absent); `get` is the fetch (HTTPS: one trusting it). */
async function metric(
  proxy: TestProxy,
  name: string,
  labels: Record<string, string> = {},
  get: (url: string) => Promise<Response> = fetch,
): Promise<number> {
  return metricSum(await (await get(`${proxy.url}/metrics`)).text(), name, labels);
}

let registry: LoopbackServer;
let port: number;
/** The test's clock for tag TTLs, shared by every replica. */
let clock = Date.now();
const now = () => clock;

beforeAll(async () => {
  content.addManifest('library/demo', OCI_MANIFEST, { schemaVersion: 2, mediaType: OCI_MANIFEST }, '1.0');
  registry = await startLoopback(streaming, ...registryHandlers(content, { auth: { kind: 'none' } }));
  port = await freePortEverywhere();
});
afterAll(() => registry.close());
beforeEach(() => {
  Object.assign(upstream, { headersDelayMs: 0, chunkDelayMs: 0 });
  registry.requests.length = 0;
});

const upstreamGets = (digest: string) => registry.count('GET', `/v2/library/big/blobs/${digest}`);

function replicaConfig(host: string, members: string[], extra: Record<string, unknown> = {}) {
  return {
    registries: { 'docker.io': { url: registry.url } },
    listen: `${host}:${port}`,
    cache: { tagTTL: `${TAG_TTL_MS}ms` },
    cluster: {
      peers: { static: members },
      secret: SECRET,
      peerTimeout: `${PEER_TIMEOUT_MS}ms`,
      // Also how long a member that failed is skipped.
      refresh: `${REFRESH_MS}ms`,
    },
    ...extra,
  };
}

async function startReplicas(hosts: string[], options: { storage?: string; shared?: boolean } = {}) {
  const members = hosts.map((host) => `${host}:${port}`);
  const replicas: TestProxy[] = [];
  for (const host of hosts) {
    replicas.push(
      await startProxy(replicaConfig(host, members), {
        now,
        ...(options.storage ? { storage: options.storage } : {}),
        ...(options.shared ? { wrapStore: sharedStore } : {}),
      }),
    );
  }
  const at = (member: string) => replicas[members.indexOf(member)]!;
  return { members, replicas, at };
}

/** Writers created per store: with a shared store only the owner's download creates one. */
const writersCreated = new Map<DiskStore, number>();
function sharedStore(store: DiskStore): DiskStore {
  const shared: DiskStore = {
    ...store,
    shared: true,
    createBlobWriter(digest) {
      writersCreated.set(shared, (writersCreated.get(shared) ?? 0) + 1);
      return store.createBlobWriter(digest);
    },
  };
  return shared;
}

/** Reads a whole blob through a replica; resolves its bytes' digest. */
async function pull(proxy: TestProxy, digest: string, get: (url: string) => Promise<Response> = fetch) {
  const response = await get(`${proxy.url}/v2/library/big/blobs/${digest}`);
  expect(response.status).toBe(200);
  return hashOf(await response.arrayBuffer());
}

const signer = (from: string, secret = SECRET) => createPeerSigner({ secret, self: from });

describe('three replicas with their own disks', () => {
  let cluster: Awaited<ReturnType<typeof startReplicas>>;
  beforeAll(async () => {
    cluster = await startReplicas(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
  });
  afterAll(async () => {
    for (const replica of cluster.replicas) await replica.close();
  });

  it('download a cold blob asked of all three at once from the upstream once; each keeps a verified copy', async () => {
    const digest = addBlob(3 * 1024 * 1024);
    upstream.chunkDelayMs = 5; // 48 chunks: the download is still running as the others ask
    const pulls = cluster.replicas.flatMap((replica) =>
      Array.from({ length: 5 }, () => pull(replica, digest)),
    );
    expect(await Promise.all(pulls)).toEqual(Array(15).fill(digest));
    expect(upstreamGets(digest)).toBe(1);
    for (const replica of cluster.replicas) {
      await settled(replica.url);
      expect(existsSync(blobFile(replica.storage, digest))).toBe(true);
    }
    // The owner served the other two; they fetched the whole blob from it, nothing from the upstream.
    const owner = ownerOf(digest, cluster.members);
    for (const member of cluster.members.filter((m) => m !== owner)) {
      const replica = cluster.at(member);
      expect(await metric(replica, 'pullcache_peer_bytes_total', { peer: owner, direction: 'fetched' })).toBe(
        3 * 1024 * 1024,
      );
      expect(await metric(replica, 'pullcache_upstream_fetched_bytes_total')).toBe(0);
      expect(
        await metric(cluster.at(owner), 'pullcache_peer_requests_total', {
          peer: member,
          direction: 'served',
        }),
      ).toBeGreaterThanOrEqual(1);
    }
    expect(await metric(cluster.at(owner), 'pullcache_cluster_members')).toBe(3);
  });

  it('serve a blob already on one replica to the others from it, never from the upstream', async () => {
    const digest = addBlob(200_000);
    const owner = cluster.at(ownerOf(digest, cluster.members));
    expect(await pull(owner, digest)).toBe(digest);
    await settled(owner.url);
    for (const replica of cluster.replicas) expect(await pull(replica, digest)).toBe(digest);
    expect(upstreamGets(digest)).toBe(1);
  });

  it('keep a slow upstream to one download: the owner says it is alive (102) while it waits', async () => {
    const digest = addBlob(100_000);
    upstream.headersDelayMs = 3 * PEER_TIMEOUT_MS;
    const owner = ownerOf(digest, cluster.members);
    const other = cluster.replicas.find((r) => r !== cluster.at(owner))!;
    expect(await pull(other, digest)).toBe(digest);
    expect(upstreamGets(digest)).toBe(1);
    expect(await metric(other, 'pullcache_peer_fallbacks_total')).toBe(0);
  });

  it('answer a HEAD of a cold blob through its owner', async () => {
    const digest = addBlob(50_000);
    const owner = ownerOf(digest, cluster.members);
    const other = cluster.replicas.find((r) => r !== cluster.at(owner))!;
    const head = await fetch(`${other.url}/v2/library/big/blobs/${digest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('50000');
    // The owner asked the upstream (a HEAD: msw answers it with the GET handler), once.
    expect(registry.requests.filter((r) => r.path.endsWith(digest))).toHaveLength(1);
  });

  it('serve a member a Range and a HEAD on the peer endpoint', async () => {
    const digest = addBlob(100_000);
    const replica = cluster.replicas[0]!;
    const target = peerBlobTarget(ROUTE, digest);
    const ranged = await fetch(`${replica.url}${target}`, {
      headers: { ...signer(cluster.members[1]!)('GET', target), range: 'bytes=1000-' },
    });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('content-range')).toBe(`bytes 1000-99999/100000`);
    expect(Buffer.from(await ranged.arrayBuffer())).toEqual(blobs.get(digest)!.subarray(1000));
    const head = await fetch(`${replica.url}${target}`, {
      method: 'HEAD',
      headers: signer(cluster.members[1]!)('HEAD', target),
    });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('100000');
  });

  it('never forward a peer request: a non-owner asked by a member fetches from the upstream itself', async () => {
    const digest = addBlob(100_000);
    const owner = ownerOf(digest, cluster.members);
    const [asked, asking] = cluster.members.filter((m) => m !== owner) as [string, string];
    const target = peerBlobTarget(ROUTE, digest);
    const fetched = () =>
      metric(cluster.at(asked), 'pullcache_peer_requests_total', { direction: 'fetched' });
    const fetchedBefore = await fetched();
    const response = await fetch(`${cluster.at(asked).url}${target}`, {
      headers: signer(asking)('GET', target),
    });
    expect(response.status).toBe(200);
    expect(hashOf(await response.arrayBuffer())).toBe(digest);
    expect(upstreamGets(digest)).toBe(1);
    expect(await fetched()).toBe(fetchedBefore);
  });

  it('refuse the peer endpoint to anyone without the secret, and start nothing', async () => {
    const digest = addBlob(10_000);
    const replica = cluster.replicas[0]!;
    const target = peerBlobTarget(ROUTE, digest);
    const unsigned = await fetch(`${replica.url}${target}`);
    expect(unsigned.status).toBe(401);
    const wrongSecret = await fetch(`${replica.url}${target}`, {
      headers: signer(cluster.members[1]!, 'another-secret-of-more-than-32-characters')('GET', target),
    });
    expect(wrongSecret.status).toBe(403);
    // Signed for another path: the signature binds the target.
    const otherPath = await fetch(`${replica.url}${target}`, {
      headers: signer(cluster.members[1]!)('GET', peerBlobTarget(ROUTE, addBlob(10))),
    });
    expect(otherPath.status).toBe(403);
    expect(registry.requests).toHaveLength(0);
    expect(filesOf(replica.storage, digest)).toEqual([]);
    const stats = (await (await fetch(`${replica.url}/_pullcache/stats`)).json()) as {
      downloadsInFlight: number;
    };
    expect(stats.downloadsInFlight).toBe(0);
  });

  it('answer a member a tag from its record: one upstream GET for the cluster, then one HEAD per TTL', async () => {
    const members = cluster.members;
    const manifests = () => registry.requests.filter((r) => r.path === '/v2/library/demo/manifests/1.0');
    for (let round = 0; round < 3; round++) {
      for (const replica of cluster.replicas) {
        const response = await fetch(`${replica.url}/v2/library/demo/manifests/1.0`);
        expect(response.status).toBe(200);
        expect(response.headers.get('docker-content-digest')).toBe(
          content.tags.get('library/demo')!.get('1.0'),
        );
      }
    }
    expect(manifests().map((r) => r.method)).toEqual(['GET']);
    clock += TAG_TTL_MS + 1;
    for (const replica of cluster.replicas) await fetch(`${replica.url}/v2/library/demo/manifests/1.0`);
    expect(manifests().map((r) => r.method)).toEqual(['GET', 'HEAD']);
    // The owner answered the tag for the others each time their record was due.
    const owner = ownerOf('docker.io/library/demo:1.0', members);
    for (const member of members.filter((m) => m !== owner)) {
      expect(
        await metric(cluster.at(member), 'pullcache_peer_requests_total', { peer: owner, kind: 'manifest' }),
      ).toBe(2);
    }
  });

  it('fetch a manifest by digest from the upstream once for the cluster', async () => {
    const digest = content.addManifest('library/demo', OCI_MANIFEST, { schemaVersion: 2, note: 'by digest' });
    for (const replica of cluster.replicas) {
      const response = await fetch(`${replica.url}/v2/library/demo/manifests/${digest}`);
      expect(response.status).toBe(200);
      expect(hashOf(await response.arrayBuffer())).toBe(digest);
    }
    expect(registry.requests.filter((r) => r.path === `/v2/library/demo/manifests/${digest}`)).toHaveLength(
      1,
    );
  });

  it('answer a member a tag on the peer endpoint, with the bytes its digest names', async () => {
    const target = peerManifestTarget({ registry: 'docker.io', repository: 'library/demo' }, '1.0');
    const response = await fetch(`${cluster.replicas[0]!.url}${target}`, {
      headers: signer(cluster.members[1]!)('GET', target),
    });
    expect(response.status).toBe(200);
    const digest = response.headers.get('docker-content-digest');
    expect(hashOf(await response.arrayBuffer())).toBe(digest);
  });
});

describe('a member with client authentication configured', () => {
  it('refuses valid client credentials on the peer endpoint and still serves /v2 with them', async () => {
    const token = 'a-client-token-for-the-proxy';
    const member = `127.0.0.2:${port}`;
    const proxy = await startProxy(replicaConfig('127.0.0.2', [member], { auth: { tokens: [token] } }), {
      now,
    });
    try {
      const digest = addBlob(10_000);
      const target = peerBlobTarget(ROUTE, digest);
      const authorization = `Bearer ${token}`;
      const peer = await fetch(`${proxy.url}${target}`, { headers: { authorization } });
      expect(peer.status).toBe(401);
      expect(peer.headers.get('www-authenticate')).toMatch(/^PullcachePeer /);
      expect(registry.requests).toHaveLength(0);
      const v2 = await fetch(`${proxy.url}/v2/library/big/blobs/${digest}`, { headers: { authorization } });
      expect(hashOf(await v2.arrayBuffer())).toBe(digest);
      // A member's signature gets through without client credentials.
      const signed = await fetch(`${proxy.url}${target}`, { headers: signer(member)('GET', target) });
      expect(signed.status).toBe(200);
      await signed.arrayBuffer();
    } finally {
      await proxy.close();
    }
  });
});

describe('three replicas sharing one store', () => {
  let storage: string;
  let cluster: Awaited<ReturnType<typeof startReplicas>>;
  beforeAll(async () => {
    storage = mkdtempSync(join(tmpdir(), 'pullcache-shared-'));
    writersCreated.clear();
    cluster = await startReplicas(['127.0.0.2', '127.0.0.3', '127.0.0.4'], { storage, shared: true });
  });
  afterAll(async () => {
    for (const replica of cluster.replicas) await replica.stop();
    rmSync(storage, { recursive: true, force: true });
  });

  it("store a blob once, the owner's commit, and serve it to every replica", async () => {
    const digest = addBlob(2 * 1024 * 1024);
    upstream.chunkDelayMs = 5;
    const pulls = cluster.replicas.flatMap((replica) =>
      Array.from({ length: 3 }, () => pull(replica, digest)),
    );
    expect(await Promise.all(pulls)).toEqual(Array(9).fill(digest));
    expect(upstreamGets(digest)).toBe(1);
    for (const replica of cluster.replicas) await settled(replica.url);
    expect([...writersCreated.values()].reduce((a, b) => a + b, 0)).toBe(1);
    expect(filesUnder(join(storage, 'blobs'))).toEqual([blobFile(storage, digest)]);
    // Afterwards every replica reads the committed object.
    for (const replica of cluster.replicas) expect(await pull(replica, digest)).toBe(digest);
    expect(upstreamGets(digest)).toBe(1);
  });
});

/** A member that is not pullcache: it does what `answer` says with every request. */
async function startFakeMember(
  host: string,
  answer: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; sockets: Set<Socket>; close(): Promise<void> }> {
  const server = createServer(answer);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return {
    server,
    sockets,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('a replica whose owner fails', () => {
  const FAKE = '127.0.0.9';
  let replica: TestProxy;
  let members: string[];
  let fake: Awaited<ReturnType<typeof startFakeMember>> | undefined;
  let behaviour: (req: IncomingMessage, res: ServerResponse) => void = () => {};
  const fakeMember = () => `${FAKE}:${port}`;

  beforeAll(async () => {
    members = [`127.0.0.2:${port}`, fakeMember()];
    replica = await startProxy(replicaConfig('127.0.0.2', members), { now });
  });
  afterAll(async () => {
    await fake?.close();
    await replica.close();
  });
  beforeEach(async () => {
    await fake?.close();
    fake = undefined;
    await sleep(REFRESH_MS); // the last test's failing member is asked again
  });

  const ownedByFake = (size: number) => addBlob(size, { is: fakeMember(), among: members });
  const fallbacks = (reason: string) => metric(replica, 'pullcache_peer_fallbacks_total', { reason });

  it('fetches from the upstream when the owner is gone (connection refused)', async () => {
    const digest = ownedByFake(100_000);
    const before = await fallbacks('unreachable');
    expect(await pull(replica, digest)).toBe(digest);
    expect(upstreamGets(digest)).toBe(1);
    expect(await fallbacks('unreachable')).toBe(before + 1);
  });

  it('fetches from the upstream when the owner accepts and says nothing within peerTimeout', async () => {
    behaviour = () => {}; // never answers
    fake = await startFakeMember(FAKE, (req, res) => behaviour(req, res));
    const digest = ownedByFake(100_000);
    const before = await fallbacks('timeout');
    expect(await pull(replica, digest)).toBe(digest);
    expect(upstreamGets(digest)).toBe(1);
    expect(await fallbacks('timeout')).toBe(before + 1);
  });

  it('resumes from the upstream at the byte it has when the owner breaks off mid-stream', async () => {
    const digest = ownedByFake(1024 * 1024);
    const bytes = blobs.get(digest)!;
    const half = 512 * 1024;
    behaviour = (_req, res) => {
      res.writeHead(200, { 'content-length': String(bytes.length) });
      res.write(bytes.subarray(0, half), () => setTimeout(() => res.socket?.destroy(), 50));
    };
    fake = await startFakeMember(FAKE, (req, res) => behaviour(req, res));
    const before = await fallbacks('broken');
    expect(await pull(replica, digest)).toBe(digest);
    const resumed = registry.requests.filter((r) => r.path === `/v2/library/big/blobs/${digest}`);
    expect(resumed).toHaveLength(1);
    expect(resumed[0]!.headers.range).toBe(`bytes=${half}-`);
    expect(await fallbacks('broken')).toBe(before + 1);
    await settled(replica.url);
    expect(existsSync(blobFile(replica.storage, digest))).toBe(true);
  });

  it('verifies what the owner sends: wrong bytes abort the client and nothing is stored', async () => {
    const digest = ownedByFake(300_000);
    const wrong = randomBytes(300_000);
    behaviour = (_req, res) => {
      res.writeHead(200, { 'content-length': String(wrong.length) });
      res.end(wrong);
    };
    fake = await startFakeMember(FAKE, (req, res) => behaviour(req, res));
    const response = await fetch(`${replica.url}/v2/library/big/blobs/${digest}`);
    expect(response.status).toBe(200);
    await expect(response.arrayBuffer()).rejects.toThrow();
    await settled(replica.url);
    expect(filesOf(replica.storage, digest)).toEqual([]);
    expect(upstreamGets(digest)).toBe(0);
    expect(await fallbacks('invalid')).toBe(1);
    // The client's retry goes to the upstream: the member that lied is skipped for now.
    expect(await pull(replica, digest)).toBe(digest);
    expect(upstreamGets(digest)).toBe(1);
  });

  it('asks the upstream itself when the tag owner cannot answer', async () => {
    fake = await startFakeMember(FAKE, (_req, res) => res.writeHead(503).end());
    // Find a tag the fake member owns.
    let tag = '';
    for (let i = 0; tag === ''; i++)
      if (ownerOf(`docker.io/library/demo:t${i}`, members) === fakeMember()) tag = `t${i}`;
    content.tag('library/demo', tag, content.tags.get('library/demo')!.get('1.0')!);
    const response = await fetch(`${replica.url}/v2/library/demo/manifests/${tag}`);
    expect(response.status).toBe(200);
    expect(registry.requests.filter((r) => r.path === `/v2/library/demo/manifests/${tag}`)).toHaveLength(1);
    expect(
      await metric(replica, 'pullcache_peer_fallbacks_total', { kind: 'manifest', reason: 'answer' }),
    ).toBe(1);
  });
});

describe('replicas serving HTTPS', () => {
  // One certificate for every member (one Secret mounted in every pod), naming the Service, not the
  // members' addresses (which change with every pod); and one that no member trusts.
  const SERVICE = 'DNS:pullcache-peers.pullcache.svc';
  let dir: string;
  let shared: Certificate;
  let stranger: Certificate;
  let agent: Agent;
  /** The test's own fetch: it trusts the members' certificate (and only that), as a member does. */
  const get = async (url: string, init: { headers?: Record<string, string> } = {}) =>
    (await undiciFetch(url, { ...init, dispatcher: agent })) as unknown as Response;
  const started: TestProxy[] = [];
  const fakes: Awaited<ReturnType<typeof startFakeMember>>[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pullcache-peer-tls-'));
    shared = selfSignedCertificate(dir, 'pullcache-members', [SERVICE]);
    stranger = selfSignedCertificate(dir, 'someone-else', [SERVICE]);
    agent = new Agent({ connect: { ca: shared.pem, checkServerIdentity: () => undefined } });
  });
  afterAll(async () => {
    for (const replica of started) await replica.close();
    for (const fake of fakes) await fake.close();
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function replica(host: string, members: string[], certificate: Certificate) {
    const proxy = await startProxy(
      replicaConfig(host, members, { tls: { cert: certificate.cert, key: certificate.key } }),
      { now },
    );
    started.push(proxy);
    return proxy;
  }

  it('fetch a cold blob from its owner over HTTPS: one upstream download, a verified copy on each', async () => {
    const members = [`127.0.0.2:${port}`, `127.0.0.3:${port}`];
    const owner = await replica('127.0.0.2', members, shared);
    const asking = await replica('127.0.0.3', members, shared);
    expect(asking.url).toBe(`https://127.0.0.3:${port}`);
    const digest = addBlob(1024 * 1024, { is: members[0]!, among: members });
    expect(await pull(asking, digest, get)).toBe(digest);
    expect(upstreamGets(digest)).toBe(1);
    expect(
      await metric(asking, 'pullcache_peer_bytes_total', { peer: members[0]!, direction: 'fetched' }, get),
    ).toBe(1024 * 1024);
    expect(await metric(asking, 'pullcache_upstream_fetched_bytes_total', {}, get)).toBe(0);
    expect(await metric(asking, 'pullcache_peer_fallbacks_total', {}, get)).toBe(0);
    for (const proxy of [owner, asking]) {
      await settled(proxy.url, 10_000, {}, get);
      expect(existsSync(blobFile(proxy.storage, digest))).toBe(true);
    }
  });

  it('fetch from the upstream when the owner shows a certificate the members do not share', async () => {
    const members = [`127.0.0.5:${port}`, `127.0.0.6:${port}`];
    const impostor = await replica('127.0.0.5', members, stranger);
    const asking = await replica('127.0.0.6', members, shared);
    const digest = addBlob(200_000, { is: members[0]!, among: members });
    expect(await pull(asking, digest, get)).toBe(digest);
    expect(upstreamGets(digest)).toBe(1);
    expect(
      await metric(asking, 'pullcache_peer_fallbacks_total', { kind: 'blob', reason: 'unreachable' }, get),
    ).toBe(1);
    // The handshake failed: the other replica was asked for nothing and stored nothing.
    expect(filesOf(impostor.storage, digest)).toEqual([]);
    const impostorAgent = new Agent({ connect: { ca: stranger.pem, checkServerIdentity: () => undefined } });
    try {
      const text = await (await undiciFetch(`${impostor.url}/metrics`, { dispatcher: impostorAgent })).text();
      expect(text).not.toMatch(/pullcache_peer_requests_total\{[^}]*direction="served"/);
    } finally {
      await impostorAgent.close();
    }
  });

  it('fetch from the upstream when the owner speaks plain HTTP', async () => {
    const members = [`127.0.0.7:${port}`, `127.0.0.8:${port}`];
    let asked = 0;
    // A plain HTTP member on the owner's address: pullcache without tls, or anything else.
    fakes.push(
      await startFakeMember('127.0.0.7', (_req, res) => {
        asked++;
        res.writeHead(500).end();
      }),
    );
    const asking = await replica('127.0.0.8', members, shared);
    const digest = addBlob(200_000, { is: members[0]!, among: members });
    expect(await pull(asking, digest, get)).toBe(digest);
    expect(upstreamGets(digest)).toBe(1);
    expect(asked).toBe(0); // a TLS hello is not an HTTP request
    expect(
      await metric(asking, 'pullcache_peer_fallbacks_total', { kind: 'blob', reason: 'unreachable' }, get),
    ).toBe(1);
  });
});
