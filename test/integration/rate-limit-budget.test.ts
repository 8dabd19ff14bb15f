/**
 * The rate-limit budget against an upstream that counts down like Docker Hub (`ratelimit-limit:
 * N;w=W`, `ratelimit-remaining`; manifest GETs count, HEADs do not) and then answers 429: the tag
 * TTL stretches as the budget runs low (fewer upstream HEADs), a spent budget serves cached tags
 * without asking and answers uncached manifests 429 with the Retry-After the window implies, and a
 * 429 is never retried before its time. Upstream requests are counted for each.
 */
import { HttpResponse, http } from 'msw';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RegistryContent, registryHandlers } from '../support/fake-registry.js';
import { firstError } from '../support/http-client.js';
import { metric, metricsOf } from '../support/metrics-text.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { captureLogs, startProxy, type TestProxy } from '../support/proxy.js';

const TTL_MS = 60_000;
const WINDOW_S = 3600;

const content = new RegistryContent();
const images = Object.fromEntries(
  ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'].map((tag) => [
    tag,
    content.addImage('library/app', tag),
  ]),
);

/** The upstream's count: what is left, and whether it refuses (someone else spent it). */
const hub = {
  limit: 10,
  remaining: 10,
  /** Answer every manifest GET with 429, with this Retry-After (null: none). */
  refusing: null as null | { retryAfter: string | null },
};

const rateHeaders = () => ({
  'ratelimit-limit': `${hub.limit};w=${WINDOW_S}`,
  'ratelimit-remaining': `${hub.remaining};w=${WINDOW_S}`,
});

// Manifests by the rules of Docker Hub's pull limit; blobs and the rest by the fake registry.
const countingDown = http.all(/\/v2\/library\/app\/manifests\/[^/]+$/, ({ request }) => {
  const reference = new URL(request.url).pathname.split('/').at(-1)!;
  const counted = request.method === 'GET';
  if (counted && (hub.remaining === 0 || hub.refusing)) {
    const retryAfter = hub.refusing?.retryAfter;
    return HttpResponse.json(
      { errors: [{ code: 'TOOMANYREQUESTS', message: 'You have reached your pull rate limit.' }] },
      { status: 429, headers: { ...rateHeaders(), ...(retryAfter ? { 'retry-after': retryAfter } : {}) } },
    );
  }
  const digest = reference.includes(':') ? reference : content.tags.get('library/app')?.get(reference);
  const manifest = digest ? content.manifests.get(digest) : undefined;
  if (!digest || !manifest)
    return HttpResponse.json({ errors: [{ code: 'MANIFEST_UNKNOWN' }] }, { status: 404 });
  if (counted) hub.remaining--;
  return new HttpResponse(request.method === 'HEAD' ? null : manifest.bytes, {
    headers: {
      'content-type': manifest.mediaType,
      'content-length': String(manifest.bytes.length),
      'docker-content-digest': digest,
      ...rateHeaders(),
    },
  });
});

let registry: LoopbackServer;
let proxy: TestProxy;
let clock: number;
let logs: ReturnType<typeof captureLogs>;

beforeAll(async () => {
  registry = await startLoopback(countingDown, ...registryHandlers(content, { auth: { kind: 'none' } }));
});
beforeEach(async () => {
  Object.assign(hub, { limit: 10, remaining: 10, refusing: null });
  registry.requests.length = 0;
  clock = Date.parse('2026-11-30T12:00:00Z');
  logs = captureLogs();
  proxy = await startProxy(
    {
      registries: { 'docker.io': { url: registry.url } },
      cache: { tagTTL: '1m' },
      upstream: { rateLimit: { thresholds: [0.5, 0.2], stretch: 4, wait: '60s' } },
      prefetch: { layers: false }, // the counts below are of what the client asked for alone
    },
    { now: () => clock, logger: logs.logger },
  );
});
afterEach(() => proxy.close());
afterAll(() => registry.close());

