/**
 * Stopping and crashing lose nothing: a SIGTERM right after a blob verified still stores it (the
 * real CLI, a 100 MiB blob), a grace too short for the commit leaves no temp file; temp files of
 * dead writers are removed at start while those of live ones are kept; a commit that fails still
 * serves the clients that join after it, and the next pull is a clean retry.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { get } from 'node:http';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BlobDownload, DownloadDeps } from '../../src/pull/blob-download.js';
import { createBlobUpstream } from '../support/blob-upstream.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { captureLogs, settled, startProxy } from '../support/proxy.js';
import { blobFile, bodyDigest, tempFilesUnder } from '../support/storage.js';

const MiB = 1024 * 1024;
const upstream = createBlobUpstream();
let registry: LoopbackServer;
const dir = mkdtempSync(join(tmpdir(), 'pullcache-stop-'));
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  registry = await startLoopback(upstream.handler);
});
afterAll(async () => {
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** `pullcache serve` as a child process; resolves once it listens. */
async function serve(storage: string, extraConfig = '') {
  const config = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    config,
    `listen: 127.0.0.1:0\nregistries:\n  docker.io: { url: ${registry.url} }\n${extraConfig}`,
  );
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', config, '--storage', storage],
    { cwd: process.cwd(), env: { ...process.env, PULLCACHE_CONFIG: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  cleanups.push(() => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
  let stdout = '';
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      stdout += d;
      const listening = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string; address?: string })
        .find((l) => l.msg === 'listening');
      if (listening) resolve(listening.address!);
    });
    void exited.then(() => reject(new Error(`serve exited before listening: ${stdout}`)));
  });
  /** Resolves once the server's output contains `text`. */
  const said = (text: string) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (!stdout.includes(text)) return;
        child.stdout!.off('data', check);
        resolve();
      };
      child.stdout!.on('data', check);
      check();
    });
  return { child, url, exited, said, output: () => stdout };
}

