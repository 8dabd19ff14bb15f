/**
 * `pullcache ls | rm | prune` on a storage folder a running pullcache serves from: two images from
 * two registries sharing a base layer are listed with their sizes; removing one leaves every file
 * the other needs, which then still pulls with both upstreams gone; prune --to goes by least recent
 * use, and --unused-for by age; a client reading a blob that rm removes gets every byte.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { listCommand, pruneCommand, removeCommand } from '../../src/inventory-commands.js';
import { OCI_MANIFEST, RegistryContent, registryHandlers, sha256 } from '../support/fake-registry.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { settled, startProxy, type TestProxy } from '../support/proxy.js';
import { blobFile, manifestFile } from '../support/storage.js';

const BASE_LAYER = Buffer.alloc(3000, 'shared base layer ');

/** A two-layer image (the shared base, then its own layer), tagged in `content`. */
function addLayeredImage(content: RegistryContent, repository: string, tag: string, own: string) {
  const config = content.addBlob(JSON.stringify({ architecture: 'amd64', os: 'linux', own }));
  const base = content.addBlob(BASE_LAYER);
  const layer = content.addBlob(own);
  const layerDescriptor = (digest: string) => ({
    mediaType: 'application/vnd.oci.image.layer.v1.tar',
    digest,
    size: content.blobs.get(digest)!.length,
  });
  const manifest = content.addManifest(
    repository,
    OCI_MANIFEST,
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: config,
        size: content.blobs.get(config)!.length,
      },
      layers: [layerDescriptor(base), layerDescriptor(layer)],
    },
    tag,
  );
  const blobs = [config, base, layer];
  const bytes =
    content.manifests.get(manifest)!.bytes.length +
    blobs.reduce((sum, d) => sum + content.blobs.get(d)!.length, 0);
  return { manifest, config, base, layer, blobs, bytes };
}

/** Makes an image's last use `when`: its files' mtimes and its tag's lastPulledAt. */
function lastUsed(
  storage: string,
  repository: string,
  image: { manifest: string; blobs: string[] },
  when: number,
): void {
  const time = new Date(when);
  utimesSync(manifestFile(storage, image.manifest), time, time);
  for (const digest of image.blobs) utimesSync(blobFile(storage, digest), time, time);
  const pulls = join(storage, 'tags', 'docker.io', repository, '_pulls', '1.0.json');
  const counted = JSON.parse(readFileSync(pulls, 'utf8')) as { pulls: number };
  writeFileSync(pulls, JSON.stringify({ ...counted, lastPulledAt: when }));
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      cwd: process.cwd(),
      env: { ...process.env, PULLCACHE_CONFIG: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: Run = { code: null, stdout: '', stderr: '' };
    child.stdout.on('data', (d) => (run.stdout += d));
    child.stderr.on('data', (d) => (run.stderr += d));
    child.on('close', (code) => resolve({ ...run, code }));
  });
}

/** The same commands in process (faster than a CLI start), for the checks beyond the CLI's wiring. */
async function local(command: 'ls' | 'rm' | 'prune', configFile: string, args: Record<string, unknown> = {}) {
  const config = loadConfig(configFile, {});
  let out = '';
  const write = (text: string) => (out += text);
  const json = { json: true, dryRun: false, ...args };
  if (command === 'ls') await listCommand(config, json, write);
  else if (command === 'rm') await removeCommand(config, args.references as string[], json, write);
  else await pruneCommand(config, json, write);
  return JSON.parse(out);
}

async function pull(proxy: TestProxy, name: string, tag: string, image: { blobs: string[] }) {
  const manifest = await fetch(`${proxy.url}/v2/${name}/manifests/${tag}`, {
    headers: { accept: OCI_MANIFEST },
  });
  expect(manifest.status).toBe(200);
  const bytes = Buffer.from(await manifest.arrayBuffer());
  for (const digest of image.blobs) {
    const blob = await fetch(`${proxy.url}/v2/${name}/blobs/${digest}`);
    expect(blob.status).toBe(200);
    expect(sha256(Buffer.from(await blob.arrayBuffer()))).toBe(digest);
  }
  return bytes;
}

