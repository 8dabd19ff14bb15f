/**
 * `pullcache warm`: fetches the chosen platforms' manifests and blobs into the cache through the
 * serving code path, reports JSON lines when not on a terminal, and names each reference that failed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { createRuntime } from '../../src/runtime.js';
import { hostPlatform, type WarmReport, warmImage } from '../../src/warm.js';
import { OCI_INDEX, OCI_MANIFEST, RegistryContent, registryHandlers } from '../support/fake-registry.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { startProxy } from '../support/proxy.js';

const content = new RegistryContent();
const amd64 = content.addImage('library/multi', 'amd64-only', 'amd64 layer bytes');
const arm64 = content.addImage('library/multi', 'arm64-only', 'arm64 layer bytes, a few more');
const index = content.addManifest(
  'library/multi',
  OCI_INDEX,
  {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      {
        mediaType: OCI_MANIFEST,
        digest: amd64.manifest,
        size: content.manifests.get(amd64.manifest)!.bytes.length,
        platform: { os: 'linux', architecture: 'amd64' },
      },
      {
        mediaType: OCI_MANIFEST,
        digest: arm64.manifest,
        size: content.manifests.get(arm64.manifest)!.bytes.length,
        platform: { os: 'linux', architecture: 'arm64' },
      },
    ],
  },
  '1.0',
);

let registry: LoopbackServer;
const folders: string[] = [];
beforeAll(async () => {
  registry = await startLoopback(...registryHandlers(content, { auth: { kind: 'none' } }));
});
afterAll(async () => {
  await registry.close();
  for (const f of folders) rmSync(f, { recursive: true, force: true });
});

function newStorage(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pullcache-warm-'));
  folders.push(dir);
  return dir;
}

async function warm(storage: string, reference: string, platforms: string[], allPlatforms = false) {
  const config = parseConfig(
    { registries: { 'docker.io': { url: registry.url } }, storage: { path: storage } },
    {},
  );
  const runtime = await createRuntime(config, pino({ level: 'silent' }));
  const events: WarmReport[] = [];
  try {
    const result = await warmImage(runtime.puller, config, reference, { platforms, allPlatforms }, (e) =>
      events.push(e),
    );
    return { result, events };
  } finally {
    await runtime.close();
  }
}

describe('warmImage', () => {
  it('fetches the index, the asked platform and its blobs, and nothing of other platforms', async () => {
    registry.requests.length = 0;
    const { result, events } = await warm(newStorage(), 'multi:1.0', ['linux/arm64']);
    expect(result.blobs).toBe(2);
    const paths = registry.requests.map((r) => r.path);
    expect(paths).toContain(`/v2/library/multi/manifests/${arm64.manifest}`);
    expect(paths).toContain(`/v2/library/multi/blobs/${arm64.layer}`);
    expect(paths).toContain(`/v2/library/multi/blobs/${arm64.config}`);
    expect(paths.some((p) => p.includes(amd64.layer) || p.includes(amd64.manifest))).toBe(false);
    expect(events.filter((e) => e.event === 'blob').every((e) => e.cache === 'miss')).toBe(true);
    expect(events.find((e) => e.event === 'manifest')?.digest).toBe(index);
  });

  it("takes every platform with allPlatforms, and this machine's by default", async () => {
    const all = await warm(newStorage(), 'docker.io/library/multi:1.0', [], true);
    expect(all.result.blobs).toBe(4);
    const host = await warm(newStorage(), 'multi:1.0', []);
    const layer = hostPlatform() === 'linux/arm64' ? arm64.layer : amd64.layer;
    expect(host.events.some((e) => e.event === 'blob' && e.digest === layer)).toBe(true);
  });

  it('leaves a cache that serves the image with no upstream traffic', async () => {
    const storage = newStorage();
    await warm(storage, 'multi:1.0', ['linux/amd64']);
    registry.requests.length = 0;
    const proxy = await startProxy({ registries: { 'docker.io': { url: registry.url } } }, { storage });
    try {
      for (const path of [
        `manifests/1.0`,
        `manifests/${amd64.manifest}`,
        `blobs/${amd64.layer}`,
        `blobs/${amd64.config}`,
      ]) {
        const response = await fetch(`${proxy.url}/v2/multi/${path}`);
        expect(response.status).toBe(200);
        await response.arrayBuffer();
      }
      expect(registry.requests).toHaveLength(0);
    } finally {
      await proxy.close();
    }
  });

  it('fails clearly when no manifest matches the platform', async () => {
    await expect(warm(newStorage(), 'multi:1.0', ['linux/s390x'])).rejects.toThrow(
      /no manifest for linux\/s390x/,
    );
  });
});

describe('pullcache warm (command)', () => {
  it('prints JSON lines off a terminal and exits non-zero naming each reference that failed', async () => {
    const storage = newStorage();
    const configFile = join(storage, 'config.yaml');
    writeFileSync(
      configFile,
      `registries:\n  docker.io: { url: "${registry.url}" }\nstorage: { path: "${storage}/cache" }\n`,
    );
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli.ts',
        'warm',
        '--config',
        configFile,
        'multi:1.0',
        'nope:1.0',
        'BAD REF',
        '--platform',
        'linux/amd64',
      ],
      { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(1);
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as WarmReport);
    expect(lines.find((l) => l.event === 'done')).toMatchObject({ reference: 'multi:1.0', blobs: 2 });
    expect(lines.filter((l) => l.event === 'error').map((l) => l.reference)).toEqual(['nope:1.0', 'BAD REF']);
    expect(stderr).toContain('could not warm nope:1.0, BAD REF');
  }, 30_000);
});
