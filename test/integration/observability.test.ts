/**
 * What an operator watches: Prometheus metrics, one JSON log line per request (no secrets), health
 * and readiness endpoints.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryContent, registryHandlers, TokenIssuer } from '../support/fake-registry.js';
import { metric } from '../support/metrics-text.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { captureLogs, settled, startProxy, type TestProxy } from '../support/proxy.js';

const content = new RegistryContent();
const image = content.addImage('library/web', '1.0', Buffer.alloc(5000, 1));
const tokens = new TokenIssuer({ credentials: { username: 'robot', password: 'hunter2-secret' } });
const logs = captureLogs();
let auth: LoopbackServer;
let registry: LoopbackServer;
let proxy: TestProxy;

beforeAll(async () => {
  auth = await startLoopback(...tokens.handlers());
  registry = await startLoopback(
    ...registryHandlers(content, {
      auth: { kind: 'bearer', realm: `${auth.url}/token`, service: 'svc', tokens },
    }),
  );
  proxy = await startProxy(
    {
      registries: { 'docker.io': { url: registry.url, username: 'robot', password: 'hunter2-secret' } },
      prefetch: { layers: false }, // the counts below are of what the client asked for alone
    },
    { logger: logs.logger },
  );
  // One miss and one hit of each kind, one error.
  for (let i = 0; i < 2; i++) {
    await (await fetch(`${proxy.url}/v2/web/manifests/1.0`)).arrayBuffer();
    await (await fetch(`${proxy.url}/v2/web/blobs/${image.layer}`)).arrayBuffer();
    await settled(proxy.url); // the blob's commit follows its last byte: only then is the next GET a hit
  }
  await (await fetch(`${proxy.url}/v2/web/manifests/missing`)).arrayBuffer();
});
afterAll(async () => {
  await proxy.close();
  await Promise.all([auth.close(), registry.close()]);
});

describe('GET /metrics', () => {
  let text = '';
  beforeAll(async () => {
    const response = await fetch(`${proxy.url}/metrics`);
    expect(response.headers.get('content-type')).toContain('text/plain');
    text = await response.text();
  });

  it('counts requests by endpoint and status', () => {
    expect(
      metric(text, 'pullcache_http_requests_total', { endpoint: 'manifest', method: 'GET', status: '200' }),
    ).toBe(2);
    expect(metric(text, 'pullcache_http_requests_total', { endpoint: 'manifest', status: '404' })).toBe(1);
    expect(metric(text, 'pullcache_http_requests_total', { endpoint: 'blob', status: '200' })).toBe(2);
  });

  it('counts cache results by kind', () => {
    expect(metric(text, 'pullcache_cache_results_total', { kind: 'manifest', result: 'miss' })).toBe(1);
    expect(metric(text, 'pullcache_cache_results_total', { kind: 'manifest', result: 'hit' })).toBe(1);
    expect(metric(text, 'pullcache_cache_results_total', { kind: 'blob', result: 'miss' })).toBe(1);
    expect(metric(text, 'pullcache_cache_results_total', { kind: 'blob', result: 'hit' })).toBe(1);
  });

  it('counts bytes fetched upstream and served from cache, by registry', () => {
    const manifestSize = content.manifests.get(image.manifest)!.bytes.length;
    expect(metric(text, 'pullcache_upstream_fetched_bytes_total', { registry: 'docker.io' })).toBe(
      5000 + manifestSize,
    );
    // The cached blob answer: 5000 bytes of body plus its headers.
    expect(
      metric(text, 'pullcache_served_from_cache_bytes_total', { registry: 'docker.io' }),
    ).toBeGreaterThan(5000);
  });

  it('reports token fetches, upstream latency, cache size and entries', () => {
    expect(metric(text, 'pullcache_token_fetches_total', { registry: 'docker.io' })).toBe(1);
    expect(
      metric(text, 'pullcache_upstream_request_duration_seconds_count', {
        registry: 'docker.io',
        status: '200',
      }),
    ).toBeGreaterThan(0);
    expect(metric(text, 'pullcache_cache_entries', { kind: 'blob' })).toBe(1);
    expect(metric(text, 'pullcache_cache_entries', { kind: 'manifest' })).toBe(1);
    expect(metric(text, 'pullcache_cache_size_bytes')).toBeGreaterThan(5000);
    expect(metric(text, 'pullcache_downloads_in_flight')).toBe(0);
    expect(text).toContain('pullcache_cache_evictions_total 0');
  });

  it('never carries credentials or tokens', () => {
    expect(text).not.toContain('hunter2-secret');
    expect(text).not.toMatch(/token-\d/);
  });
});

describe('request log', () => {
  it('writes one line per request with what was pulled, the cache result, status, bytes and duration', () => {
    const lines = logs.lines().filter((l) => l.msg === 'request');
    const blobLines = lines.filter((l) => String(l.path).includes('/blobs/'));
    expect(blobLines.map((l) => l.cache)).toEqual(['miss', 'hit']);
    const hit = blobLines[1]!;
    expect(hit).toMatchObject({
      method: 'GET',
      registry: 'docker.io',
      repository: 'library/web',
      reference: image.layer,
      status: 200,
      client: '127.0.0.1',
    });
    expect(hit.bytes).toBeGreaterThan(5000);
    expect(hit).not.toHaveProperty('aborted');
    expect(typeof hit.ms).toBe('number');
    expect(String(hit.reqId)).toMatch(/^[0-9a-f-]{36}$/);
    const missing = lines.find((l) => String(l.path).endsWith('/manifests/missing'))!;
    expect(missing).toMatchObject({ status: 404, error: 'MANIFEST_UNKNOWN' });
  });

  it('keeps a sane client-supplied request id and echoes it', async () => {
    const response = await fetch(`${proxy.url}/v2/`, { headers: { 'x-request-id': 'ci-job-42.step:3' } });
    expect(response.headers.get('x-request-id')).toBe('ci-job-42.step:3');
    const odd = await fetch(`${proxy.url}/v2/`, { headers: { 'x-request-id': 'has spaces and {json}' } });
    expect(odd.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('never logs credentials or tokens', () => {
    const all = JSON.stringify(logs.lines());
    expect(all).not.toContain('hunter2-secret');
    expect(all).not.toContain(Buffer.from('robot:hunter2-secret').toString('base64'));
    expect(all).not.toMatch(/token-\d/);
  });
});

describe('health', () => {
  it('answers /healthz while the process is alive', async () => {
    const response = await fetch(`${proxy.url}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('answers /readyz 200 while storage is writable and 503 when it is not', async () => {
    expect((await fetch(`${proxy.url}/readyz`)).status).toBe(200);
    // A file where the storage folder should be: unwritable even for root (permissions would not be).
    renameSync(proxy.storage, `${proxy.storage}.moved`);
    writeFileSync(proxy.storage, 'not a folder');
    try {
      const response = await fetch(`${proxy.url}/readyz`);
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({ status: 'not ready' });
    } finally {
      rmSync(proxy.storage);
      renameSync(`${proxy.storage}.moved`, proxy.storage);
    }
    expect((await fetch(`${proxy.url}/readyz`)).status).toBe(200);
  });
});
