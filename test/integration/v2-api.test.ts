/**
 * The /v2 API as clients see it: routing to upstreams (?ns=, path prefix, default registry), bad
 * input refused before any upstream traffic, listings with their pagination links pointing back at
 * the proxy, and the read-only methods.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OCI_MANIFEST, RegistryContent, registryHandlers, sha256 } from '../support/fake-registry.js';
import { firstError, jsonOf, type OciErrorBody, rawRequest } from '../support/http-client.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { startProxy, type TestProxy } from '../support/proxy.js';

const hubContent = new RegistryContent();
const hubImage = hubContent.addImage('library/nginx', '1.27');
hubContent.addImage('user/app', 'v1');
for (const tag of ['a', 'b', 'c', 'd', 'e', 'r1', 'r2', 'r3', 'r4'])
  hubContent.tag('library/nginx', tag, hubImage.manifest);
const referrer = {
  mediaType: OCI_MANIFEST,
  digest: sha256('sig'),
  size: 3,
  artifactType: 'application/vnd.example.sig',
};
hubContent.referrers.set(hubImage.manifest, [
  referrer,
  { mediaType: OCI_MANIFEST, digest: sha256('sbom'), size: 4, artifactType: 'application/spdx+json' },
]);

const quayContent = new RegistryContent();
const quayImage = quayContent.addImage('coreos/flannel', 'v0.12.0-amd64');
for (const tag of ['r1', 'r2']) quayContent.tag('coreos/flannel', tag, quayImage.manifest);

let hub: LoopbackServer;
let quay: LoopbackServer;
let proxy: TestProxy;

beforeAll(async () => {
  hub = await startLoopback(...registryHandlers(hubContent, { auth: { kind: 'none' } }));
  quay = await startLoopback(...registryHandlers(quayContent, { auth: { kind: 'none' } }));
  proxy = await startProxy({
    registries: { 'docker.io': { url: hub.url }, 'quay.io': { url: quay.url } },
    prefetch: { layers: false }, // routing tests list every upstream request a manifest GET makes
  });
});
afterAll(async () => {
  await proxy.close();
  await Promise.all([hub.close(), quay.close()]);
});
beforeEach(() => {
  hub.requests.length = 0;
  quay.requests.length = 0;
});

const upstreamCalls = () => hub.requests.length + quay.requests.length;

describe('GET /v2/', () => {
  it('answers 200 {} with the API version header, without contacting any upstream', async () => {
    for (const path of ['/v2/', '/v2']) {
      const response = await fetch(`${proxy.url}${path}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
      expect(await response.json()).toEqual({});
    }
    expect((await fetch(`${proxy.url}/v2/`, { method: 'HEAD' })).status).toBe(200);
    expect(upstreamCalls()).toBe(0);
  });
});

describe('routing', () => {
  // Each row asks for its own tag, so that no row is answered from what an earlier one cached.
  it.each([
    [
      'short name → docker.io library/',
      '/v2/nginx/manifests/r1',
      hubImage.manifest,
      'hub',
      '/v2/library/nginx/manifests/r1',
    ],
    [
      'user repository → docker.io',
      '/v2/user/app/manifests/v1',
      undefined,
      'hub',
      '/v2/user/app/manifests/v1',
    ],
    [
      'docker.io path prefix',
      '/v2/docker.io/nginx/manifests/r2',
      hubImage.manifest,
      'hub',
      '/v2/library/nginx/manifests/r2',
    ],
    [
      'index.docker.io prefix',
      '/v2/index.docker.io/library/nginx/manifests/r3',
      hubImage.manifest,
      'hub',
      '/v2/library/nginx/manifests/r3',
    ],
    [
      'quay.io path prefix',
      '/v2/quay.io/coreos/flannel/manifests/r1',
      quayImage.manifest,
      'quay',
      '/v2/coreos/flannel/manifests/r1',
    ],
    [
      '?ns=quay.io',
      '/v2/coreos/flannel/manifests/r2?ns=quay.io',
      quayImage.manifest,
      'quay',
      '/v2/coreos/flannel/manifests/r2',
    ],
    [
      '?ns=docker.io (containerd)',
      '/v2/library/nginx/manifests/r4?ns=docker.io',
      hubImage.manifest,
      'hub',
      '/v2/library/nginx/manifests/r4',
    ],
  ])('%s', async (_, path, digest, upstream, upstreamPath) => {
    const response = await fetch(`${proxy.url}${path}`);
    expect(response.status).toBe(200);
    if (digest) expect(response.headers.get('docker-content-digest')).toBe(digest);
    await response.arrayBuffer();
    const server = upstream === 'hub' ? hub : quay;
    expect(server.requests.map((r) => r.path)).toEqual([upstreamPath]);
    expect(upstreamCalls()).toBe(1);
    const ns = new URL(path, 'http://x').searchParams.get('ns');
    expect(response.headers.get('oci-namespace')).toBe(ns);
  });

  it.each([
    ['?ns= of a registry not configured', '/v2/foo/bar/manifests/1?ns=gcr.io'],
    ['path prefix of a registry not configured', '/v2/gcr.io/foo/bar/manifests/1'],
    ['localhost prefix', '/v2/localhost/foo/manifests/1'],
    ['a dotted first component is a registry', `/v2/my.org/app/blobs/sha256:${'a'.repeat(64)}`],
    // As in the reference grammar (and `pullcache resolve`): an uppercase first component is a host.
    ['an uppercase first component is a registry', '/v2/LOCALDOMAIN/debian/manifests/12'],
  ])('refuses %s with 403 DENIED and no network traffic', async (_, path) => {
    const response = await fetch(`${proxy.url}${path}`);
    expect(response.status).toBe(403);
    expect((await firstError(response)).code).toBe('DENIED');
    expect(upstreamCalls()).toBe(0);
  });
});

describe('bad input is refused before any upstream traffic', () => {
  const hex = 'a'.repeat(64);
  it.each([
    ['uppercase name', 'GET', '/v2/Library/Nginx/manifests/latest', 400, 'NAME_INVALID'],
    [
      'uppercase name under a registry',
      'GET',
      '/v2/quay.io/CoreOS/etcd/manifests/latest',
      400,
      'NAME_INVALID',
    ],
    [
      'name over 255 characters',
      'GET',
      `/v2/${'a'.repeat(250)}/${'b'.repeat(10)}/manifests/latest`,
      400,
      'NAME_INVALID',
    ],
    ['dot-dot segment', 'GET', '/v2/library/../etc/manifests/latest', 400, 'NAME_INVALID'],
    ['percent-encoded dot-dot', 'GET', '/v2/library/%2e%2e/etc/manifests/latest', 400, 'NAME_INVALID'],
    ['double slash', 'GET', '/v2/library//nginx/manifests/latest', 400, 'NAME_INVALID'],
    ['trailing separator', 'GET', '/v2/nginx-/manifests/latest', 400, 'NAME_INVALID'],
    ['illegal tag characters', 'GET', '/v2/nginx/manifests/la$test', 400, 'TAG_INVALID'],
    ['tag over 128 characters', 'GET', `/v2/nginx/manifests/${'t'.repeat(129)}`, 400, 'TAG_INVALID'],
    ['tag starting with a dot', 'HEAD', '/v2/nginx/manifests/.hidden', 400, null],
    ['short sha256 digest', 'GET', '/v2/nginx/blobs/sha256:abc', 400, 'DIGEST_INVALID'],
    ['uppercase hex digest', 'GET', `/v2/nginx/blobs/sha256:${'A'.repeat(64)}`, 400, 'DIGEST_INVALID'],
    ['unsupported algorithm', 'GET', `/v2/nginx/manifests/md5:${'a'.repeat(32)}`, 400, 'DIGEST_INVALID'],
    ['not a digest', 'GET', '/v2/nginx/blobs/latest', 400, 'DIGEST_INVALID'],
    ['sha512 of the wrong length', 'GET', `/v2/nginx/blobs/sha512:${hex}`, 400, 'DIGEST_INVALID'],
    ['referrers of a non-digest', 'GET', '/v2/nginx/referrers/latest', 400, 'DIGEST_INVALID'],
    ['bad ns parameter', 'GET', '/v2/nginx/manifests/latest?ns=not%20a%20host', 400, 'NAME_INVALID'],
    ['bad tags page size', 'GET', '/v2/nginx/tags/list?n=-1', 400, 'UNSUPPORTED'],
    ['push: blob upload', 'POST', '/v2/nginx/blobs/uploads/', 405, 'UNSUPPORTED'],
    ['push: upload chunk', 'PATCH', '/v2/nginx/blobs/uploads/abc', 405, 'UNSUPPORTED'],
    ['push: manifest', 'PUT', '/v2/nginx/manifests/latest', 405, 'UNSUPPORTED'],
    ['delete manifest', 'DELETE', `/v2/nginx/manifests/sha256:${hex}`, 405, 'UNSUPPORTED'],
    ['delete blob', 'DELETE', `/v2/nginx/blobs/sha256:${hex}`, 405, 'UNSUPPORTED'],
    ['unknown API path', 'GET', '/v2/nginx/whatever', 404, 'UNSUPPORTED'],
    ['catalog', 'GET', '/v2/_catalog', 404, 'UNSUPPORTED'],
    ['path outside the API', 'GET', '/etc/passwd', 404, 'UNSUPPORTED'],
  ])('%s → %s', async (_, method, path, status, code) => {
    // Sent raw: fetch would resolve dot segments before they reach the proxy.
    const response = await rawRequest(proxy.url, method, path);
    expect(response.status).toBe(status);
    if (method !== 'HEAD') {
      const body = JSON.parse(response.body) as OciErrorBody;
      expect(body.errors[0]!.code).toBe(code);
      expect(typeof body.errors[0]!.message).toBe('string');
    }
    expect(upstreamCalls()).toBe(0);
  });
});

describe('blobs', () => {
  it('answers HEAD with the size and digest, no body', async () => {
    const response = await fetch(`${proxy.url}/v2/nginx/blobs/${hubImage.layer}`, { method: 'HEAD' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe(String(hubContent.blobs.get(hubImage.layer)!.length));
    expect(response.headers.get('docker-content-digest')).toBe(hubImage.layer);
  });

  it('answers an unknown blob with 404 BLOB_UNKNOWN', async () => {
    const response = await fetch(`${proxy.url}/v2/nginx/blobs/sha256:${'0'.repeat(64)}`);
    expect(response.status).toBe(404);
    expect((await firstError(response)).code).toBe('BLOB_UNKNOWN');
  });
});

describe('tag lists', () => {
  it('pages with n/last and rewrites the Link header to point at the proxy', async () => {
    const first = await fetch(`${proxy.url}/v2/nginx/tags/list?n=2`);
    expect(first.status).toBe(200);
    expect((await jsonOf<{ tags: string[] }>(first)).tags).toEqual(['1.27', 'a']);
    const link = first.headers.get('link');
    expect(link).toBe('</v2/nginx/tags/list?last=a&n=2>; rel="next"');
    const second = await fetch(`${proxy.url}${link!.slice(1, link!.indexOf('>'))}`);
    expect((await jsonOf<{ tags: string[] }>(second)).tags).toEqual(['b', 'c']);
    expect(hub.requests.map((r) => r.path + r.search)).toEqual([
      '/v2/library/nginx/tags/list?n=2',
      '/v2/library/nginx/tags/list?n=2&last=a',
    ]);
  });

  it('keeps ?ns= in the rewritten link for containerd-style requests', async () => {
    const response = await fetch(`${proxy.url}/v2/library/nginx/tags/list?n=3&ns=docker.io`);
    expect(response.headers.get('link')).toBe(
      '</v2/library/nginx/tags/list?last=b&n=3&ns=docker.io>; rel="next"',
    );
  });
});

describe('referrers', () => {
  it('passes the artifactType filter through and says it was applied', async () => {
    const response = await fetch(
      `${proxy.url}/v2/nginx/referrers/${hubImage.manifest}?artifactType=${encodeURIComponent(referrer.artifactType)}`,
    );
    expect(response.status).toBe(200);
    expect(response.headers.get('oci-filters-applied')).toBe('artifactType');
    const body = await jsonOf<{ manifests: unknown[] }>(response);
    expect(body.manifests).toEqual([referrer]);
  });
});
