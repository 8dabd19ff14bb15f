/**
 * The peer client against a node:http peer on loopback: signed requests, blob parts with and without
 * Range, a manifest checked against its digest, and every way a peer can fail as a PeerError.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Route } from '../routing.js';
import { PEER_AUTH_HEADER, verifyPeerRequest } from './peer-auth.js';
import { createPeerClient, type PeerClient, PeerError } from './peer-client.js';
import { peerBlobTarget, peerManifestTarget } from './peer-paths.js';

const SECRET = 'a-cluster-secret-of-at-least-32-chars';
const SELF = '127.0.0.1:5999';
const ROUTE: Route = {
  registry: 'docker.io',
  repository: 'library/demo',
  upstream: { url: 'https://registry-1.docker.io' },
  via: 'ns',
};
const BLOB = Buffer.from('0123456789'.repeat(10));
const DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;
const MANIFEST = Buffer.from('{"schemaVersion":2}');
const MANIFEST_DIGEST = `sha256:${createHash('sha256').update(MANIFEST).digest('hex')}`;

/** What the peer does with the next request. */
type Behaviour =
  | 'serve'
  | 'silent'
  | 'processing-then-serve'
  | 'error-404'
  | 'no-length'
  | 'wrong-manifest'
  | 'bad-range';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('peer client', () => {
  let server: Server;
  let peer: string;
  let client: PeerClient;
  let behaviour: Behaviour = 'serve';
  const seen: { method: string; url: string; range?: string; accept?: string; signedBy?: string }[] = [];

  function handle(req: IncomingMessage, res: ServerResponse) {
    const check = verifyPeerRequest(req.headers[PEER_AUTH_HEADER] as string, req.method!, req.url!, {
      secret: SECRET,
    });
    seen.push({
      method: req.method!,
      url: req.url!,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(req.headers.accept ? { accept: req.headers.accept } : {}),
      ...(check.ok ? { signedBy: check.from } : {}),
    });
    if (behaviour === 'silent') return; // accepts, never answers
    if (behaviour === 'error-404') return void res.writeHead(404).end('{"errors":[]}');
    const serve = () => {
      if (req.url === peerManifestTarget(ROUTE, '1.0')) {
        const digest = behaviour === 'wrong-manifest' ? DIGEST : MANIFEST_DIGEST;
        res.writeHead(200, { 'content-type': 'application/json', 'docker-content-digest': digest });
        return void res.end(MANIFEST);
      }
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = range ? Number(range[1]) : 0;
      const headers: Record<string, string> =
        behaviour === 'no-length' ? {} : { 'content-length': String(BLOB.length - start) };
      if (range)
        headers['content-range'] =
          behaviour === 'bad-range' ? 'bytes 1-2/*' : `bytes ${start}-${BLOB.length - 1}/${BLOB.length}`;
      res.writeHead(range ? 206 : 200, headers);
      if (req.method === 'HEAD') return void res.end();
      if (behaviour === 'no-length') res.write(BLOB);
      else res.end(BLOB.subarray(start));
      if (behaviour === 'no-length') res.end();
    };
    if (behaviour !== 'processing-then-serve') return serve();
    // Heartbeats 50 ms apart for 3 s in all, three times the client's bound: only they keep it waiting.
    let beats = 0;
    const timer = setInterval(() => {
      res.writeProcessing();
      if (++beats === 60) {
        clearInterval(timer);
        serve();
      }
    }, 40);
  }

  beforeAll(async () => {
    server = createServer(handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    peer = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    client = createPeerClient({
      secret: SECRET,
      self: SELF,
      // A bound a loaded test machine does not miss by accident; maxWait well past the heartbeats.
      peerTimeout: 1_000,
      maxWait: 10_000,
      bodyTimeout: 10_000,
    });
  });
  afterAll(async () => {
    await client.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const next = (b: Behaviour) => {
    behaviour = b;
    seen.length = 0;
  };

  it('signs its requests as this member and reads a whole blob', async () => {
    next('serve');
    const part = await client.openBlob(peer, ROUTE, DIGEST, 0);
    expect(part.total).toBe(BLOB.length);
    expect(part.startsAt).toBe(0);
    expect(await readAll(part.stream)).toEqual(BLOB);
    expect(seen).toEqual([{ method: 'GET', url: peerBlobTarget(ROUTE, DIGEST), signedBy: SELF }]);
  });

  it('asks for the rest of a blob with Range and reads its Content-Range', async () => {
    next('serve');
    const part = await client.openBlob(peer, ROUTE, DIGEST, 40);
    expect(part).toMatchObject({ total: BLOB.length, startsAt: 40 });
    expect(await readAll(part.stream)).toEqual(BLOB.subarray(40));
    expect(seen[0]).toMatchObject({ range: 'bytes=40-', signedBy: SELF });
  });

  it('takes the size from a HEAD', async () => {
    next('serve');
    expect(await client.statBlob(peer, ROUTE, DIGEST)).toBe(BLOB.length);
    expect(seen[0]).toMatchObject({ method: 'HEAD', signedBy: SELF });
  });

  it('waits for a peer that keeps sending 102 Processing past the bound', { timeout: 15_000 }, async () => {
    next('processing-then-serve');
    const part = await client.openBlob(peer, ROUTE, DIGEST, 0);
    expect(await readAll(part.stream)).toEqual(BLOB);
  });

  it('gives up on a peer that sends nothing within peerTimeout: timeout', async () => {
    next('silent');
    const error = await client.openBlob(peer, ROUTE, DIGEST, 0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PeerError);
    expect(error).toMatchObject({ peer, reason: 'timeout' });
  });

  it('reports a peer that refuses the connection: unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const gone = `127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const error = await client.openBlob(gone, ROUTE, DIGEST, 0).catch((e: unknown) => e);
    expect(error).toMatchObject({ peer: gone, reason: 'unreachable' });
  });

  it('reports an error answer with its status: answer', async () => {
    next('error-404');
    const error = await client.openBlob(peer, ROUTE, DIGEST, 0).catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'answer', status: 404 });
  });

  it('refuses a blob answer without a length, or with an unusable Content-Range: invalid', async () => {
    next('no-length');
    expect(await client.openBlob(peer, ROUTE, DIGEST, 0).catch((e: unknown) => e)).toMatchObject({
      reason: 'invalid',
    });
    next('bad-range');
    expect(await client.openBlob(peer, ROUTE, DIGEST, 10).catch((e: unknown) => e)).toMatchObject({
      reason: 'invalid',
    });
  });

  it("gets a tag's manifest with the client's Accept, checked against the digest the peer names", async () => {
    next('serve');
    const manifest = await client.getManifest(peer, ROUTE, '1.0', 'application/json');
    expect(manifest).toEqual({
      mediaType: 'application/json',
      digest: MANIFEST_DIGEST,
      size: MANIFEST.length,
      bytes: MANIFEST,
    });
    expect(seen[0]).toMatchObject({ url: peerManifestTarget(ROUTE, '1.0'), accept: 'application/json' });
    next('wrong-manifest');
    const error = await client.getManifest(peer, ROUTE, '1.0', undefined).catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'invalid' });
    expect((error as Error).message).toContain(`not ${DIGEST}`);
  });
});
