/**
 * Fail fast, so clients fall back: an upstream that accepts connections and never answers costs the
 * first cold request its headers timeout (504); after that, cold requests for that registry get 503
 * with Retry-After at once, without a request to the upstream, while one probe per cool-down checks
 * it; cached content is served all along; once it answers again, pulls work within one cool-down.
 * Times are judged against the configured headers timeout, with wide margins.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpResponse, http } from 'msw';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RegistryContent, registryHandlers } from '../support/fake-registry.js';
import { firstError } from '../support/http-client.js';
import { metric, metricsOf } from '../support/metrics-text.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { captureLogs, settled, startProxy, type TestProxy } from '../support/proxy.js';

const HEADERS_TIMEOUT_MS = 2000; // wide: refusals are judged against a quarter of it, on a busy 2-core machine
const COOL_DOWN_MS = 2000;

const content = new RegistryContent();
const cached = content.addImage('library/app', 'cached', Buffer.alloc(20_000, 7));
const cold = content.addImage('library/app', 'cold', Buffer.alloc(30_000, 9));

// While silent, every request is taken and never answered (until the test ends).
let silent = false;
const unanswered: (() => void)[] = [];
const blackHole = http.all('*', () => {
  if (!silent) return undefined;
  return new Promise<Response>((resolve) => unanswered.push(() => resolve(HttpResponse.error())));
});

let registry: LoopbackServer;
let proxy: TestProxy | undefined;
let logs: ReturnType<typeof captureLogs>;

beforeAll(async () => {
  registry = await startLoopback(blackHole, ...registryHandlers(content, { auth: { kind: 'none' } }));
});
afterEach(async () => {
  silent = false;
  for (const answer of unanswered.splice(0)) answer();
  await proxy?.close();
  proxy = undefined;
});
afterAll(() => registry.close());

async function start(failures: number): Promise<TestProxy> {
  logs = captureLogs();
  registry.requests.length = 0;
  proxy = await startProxy(
    {
      registries: { 'docker.io': { url: registry.url } },
      cache: { tagTTL: '200ms' },
      upstream: {
        connectTimeout: `${HEADERS_TIMEOUT_MS}ms`,
        headersTimeout: `${HEADERS_TIMEOUT_MS}ms`,
        failFast: { failures, coolDown: `${COOL_DOWN_MS}ms` },
      },
    },
    { logger: logs.logger },
  );
  return proxy;
}

/** A request through the proxy, its answer read whole, with how long it took. */
async function timed(path: string, method = 'GET') {
  const started = performance.now();
  const response = await fetch(`${proxy!.url}${path}`, { method });
  const body = Buffer.from(await response.arrayBuffer());
  return { response, status: response.status, body, ms: performance.now() - started };
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const upstreamRequests = () => registry.requests.length;

/** Waits until the upstream has taken `count` requests in all. */
async function upstreamReceived(count: number): Promise<void> {
  while (upstreamRequests() < count) await sleep(5);
}

// Cold requests of every kind a client sends for an image that is not cached.
const coldRequests: [string, string][] = [
  ['GET', '/v2/app/manifests/cold'],
  ['HEAD', '/v2/app/manifests/cold'],
  ['GET', `/v2/app/manifests/${cold.manifest}`],
  ['GET', `/v2/app/blobs/${cold.layer}`],
  ['HEAD', `/v2/app/blobs/${cold.config}`],
  ['GET', '/v2/app/tags/list'],
];

describe('an upstream that accepts connections and never answers', () => {
  it('costs one timeout, then 503 at once with one probe per cool-down, and pulls work again after it recovers', async () => {
    const p = await start(1);
    // Cached while the upstream answers: a tag (its TTL runs out during the test) and its blobs.
    expect((await timed('/v2/app/manifests/cached')).status).toBe(200);
    for (const blob of [cached.config, cached.layer])
      expect((await timed(`/v2/app/blobs/${blob}`)).status).toBe(200);
    await settled(p.url);

    silent = true;
    const before = upstreamRequests();
    const first = await timed('/v2/app/manifests/cold');
    expect(first.status).toBe(504);
    expect(first.ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS * 0.9);
    const openedAt = performance.now();
    expect(upstreamRequests()).toBe(before + 1);

    // Cooling down: every cold request is refused at once, and the upstream is not asked.
    for (const [method, path] of coldRequests) {
      const refused = await timed(path, method);
      expect(refused.status, `${method} ${path}`).toBe(503);
      expect(refused.ms, `${method} ${path}`).toBeLessThan(HEADERS_TIMEOUT_MS / 4);
      const retryAfter = Number(refused.response.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(COOL_DOWN_MS / 1000);
      if (method === 'GET') {
        const error = await firstError(new Response(refused.body));
        expect(error.code).toBe('UNAVAILABLE');
        expect(error.message).toMatch(/^upstream registry docker\.io is not answering/);
      }
    }
    expect(upstreamRequests()).toBe(before + 1);

    // Cached content is served as always: the tag (past its TTL) as it was, the blobs from disk.
    const tag = await timed('/v2/app/manifests/cached');
    expect(tag.status).toBe(200);
    expect(sha256(tag.body)).toBe(cached.manifest);
    expect(tag.ms).toBeLessThan(HEADERS_TIMEOUT_MS / 4);
    const layer = await timed(`/v2/app/blobs/${cached.layer}`);
    expect(layer.status).toBe(200);
    expect(sha256(layer.body)).toBe(cached.layer);
    expect(upstreamRequests()).toBe(before + 1);
    let text = await metricsOf(p.url);
    expect(metric(text, 'pullcache_upstream_cooling_down', { registry: 'docker.io' })).toBe(1);

    // After the cool-down one request probes; the others are refused meanwhile; it times out too.
    await sleep(Math.max(0, openedAt + COOL_DOWN_MS + 100 - performance.now()));
    const probe = timed('/v2/app/manifests/cold');
    await upstreamReceived(before + 2);
    // (Not the probe's own tag: a request for it shares the probe's upstream request.)
    for (const [method, path] of coldRequests.slice(2)) {
      const refused = await timed(path, method);
      expect(refused.status, `${method} ${path}`).toBe(503);
      expect(refused.ms).toBeLessThan(HEADERS_TIMEOUT_MS / 4);
    }
    expect((await probe).status).toBe(504);
    expect(upstreamRequests()).toBe(before + 2);
    expect((await timed('/v2/app/manifests/cold')).status).toBe(503); // another cool-down began

    // It answers again: within one cool-down a cold pull works, after exactly one more request.
    silent = false;
    const recovered = performance.now();
    let pulled = await timed('/v2/app/manifests/cold');
    while (pulled.status === 503) {
      await sleep(50);
      pulled = await timed('/v2/app/manifests/cold');
    }
    expect(pulled.status).toBe(200);
    expect(sha256(pulled.body)).toBe(cold.manifest);
    expect(performance.now() - recovered).toBeLessThan(COOL_DOWN_MS + HEADERS_TIMEOUT_MS / 2);
    expect(upstreamRequests()).toBe(before + 3);
    const blob = await timed(`/v2/app/blobs/${cold.layer}`);
    expect(blob.status).toBe(200);
    expect(sha256(blob.body)).toBe(cold.layer);

    text = await metricsOf(p.url);
    expect(metric(text, 'pullcache_upstream_cooling_down', { registry: 'docker.io' })).toBe(0);
    const lines = logs.lines();
    expect(lines.filter((l) => String(l.msg).includes('is not answering'))).toHaveLength(1);
    expect(lines.filter((l) => String(l.msg).includes('answers again'))).toHaveLength(1);
  }, 40_000);

  it('with failures: 3, a burst of cold requests waits out one timeout together; the next is refused at once', async () => {
    const p = await start(3);
    silent = true;
    const paths = [
      '/v2/app/manifests/cold',
      `/v2/app/manifests/${cold.manifest}`,
      `/v2/app/blobs/${cold.layer}`,
    ];
    const burst = await Promise.all(paths.map((path) => timed(path)));
    expect(burst.map((r) => r.status)).toEqual([504, 504, 504]);
    expect(upstreamRequests()).toBe(3);
    const next = await timed('/v2/app/tags/list');
    expect(next.status).toBe(503);
    expect(next.ms).toBeLessThan(HEADERS_TIMEOUT_MS / 4);
    expect(upstreamRequests()).toBe(3);
    expect(metric(await metricsOf(p.url), 'pullcache_upstream_cooling_down', { registry: 'docker.io' })).toBe(
      1,
    );
  });
});