const manifestCalls = (method: string) => registry.count(method, /^\/v2\/library\/app\/manifests\//);
const upstreamCalls = () => registry.requests.length;
const pull = async (reference: string, method = 'GET') => {
  const response = await fetch(`${proxy.url}/v2/app/manifests/${reference}`, { method });
  const body = Buffer.from(await response.arrayBuffer());
  return { response, status: response.status, body, digest: response.headers.get('docker-content-digest') };
};
const warnings = (text: string) => logs.lines().filter((l) => l.level === 40 && String(l.msg).includes(text));

describe('a budget running low', () => {
  it('stretches the tag TTL below each threshold: fewer revalidating HEADs', async () => {
    for (const tag of ['a', 'b', 'c', 'd']) expect((await pull(tag)).status).toBe(200);
    expect(hub.remaining).toBe(6); // above half: the TTL is as configured
    clock += TTL_MS + 1;
    expect((await pull('a')).digest).toBe(images.a!.manifest);
    expect(manifestCalls('HEAD')).toBe(1);

    await pull('e');
    await pull('f'); // 4 of 10 left: below half, tags are trusted 4× longer
    expect(hub.remaining).toBe(4);
    clock += 2 * TTL_MS;
    expect((await pull('a')).digest).toBe(images.a!.manifest);
    expect((await pull('b')).digest).toBe(images.b!.manifest);
    expect(manifestCalls('HEAD')).toBe(1); // 2 and 3 TTLs old: no HEAD either
    clock += 2 * TTL_MS + 1; // a: past 4 TTLs since its revalidation
    await pull('a');
    expect(manifestCalls('HEAD')).toBe(2);

    const text = await metricsOf(proxy.url);
    expect(metric(text, 'pullcache_upstream_ratelimit_remaining', { registry: 'docker.io' })).toBe(4);
    expect(metric(text, 'pullcache_upstream_ratelimit_limit', { registry: 'docker.io' })).toBe(10);
  });

  it('warns once per threshold, however many pulls follow below it', async () => {
    for (const tag of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) await pull(tag); // 3 left
    expect(warnings('below 50%')).toHaveLength(1);
    expect(warnings('below 50%')[0]).toMatchObject({ registry: 'docker.io', remaining: 4, limit: 10 });
    expect(warnings('below 20%')).toHaveLength(0);
    await pull('h');
    await pull('i'); // 1 left: below a fifth
    expect(warnings('below 50%')).toHaveLength(1);
    expect(warnings('below 20%')).toHaveLength(1);
    expect(warnings('below 20%')[0]!.msg).toContain('16× less often');
  });
});

describe('a spent budget (the last answer said 0 left)', () => {
  beforeEach(async () => {
    hub.limit = 3;
    hub.remaining = 3;
    for (const tag of ['a', 'b', 'c']) expect((await pull(tag)).status).toBe(200);
    expect(hub.remaining).toBe(0);
    registry.requests.length = 0;
  });

  it('serves every cached tag, however old, without asking the upstream', async () => {
    clock += 10 * TTL_MS;
    for (const tag of ['a', 'b', 'c']) {
      const got = await pull(tag);
      expect(got.status).toBe(200);
      expect(got.digest).toBe(images[tag]!.manifest);
      expect(got.body.equals(content.manifests.get(images[tag]!.manifest)!.bytes)).toBe(true);
    }
    expect((await pull('a', 'HEAD')).status).toBe(200);
    expect(upstreamCalls()).toBe(0);
  });

  it('answers uncached manifests 429 with the Retry-After the window implies, without asking', async () => {
    clock += 120_000;
    const byTag = await pull('d');
    expect(byTag.status).toBe(429);
    expect(byTag.response.headers.get('retry-after')).toBe(String(WINDOW_S - 120));
    expect(byTag.response.headers.get('ratelimit-remaining')).toBe(`0;w=${WINDOW_S}`);
    expect(JSON.parse(byTag.body.toString()).errors[0]).toMatchObject({ code: 'TOOMANYREQUESTS' });
    const byDigest = await pull(images.e!.manifest);
    expect(byDigest.status).toBe(429);
    const head = await pull('f', 'HEAD'); // containerd resolves with HEAD: it is answered the same
    expect(head.status).toBe(429);
    expect(head.response.headers.get('retry-after')).toBe(String(WINDOW_S - 120));
    expect(upstreamCalls()).toBe(0);

    const text = await metricsOf(proxy.url);
    expect(metric(text, 'pullcache_upstream_ratelimit_remaining', { registry: 'docker.io' })).toBe(0);
    expect(metric(text, 'pullcache_upstream_ratelimit_limit', { registry: 'docker.io' })).toBe(3);
    expect(warnings('pull limit of docker.io spent')).toHaveLength(1);
  });

  it('still fetches blobs, which the pull limit does not count: a pull under way completes', async () => {
    const response = await fetch(`${proxy.url}/v2/app/blobs/${images.c!.layer}`);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(content.blobs.get(images.c!.layer)!)).toBe(true);
    expect(registry.count('GET', `/v2/library/app/blobs/${images.c!.layer}`)).toBe(1);
  });

  it('asks again once the window has passed', async () => {
    clock += WINDOW_S * 1000;
    hub.remaining = 3; // the window went by upstream too
    const got = await pull('d');
    expect(got.status).toBe(200);
    expect(got.digest).toBe(images.d!.manifest);
    expect(manifestCalls('GET')).toBe(1);
  });
});

describe('an upstream 429', () => {
  it('is passed on with its Retry-After and never retried before it: clients retrying cost nothing', async () => {
    hub.refusing = { retryAfter: '120' }; // another client on this address spent the budget
    const first = await pull('a');
    expect(first.status).toBe(429);
    expect(first.response.headers.get('retry-after')).toBe('120');
    expect(manifestCalls('GET')).toBe(1);

    clock += 30_000;
    for (let i = 0; i < 5; i++) {
      // containerd retries a mirror's 429 a few times at once
      const again = await pull(i % 2 === 0 ? 'a' : 'b');
      expect(again.status).toBe(429);
      expect(again.response.headers.get('retry-after')).toBe('90');
      expect((await firstError(new Response(again.body))).code).toBe('TOOMANYREQUESTS');
    }
    expect(upstreamCalls()).toBe(1);

    clock += 90_000;
    hub.refusing = null;
    expect((await pull('a')).status).toBe(200);
    expect(manifestCalls('GET')).toBe(2);
  });

  it('without a Retry-After gets the one its window implies, to the client and for the next requests', async () => {
    hub.refusing = { retryAfter: null };
    const first = await pull('a');
    expect(first.status).toBe(429);
    expect(first.response.headers.get('retry-after')).toBe(String(WINDOW_S));
    clock += 1000;
    const second = await pull('b');
    expect(second.status).toBe(429);
    expect(second.response.headers.get('retry-after')).toBe(String(WINDOW_S - 1));
    expect(upstreamCalls()).toBe(1);
  });

  it('leaves a cached tag served while it waits, expired or not', async () => {
    await pull('a');
    clock += TTL_MS + 1;
    hub.refusing = { retryAfter: '300' };
    await pull('b'); // the 429
    registry.requests.length = 0;
    const got = await pull('a');
    expect(got.status).toBe(200);
    expect(got.digest).toBe(images.a!.manifest);
    expect(upstreamCalls()).toBe(0);
  });
});
