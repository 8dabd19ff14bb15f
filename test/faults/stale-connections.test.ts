/**
 * A connection that closes under a request before any answer (src/upstream/http-agent.ts): a
 * kept-alive connection the upstream (or a proxy on the way) had just closed as the request went
 * out. The request never reached a handler, so pullcache sends it once more on a new connection: a
 * tag's revalidation still gets the registry's answer, and a cold blob still downloads. An upstream
 * that hangs up on every request costs two attempts per request, never a loop.
 */
import { createHash } from 'node:crypto';
import { HttpResponse, http } from 'msw';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RegistryContent, registryHandlers } from '../support/fake-registry.js';
import { firstError } from '../support/http-client.js';
import { metricSum, metricsOf } from '../support/metrics-text.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { settled, startProxy, type TestProxy } from '../support/proxy.js';

const TAG_TTL_MS = 200;

const content = new RegistryContent();
const image = content.addImage('library/app', 'v1', Buffer.alloc(40_000, 3));
const cold = content.addImage('library/app', 'cold', Buffer.alloc(30_000, 5));

// The next `hangUps` requests matching `hangUpOn` are read and their connection closed unanswered.
let hangUpOn: { method: string; path: string } | undefined;
let hangUps = 0;
const hangUp = http.all('*', ({ request }) => {
  const { pathname } = new URL(request.url);
  if (hangUps === 0 || request.method !== hangUpOn?.method || pathname !== hangUpOn.path) return undefined;
  hangUps--;
  return HttpResponse.error(); // the loopback server destroys the socket without answering
});

let registry: LoopbackServer;
let proxy: TestProxy;
let clock = 1_000_000; // the proxy's clock: the tag's TTL runs out when a test moves it

beforeAll(async () => {
  registry = await startLoopback(hangUp, ...registryHandlers(content, { auth: { kind: 'none' } }));
});
afterEach(async () => {
  hangUps = 0;
  await proxy?.close();
});
afterAll(() => registry.close());

async function start(): Promise<TestProxy> {
  registry.requests.length = 0;
  proxy = await startProxy(
    {
      registries: { 'docker.io': { url: registry.url } },
      cache: { tagTTL: `${TAG_TTL_MS}ms` },
      prefetch: { layers: false },
    },
    { now: () => clock },
  );
  return proxy;
}

async function get(path: string) {
  const response = await fetch(`${proxy.url}${path}`);
  return { status: response.status, body: Buffer.from(await response.arrayBuffer()), response };
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const upstreamErrors = async () => metricSum(await metricsOf(proxy.url), 'pullcache_upstream_errors_total');

describe('a connection closed under a request before any answer', () => {
  it("is sent once more: the tag's revalidation gets the registry's answer, not a stale copy", async () => {
    await start();
    const path = '/v2/app/manifests/v1';
    expect((await get(path)).status).toBe(200);
    clock += TAG_TTL_MS + 1; // past the TTL: the next pull revalidates with a HEAD

    hangUpOn = { method: 'HEAD', path: '/v2/library/app/manifests/v1' };
    hangUps = 1;
    const again = await get(path);
    expect(again.status).toBe(200);
    expect(sha256(again.body)).toBe(image.manifest);
    expect(hangUps).toBe(0);
    // The HEAD that was hung up on, and the one answered; no GET: the registry said "unchanged".
    expect(registry.count('HEAD', hangUpOn.path)).toBe(2);
    expect(registry.count('GET', hangUpOn.path)).toBe(1);
    expect(await upstreamErrors()).toBe(0);
  });

  it('is sent once more for a cold blob, which downloads and verifies', async () => {
    await start();
    hangUpOn = { method: 'GET', path: `/v2/library/app/blobs/${cold.layer}` };
    hangUps = 1;
    const blob = await get(`/v2/app/blobs/${cold.layer}`);
    expect(blob.status).toBe(200);
    expect(sha256(blob.body)).toBe(cold.layer);
    expect(registry.count('GET', hangUpOn.path)).toBe(2);
    await settled(proxy.url);

    // Stored: the next pull does not ask the upstream.
    expect(sha256((await get(`/v2/app/blobs/${cold.layer}`)).body)).toBe(cold.layer);
    expect(registry.count('GET', hangUpOn.path)).toBe(2);
  });

  it('costs two attempts, not a loop, when the upstream hangs up on every request', async () => {
    await start();
    hangUpOn = { method: 'GET', path: '/v2/library/app/manifests/cold' };
    hangUps = Number.POSITIVE_INFINITY;
    const failed = await get('/v2/app/manifests/cold');
    expect(failed.status).toBe(502);
    const error = await firstError(new Response(failed.body));
    expect(error.code).toBe('UNAVAILABLE');
    expect(error.message).toMatch(/docker\.io/);
    expect(registry.count('GET', hangUpOn.path)).toBe(2);
    expect(await upstreamErrors()).toBe(1);
  });
});
