/**
 * Slow and silent peers on both sides. Upstream: a blob body that drips (1 byte per 100 ms, never
 * silent long enough for bodyTimeout) falls below `upstream.minRate`, is resumed with Range, then
 * failed; its client sees an aborted transfer and its download slot goes to the next blob. Clients:
 * connections that send nothing are closed within `limits.headersTimeout`, idle kept-alive ones
 * after `limits.keepAliveTimeout`, connections past `limits.maxConnections` are refused, and
 * `limits.requestTimeout` never cuts a blob body that takes longer to send.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpResponse, http } from 'msw';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { rangedBlobAnswer } from '../support/blob-upstream.js';
import { RegistryContent, registryHandlers, sha256 } from '../support/fake-registry.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { settled, startProxy, type TestProxy } from '../support/proxy.js';
import { storedContent } from '../support/storage-files.js';

const hashOf = (bytes: ArrayBuffer) =>
  `sha256:${createHash('sha256').update(Buffer.from(bytes)).digest('hex')}`;

/** Blobs the upstream serves at a chosen pace: `every` ms per `step` bytes, honouring `Range: bytes=N-`. */
const paced = new Map<string, { bytes: Buffer; every: number; step: number }>();
let stopped = false; // ends every paced body still being pulled once the tests are done

function pacedBody(bytes: Buffer, start: number, every: number, step: number): ReadableStream<Uint8Array> {
  let offset = start;
  return new ReadableStream({
    async pull(controller) {
      await sleep(every);
      if (stopped || offset >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(Buffer.from(bytes.subarray(offset, offset + step)));
      offset += step;
    },
  });
}

const pacedHandler = http.get('/v2/library/slow/blobs/:digest', ({ params, request }) => {
  const blob = paced.get(String(params.digest));
  if (!blob) return undefined; // not paced: the ordinary registry answers
  const { bytes, every, step } = blob;
  const { start, status, headers } = rangedBlobAnswer(request, bytes.length);
  return new HttpResponse(pacedBody(bytes, start, every, step), { status, headers });
});

const content = new RegistryContent();
let registry: LoopbackServer;
const proxies: TestProxy[] = [];

beforeAll(async () => {
  registry = await startLoopback(pacedHandler, ...registryHandlers(content, { auth: { kind: 'none' } }));
});
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});
afterAll(async () => {
  stopped = true;
  await registry.close();
});

async function proxyWith(extra: Record<string, unknown>) {
  const proxy = await startProxy({
    registries: { 'docker.io': { url: registry.url } },
    ...extra,
  });
  proxies.push(proxy);
  return proxy;
}

const blobUrl = (proxy: TestProxy, digest: string) => `${proxy.url}/v2/library/slow/blobs/${digest}`;
const upstreamGets = (digest: string) =>
  registry.requests.filter((r) => r.method === 'GET' && r.path === `/v2/library/slow/blobs/${digest}`);

/** Resolves once the upstream has received `n` requests for the blob. */
async function upstreamAsked(digest: string, n: number): Promise<void> {
  while (upstreamGets(digest).length < n) await sleep(10);
}

describe('a drip-feeding upstream', () => {
  it('is resumed, then failed: the client gets an aborted transfer and the download slot is freed', async () => {
    const proxy = await proxyWith({
      // Judged over half a second: a drip of 10 bytes/s is far below 1 KiB/s.
      upstream: { minRate: '1KiB/s', minRateWindow: '500ms', bodyTimeout: '30s' },
      limits: { downloadsPerRegistry: 1 },
    });
    const drip = randomBytes(4096);
    const dripDigest = sha256(drip);
    paced.set(dripDigest, { bytes: drip, every: 100, step: 1 }); // 1 byte per 100 ms: 410 s in all
    const next = content.addBlob(randomBytes(50_000));

    const dripped = await fetch(blobUrl(proxy, dripDigest));
    expect(dripped.status).toBe(200);
    expect(dripped.headers.get('content-length')).toBe('4096');
    const body = dripped.arrayBuffer();
    body.catch(() => {});

    // The drip holds the registry's only download slot: the next blob waits for it.
    await upstreamAsked(dripDigest, 1);
    const following = fetch(blobUrl(proxy, next));

    await expect(body).rejects.toThrow(); // aborted, never a short 200
    const answer = await following;
    expect(answer.status).toBe(200);
    expect(hashOf(await answer.arrayBuffer())).toBe(next);

    // One request and three resumes, each from where the bytes so far ended.
    const gets = upstreamGets(dripDigest);
    expect(gets).toHaveLength(4);
    expect(gets[0]!.headers.range).toBeUndefined();
    const starts = gets.slice(1).map((g) => Number(/^bytes=(\d+)-$/.exec(String(g.headers.range))?.[1]));
    expect(starts.every((s, i) => s > (i === 0 ? 0 : starts[i - 1]!))).toBe(true);
    expect(starts.at(-1)!).toBeLessThan(drip.length);

    await settled(proxy.url);
    const stored = storedContent(proxy.storage);
    expect(stored.temps).toEqual([]);
    expect(stored.blobs.map((f) => f.split('/').at(-1))).toEqual([next.slice(7)]);
  }, 30_000);

  it('is not cut while it keeps above the rate, however long it takes', async () => {
    const proxy = await proxyWith({ upstream: { minRate: '1KiB/s', minRateWindow: '500ms' } });
    const bytes = randomBytes(16 * 1024);
    const digest = sha256(bytes);
    paced.set(digest, { bytes, every: 100, step: 1024 }); // 10 KiB/s for 1.6 s: three windows and more
    const answer = await fetch(blobUrl(proxy, digest));
    expect(hashOf(await answer.arrayBuffer())).toBe(digest);
    expect(upstreamGets(digest)).toHaveLength(1);
  });
});

