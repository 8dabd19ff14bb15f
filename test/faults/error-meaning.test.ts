/**
 * Errors mean what they say: whatever a bad upstream does, its client gets an OCI error with a
 * 5xx status that blames the upstream (502) and says why, never a 500 "internal error"; and nothing
 * of what it sent is stored. Also: a registry URL given with its /v2 suffix is taken as its base.
 */

import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpResponse, http } from 'msw';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OCI_MANIFEST, RegistryContent, registryHandlers, sha256 } from '../support/fake-registry.js';
import { firstError } from '../support/http-client.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { settled, startProxy, type TestProxy } from '../support/proxy.js';
import { storedContent } from '../support/storage-files.js';

const content = new RegistryContent();

/** Bodies without Content-Length (chunked), as some registries and CDNs send them. */
const chunked = (chunks: Buffer[], fail?: Error) =>
  new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = chunks.shift();
      if (next) controller.enqueue(next);
      else if (fail) {
        await sleep(50); // the bytes before it are on the wire when the connection breaks
        controller.error(fail);
      } else controller.close();
    },
  });

// Blob digest → what the bad upstream does with it.
const badBlobs = new Map<string, () => Response>();
// Manifests served with no Content-Type, so the media type is the document's own `mediaType` field.
const untyped = new Map<string, Buffer>();

const badHandlers = [
  http.get('/v2/library/bad/blobs/:digest', ({ params }) => badBlobs.get(String(params.digest))?.()),
  http.all('/v2/library/bad/manifests/digest-header', ({ request }) => {
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST }));
    const headers = { 'content-type': OCI_MANIFEST, 'docker-content-digest': 'sha256:../../not-hex' };
    return new HttpResponse(request.method === 'HEAD' ? null : bytes, { headers });
  }),
  http.get('/v2/library/bad/manifests/:reference', ({ params }) => {
    const bytes = untyped.get(String(params.reference));
    if (!bytes) return undefined;
    return new HttpResponse(chunked([bytes]), { headers: { 'docker-content-digest': sha256(bytes) } });
  }),
];

let registry: LoopbackServer;
let proxy: TestProxy | undefined;

beforeAll(async () => {
  registry = await startLoopback(...badHandlers, ...registryHandlers(content, { auth: { kind: 'none' } }));
});
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});
afterAll(() => registry.close());

async function start(url = registry.url): Promise<TestProxy> {
  proxy = await startProxy({ registries: { 'docker.io': { url } } });
  return proxy;
}

const gets = (path: string) => registry.count('GET', path);

describe('a blob download without Content-Length', () => {
  it('whose bytes do not verify is a 502 with a message, and nothing is stored', async () => {
    const p = await start();
    const digest = sha256(randomBytes(1000)); // what the client asks for...
    badBlobs.set(digest, () => new HttpResponse(chunked([randomBytes(600), randomBytes(400)]))); // ...not what it gets

    const response = await fetch(`${p.url}/v2/library/bad/blobs/${digest}`);
    expect(response.status).toBe(502);
    const error = await firstError(response);
    expect(error.code).toBe('DIGEST_INVALID');
    expect(error.message).toContain('upstream registry docker.io sent a blob that does not verify');
    expect(error.message).toContain(digest);
    expect(gets(`/v2/library/bad/blobs/${digest}`)).toBe(1); // bad bytes are not fetched again

    await settled(p.url);
    expect(storedContent(p.storage)).toMatchObject({ blobs: [], temps: [] });
  });

  it('whose connection keeps breaking is a 502 naming the failure after the resumes, nothing stored', async () => {
    const p = await start();
    const digest = sha256(randomBytes(1000));
    badBlobs.set(
      digest,
      () => new HttpResponse(chunked([randomBytes(100)], new Error('connection dropped'))),
    );

    const response = await fetch(`${p.url}/v2/library/bad/blobs/${digest}`);
    expect(response.status).toBe(502);
    const error = await firstError(response);
    expect(error.code).toBe('UNAVAILABLE');
    expect(error.message).toMatch(/^transfer from upstream registry docker\.io failed: \S/);
    expect(gets(`/v2/library/bad/blobs/${digest}`)).toBe(4); // the first request and three resumes

    await settled(p.url);
    expect(storedContent(p.storage)).toMatchObject({ blobs: [], temps: [] });
  });
});

