/** A download's sources: peers ranked above this replica first, each at most once, then the upstream. */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { BlobPart } from '../content.js';
import type { Route } from '../routing.js';
import type { RemoteRegistry } from '../upstream/remote-registry.js';
import type { Upstreams } from '../upstream/upstreams.js';
import { createBlobSources } from './blob-sources.js';
import type { Peers } from './peers.js';

const ROUTE: Route = {
  registry: 'docker.io',
  repository: 'library/demo',
  upstream: { url: 'https://registry-1.docker.io' },
  via: 'ns',
};
const DIGEST = `sha256:${'ab'.repeat(32)}`;

const part = (startsAt: number): BlobPart => ({ total: 100, startsAt, stream: Readable.from([]) });

/** Upstream and peers that record every call; peers in `failing` throw. */
function world(ranked: string[], failing: string[] = []) {
  const calls: string[] = [];
  const fellBack: string[] = [];
  const upstream = {
    openBlob: async (_repository: string, _digest: string, options?: { offset?: number }) => {
      calls.push(`upstream@${options?.offset ?? 0}`);
      return { ...part(options?.offset ?? 0), passed: {} };
    },
    statBlob: async () => {
      calls.push('upstream stat');
      return { size: 100, passed: {} };
    },
  } as unknown as RemoteRegistry;
  const upstreams: Upstreams = { get: () => upstream, status: () => [], close: async () => {} };
  const peers: Peers = {
    blobPeers: () => ranked,
    async openBlob(peer, _route, _digest, offset) {
      calls.push(`${peer}@${offset}`);
      if (failing.includes(peer)) throw new Error(`${peer} refused`);
      return part(offset);
    },
    async statBlob(peer) {
      calls.push(`${peer} stat`);
      if (failing.includes(peer)) throw new Error(`${peer} refused`);
      return 100;
    },
    manifestOwner: () => null,
    getManifest: async () => {
      throw new Error('not used');
    },
    fellBack: (peer, _kind, error) => fellBack.push(`${peer}: ${(error as Error).message}`),
    fetched: () => {},
  };
  return { calls, fellBack, sources: createBlobSources(upstreams, peers), upstreams };
}

describe('blob sources', () => {
  it('asks the owner first and reads from it', async () => {
    const { calls, sources } = world(['a:5000']);
    const source = sources.open(ROUTE, DIGEST, false);
    await source.fetch(0);
    expect(calls).toEqual(['a:5000@0']);
    expect(source.peer).toBe('a:5000');
    expect(source.firstFromPeer).toBe(true);
  });

  it('goes to the next peer, then the upstream, when peers refuse', async () => {
    const { calls, fellBack, sources } = world(['a:5000', 'b:5000'], ['a:5000', 'b:5000']);
    const source = sources.open(ROUTE, DIGEST, false);
    await source.fetch(0);
    expect(calls).toEqual(['a:5000@0', 'b:5000@0', 'upstream@0']);
    expect(fellBack).toEqual(['a:5000: a:5000 refused', 'b:5000: b:5000 refused']);
    expect(source.peer).toBeNull();
    expect(source.firstFromPeer).toBe(false);
  });

  it('resumes from the offset with the next source when a peer broke off, never the same peer again', async () => {
    const { calls, fellBack, sources } = world(['a:5000', 'b:5000']);
    const source = sources.open(ROUTE, DIGEST, false);
    await source.fetch(0);
    await source.fetch(40);
    await source.fetch(70);
    expect(calls).toEqual(['a:5000@0', 'b:5000@40', 'upstream@70']);
    expect(fellBack).toEqual(['a:5000: broke off mid-stream', 'b:5000: broke off mid-stream']);
    // The writer was created for the first answer, a peer's.
    expect(source.firstFromPeer).toBe(true);
  });

  it('asks at most two peers per download', async () => {
    const { calls, sources } = world(['a:5000', 'b:5000', 'c:5000'], ['a:5000', 'b:5000']);
    await sources.open(ROUTE, DIGEST, false).fetch(0);
    expect(calls).toEqual(['a:5000@0', 'b:5000@0', 'upstream@0']);
  });

  it('never asks a peer for a download that serves a peer (no forwarding, no loops)', async () => {
    const { calls, sources } = world(['a:5000']);
    const source = sources.open(ROUTE, DIGEST, true);
    await source.fetch(0);
    expect(calls).toEqual(['upstream@0']);
    expect(await sources.stat(ROUTE, DIGEST, true)).toEqual({ size: 100, passed: {} });
    expect(calls).toEqual(['upstream@0', 'upstream stat']);
  });

  it('asks the owner for the size, and the upstream when the owner cannot say', async () => {
    const up = world(['a:5000']);
    expect(await up.sources.stat(ROUTE, DIGEST, false)).toEqual({ size: 100, passed: {} });
    expect(up.calls).toEqual(['a:5000 stat']);
    const down = world(['a:5000'], ['a:5000']);
    await down.sources.stat(ROUTE, DIGEST, false);
    expect(down.calls).toEqual(['a:5000 stat', 'upstream stat']);
    expect(down.fellBack).toEqual(['a:5000: a:5000 refused']);
  });

  it('without a cluster reads from the upstream only', async () => {
    const { upstreams } = world([]);
    const source = createBlobSources(upstreams, undefined).open(ROUTE, DIGEST, false);
    expect((await source.fetch(0)).startsAt).toBe(0);
    expect(source.peer).toBeNull();
  });
});
