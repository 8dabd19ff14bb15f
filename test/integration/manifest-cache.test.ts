/**
 * Manifest caching policy against an msw-described upstream over loopback, asserting upstream call
 * counts: by digest local-first forever; by tag fresh for tagTTL, then HEAD revalidation, a moved
 * tag re-fetched, stale-if-error on outages, 404 dropping the tag, 401 passed on.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HttpResponse, http } from 'msw';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OCI_INDEX, OCI_MANIFEST, RegistryContent, registryHandlers } from '../support/fake-registry.js';
import { firstError } from '../support/http-client.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { startProxy, type TestProxy } from '../support/proxy.js';

const TTL_MS = 5 * 60_000;
type Failure = null | 503 | 429 | 404 | 401 | 'drop';

const content = new RegistryContent();
const v1 = content.addImage('library/app', 'stable', 'v1 layer');
const v2 = content.addImage('library/app', 'next', 'v2 layer');
const index = content.addManifest(
  'library/app',
  OCI_INDEX,
  {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{ mediaType: OCI_MANIFEST, digest: v1.manifest, size: 1 }],
  },
  'multi',
);

let failure: Failure = null;
let clock = Date.parse('2026-11-30T12:00:00Z');
let registry: LoopbackServer;
let proxy: TestProxy;
const failing = http.all('*', ({ request }) => {
  if (failure === null || new URL(request.url).pathname === '/v2/') return undefined;
  if (failure === 'drop') return HttpResponse.error();
  if (failure === 429) {
    return HttpResponse.json(
      { errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] },
      { status: 429, headers: { 'retry-after': '30' } },
    );
  }
  if (failure === 404)
    return HttpResponse.json({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'gone' }] }, { status: 404 });
  if (failure === 401)
    return HttpResponse.json({ errors: [{ code: 'UNAUTHORIZED', message: 'no' }] }, { status: 401 });
  return HttpResponse.json(
    { errors: [{ code: 'UNAVAILABLE', message: 'down for maintenance' }] },
    { status: 503 },
  );
});

beforeAll(async () => {
  registry = await startLoopback(failing, ...registryHandlers(content, { auth: { kind: 'none' } }));
  proxy = await startProxy(
    // Prefetch off: these tests count the upstream requests manifests cost (prefetch.test.ts has its own).
    {
      registries: { 'docker.io': { url: registry.url } },
      cache: { tagTTL: '5m' },
      prefetch: { layers: false },
    },
    { now: () => clock },
  );
});
afterAll(async () => {
  await proxy.close();
  await registry.close();
});
beforeEach(() => {
  failure = null;
  registry.requests.length = 0;
});

const calls = (method: string, path: string) => registry.count(method, path);
const get = (path: string, init?: RequestInit) => fetch(`${proxy.url}${path}`, init);
const tagRecord = (tag: string) =>
  join(proxy.storage, 'tags', 'docker.io', 'library/app', '_tags', `${tag}.json`);

async function digestOf(response: Response): Promise<string | null> {
  await response.arrayBuffer();
  return response.headers.get('docker-content-digest');
}

describe('manifests by tag', () => {
  it('fetches once, then serves from disk while the record is fresh', async () => {
    expect(await digestOf(await get('/v2/app/manifests/stable'))).toBe(v1.manifest);
    expect(calls('GET', '/v2/library/app/manifests/stable')).toBe(1);
    clock += TTL_MS - 1000;
    const again = await get('/v2/app/manifests/stable');
    expect(Buffer.from(await again.arrayBuffer()).equals(content.manifests.get(v1.manifest)!.bytes)).toBe(
      true,
    );
    expect(again.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(registry.requests).toHaveLength(1);
    expect(existsSync(tagRecord('stable'))).toBe(true);
  });

  it('stores a manifest fetched by tag under its digest: the by-digest GET that follows is a hit', async () => {
    await digestOf(await get('/v2/app/manifests/multi'));
    const byDigest = await get(`/v2/app/manifests/${index}`);
    expect(await digestOf(byDigest)).toBe(index);
    expect(byDigest.headers.get('content-type')).toBe(OCI_INDEX);
    expect(registry.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /v2/library/app/manifests/multi',
    ]);
  });

  it('revalidates with one HEAD after the TTL and refreshes the record', async () => {
    await digestOf(await get('/v2/app/manifests/stable'));
    clock += TTL_MS + 1;
    registry.requests.length = 0;
    expect(await digestOf(await get('/v2/app/manifests/stable'))).toBe(v1.manifest);
    expect(registry.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'HEAD /v2/library/app/manifests/stable',
    ]);
    // Fresh again: the next request stays local.
    await digestOf(await get('/v2/app/manifests/stable'));
    expect(registry.requests).toHaveLength(1);
  });

  it('fetches the new manifest when the tag moved upstream', async () => {
    content.tag('library/app', 'moving', v1.manifest);
    expect(await digestOf(await get('/v2/app/manifests/moving'))).toBe(v1.manifest);
    content.tag('library/app', 'moving', v2.manifest);
    clock += TTL_MS + 1;
    registry.requests.length = 0;
    expect(await digestOf(await get('/v2/app/manifests/moving'))).toBe(v2.manifest);
    expect(registry.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'HEAD /v2/library/app/manifests/moving',
      `GET /v2/library/app/manifests/${v2.manifest}`,
    ]);
  });

  it.each<[Failure, string]>([
    [503, 'a 5xx'],
    [429, 'a 429'],
    ['drop', 'a dropped connection'],
  ])('serves the cached digest when revalidation meets %s (%s, stale-if-error)', async (mode) => {
    content.tag('library/app', `stale-${mode}`, v1.manifest);
    await digestOf(await get(`/v2/app/manifests/stale-${mode}`));
    clock += TTL_MS + 1;
    failure = mode;
    const response = await get(`/v2/app/manifests/stale-${mode}`);
    expect(response.status).toBe(200);
    expect(await digestOf(response)).toBe(v1.manifest);
    expect(calls('HEAD', `/v2/library/app/manifests/stale-${mode}`)).toBeGreaterThanOrEqual(1);
    // Past the 429's Retry-After: until then no manifest request is sent to the registry at all.
    if (mode === 429) clock += 30_000;
  });

  it('passes the error on when nothing is cached', async () => {
    failure = 503;
    const response = await get('/v2/app/manifests/never-seen');
    expect(response.status).toBe(503);
    expect((await firstError(response)).message).toBe('down for maintenance');
  });

  it('answers 404 and drops the record when the tag was deleted upstream', async () => {
    content.tag('library/app', 'doomed', v1.manifest);
    await digestOf(await get('/v2/app/manifests/doomed'));
    expect(existsSync(tagRecord('doomed'))).toBe(true);
    clock += TTL_MS + 1;
    failure = 404;
    const response = await get('/v2/app/manifests/doomed');
    expect(response.status).toBe(404);
    expect((await firstError(response)).code).toBe('MANIFEST_UNKNOWN');
    expect(existsSync(tagRecord('doomed'))).toBe(false);
    // The manifest itself stays cached by digest.
    failure = 503;
    expect(await digestOf(await get(`/v2/app/manifests/${v1.manifest}`))).toBe(v1.manifest);
  });

  it('passes a 401 on instead of serving stale content', async () => {
    content.tag('library/app', 'private', v1.manifest);
    await digestOf(await get('/v2/app/manifests/private'));
    clock += TTL_MS + 1;
    failure = 401;
    expect((await get('/v2/app/manifests/private')).status).toBe(401);
  });

  it('answers a HEAD by tag from one upstream GET, so the GET by digest that follows is a hit', async () => {
    content.tag('library/app', 'resolve-me', v2.manifest);
    const head = await get('/v2/app/manifests/resolve-me', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('docker-content-digest')).toBe(v2.manifest);
    expect(head.headers.get('content-length')).toBe(String(content.manifests.get(v2.manifest)!.bytes.length));
    expect(await digestOf(await get(`/v2/app/manifests/${v2.manifest}`))).toBe(v2.manifest);
    expect(registry.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /v2/library/app/manifests/resolve-me',
    ]);
  });

  it('shares one upstream GET among concurrent requests of one tag', async () => {
    content.tag('library/app', 'burst', v2.manifest);
    const responses = await Promise.all(Array.from({ length: 20 }, () => get('/v2/app/manifests/burst')));
    for (const response of responses) expect(await digestOf(response)).toBe(v2.manifest);
    expect(calls('GET', '/v2/library/app/manifests/burst')).toBe(1);
  });

  it('keeps serving a deleted tag when serveDeletedTags is on', async () => {
    const keep = await startProxy(
      { registries: { 'docker.io': { url: registry.url } }, cache: { serveDeletedTags: true } },
      { now: () => clock },
    );
    try {
      content.tag('library/app', 'kept', v1.manifest);
      await digestOf(await fetch(`${keep.url}/v2/app/manifests/kept`));
      clock += TTL_MS + 1;
      failure = 404;
      const response = await fetch(`${keep.url}/v2/app/manifests/kept`);
      expect(response.status).toBe(200);
      expect(await digestOf(response)).toBe(v1.manifest);
    } finally {
      await keep.close();
    }
  });
});

describe('manifests by digest', () => {
  it('fetches once and then never asks the upstream again, even after any TTL', async () => {
    const path = `/v2/app/manifests/${v2.manifest}`;
    const fresh = await startProxy(
      { registries: { 'docker.io': { url: registry.url } }, prefetch: { layers: false } },
      { now: () => clock },
    );
    try {
      expect(await digestOf(await fetch(`${fresh.url}${path}`))).toBe(v2.manifest);
      clock += 365 * 24 * 3600_000;
      failure = 503;
      const response = await fetch(`${fresh.url}${path}`);
      expect(response.status).toBe(200);
      expect(await digestOf(response)).toBe(v2.manifest);
      const head = await fetch(`${fresh.url}${path}`, { method: 'HEAD' });
      expect(head.headers.get('content-type')).toBe(OCI_MANIFEST);
      expect(calls('GET', `/v2/library/app/manifests/${v2.manifest}`)).toBe(1);
      expect(registry.requests).toHaveLength(1);
    } finally {
      await fresh.close();
    }
  });

  it('refuses a manifest whose bytes do not match the digest asked for, and stores nothing', async () => {
    const wrong = `sha256:${'e'.repeat(64)}`;
    content.manifests.set(wrong, { mediaType: OCI_MANIFEST, bytes: Buffer.from('{"not":"it"}') });
    const response = await get(`/v2/app/manifests/${wrong}`);
    expect(response.status).toBe(502);
    expect((await firstError(response)).code).toBe('MANIFEST_INVALID');
    expect(existsSync(join(proxy.storage, 'manifests', 'sha256', 'ee', 'e'.repeat(64)))).toBe(false);
  });
});