describe('SIGTERM right after the upstream sent the last byte', () => {
  it.each([1, 2, 3])(
    'stores the verified 100 MiB blob before exiting, and leaves no temp file (try %i)',
    async () => {
      const storage = join(dir, `storage-${Math.random().toString(36).slice(2)}`);
      const digest = upstream.add(100 * MiB);
      const server = await serve(storage);
      const lastByte = upstream.lastByteSent();
      const response = await fetch(`${server.url}/v2/library/big/blobs/${digest}`);
      expect(response.status).toBe(200);
      const body = bodyDigest(response);
      await lastByte;
      server.child.kill('SIGTERM');
      expect(await body).toEqual({ digest, bytes: 100 * MiB });
      expect(await server.exited).toBe(0);
      expect(server.output()).toContain('"stopped"');
      expect(await fileDigest(blobFile(storage, digest))).toBe(digest);
      expect(tempFilesUnder(storage)).toEqual([]);
      expect(upstream.gets(digest)).toBe(1);
    },
    60_000,
  );

  /** A proxy whose first download holds its commit; an 8 MiB blob pulled through it in full. */
  async function pullWithHeldCommit() {
    const digest = upstream.add(8 * MiB);
    const commits: HeldCommit[] = [];
    const proxy = await startProxy(
      { registries: { 'docker.io': { url: registry.url } } },
      { onDownload: (d) => commits.push(holdCommit(d)) },
    );
    cleanups.push(() => proxy.close());
    const response = await fetch(`${proxy.url}/v2/library/big/blobs/${digest}`);
    expect(await bodyDigest(response)).toEqual({ digest, bytes: 8 * MiB });
    return { digest, commits, proxy };
  }

  it('waits for a commit in progress when the stop begins, and stores the blob', async () => {
    const { digest, commits, proxy } = await pullWithHeldCommit();
    await commits[0]!.started; // verified, and its commit (fsync + rename) is under way
    let stopped = false;
    const stopping = proxy.shutdown(30_000).then(() => (stopped = true));
    await settledTurns();
    expect(stopped).toBe(false); // the stop waits for the commit
    commits[0]!.release();
    await stopping;
    expect(tempFilesUnder(proxy.storage)).toEqual([]);
    expect(await fileDigest(blobFile(proxy.storage, digest))).toBe(digest);
  });

  it('removes the temp file of a commit that outlasts the grace, and stops on time', async () => {
    const { digest, commits, proxy } = await pullWithHeldCommit();
    await commits[0]!.started;
    await proxy.shutdown(200); // returns while the commit is still stuck (a dead disk's fsync)
    expect(tempFilesUnder(proxy.storage)).toEqual([]);
    commits[0]!.release();
    await commits[0]!.download.done;
    expect(existsSync(blobFile(proxy.storage, digest))).toBe(false);
    expect(tempFilesUnder(proxy.storage)).toEqual([]);
  });

  it('stops a download still receiving whose client went away, leaving no temp file', async () => {
    const storage = join(dir, `storage-${Math.random().toString(36).slice(2)}`);
    const digest = upstream.add(16 * MiB);
    const server = await serve(storage);
    const held = upstream.holdLastChunk();
    cleanups.push(() => held.release());
    // The client hangs up as soon as the answer starts (its socket closed): the download goes on
    // for the cache alone, and no connection keeps the stop waiting.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const request = get(`${server.url}/v2/library/big/blobs/${digest}`, (response) => {
        resolve(response.statusCode);
        request.destroy();
      });
      request.on('error', reject);
    });
    expect(status).toBe(200);
    await held.reached;
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(existsSync(blobFile(storage, digest))).toBe(false);
    expect(tempFilesUnder(storage)).toEqual([]);
  }, 60_000);

  it('with a grace too short for the download, stops it and leaves no temp file', async () => {
    const storage = join(dir, `storage-${Math.random().toString(36).slice(2)}`);
    const digest = upstream.add(100 * MiB);
    const server = await serve(storage, 'limits: { shutdownGrace: 1ms }\n');
    const held = upstream.holdLastChunk();
    cleanups.push(() => held.release());
    const response = await fetch(`${server.url}/v2/library/big/blobs/${digest}`);
    const body = bodyDigest(response).catch(() => 'broken'); // its connection is cut after 1 ms
    await held.reached;
    server.child.kill('SIGTERM');
    expect(await body).toBe('broken'); // never a complete-looking short body
    expect(await server.exited).toBe(0);
    expect(server.output()).toContain('shutdown grace over');
    expect(existsSync(blobFile(storage, digest))).toBe(false);
    expect(tempFilesUnder(storage)).toEqual([]);
  }, 60_000);
});

describe('temp files found at start', () => {
  it('are removed when their writer is gone, and kept while it may still be writing', async () => {
    const storage = join(dir, 'leftovers');
    const folder = join(storage, 'blobs', 'sha256', 'ab');
    const tags = join(storage, 'tags', 'docker.io', 'library', 'x', '_tags');
    const referrers = join(storage, 'referrers', 'docker.io', 'library', 'x', '_referrers');
    mkdirSync(folder, { recursive: true });
    mkdirSync(tags, { recursive: true });
    mkdirSync(referrers, { recursive: true });
    const dead = spawnSync('true').pid; // has exited (and been reaped): its pid is free
    const live = spawn('sleep', ['60'], { stdio: 'ignore' });
    cleanups.push(() => live.kill('SIGKILL'));
    const name = (host: string, pid: number, process = 'aaaaaaaa') =>
      `.tmp-abcdef0123456789-${host}-${pid}-${process}-0badf00d`;
    const files = {
      deadHere: join(folder, name(hostname(), dead)),
      deadTag: join(tags, name(hostname(), dead).replace('abcdef0123456789', 'tag')),
      deadReferrers: join(referrers, name(hostname(), dead).replace('abcdef0123456789', 'tag')),
      deadProbe: join(storage, name(hostname(), dead).replace('abcdef0123456789', 'ready')),
      // Our own pid, but another process (a container restarted with the same pid 1).
      previousSelf: join(folder, name(hostname(), process.pid)),
      liveHere: join(folder, name(hostname(), live.pid!)),
      otherHostYoung: join(folder, name('other-host-7', dead)),
      otherHostOld: join(folder, name('other-host-8', dead)),
    };
    for (const file of Object.values(files)) writeFileSync(file, 'partial');
    const old = new Date(Date.now() - 11 * 60_000);
    utimesSync(files.otherHostOld, old, old);

    const proxy = await startProxy({ registries: { 'docker.io': { url: registry.url } } }, { storage });
    cleanups.push(() => proxy.close());
    const left = Object.fromEntries(Object.entries(files).map(([k, path]) => [k, existsSync(path)]));
    expect(left).toEqual({
      deadHere: false,
      deadTag: false,
      deadReferrers: false,
      deadProbe: false,
      previousSelf: false,
      liveHere: true,
      otherHostYoung: true,
      otherHostOld: false,
    });
  });
});