const folders: string[] = [];
afterAll(() => {
  for (const f of folders) rmSync(f, { recursive: true, force: true });
});

describe('ls and rm while a pullcache serves the folder', () => {
  const hub = new RegistryContent();
  const quay = new RegistryContent();
  const app = addLayeredImage(hub, 'library/app', '1.0', 'app layer');
  const tool = addLayeredImage(quay, 'team/tool', '2.0', 'tool layer, a little longer');
  let hubServer: LoopbackServer;
  let quayServer: LoopbackServer;
  let proxy: TestProxy;
  let configFile: string;

  beforeAll(async () => {
    hubServer = await startLoopback(...registryHandlers(hub, { auth: { kind: 'none' } }));
    quayServer = await startLoopback(...registryHandlers(quay, { auth: { kind: 'none' } }));
    const registries = { 'docker.io': { url: hubServer.url }, 'quay.io': { url: quayServer.url } };
    proxy = await startProxy({ registries });
    folders.push(proxy.storage);
    configFile = join(proxy.storage, '..', `${proxy.storage.split('/').at(-1)}.yaml`);
    writeFileSync(
      configFile,
      `registries:\n  docker.io: { url: "${hubServer.url}" }\n  quay.io: { url: "${quayServer.url}" }\nstorage: { path: "${proxy.storage}", maxSize: 1MiB }\n`,
    );
    folders.push(configFile);
    await pull(proxy, 'app', '1.0', app);
    await pull(proxy, 'quay.io/team/tool', '2.0', tool);
    await settled(proxy.url);
  });
  afterAll(async () => {
    await proxy.stop();
    await hubServer.close();
    await quayServer.close();
  });

  it('ls lists exactly the two images with their sizes and platforms, and the totals', async () => {
    const run = await cli(['ls', '--config', configFile, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const listing = JSON.parse(run.stdout) as {
      images: Record<string, unknown>[];
      totals: Record<string, number>;
    };
    expect(listing.images).toEqual([
      expect.objectContaining({
        registry: 'docker.io',
        repository: 'library/app',
        tag: '1.0',
        digest: app.manifest,
        platforms: ['linux/amd64'],
        bytes: app.bytes,
      }),
      expect.objectContaining({
        registry: 'quay.io',
        repository: 'team/tool',
        tag: '2.0',
        digest: tool.manifest,
        platforms: ['linux/amd64'],
        bytes: tool.bytes,
      }),
    ]);
    expect(typeof listing.images[0]!.lastPulled).toBe('string');
    // One base layer for both: 5 blobs, 2 manifests.
    expect(listing.totals).toMatchObject({ blobs: 5, manifests: 2, maxSize: 1024 * 1024 });

    const quayOnly = JSON.parse(
      (await cli(['ls', '--config', configFile, '--json', '--registry', 'quay.io'])).stdout,
    );
    expect(quayOnly.images.map((i: { repository: string }) => i.repository)).toEqual(['team/tool']);

    const table = await cli(['ls', '--config', configFile]);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(
      /^REGISTRY\s+REPOSITORY\s+TAG\s+DIGEST\s+PLATFORMS\s+SIZE\s+LAST PULLED\s+PULLS$/,
    );
    expect(lines[1]).toMatch(/^docker\.io\s+library\/app\s+1\.0\s+sha256:/);
    expect(lines.at(-1)).toMatch(/^2 images; cache: 5 blobs, 2 manifests, .* of maxSize 1\.0 MiB\)$/);
  }, 60_000);

  it('rm of one image leaves every file the other needs, and the other pulls with the upstreams gone', async () => {
    const dry = await local('rm', configFile, { references: ['app:1.0'], dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, images: ['docker.io/library/app:1.0'], blobs: 2 });
    expect(existsSync(manifestFile(proxy.storage, app.manifest))).toBe(true);

    const run = await cli(['rm', '--config', configFile, '--json', 'docker.io/library/app:1.0']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      dryRun: false,
      images: ['docker.io/library/app:1.0'],
      blobs: 2,
      manifests: 1,
      bytes: expect.any(Number),
    });
    for (const digest of [app.config, app.layer])
      expect(existsSync(blobFile(proxy.storage, digest))).toBe(false);
    expect(existsSync(manifestFile(proxy.storage, app.manifest))).toBe(false);
    expect(existsSync(join(proxy.storage, 'tags', 'docker.io', 'library', 'app'))).toBe(true); // folder only
    for (const digest of tool.blobs) expect(existsSync(blobFile(proxy.storage, digest))).toBe(true);

    // The serve process's own count follows the removal.
    const stats = (await (await fetch(`${proxy.url}/_pullcache/stats`)).json()) as { blobs: number };
    expect(stats.blobs).toBe(3);

    await hubServer.close();
    await quayServer.close();
    const requests = hubServer.requests.length + quayServer.requests.length;
    await pull(proxy, 'quay.io/team/tool', '2.0', tool);
    expect(hubServer.requests.length + quayServer.requests.length).toBe(requests);
    // The removed image is gone for good: only the (stopped) upstream could serve it now.
    const gone = await fetch(`${proxy.url}/v2/app/manifests/1.0`);
    expect(gone.status).toBe(502);
  }, 60_000);

  it('rm of an image that is not cached removes nothing and says so', async () => {
    const run = await cli(['rm', '--config', configFile, 'quay.io/team/tool:2.0', 'nope:1.0']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('not in the cache: nope:1.0');
    for (const digest of tool.blobs) expect(existsSync(blobFile(proxy.storage, digest))).toBe(true);
  }, 60_000);
});

describe('prune', () => {
  const hub = new RegistryContent();
  // Oldest use first: old, middle, recent.
  const images = ['old', 'middle', 'recent'].map((name) =>
    addLayeredImage(hub, `library/${name}`, '1.0', `${name} layer `.repeat(200)),
  );
  let hubServer: LoopbackServer;
  let storage: string;
  let configFile: string;

  beforeAll(async () => {
    hubServer = await startLoopback(...registryHandlers(hub, { auth: { kind: 'none' } }));
    const proxy = await startProxy({ registries: { 'docker.io': { url: hubServer.url } } });
    storage = proxy.storage;
    folders.push(storage);
    for (const [i, name] of ['old', 'middle', 'recent'].entries()) await pull(proxy, name, '1.0', images[i]!);
    await settled(proxy.url);
    await proxy.stop();
    await hubServer.close();
    // Last uses 3, 2 and 1 days ago (a manifest's mtime is its image's last pull).
    const day = 86_400_000;
    for (const [i, name] of ['old', 'middle', 'recent'].entries())
      lastUsed(storage, `library/${name}`, images[i]!, Date.now() - (3 - i) * day);
    configFile = join(storage, 'config.yaml');
    writeFileSync(
      configFile,
      `registries:\n  docker.io: { url: "${hubServer.url}" }\nstorage: { path: "${storage}" }\n`,
    );
  });

  const listed = async () =>
    (
      JSON.parse((await cli(['ls', '--config', configFile, '--json'])).stdout) as {
        images: { repository: string }[];
      }
    ).images.map((i) => i.repository);

  it('--to removes least recently used images until the cache fits, keeping shared layers', async () => {
    const total = (
      JSON.parse((await cli(['ls', '--config', configFile, '--json'])).stdout) as {
        totals: { bytes: number };
      }
    ).totals.bytes;
    // Just under the total: the oldest image alone must go.
    const dry = await cli(['prune', '--config', configFile, '--to', String(total - 1), '--dry-run']);
    expect(dry.stdout).toContain('would remove docker.io/library/old:1.0');
    expect(dry.stdout).not.toContain('middle');
    expect(await listed()).toEqual(['library/middle', 'library/old', 'library/recent']);

    const run = await cli(['prune', '--config', configFile, '--to', String(total - 1), '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ images: ['docker.io/library/old:1.0'], blobs: 2 });
    expect(await listed()).toEqual(['library/middle', 'library/recent']);
    expect(existsSync(blobFile(storage, images[0]!.base))).toBe(true); // the others still use it
    expect(existsSync(blobFile(storage, images[0]!.layer))).toBe(false);

    // A target of 1 byte takes the middle one next, then the recent one, and the base layer with it.
    const all = await local('prune', configFile, { to: 1 });
    expect(all.images).toEqual(['docker.io/library/middle:1.0', 'docker.io/library/recent:1.0']);
    expect(await listed()).toEqual([]);
    expect(existsSync(blobFile(storage, images[0]!.base))).toBe(false);
  }, 120_000);
});

describe('prune --unused-for', () => {
  it('removes images and orphan files unused that long, and leaves recent ones', async () => {
    const hub = new RegistryContent();
    const old = addLayeredImage(hub, 'library/stale', '1.0', 'stale layer');
    const fresh = addLayeredImage(hub, 'library/fresh', '1.0', 'fresh layer');
    const orphan = hub.addBlob('a blob some client fetched by digest alone');
    const server = await startLoopback(...registryHandlers(hub, { auth: { kind: 'none' } }));
    const proxy = await startProxy({ registries: { 'docker.io': { url: server.url } } });
    const storage = proxy.storage;
    folders.push(storage);
    await pull(proxy, 'stale', '1.0', old);
    await pull(proxy, 'fresh', '1.0', fresh);
    await pull(proxy, 'stale', '1.0', { blobs: [orphan] });
    await settled(proxy.url);
    await proxy.stop();
    await server.close();
    const longAgo = Date.now() - 40 * 86_400_000;
    lastUsed(storage, 'library/stale', old, longAgo);
    utimesSync(blobFile(storage, orphan), new Date(longAgo), new Date(longAgo));

    const run = await cli(['prune', '--storage', storage, '--unused-for', '30d', '--json']);
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toMatchObject({
      images: ['docker.io/library/stale:1.0'],
      blobs: 3,
      manifests: 1,
    });
    expect(existsSync(blobFile(storage, orphan))).toBe(false);
    expect(existsSync(blobFile(storage, old.layer))).toBe(false);
    for (const digest of fresh.blobs) expect(existsSync(blobFile(storage, digest))).toBe(true);

    const usage = await cli(['prune', '--storage', storage]);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toContain('prune needs --unused-for DURATION, --to SIZE or both');
  }, 60_000);
});

describe('rm while a client is reading', () => {
  it('lets a transfer in progress finish with every byte, though the file is removed', async () => {
    const hub = new RegistryContent();
    const big = addLayeredImage(hub, 'library/big', '1.0', randomBytes(16 * 1024 * 1024).toString('base64'));
    const server = await startLoopback(...registryHandlers(hub, { auth: { kind: 'none' } }));
    const proxy = await startProxy({ registries: { 'docker.io': { url: server.url } } });
    folders.push(proxy.storage);
    try {
      await pull(proxy, 'big', '1.0', big);
      await settled(proxy.url);
      const configFile = join(proxy.storage, 'config.yaml');
      writeFileSync(
        configFile,
        `registries:\n  docker.io: { url: "${server.url}" }\nstorage: { path: "${proxy.storage}" }\n`,
      );

      const response = await fetch(`${proxy.url}/v2/big/blobs/${big.layer}`);
      expect(response.status).toBe(200);
      const reader = response.body!.getReader();
      const hash = createHash('sha256');
      const first = await reader.read();
      hash.update(first.value!);
      const removed = await local('rm', configFile, { references: ['big:1.0'] });
      expect(removed.images).toEqual(['docker.io/library/big:1.0']);
      expect(existsSync(blobFile(proxy.storage, big.layer))).toBe(false);
      let bytes = first.value!.length;
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
        hash.update(chunk.value);
        bytes += chunk.value.length;
      }
      expect(bytes).toBe(hub.blobs.get(big.layer)!.length);
      expect(`sha256:${hash.digest('hex')}`).toBe(big.layer);
    } finally {
      await proxy.stop();
      await server.close();
    }
  }, 60_000);
});
