/**
 * Full, unwritable and broken disks (tmpfs mounts the tests make themselves, as root): a blob that
 * cannot be stored passes through to its clients from one upstream GET, memory bounded; eviction
 * makes room first when `maxSize` allows it; manifests are answered from the upstream bytes; a
 * cached file that cannot be read is a 503 and a logged error, never a re-download; and `serve`
 * refuses a storage folder it cannot use.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BlobDownload } from '../../src/pull/blob-download.js';
import { createBlobUpstream } from '../support/blob-upstream.js';
import { OCI_MANIFEST, RegistryContent, registryHandlers } from '../support/fake-registry.js';
import { firstError } from '../support/http-client.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { captureLogs, settled, startProxy, type TestProxy } from '../support/proxy.js';
import { blobFile, bodyDigest, manifestFile, sha256Of, tempFilesUnder } from '../support/storage.js';
import { fillUp, mountTmpfs } from '../support/tmpfs.js';

const MiB = 1024 * 1024;
const upstream = createBlobUpstream();
const content = new RegistryContent();
let registry: LoopbackServer;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  registry = await startLoopback(upstream.handler, ...registryHandlers(content, { auth: { kind: 'none' } }));
});
afterAll(() => registry.close());
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A proxy whose storage is on a fresh tmpfs of `sizeMiB`. */
async function proxyOnTmpfs(sizeMiB: number, config: Record<string, unknown> = {}) {
  const disk = mountTmpfs({ sizeMiB });
  cleanups.push(() => disk.unmount());
  const logs = captureLogs();
  const downloads: BlobDownload[] = [];
  const proxy = await startProxy(
    { registries: { 'docker.io': { url: registry.url } }, ...config },
    { storage: join(disk.path, 'cache'), logger: logs.logger, onDownload: (d) => downloads.push(d) },
  );
  cleanups.push(() => proxy.close());
  return { proxy, disk, logs, downloads };
}

const blobUrl = (proxy: TestProxy, digest: string) => `${proxy.url}/v2/library/big/blobs/${digest}`;

describe('a disk too small for the blob (ENOSPC)', () => {
  it('passes a 50 MiB blob through a 20 MiB disk: every client gets it whole from one upstream GET, nothing is stored', async () => {
    const { proxy, logs, downloads } = await proxyOnTmpfs(20);
    const digest = upstream.add(50 * MiB);
    const bodies = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const response = await fetch(blobUrl(proxy, digest));
        expect(response.status).toBe(200);
        expect(response.headers.get('content-length')).toBe(String(50 * MiB));
        return bodyDigest(response);
      }),
    );
    expect(bodies).toEqual(Array(3).fill({ digest, bytes: 50 * MiB }));
    await settled(proxy.url);
    expect(upstream.gets(digest)).toBe(1); // the local write error was not retried against the upstream
    expect(existsSync(blobFile(proxy.storage, digest))).toBe(false);
    expect(tempFilesUnder(proxy.storage)).toEqual([]);
    // Memory stayed bounded: a window of a few socket chunks, not the 30 MiB that did not fit.
    expect(downloads).toHaveLength(1);
    expect(downloads[0]!.storing).toBe(false);
    expect(downloads[0]!.peakBuffered).toBeGreaterThan(0);
    expect(downloads[0]!.peakBuffered).toBeLessThan(4 * MiB);
    const warning = logs.lines().find((l) => String(l.msg).startsWith('cannot store blob'));
    expect(warning).toMatchObject({ level: 40, digest, reason: 'ENOSPC' });
  });

  it('evicts older content first when maxSize is set, and then stores the blob', async () => {
    // maxSize above the disk size: only the full disk, not the limit, makes room here.
    const { proxy, downloads } = await proxyOnTmpfs(20, { storage: { maxSize: '1GiB' } });
    const [older, newer, big] = [upstream.add(6 * MiB), upstream.add(6 * MiB), upstream.add(12 * MiB)];
    for (const digest of [older, newer]) {
      expect((await bodyDigest(await fetch(blobUrl(proxy, digest)))).digest).toBe(digest);
      await settled(proxy.url);
    }
    expect((await bodyDigest(await fetch(blobUrl(proxy, big)))).digest).toBe(big);
    await settled(proxy.url);
    expect(upstream.gets(big)).toBe(1);
    expect(downloads.at(-1)!.stored).toBe(true);
    expect(sha256Of(await readBlob(proxy, big))).toBe(big);
    expect(existsSync(blobFile(proxy.storage, older))).toBe(false); // least recently used went first
    expect(existsSync(blobFile(proxy.storage, newer))).toBe(true);
    expect(tempFilesUnder(proxy.storage)).toEqual([]);
  });
});

