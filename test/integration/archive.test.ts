/**
 * `pullcache export` and `import`: export pulls what is missing and writes an OCI layout archive
 * naming each image by its full reference; import into an empty folder serves both images with the
 * upstream gone; a tampered layer, a truncated archive or a missing blob imports nothing.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportImages } from '../../src/archive/oci-export.js';
import { ImportError, importArchive } from '../../src/archive/oci-import.js';
import { readTarEntries } from '../../src/archive/tar.js';
import { createDiskStore } from '../../src/cache/disk-store.js';
import { parseConfig } from '../../src/config.js';
import { createRuntime } from '../../src/runtime.js';
import {
  OCI_INDEX,
  OCI_MANIFEST,
  RegistryContent,
  registryHandlers,
  sha256,
} from '../support/fake-registry.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { startProxy } from '../support/proxy.js';
import { filesUnder } from '../support/storage.js';

const hub = new RegistryContent();
const quay = new RegistryContent();
const amd64 = hub.addImage('library/multi', 'amd64-only', Buffer.alloc(4000, 'amd64 layer '));
const arm64 = hub.addImage('library/multi', 'arm64-only', Buffer.alloc(3000, 'arm64 layer '));
const index = hub.addManifest(
  'library/multi',
  OCI_INDEX,
  {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      { digest: amd64, platform: { os: 'linux', architecture: 'amd64' } },
      { digest: arm64, platform: { os: 'linux', architecture: 'arm64' } },
    ].map(({ digest, platform }) => ({
      mediaType: OCI_MANIFEST,
      digest: digest.manifest,
      size: hub.manifests.get(digest.manifest)!.bytes.length,
      platform,
    })),
  },
  '1.0',
);
const tool = quay.addImage('team/tool', '2.0', Buffer.alloc(2500, 'tool layer '));

const dir = mkdtempSync(join(tmpdir(), 'pullcache-archive-'));
let hubServer: LoopbackServer;
let quayServer: LoopbackServer;
let registries: Record<string, { url: string }>;
beforeAll(async () => {
  hubServer = await startLoopback(...registryHandlers(hub, { auth: { kind: 'none' } }));
  quayServer = await startLoopback(...registryHandlers(quay, { auth: { kind: 'none' } }));
  registries = { 'docker.io': { url: hubServer.url }, 'quay.io': { url: quayServer.url } };
});
afterAll(async () => {
  await hubServer.close();
  await quayServer.close();
  rmSync(dir, { recursive: true, force: true });
});

async function exportTo(file: string, references: string[], platforms: string[] = []) {
  const config = parseConfig({ registries, storage: { path: join(dir, `cache-${Math.random()}`) } }, {});
  const runtime = await createRuntime(config, pino({ level: 'silent' }));
  try {
    return await exportImages({ ...runtime, config }, references, file, {
      platforms,
    });
  } finally {
    await runtime.close();
  }
}

function importInto(storage: string, file: string, registry?: string) {
  const config = parseConfig({ registries, storage: { path: storage } }, {});
  const store = createDiskStore({ root: storage, maxSize: null });
  return importArchive({ store, config }, file, registry ? { registry } : {});
}

async function entriesOf(file: string) {
  const handle = await open(file, 'r');
  try {
    const entries = [];
    for await (const entry of readTarEntries(handle)) entries.push(entry);
    return entries;
  } finally {
    await handle.close();
  }
}

const archive = join(dir, 'both.tar');

describe('export', () => {
  it('pulls what is missing and writes an OCI layout naming each image by its full reference', async () => {
    const result = await exportTo(archive, ['multi:1.0', 'quay.io/team/tool:2.0']);
    expect(result.images).toEqual([
      {
        reference: 'docker.io/library/multi:1.0',
        digest: index,
        mediaType: OCI_INDEX,
        platforms: ['linux/amd64', 'linux/arm64'],
      },
      { reference: 'quay.io/team/tool:2.0', digest: tool.manifest, mediaType: OCI_MANIFEST, platforms: [] },
    ]);
    const entries = await entriesOf(archive);
    const names = entries.map((e) => e.name);
    expect(names.slice(0, 2)).toEqual(['oci-layout', 'index.json']);
    const handle = await open(archive, 'r');
    const indexEntry = entries.find((e) => e.name === 'index.json')!;
    const bytes = Buffer.alloc(indexEntry.size);
    await handle.read(bytes, 0, bytes.length, indexEntry.offset);
    const layout = JSON.parse(bytes.toString('utf8'));
    expect(layout.manifests.map((m: { annotations: Record<string, string> }) => m.annotations)).toEqual([
      {
        'io.containerd.image.name': 'docker.io/library/multi:1.0',
        'org.opencontainers.image.ref.name': 'docker.io/library/multi:1.0',
      },
      {
        'io.containerd.image.name': 'quay.io/team/tool:2.0',
        'org.opencontainers.image.ref.name': 'quay.io/team/tool:2.0',
      },
    ]);
    // Each blob entry holds the bytes of its digest.
    for (const entry of entries.filter((e) => e.name.startsWith('blobs/sha256/'))) {
      const body = Buffer.alloc(entry.size);
      await handle.read(body, 0, body.length, entry.offset);
      expect(sha256(body)).toBe(`sha256:${entry.name.slice('blobs/sha256/'.length)}`);
    }
    await handle.close();
    // 3 manifests + 2 per platform image (config, layer) + tool's manifest, config and layer.
    expect(names.filter((n) => n.startsWith('blobs/sha256/'))).toHaveLength(3 + 4 + 3);
  });

  it('takes only the platforms asked for', async () => {
    const file = join(dir, 'amd64.tar');
    const result = await exportTo(file, ['multi:1.0'], ['linux/amd64']);
    expect(result.images[0]!.platforms).toEqual(['linux/amd64']);
    const names = (await entriesOf(file)).map((e) => e.name);
    expect(names).toContain(`blobs/sha256/${amd64.layer.slice(7)}`);
    expect(names).not.toContain(`blobs/sha256/${arm64.layer.slice(7)}`);
    const storage = join(dir, 'amd64-import');
    const imported = await importInto(storage, file);
    expect(imported.images).toEqual([
      { reference: 'docker.io/library/multi:1.0', digest: index, platforms: ['linux/amd64'] },
    ]);
  });
});

describe('import', () => {
  it('seeds an empty folder that serves both images with the upstreams gone (the CLI)', async () => {
    const storage = join(dir, 'imported');
    const configFile = join(dir, 'import.yaml');
    writeFileSync(
      configFile,
      `registries:\n  docker.io: { url: "http://127.0.0.1:9" }\n  quay.io: { url: "http://127.0.0.1:9" }\nstorage: { path: "${storage}" }\n`,
    );
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'src/cli.ts', 'import', '--config', configFile, '--json', archive],
        {
          cwd: process.cwd(),
          env: { ...process.env, PULLCACHE_CONFIG: '' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      images: [{ reference: 'docker.io/library/multi:1.0' }, { reference: 'quay.io/team/tool:2.0' }],
      blobs: { added: 6, cached: 0 },
      manifests: 4,
    });

    // Upstreams nowhere: every byte comes from the imported cache.
    const proxy = await startProxy(
      {
        registries: { 'docker.io': { url: 'http://127.0.0.1:9' }, 'quay.io': { url: 'http://127.0.0.1:9' } },
      },
      { storage },
    );
    try {
      for (const [name, tag, blobs, accept] of [
        ['multi', '1.0', [amd64.config, amd64.layer, arm64.config, arm64.layer], OCI_INDEX],
        ['quay.io/team/tool', '2.0', [tool.config, tool.layer], OCI_MANIFEST],
      ] as const) {
        const manifest = await fetch(`${proxy.url}/v2/${name}/manifests/${tag}`, { headers: { accept } });
        expect(manifest.status).toBe(200);
        expect(sha256(Buffer.from(await manifest.arrayBuffer()))).toBe(
          name === 'multi' ? index : tool.manifest,
        );
        for (const digest of blobs) {
          const blob = await fetch(`${proxy.url}/v2/${name}/blobs/${digest}`);
          expect(blob.status).toBe(200);
          expect(sha256(Buffer.from(await blob.arrayBuffer()))).toBe(digest);
        }
      }
    } finally {
      await proxy.stop();
    }
    // Importing again adds nothing.
    const again = await importInto(storage, archive);
    expect(again.blobs).toEqual({ added: 0, cached: 6 });
  }, 30_000);

  /** A copy of the archive with one byte of `entryName`'s body changed, or cut short there. */
  async function damaged(entryName: string, how: 'flip' | 'truncate'): Promise<string> {
    const entry = (await entriesOf(archive)).find((e) => e.name === entryName)!;
    const bytes = readFileSync(archive);
    const file = join(dir, `damaged-${how}-${Math.random()}.tar`);
    if (how === 'flip') {
      bytes[entry.offset + 100]! ^= 0x01;
      writeFileSync(file, bytes);
    } else writeFileSync(file, bytes.subarray(0, entry.offset + 10));
    return file;
  }

  it.each([
    [
      'one byte changed in a layer',
      `blobs/sha256/${arm64.layer.slice(7)}`,
      'flip',
      /blob sha256:\w+ in the archive does not match its digest/,
    ],
    [
      'one byte changed in a manifest',
      `blobs/sha256/${tool.manifest.slice(7)}`,
      'flip',
      /does not match its digest or size/,
    ],
    ['cut short inside a layer', `blobs/sha256/${tool.layer.slice(7)}`, 'truncate', /ends inside an entry/],
  ] as const)('refuses an archive with %s and imports nothing', async (_, entry, how, message) => {
    const storage = join(dir, `refused-${Math.random()}`);
    await expect(importInto(storage, await damaged(entry, how))).rejects.toThrow(message);
    expect(filesUnder(storage)).toEqual([]); // no blob, manifest, tag or temp file
  });

  it('refuses a name that is only a tag', async () => {
    const storage = join(dir, 'refused-names');
    const broken = join(dir, 'skopeo-like.tar');
    // Rewrite index.json to name the image by a bare tag, as `skopeo copy … oci-archive:FILE:1.0` does.
    const bytes = readFileSync(archive);
    const entry = (await entriesOf(archive)).find((e) => e.name === 'index.json')!;
    const text = bytes.subarray(entry.offset, entry.offset + entry.size).toString('utf8');
    const renamed = text.replaceAll('"docker.io/library/multi:1.0"', '"1.0"');
    bytes.write(renamed.padEnd(text.length, ' '), entry.offset, 'utf8');
    writeFileSync(broken, bytes);
    await expect(importInto(storage, broken)).rejects.toBeInstanceOf(ImportError);
    await expect(importInto(storage, broken)).rejects.toThrow(/without a tag or digest/);
    expect(existsSync(join(storage, 'blobs'))).toBe(false);
  });

  it('puts names without a registry under --registry', async () => {
    const bytes = readFileSync(archive);
    const entry = (await entriesOf(archive)).find((e) => e.name === 'index.json')!;
    const text = bytes.subarray(entry.offset, entry.offset + entry.size).toString('utf8');
    const renamed = text.replaceAll('"quay.io/team/tool:2.0"', '"team/tool:2.0"');
    bytes.write(renamed.padEnd(text.length, ' '), entry.offset, 'utf8');
    const file = join(dir, 'short-names.tar');
    writeFileSync(file, bytes);
    const storage = join(dir, 'short-names');
    const result = await importInto(storage, file, 'quay.io');
    expect(result.images.map((i) => i.reference)).toEqual([
      'docker.io/library/multi:1.0',
      'quay.io/team/tool:2.0',
    ]);
    expect(existsSync(join(storage, 'tags', 'quay.io', 'team', 'tool', '_tags', '2.0.json'))).toBe(true);
  });
});
