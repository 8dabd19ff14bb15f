/**
 * Signatures and attestations through pullcache from docker-registry 2.8, which has no referrers
 * API: a signature and an SBOM pushed in the fallback form (artifact manifests whose `subject` is the
 * image, pushed with skopeo; the `sha256-<hex>` index, pushed with a manifest PUT). pullcache answers
 * the referrers API from the fallback tag, skopeo fetches the artifacts through it, and both work
 * again once the upstream is stopped, after the listing's TTL too (stale-if-error).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCleanup } from './harness/cleanup.js';
import { type GeneratedImage, generateImage } from './harness/images.js';
import { type Pullcache, startPullcache } from './harness/pullcache.js';
import { type PushedReferrer, pushReferrers } from './harness/referrers.js';
import { type Registry, startRegistry } from './harness/registry.js';
import { pullManifest, pushImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';

const REPOSITORY = 'library/demo';
const SIGNATURE = 'application/vnd.example.signature.v1';
const SBOM = 'application/spdx+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
// pullcache's warning when it serves a cached referrers list it could not revalidate.
const STALE_WARNING = 'serving cached referrers: upstream could not revalidate them';

describe('referrers from a registry without the referrers API, with the upstream up and then down', () => {
  const cleanup = createCleanup();
  let work: string;
  let registry: Registry;
  let image: GeneratedImage;
  let signature: PushedReferrer;
  let sbom: PushedReferrer;
  let fallbackTag: string;
  let proxy: Pullcache;
  let listedAt = 0;

  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('referrers'), removeDir);
    registry = cleanup.add(await startRegistry(), (r) => r.stop());
    image = await generateImage({ dir: join(work, 'image'), seed: 'signed' });
    await pushImage(image, `${registry.host}/${REPOSITORY}:1.0`);
    const pushed = await pushReferrers(join(work, 'artifacts'), registry, REPOSITORY, image.index, [
      { artifactType: SIGNATURE, payload: 'a signature of the demo index' },
      { artifactType: SBOM, payload: '{"spdxVersion":"SPDX-2.3"}' },
    ]);
    [signature, sbom] = pushed.referrers as [PushedReferrer, PushedReferrer];
    fallbackTag = pushed.fallbackTag;
    // A 1 s TTL: after the upstream stops, the listing needs revalidation, which fails.
    proxy = cleanup.add(
      await startPullcache({
        registries: { 'docker.io': { url: registry.url } },
        extraYaml: 'cache: { tagTTL: 1s }',
      }),
      (p) => p.stop(),
    );
  });
  afterAll(() => cleanup.run());
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => console.error(`--- pullcache output (tail) ---\n${proxy?.output().slice(-6_000)}`));
  });

  async function list(artifactType?: string) {
    const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
    const response = await fetch(`${proxy.url}/v2/${REPOSITORY}/referrers/${image.index.digest}${query}`);
    return {
      status: response.status,
      contentType: response.headers.get('content-type'),
      filters: response.headers.get('oci-filters-applied'),
      body: (await response.json()) as unknown,
    };
  }

  const indexOf = (...referrers: PushedReferrer[]) => ({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: referrers.map((r) => r.descriptor),
  });

  /** skopeo copies the artifact by digest through pullcache; every file is checked against its digest. */
  async function fetchArtifact(referrer: PushedReferrer, label: string) {
    const pulled = await pullManifest(
      `${proxy.host}/${REPOSITORY}@${referrer.descriptor.digest}`,
      join(work, 'pulls', label),
    );
    expect(pulled.manifest.digest).toBe(referrer.descriptor.digest);
    expect(pulled.layers).toEqual([referrer.layer]);
    const manifest = JSON.parse(
      await readFile(join(pulled.layoutDir, 'blobs', ...referrer.descriptor.digest.split(':')), 'utf8'),
    ) as { subject: { digest: string }; artifactType: string };
    expect(manifest.subject.digest).toBe(image.index.digest);
    expect(manifest.artifactType).toBe(referrer.descriptor.artifactType);
  }

  it('docker-registry has no referrers API, only the fallback tag', async () => {
    const api = await fetch(`${registry.url}/v2/${REPOSITORY}/referrers/${image.index.digest}`);
    await api.arrayBuffer();
    expect(api.status).toBe(404);
    const tag = await fetch(`${registry.url}/v2/${REPOSITORY}/manifests/${fallbackTag}`, {
      headers: { accept: OCI_INDEX },
    });
    expect(tag.status).toBe(200);
    expect(await tag.json()).toEqual(indexOf(signature, sbom));
  });

  it('pullcache answers the referrers API from the fallback tag, filtered on request', async () => {
    const apiCalls = new RegExp(`/referrers/${image.index.digest}`);
    const tagCalls = new RegExp(`/manifests/${fallbackTag}$`);
    const [apiBefore, tagBefore] = [
      registry.countRequests('GET', apiCalls, 404),
      registry.countRequests('GET', tagCalls, 200),
    ];
    const all = await list();
    expect(all).toEqual({
      status: 200,
      contentType: OCI_INDEX,
      filters: null,
      body: indexOf(signature, sbom),
    });
    const signatures = await list(SIGNATURE);
    expect(signatures).toEqual({
      status: 200,
      contentType: OCI_INDEX,
      filters: 'artifactType',
      body: indexOf(signature),
    });
    listedAt = Date.now();
    // Each listing (its own record) asked the API once; the first fetched the fallback tag, the
    // filtered one found it cached (within its TTL).
    expect(registry.countRequests('GET', apiCalls, 404) - apiBefore).toBe(2);
    expect(registry.countRequests('GET', tagCalls, 200) - tagBefore).toBe(1);
  });

  it('skopeo fetches the signature and the SBOM through pullcache', async () => {
    await fetchArtifact(signature, 'signature-up');
    await fetchArtifact(sbom, 'sbom-up');
  });

  it('the upstream registry stops', async () => {
    await registry.process.stop();
    await expect(fetch(`${registry.url}/v2/`)).rejects.toThrow();
  });

  it('pullcache lists them again after their TTL (stale-if-error), and skopeo fetches them again', async () => {
    await sleep(Math.max(0, listedAt + 1_500 - Date.now()));
    expect(proxy.output()).not.toContain(STALE_WARNING);
    expect(await list()).toEqual({
      status: 200,
      contentType: OCI_INDEX,
      filters: null,
      body: indexOf(signature, sbom),
    });
    expect((await list(SIGNATURE)).body).toEqual(indexOf(signature));
    expect(proxy.output()).toContain(STALE_WARNING);
    await fetchArtifact(signature, 'signature-down');
    await fetchArtifact(sbom, 'sbom-down');
  });
});
