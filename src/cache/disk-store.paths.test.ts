/**
 * The storage path mapping against hostile names: whatever a request or a reference holds (`..`,
 * `%2e%2e`, absolute paths, NUL, backslashes, unicode), either validation refuses it or the file it
 * maps to lies under `storage.path`, and nothing is ever written outside it.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDigest } from '../digest.js';
import { RegistryError } from '../errors.js';
import { parseV2Path } from '../http/v2-path.js';
import { parseArtifactType } from '../pull/referrers-index.js';
import { assertTag, parseReference } from '../reference.js';
import { resolveRoute } from '../routing.js';
import { createDiskStore } from './disk-store.js';

const sandbox = mkdtempSync(join(tmpdir(), 'pullcache-paths-'));
const root = join(sandbox, 'store');
afterAll(() => rmSync(sandbox, { recursive: true, force: true }));
const store = createDiskStore({ root, maxSize: null });

const config = {
  defaultRegistry: 'docker.io',
  registries: Object.fromEntries(
    ['docker.io', 'quay.io', 'localhost:5000', '[::1]:5000', 'LOCALDOMAIN'].map((host) => [
      host,
      { url: 'http://127.0.0.1:9' },
    ]),
  ),
};
const HEX64 = 'ab'.repeat(32);
const record = {
  digest: `sha256:${HEX64}`,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  size: 1,
  fetchedAt: 0,
};

/** Pieces of names, tags and digests: valid ones, so that some inputs pass, and hostile ones. */
const piece = fc.oneof(
  fc.constantFrom('library', 'nginx', 'a-b', 'x.y', 'a__b', '0', 'latest', '1.0', '_tags', '_x'),
  fc.constantFrom('quay.io', 'localhost:5000', '[::1]:5000', 'LOCALDOMAIN', 'LocalDomain', 'docker.io'),
  fc.constantFrom('/', '/', ':', '@', '.', '..', '../', '/..', '%2e%2e', '%2E', '%2f', '%00', '\0'),
  fc.constantFrom('\\', '..\\..', '/etc/passwd', '//', 'C:', '~', 'é', '\u202e', '\u2215', '．．', ' '),
  fc.constantFrom(`sha256:${HEX64}`, 'sha256:', 'sha512:', `sha256:../${HEX64.slice(3)}`, 'constructor:'),
);
const fragment = fc.array(piece, { minLength: 1, maxLength: 6 }).map((parts) => parts.join(''));
const host = fc.constantFrom('', 'quay.io/', 'localhost:5000/', '[::1]:5000/', 'LOCALDOMAIN/', 'docker.io/');
const validName = fc
  .tuple(
    host,
    fc.array(fc.constantFrom('library', 'nginx', 'a-b', 'x.y', 'a__b', '0'), { minLength: 1, maxLength: 3 }),
  )
  .map(([h, parts]) => h + parts.join('/'));
const validTarget = fc.oneof(
  fc.constantFrom('latest', '1.0', '_x', '_tags', 'A.b-c', 'x'.repeat(128)),
  fc.constant(`sha256:${HEX64}`),
);
/** Valid input, hostile input, and valid input with something hostile before or after it. */
const mixed = (valid: fc.Arbitrary<string>) =>
  fc.oneof(
    { weight: 4, arbitrary: valid },
    fragment,
    fc.tuple(valid, fragment).map(([v, f]) => v + f),
    fc.tuple(fragment, valid).map(([f, v]) => f + v),
  );
/** artifactType filters of referrers requests: media types, and hostile strings around them. */
const artifactType = fc.option(
  mixed(fc.constantFrom('application/vnd.example.sig', 'a/b', 'application/spdx+json', 'x.y/z-1')),
);
const ns = fc.option(
  fc.constantFrom('quay.io', 'LOCALDOMAIN', 'localdomain', '..', '../x', '/etc', 'quay.io/..', '%2e'),
);

interface Valid {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
  /** A referrers request: its subject is `digest`. */
  referrers?: { artifactType: string | null };
}

/** The checks of `/v2` manifest, blob and referrers requests (v2-routes.ts), in the same order. */
function validateRequest(rawPath: string, query: string | null, filter: string | null = null): Valid | null {
  try {
    const endpoint = parseV2Path(rawPath);
    if (!endpoint) return null;
    if (endpoint.kind === 'referrers') {
      const route = resolveRoute(endpoint.name, query ?? undefined, config);
      const digest = parseDigest(endpoint.digest).value;
      return { ...route, digest, referrers: { artifactType: parseArtifactType(filter ?? undefined) } };
    }
    if (endpoint.kind !== 'manifest' && endpoint.kind !== 'blob') return null;
    const route = resolveRoute(endpoint.name, query ?? undefined, config);
    const target = endpoint.kind === 'manifest' ? endpoint.reference : endpoint.digest;
    if (endpoint.kind === 'blob' || target.includes(':')) {
      return { ...route, digest: parseDigest(target).value };
    }
    assertTag(target);
    return { ...route, tag: target };
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    return null;
  }
}

/** Whether `path` is `root` itself or lies below it, after resolving every `..`. */
const inside = (path: string, folder: string) => {
  const rel = relative(resolve(folder), resolve(path));
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
};

const allFiles = (dir: string) =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => !entry.isDirectory())
    .map((entry) => join(entry.parentPath, entry.name));

