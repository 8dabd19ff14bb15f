/**
 * Referrers (signatures, SBOMs) against msw-described upstreams over loopback, counting upstream
 * calls: one with the referrers API (cached per artifactType filter, fresh for tagTTL, then asked
 * again, stale-if-error, every page in one index) and one without it, like distribution 2.8 (answered
 * from the `sha256-<hex>` fallback tag, the same index either way). The artifacts listed are cached
 * like any manifest and blob, so listing and fetching them works with the upstream down.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HttpResponse, http } from 'msw';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OCI_INDEX, RegistryContent, registryHandlers, sha256 } from '../support/fake-registry.js';
import { firstError } from '../support/http-client.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { captureLogs, startProxy, type TestProxy } from '../support/proxy.js';

const TTL_MS = 5 * 60_000;
const SIGNATURE = 'application/vnd.example.signature.v1';
const SBOM = 'application/spdx+json';
type Failure = null | 503 | 429 | 'drop' | 401;

/** The same images and artifacts, byte for byte, in each registry. */
function content() {
  const c = new RegistryContent();
  const image = c.addImage('library/app', '1.0');
  const signature = c.addReferrer('library/app', image.manifest, SIGNATURE, 'signature of 1.0');
  const sbom = c.addReferrer('library/app', image.manifest, SBOM, 'sbom of 1.0');
  const paged = c.addImage('library/app', 'paged');
  for (let i = 0; i < 5; i++) c.addReferrer('library/app', paged.manifest, SIGNATURE, `signature ${i}`);
  const unsigned = c.addImage('library/app', 'unsigned');
  const later = c.addImage('library/app', 'later');
  const wrongTag = c.addImage('library/app', 'wrong-tag');
  return { c, image, signature, sbom, paged, unsigned, later, wrongTag };
}
const api = content();
const legacy = content();
legacy.c.tagReferrers('library/app', legacy.image.manifest);
legacy.c.tagReferrers('library/app', legacy.paged.manifest);
// A "fallback tag" that holds an image manifest, not an index: no referrers, per the spec.
legacy.c.tag('library/app', legacy.wrongTag.manifest.replace(':', '-'), legacy.wrongTag.manifest);

let failure: Failure = null;
let clock = Date.parse('2026-11-30T12:00:00Z');
let apiRegistry: LoopbackServer;
let legacyRegistry: LoopbackServer;
let proxy: TestProxy;
const logs = captureLogs();
const failing = http.all('*', ({ request }) => {
  if (failure === null || new URL(request.url).pathname === '/v2/') return undefined;
  if (failure === 'drop') return HttpResponse.error();
  if (failure === 401)
    return HttpResponse.json({ errors: [{ code: 'UNAUTHORIZED', message: 'no' }] }, { status: 401 });
  return HttpResponse.json(
    { errors: [{ code: failure === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: 'not now' }] },
    { status: failure },
  );
});

beforeAll(async () => {
  apiRegistry = await startLoopback(
    failing,
    ...registryHandlers(api.c, { auth: { kind: 'none' }, referrers: 2 }),
  );
  legacyRegistry = await startLoopback(
    failing,
    ...registryHandlers(legacy.c, { auth: { kind: 'none' }, referrers: 'none' }),
  );
  proxy = await startProxy(
    {
      registries: { 'docker.io': { url: apiRegistry.url }, 'legacy.example': { url: legacyRegistry.url } },
      cache: { tagTTL: '5m' },
    },
    { now: () => clock, logger: logs.logger },
  );
});
afterAll(async () => {
  await proxy.close();
  await Promise.all([apiRegistry.close(), legacyRegistry.close()]);
});
beforeEach(() => {
  failure = null;
  apiRegistry.requests.length = 0;
  legacyRegistry.requests.length = 0;
});

interface Listed {
  status: number;
  contentType: string | null;
  filters: string | null;
  index: { schemaVersion: number; mediaType: string; manifests: { digest: string; artifactType?: string }[] };
}