describe('an upstream manifest whose media type has a line break', () => {
  const document = (mediaType: string) =>
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, config: {}, layers: [] }));

  it.each([
    ['by tag', 'newline', `${OCI_MANIFEST}\nX-Injected: yes`],
    ['by digest', 'carriage-return', `${OCI_MANIFEST}\r\nX-Injected: yes`],
  ])('is refused %s (a 502), and nothing is stored', async (how, tag, mediaType) => {
    const p = await start();
    const bytes = document(mediaType);
    const digest = sha256(bytes);
    untyped.set(tag, bytes);
    untyped.set(digest, bytes);
    const reference = how === 'by tag' ? tag : digest;

    const response = await fetch(`${p.url}/v2/library/bad/manifests/${reference}`);
    expect(response.status).toBe(502);
    const error = await firstError(response);
    expect(error.code).toBe('MANIFEST_INVALID');
    expect(error.message).toContain('sent a manifest media type that is not a valid header value');
    expect(gets(`/v2/library/bad/manifests/${reference}`)).toBe(1);
    expect(storedContent(p.storage)).toMatchObject({ manifests: [], tags: [], temps: [] });
  });

  it('in its Content-Type header is a 502 saying the answer was not HTTP, and nothing is stored', async () => {
    // No HTTP library sends such a header: a raw socket does.
    const sockets = new Set<Socket>();
    const raw: Server = createServer((socket) => {
      sockets.add(socket);
      socket.once('data', () =>
        socket.end(
          `HTTP/1.1 200 OK\r\nContent-Type: ${OCI_MANIFEST}\nX-Injected: yes\r\nContent-Length: 2\r\n\r\n{}`,
        ),
      );
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = raw.address() as { port: number };
      const p = await start(`http://127.0.0.1:${port}`);
      const response = await fetch(`${p.url}/v2/library/bad/manifests/latest`);
      expect(response.status).toBe(502);
      const error = await firstError(response);
      expect(error.code).toBe('UNAVAILABLE');
      expect(error.message).toBe('upstream registry docker.io sent a response that is not valid HTTP');
      expect(storedContent(p.storage)).toMatchObject({ manifests: [], tags: [], temps: [] });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => raw.close(resolve));
    }
  });
});

describe('an upstream Docker-Content-Digest header that is not a digest', () => {
  it.each(['GET', 'HEAD'])(
    'is a 502 blaming the upstream (%s), not a 400 blaming the client',
    async (method) => {
      const p = await start();
      const response = await fetch(`${p.url}/v2/library/bad/manifests/digest-header`, { method });
      expect(response.status).toBe(502);
      if (method === 'GET') {
        const error = await firstError(response);
        expect(error.code).toBe('MANIFEST_INVALID');
        expect(error.message).toBe(
          'upstream registry docker.io sent an invalid Docker-Content-Digest header: "sha256:../../not-hex"',
        );
      }
      expect(storedContent(p.storage)).toMatchObject({ manifests: [], tags: [], temps: [] });
    },
  );
});

describe('a registry url ending in /v2', () => {
  it.each(['/v2', '/v2/'])(
    '(%s) is the registry base: requests go to /v2/..., not /v2/v2/...',
    async (suffix) => {
      const image = content.addImage(`library/suffix${suffix.length}`, '1.0');
      const p = await start(`${registry.url}${suffix}`);
      const response = await fetch(`${p.url}/v2/library/suffix${suffix.length}/manifests/1.0`);
      expect(response.status).toBe(200);
      expect(response.headers.get('docker-content-digest')).toBe(image.manifest);
      expect(gets(`/v2/library/suffix${suffix.length}/manifests/1.0`)).toBe(1);
      expect(registry.requests.filter((r) => r.path.startsWith('/v2/v2/'))).toEqual([]);
    },
  );
});