describe('a commit that fails (a directory where the blob file goes)', () => {
  it('still serves a client joining after it, and the next pull after the download is a clean retry', async () => {
    const digest = upstream.add(32 * MiB);
    const logs = captureLogs();
    const downloads: BlobDownload[] = [];
    const proxy = await startProxy(
      { registries: { 'docker.io': { url: registry.url } } },
      { logger: logs.logger, onDownload: (d) => downloads.push(d) },
    );
    cleanups.push(() => proxy.close());
    const url = `${proxy.url}/v2/library/big/blobs/${digest}`;
    const target = blobFile(proxy.storage, digest);

    // The first client reads a little and stalls, so it is still attached when the commit fails.
    const first = await fetch(url);
    // The download has its temp file by now (the answer has started): block the rename into place.
    mkdirSync(join(target, 'in-the-way'), { recursive: true });
    const reader = first.body!.getReader();
    const firstHash = createHash('sha256');
    let firstBytes = 0;
    const readOn = async (chunks: number) => {
      for (let i = 0; i < chunks; i++) {
        const { done, value } = await reader.read();
        if (done) return;
        firstHash.update(value);
        firstBytes += value.length;
      }
    };
    await readOn(1);
    await downloads[0]!.done;
    expect(downloads[0]!.stored).toBe(false);
    expect(logs.lines().find((l) => l.msg === 'could not store a verified blob')).toMatchObject({
      level: 50,
      digest,
    });

    const joiner = await fetch(url);
    expect(joiner.status).toBe(200);
    expect(await bodyDigest(joiner)).toEqual({ digest, bytes: 32 * MiB });
    await readOn(Number.POSITIVE_INFINITY); // the stalled client gets the whole blob too
    expect({ digest: `sha256:${firstHash.digest('hex')}`, bytes: firstBytes }).toEqual({
      digest,
      bytes: 32 * MiB,
    });
    expect(upstream.gets(digest)).toBe(1);
    await settled(proxy.url);
    expect(tempFilesUnder(proxy.storage)).toEqual([]);

    // Once the way is clear, the next pull downloads again and stores the blob.
    rmSync(target, { recursive: true });
    const retry = await fetch(url);
    expect(retry.status).toBe(200);
    expect(await bodyDigest(retry)).toEqual({ digest, bytes: 32 * MiB });
    await settled(proxy.url);
    expect(upstream.gets(digest)).toBe(2);
    expect(await fileDigest(target)).toBe(digest);
    expect(tempFilesUnder(proxy.storage)).toEqual([]);
  });
});

interface HeldCommit {
  download: BlobDownload;
  /** Resolves when the download's commit has begun (and is held). */
  started: Promise<void>;
  release(): void;
}

/**
 * Holds a download's commit until release(), like an fsync on a slow disk. Reaches into the
 * download's store dependencies: the only way to stop a real commit half-way from a test.
 */
function holdCommit(download: BlobDownload): HeldCommit {
  const deps = (download as unknown as { deps: DownloadDeps }).deps;
  const create = deps.createWriter;
  let release!: () => void;
  let begun!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const started = new Promise<void>((resolve) => (begun = resolve));
  deps.createWriter = async () => {
    const writer = await create();
    if (writer === null) throw new Error('holdCommit: this download stores nothing');
    return {
      get size() {
        return writer.size;
      },
      write: (chunks) => writer.write(chunks),
      read: (buffer, length, position) => writer.read(buffer, length, position),
      abort: () => writer.abort(),
      release: () => writer.release(),
      async commit() {
        begun();
        await released;
        await writer.commit();
      },
    };
  };
  return { download, started, release };
}

/** Lets timers and I/O callbacks already due run (a stop that does not wait would be over by then). */
async function settledTurns(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 5));
}