/** `GET /v2/<name>/referrers/<digest>[?artifactType=]` through the proxy. */
async function list(name: string, subject: string, artifactType?: string): Promise<Listed> {
  const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
  const response = await fetch(`${proxy.url}/v2/${name}/referrers/${subject}${query}`);
  expect(response.status).toBe(200);
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    filters: response.headers.get('oci-filters-applied'),
    index: (await response.json()) as Listed['index'],
  };
}

const digests = (listed: Listed) => listed.index.manifests.map((m) => m.digest);
const calls = (registry: LoopbackServer) => registry.requests.map((r) => `${r.method} ${r.path}${r.search}`);
const recordsOf = (registry: string) =>
  join(proxy.storage, 'referrers', registry, 'library/app', '_referrers');

async function bytesOf(path: string): Promise<{ status: number; digest: string | null; body: Buffer }> {
  const response = await fetch(`${proxy.url}${path}`);
  const body = Buffer.from(await response.arrayBuffer());
  return { status: response.status, digest: response.status === 200 ? sha256(body) : null, body };
}

describe('an upstream with the referrers API', () => {
  it('lists once, then answers from the cache while the record is younger than tagTTL', async () => {
    const listed = await list('app', api.image.manifest);
    expect(listed.contentType).toBe(OCI_INDEX);
    expect(listed.filters).toBeNull();
    expect(listed.index).toEqual({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [api.signature.descriptor, api.sbom.descriptor],
    });
    expect(calls(apiRegistry)).toEqual([`GET /v2/library/app/referrers/${api.image.manifest}`]);
    expect(existsSync(join(recordsOf('docker.io'), `${api.image.manifest.replace(':', '-')}.json`))).toBe(
      true,
    );

    clock += TTL_MS - 1000;
    expect((await list('app', api.image.manifest)).index).toEqual(listed.index);
    expect(apiRegistry.requests).toHaveLength(1);
  });

  it('asks the upstream again after tagTTL (one GET), and sees a referrer added since', async () => {
    await list('app', api.later.manifest);
    expect((await list('app', api.later.manifest)).index.manifests).toEqual([]);
    const added = api.c.addReferrer('library/app', api.later.manifest, SIGNATURE, 'late signature');
    clock += TTL_MS + 1;
    apiRegistry.requests.length = 0;
    expect(digests(await list('app', api.later.manifest))).toEqual([added.descriptor.digest]);
    expect(calls(apiRegistry)).toEqual([`GET /v2/library/app/referrers/${api.later.manifest}`]);
    expect(digests(await list('app', api.later.manifest))).toEqual([added.descriptor.digest]);
    expect(apiRegistry.requests).toHaveLength(1); // fresh again
  });

  it.each<[Failure]>([[503], [429], ['drop']])(
    'serves the cached list when the upstream cannot answer after tagTTL (%s)',
    async (mode) => {
      const before = await list('app', api.image.manifest);
      clock += TTL_MS + 1;
      failure = mode;
      apiRegistry.requests.length = 0;
      expect((await list('app', api.image.manifest)).index).toEqual(before.index);
      expect(
        apiRegistry.count('GET', `/v2/library/app/referrers/${api.image.manifest}`),
      ).toBeGreaterThanOrEqual(1);
      expect(
        logs.lines().some((l) => l.msg === 'serving cached referrers: upstream could not revalidate them'),
      ).toBe(true);
    },
  );

  it('passes a refusal (401) on rather than serving the cached list, and an outage with nothing cached', async () => {
    await list('app', api.image.manifest);
    clock += TTL_MS + 1;
    failure = 401;
    const refused = await fetch(`${proxy.url}/v2/app/referrers/${api.image.manifest}`);
    expect(refused.status).toBe(401);
    failure = 503;
    const cold = await fetch(`${proxy.url}/v2/app/referrers/${api.unsigned.manifest}`);
    expect(cold.status).toBe(503);
    expect((await firstError(cold)).message).toBe('not now');
    expect(existsSync(join(recordsOf('docker.io'), `${api.unsigned.manifest.replace(':', '-')}.json`))).toBe(
      false,
    );
  });

  it('keeps one record per artifactType filter, passes the filter on, and says it was applied', async () => {
    clock += TTL_MS + 1;
    const all = await list('app', api.image.manifest);
    const signatures = await list('app', api.image.manifest, SIGNATURE);
    expect(all.filters).toBeNull();
    expect(signatures.filters).toBe('artifactType');
    expect(signatures.index.manifests).toEqual([api.signature.descriptor]);
    expect((await list('app', api.image.manifest, SBOM)).index.manifests).toEqual([api.sbom.descriptor]);
    expect(calls(apiRegistry)).toEqual([
      `GET /v2/library/app/referrers/${api.image.manifest}`,
      `GET /v2/library/app/referrers/${api.image.manifest}?artifactType=${encodeURIComponent(SIGNATURE)}`,
      `GET /v2/library/app/referrers/${api.image.manifest}?artifactType=${encodeURIComponent(SBOM)}`,
    ]);
    // Each filter is its own fresh record now.
    await list('app', api.image.manifest, SIGNATURE);
    await list('app', api.image.manifest);
    expect(apiRegistry.requests).toHaveLength(3);
  });

  it('filters itself when the upstream ignores the filter', async () => {
    // (A path pattern would read `:…` of the digest as a parameter: compare the path instead.)
    const ignoring = `/v2/library/app/referrers/${api.unsigned.manifest}`;
    apiRegistry.use(
      http.get('*', ({ request }) => {
        if (new URL(request.url).pathname !== ignoring) return undefined;
        const manifests = [api.signature.descriptor, api.sbom.descriptor];
        return HttpResponse.json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests });
      }),
    );
    const sboms = await list('app', api.unsigned.manifest, SBOM);
    expect(sboms.filters).toBe('artifactType');
    expect(sboms.index.manifests).toEqual([api.sbom.descriptor]);
  });

  it('answers every page of the upstream list in one index', async () => {
    const listed = await list('app', api.paged.manifest);
    expect(digests(listed)).toEqual(
      api.c.referrers.get(api.paged.manifest)!.map((m) => (m as { digest: string }).digest),
    );
    expect(digests(listed)).toHaveLength(5);
    expect(calls(apiRegistry)).toEqual([
      `GET /v2/library/app/referrers/${api.paged.manifest}`,
      `GET /v2/library/app/referrers/${api.paged.manifest}?page=2`,
      `GET /v2/library/app/referrers/${api.paged.manifest}?page=3`,
    ]);
  });

  it('shares one upstream request among concurrent clients of a cold list', async () => {
    const subject = api.c.addImage('library/app', 'busy').manifest;
    api.c.addReferrer('library/app', subject, SIGNATURE, 'busy signature');
    const lists = await Promise.all(Array.from({ length: 10 }, () => list('app', subject)));
    expect(new Set(lists.map((l) => JSON.stringify(l.index))).size).toBe(1);
    expect(lists[0]!.index.manifests).toHaveLength(1);
    expect(calls(apiRegistry)).toEqual([`GET /v2/library/app/referrers/${subject}`]);
  });

  it('refuses an artifactType that is not a media type, before any upstream traffic', async () => {
    const response = await fetch(
      `${proxy.url}/v2/app/referrers/${api.image.manifest}?artifactType=..%2F..%2Fx`,
    );
    expect(response.status).toBe(400);
    expect(apiRegistry.requests).toHaveLength(0);
  });
});