/** Stores the tag or referrers record or resolves the blob path, and checks where it went. */
async function storeAndCheck(v: Valid) {
  if (v.referrers !== undefined) {
    const { artifactType } = v.referrers;
    const referrers = { manifests: [{ artifactType }], source: 'api' as const, fetchedAt: 0 };
    await store.putReferrers(v.registry, v.repository, v.digest!, artifactType, referrers);
    const { algorithm, hex } = parseDigest(v.digest!);
    const filter = artifactType === null ? '' : `-${createHash('sha256').update(artifactType).digest('hex')}`;
    const name = `${algorithm}-${hex}${filter}.json`;
    const expected = join(root, 'referrers', v.registry, v.repository, '_referrers', name);
    expect(inside(expected, join(root, 'referrers'))).toBe(true);
    expect(resolve(expected)).toBe(expected);
    expect(allFiles(sandbox)).toEqual([expected]);
    expect(await store.getReferrers(v.registry, v.repository, v.digest!, artifactType)).toEqual(referrers);
    rmSync(join(root, 'referrers'), { recursive: true }); // the store has no deletion of referrers
    return;
  }
  if (v.digest !== undefined) {
    const path = store.blobPath(v.digest);
    expect(inside(path, join(root, 'blobs'))).toBe(true);
    const { algorithm, hex } = parseDigest(v.digest);
    expect(path).toBe(join(root, 'blobs', algorithm, hex.slice(0, 2), hex));
    return;
  }
  const tag = v.tag!;
  await store.putTag(v.registry, v.repository, tag, record);
  const expected = join(root, 'tags', v.registry, v.repository, '_tags', `${tag}.json`);
  expect(inside(expected, join(root, 'tags'))).toBe(true);
  expect(resolve(expected)).toBe(expected); // no dot segments survived to be resolved away
  expect(allFiles(sandbox)).toEqual([expected]);
  expect(await store.getTag(v.registry, v.repository, tag)).toEqual(record);
  await store.deleteTag(v.registry, v.repository, tag);
  expect(allFiles(sandbox)).toEqual([]);
}

describe('storage paths for hostile input', () => {
  it('maps every /v2 request that passes validation under storage.path, and writes nothing elsewhere', async () => {
    let stored = 0;
    await fc.assert(
      fc.asyncProperty(
        mixed(validName),
        mixed(validTarget),
        fc.constantFrom('manifests', 'blobs', 'referrers'),
        ns,
        artifactType,
        async (name, target, kind, query, filter) => {
          const valid = validateRequest(`/v2/${name}/${kind}/${target}`, query, filter);
          if (valid === null) return;
          stored++;
          await storeAndCheck(valid);
        },
      ),
      { numRuns: 1500 },
    );
    expect(stored).toBeGreaterThan(50); // the property was not vacuous
  }, 120_000); // 1500 runs, each writing files: slow on a busy machine

  it('maps referrers requests with an artifactType filter under storage.path', async () => {
    let filtered = 0;
    await fc.assert(
      fc.asyncProperty(mixed(validName), artifactType, ns, async (name, filter, query) => {
        const valid = validateRequest(`/v2/${name}/referrers/sha256:${HEX64}`, query, filter);
        if (valid === null) return;
        if (valid.referrers?.artifactType != null) filtered++;
        await storeAndCheck(valid);
      }),
      { numRuns: 500 },
    );
    expect(filtered).toBeGreaterThan(20);
  });

  it('maps every reference that parses (pullcache warm) under storage.path', async () => {
    let stored = 0;
    await fc.assert(
      fc.asyncProperty(
        mixed(fc.tuple(validName, fc.constantFrom('', ':1.0', `@sha256:${HEX64}`)).map(([n, t]) => n + t)),
        async (input) => {
          let ref: ReturnType<typeof parseReference>;
          try {
            ref = parseReference(input);
          } catch (err) {
            expect(err).toBeInstanceOf(RegistryError);
            return;
          }
          stored++;
          const { registry, repository } = ref;
          if (ref.tag !== null) await storeAndCheck({ registry, repository, tag: ref.tag });
          if (ref.digest !== null) await storeAndCheck({ registry, repository, digest: ref.digest });
        },
      ),
      { numRuns: 1500 },
    );
    expect(stored).toBeGreaterThan(100);
  }, 120_000);

  it('refuses the classic traversals outright', () => {
    for (const path of [
      '/v2/../../etc/manifests/latest',
      '/v2/library/%2e%2e/%2e%2e/manifests/latest',
      '/v2/library/nginx/manifests/..',
      '/v2/library/nginx/manifests/%2e%2e%2fx',
      `/v2/library/nginx/blobs/sha256:..%2f${HEX64.slice(4)}`,
      '/v2//etc/passwd/manifests/latest',
      '/v2/library\\..\\..\\x/manifests/latest',
      '/v2/library/nginx/manifests/latest\0',
      `/v2/library/nginx/referrers/sha256:..%2f${HEX64.slice(4)}`,
      `/v2/library/%2e%2e/referrers/sha256:${HEX64}`,
    ]) {
      expect(validateRequest(path, null), path).toBeNull();
    }
    for (const filter of ['../x', '/etc/passwd', 'a/../b', 'a/b\0', 'a/b/c', '..', 'x'.repeat(300)]) {
      expect(validateRequest(`/v2/nginx/referrers/sha256:${HEX64}`, null, filter), filter).toBeNull();
    }
    expect(validateRequest('/v2/nginx/manifests/latest', '../x')).toBeNull();
  });
});