/** A raw client connection: what it received, and when the server closed it. */
function rawConnection(port: number): {
  socket: Socket;
  connected: Promise<void>;
  closed: Promise<number>;
  received: () => string;
  /** Resolves once what it received ends with `text`. */
  receivedEnd: (text: string) => Promise<void>;
} {
  const socket = connect(port, '127.0.0.1');
  let data = '';
  socket.on('data', (chunk) => (data += chunk));
  socket.on('error', () => {});
  const connected = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now())));
  const receivedEnd = (text: string) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (!data.endsWith(text)) return;
        socket.off('data', check);
        resolve();
      };
      socket.on('data', check);
      check();
    });
  return { socket, connected, closed, received: () => data, receivedEnd };
}

const portOf = (proxy: TestProxy) => Number(new URL(proxy.url).port);

describe('silent clients', () => {
  it('500 connections that send nothing are all closed within the headers timeout; requests still work', async () => {
    const proxy = await proxyWith({ limits: { headersTimeout: '500ms', requestTimeout: '1s' } });
    const connections = Array.from({ length: 500 }, () => rawConnection(portOf(proxy)));
    await Promise.all(connections.map((c) => c.connected));
    const opened = performance.now();

    // While they sit there, a real client is served.
    const during = await fetch(`${proxy.url}/v2/`);
    expect(during.status).toBe(200);

    const closedAt = await Promise.all(connections.map((c) => c.closed));
    // Generous bound (a shared, busy machine): well under Node's own 60s headers timeout and its 30s
    // check interval, which is what they would get without these settings.
    expect(Math.max(...closedAt) - opened).toBeLessThan(500 + 2500);
    expect(connections.every((c) => c.received().startsWith('HTTP/1.1 408'))).toBe(true);

    const after = await fetch(`${proxy.url}/v2/`);
    expect(after.status).toBe(200);
  });

  it('an idle kept-alive connection is closed after the keep-alive timeout', async () => {
    const proxy = await proxyWith({ limits: { keepAliveTimeout: '1s' } });
    const connection = rawConnection(portOf(proxy));
    await connection.connected;
    connection.socket.write('GET /v2/ HTTP/1.1\r\nHost: pullcache\r\n\r\n');
    await connection.receivedEnd('\r\n\r\n{}');
    const answered = performance.now();
    expect(connection.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(connection.received()).toMatch(/\r\nKeep-Alive: timeout=1\r\n/i); // clients are told, too
    const closedAt = await connection.closed;
    // Node closes a little after the advertised time (about a second of slack, so a client reusing
    // the connection at the last moment does not race the close); 65s, the default, would time out.
    expect(closedAt - answered).toBeGreaterThanOrEqual(900);
    expect(closedAt - answered).toBeLessThan(1000 + 1000 + 2500);
  });

  it('connections beyond limits.maxConnections are refused; freed places are taken again', async () => {
    const proxy = await proxyWith({ limits: { maxConnections: 5 } });
    // Five clients each with an answered request on a kept-alive connection: all five are counted.
    const held = Array.from({ length: 5 }, () => rawConnection(portOf(proxy)));
    await Promise.all(held.map((c) => c.connected));
    for (const c of held) c.socket.write('GET /v2/ HTTP/1.1\r\nHost: pullcache\r\n\r\n');
    await Promise.all(held.map((c) => c.receivedEnd('\r\n\r\n{}')));

    const refused = rawConnection(portOf(proxy));
    await refused.connected;
    refused.socket.write('GET /v2/ HTTP/1.1\r\nHost: pullcache\r\n\r\n');
    await refused.closed;
    expect(refused.received()).toBe(''); // closed without an answer

    for (const c of held) c.socket.destroy();
    await Promise.all(held.map((c) => c.closed));
    // The server sees the closes a moment later: retry until it has (bounded).
    let status = 0;
    for (let attempt = 0; attempt < 50 && status !== 200; attempt++) {
      status = await fetch(`${proxy.url}/v2/`).then(
        (r) => r.status,
        () => 0,
      );
      if (status !== 200) await sleep(20);
    }
    expect(status).toBe(200);
  });

  it('requestTimeout does not cut a blob body that takes longer than it to send', async () => {
    const proxy = await proxyWith({ limits: { headersTimeout: '200ms', requestTimeout: '300ms' } });
    const bytes = randomBytes(64 * 1024);
    const digest = sha256(bytes);
    paced.set(digest, { bytes, every: 100, step: 8 * 1024 }); // 0.8 s: well past the request timeout
    const started = performance.now();
    const answer = await fetch(blobUrl(proxy, digest));
    expect(answer.status).toBe(200);
    expect(hashOf(await answer.arrayBuffer())).toBe(digest);
    expect(performance.now() - started).toBeGreaterThan(300); // the body did outlast the timeout
  });
});