describe('an upstream without the referrers API (404), like distribution 2.8', () => {
  const name = 'legacy.example/library/app';
  const fallback = (digest: string) => `/v2/library/app/manifests/${digest.replace(':', '-')}`;

  it('answers from the fallback tag, the same index the referrers API gives', async () => {
    const listed = await list(name, legacy.image.manifest);
    expect(listed.contentType).toBe(OCI_INDEX);
    expect(listed.index).toEqual((await list('app', api.image.manifest)).index);
    expect(calls(legacyRegistry)).toEqual([
      `GET /v2/library/app/referrers/${legacy.image.manifest}`,
      `GET ${fallback(legacy.image.manifest)}`,
    ]);
    // The fallback tag is cached as a tag: its record and its index by digest.
    expect(existsSync(join(proxy.storage, 'tags', 'legacy.example', 'library/app', '_tags'))).toBe(true);
    await list(name, legacy.image.manifest);
    expect(legacyRegistry.requests).toHaveLength(2);
  });

  it('applies the artifactType filter itself and says so', async () => {
    const signatures = await list(name, legacy.image.manifest, SIGNATURE);
    expect(signatures.filters).toBe('artifactType');
    expect(signatures.index.manifests).toEqual([legacy.signature.descriptor]);
    expect(signatures.index).toEqual((await list('app', api.image.manifest, SIGNATURE)).index);
  });

  it('answers an empty index when there is no fallback tag, or it holds no index', async () => {
    for (const subject of [legacy.unsigned.manifest, legacy.wrongTag.manifest]) {
      const listed = await list(name, subject);
      expect(listed.index).toEqual({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    }
    expect(calls(legacyRegistry)).toEqual([
      `GET /v2/library/app/referrers/${legacy.unsigned.manifest}`,
      `GET ${fallback(legacy.unsigned.manifest)}`,
      `GET /v2/library/app/referrers/${legacy.wrongTag.manifest}`,
      `GET ${fallback(legacy.wrongTag.manifest)}`,
    ]);
  });

  it('after tagTTL asks the API again and revalidates the fallback tag with a HEAD', async () => {
    await list(name, legacy.paged.manifest);
    clock += TTL_MS + 1;
    legacyRegistry.requests.length = 0;
    expect(digests(await list(name, legacy.paged.manifest))).toHaveLength(5);
    expect(calls(legacyRegistry)).toEqual([
      `GET /v2/library/app/referrers/${legacy.paged.manifest}`,
      `HEAD ${fallback(legacy.paged.manifest)}`,
    ]);
  });
});

describe('verifying through the cache while the upstream is down', () => {
  it.each([
    ['with the referrers API', 'app', api],
    ['without it', 'legacy.example/library/app', legacy],
  ] as const)(
    '%s: lists the referrers and fetches the artifacts again from the cache',
    async (_, name, c) => {
      const registry = name === 'app' ? apiRegistry : legacyRegistry;
      clock += TTL_MS + 1;
      const first = await list(name, c.image.manifest, SIGNATURE);
      const [signature] = first.index.manifests;
      expect(signature?.digest).toBe(c.signature.descriptor.digest);
      const manifestPath = `/v2/${name}/manifests/${signature!.digest}`;
      const layerPath = `/v2/${name}/blobs/${c.signature.layer}`;
      const manifest = await bytesOf(manifestPath);
      const layer = await bytesOf(layerPath);
      expect([manifest.digest, layer.digest]).toEqual([c.signature.descriptor.digest, c.signature.layer]);
      expect(layer.body.toString()).toBe('signature of 1.0');
      // The artifact manifest names its subject: what a verifier checks.
      expect(JSON.parse(manifest.body.toString()).subject.digest).toBe(c.image.manifest);

      clock += TTL_MS + 1; // the list is stale too: it must be served despite the failed revalidation
      failure = 'drop';
      registry.requests.length = 0;
      expect((await list(name, c.image.manifest, SIGNATURE)).index).toEqual(first.index);
      expect(await bytesOf(manifestPath)).toEqual(manifest);
      expect(await bytesOf(layerPath)).toEqual(layer);
      // Only the list's revalidation tried the upstream; the artifact came from the cache.
      expect(
        registry.requests.every(
          (r) => r.path.includes('/referrers/') || r.path.includes('/manifests/sha256-'),
        ),
      ).toBe(true);
      expect(registry.requests.length).toBeGreaterThan(0);
    },
  );
});