describe('a disk 100% full', () => {
  it('answers manifest pulls with the upstream bytes, by tag and by digest', async () => {
    const { proxy, disk, logs } = await proxyOnTmpfs(4);
    const image = content.addImage('library/full', '1.0');
    fillUp(disk.path);
    const byTag = await fetch(`${proxy.url}/v2/library/full/manifests/1.0`, {
      headers: { accept: OCI_MANIFEST },
    });
    expect(byTag.status).toBe(200);
    const bytes = Buffer.from(await byTag.arrayBuffer());
    expect(bytes.equals(content.manifests.get(image.manifest)!.bytes)).toBe(true);
    expect(byTag.headers.get('docker-content-digest')).toBe(image.manifest);
    const byDigest = await fetch(`${proxy.url}/v2/library/full/manifests/${image.manifest}`);
    expect(byDigest.status).toBe(200);
    expect(sha256Of(await byDigest.arrayBuffer())).toBe(image.manifest);
    expect(existsSync(manifestFile(proxy.storage, image.manifest))).toBe(false);
    // The served manifest prefetches its layers; on the full disk they leave no temp file either.
    await settled(proxy.url);
    expect(tempFilesUnder(proxy.storage)).toEqual([]);
    expect(
      logs.lines().some((l) => l.level === 40 && String(l.msg).startsWith('cannot store manifest')),
    ).toBe(true);
  });

  it('passes a blob through from its first byte', async () => {
    const { proxy, disk } = await proxyOnTmpfs(4);
    const digest = upstream.add(8 * MiB);
    fillUp(disk.path);
    expect(await bodyDigest(await fetch(blobUrl(proxy, digest)))).toEqual({ digest, bytes: 8 * MiB });
    await settled(proxy.url);
    expect(upstream.gets(digest)).toBe(1);
    expect(existsSync(blobFile(proxy.storage, digest))).toBe(false);
    expect(tempFilesUnder(proxy.storage)).toEqual([]);
  });
});

describe('a cached file that cannot be read', () => {
  it('is a 503 with a clear message and a logged error, not a miss: no upstream request', async () => {
    const { proxy, logs } = await proxyOnTmpfs(16);
    const digest = upstream.add(MiB);
    expect((await bodyDigest(await fetch(blobUrl(proxy, digest)))).digest).toBe(digest);
    await settled(proxy.url);
    // A directory where the file was: reading it fails with EISDIR (root reads through chmod 000).
    const file = blobFile(proxy.storage, digest);
    rmSync(file);
    mkdirSync(file);
    for (const method of ['GET', 'HEAD']) {
      const response = await fetch(blobUrl(proxy, digest), { method });
      expect(response.status).toBe(503);
      if (method === 'GET') {
        const error = await firstError(response);
        expect(error.code).toBe('UNAVAILABLE');
        expect(error.message).toBe(
          `cache storage error: cannot read blob ${digest}: EISDIR: not a regular file`,
        );
      }
    }
    expect(upstream.gets(digest)).toBe(1);
    const logged = logs.lines().filter((l) => l.msg === 'cache storage error');
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatchObject({ level: 50, digest, code: 'EISDIR' });
  });

  it('is a 503 for a manifest too, with no upstream request', async () => {
    const { proxy } = await proxyOnTmpfs(16);
    const image = content.addImage('library/broken', '1.0');
    const url = `${proxy.url}/v2/library/broken/manifests/${image.manifest}`;
    expect((await fetch(url)).status).toBe(200);
    const file = manifestFile(proxy.storage, image.manifest);
    rmSync(file);
    mkdirSync(file);
    const gets = registry.count('GET', `/v2/library/broken/manifests/${image.manifest}`);
    const response = await fetch(url);
    expect(response.status).toBe(503);
    expect((await firstError(response)).message).toMatch(
      new RegExp(`^cache storage error: cannot read manifest ${image.manifest}: EISDIR`),
    );
    expect(registry.count('GET', `/v2/library/broken/manifests/${image.manifest}`)).toBe(gets);
  });
});

describe('serve with a storage folder it cannot use', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pullcache-faults-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, 'listen: 127.0.0.1:0\nregistries:\n  docker.io: { url: http://127.0.0.1:9 }\n');

  function serve(storage: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', config, '--storage', storage],
        {
          cwd: process.cwd(),
          env: { ...process.env, PULLCACHE_CONFIG: '' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      // A serve that does start would run on: stop it with the test.
      cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it('exits 1 naming the folder when it cannot be created (a path under a regular file)', async () => {
    writeFileSync(join(dir, 'a-file'), 'not a folder');
    const storage = join(dir, 'a-file', 'cache');
    const run = await serve(storage);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`pullcache: storage.path: cannot use ${storage}: ENOTDIR: not a directory\n`);
    expect(run.stdout).not.toContain('listening');
  });

  it('exits 1 naming the folder when it is read-only', async () => {
    const disk = mountTmpfs({ sizeMiB: 1, readOnly: true });
    cleanups.push(() => disk.unmount());
    const run = await serve(disk.path);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `pullcache: storage.path: cannot use ${disk.path}: EROFS: read-only file system\n`,
    );
    expect(run.stdout).not.toContain('listening');
  });
});

async function readBlob(proxy: TestProxy, digest: string): Promise<Buffer> {
  const { readFile } = await import('node:fs/promises');
  return readFile(blobFile(proxy.storage, digest));
}
