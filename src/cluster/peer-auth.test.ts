/** The peer endpoint's guard: only requests signed with the cluster secret, in time, reach a handler. */
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import fc from 'fast-check';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryError } from '../errors.js';
import type { Env } from '../http/env.js';
import {
  createPeerSigner,
  PEER_AUTH_HEADER,
  PEER_PATH_PREFIX,
  peerAuth,
  verifyPeerRequest,
} from './peer-auth.js';

const SECRET = 'a-cluster-secret-of-at-least-32-chars';
const SELF = '10.0.0.11:5000';
const NOW = Date.UTC(2026, 11, 2, 8, 0, 0);
const BLOB = `${PEER_PATH_PREFIX}/blobs/sha256:${'ab'.repeat(32)}`;

/** The guard on the prefix, a peer route that counts its calls, and the app's OCI error boundary. */
function peerApp(now = () => NOW) {
  const app = new Hono<Env>();
  const served: string[] = [];
  app.use(`${PEER_PATH_PREFIX}/*`, peerAuth({ secret: SECRET, now }));
  app.get(`${PEER_PATH_PREFIX}/blobs/:digest`, (c) => {
    served.push(c.req.param('digest'));
    return c.body('blob bytes');
  });
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.onError((error, c) => {
    if (!(error instanceof RegistryError)) throw error;
    return c.json(error.toBody(), error.status as 401, error.headers);
  });
  return { app, served };
}

const signer = (secret = SECRET, now = () => NOW, self = SELF) => createPeerSigner({ secret, self, now });

async function refused(response: Response, status: number, code: string, reason: string) {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await response.json()) as { errors: { code: string; message: string; detail: unknown }[] };
  expect(body.errors).toHaveLength(1);
  expect(body.errors[0]).toMatchObject({ code, detail: { reason } });
  return body.errors[0]!;
}

describe('peerAuth', () => {
  it('lets a request signed with the secret through, for GET and HEAD', async () => {
    const { app, served } = peerApp();
    const get = await app.request(BLOB, { headers: signer()('GET', BLOB) });
    expect(get.status).toBe(200);
    expect(await get.text()).toBe('blob bytes');
    const head = await app.request(BLOB, { method: 'HEAD', headers: signer()('HEAD', BLOB) });
    expect(head.status).toBe(200);
    expect(served).toEqual([`sha256:${'ab'.repeat(32)}`, `sha256:${'ab'.repeat(32)}`]);
  });

  it('answers 401 UNAUTHORIZED with a challenge when there is no proof, and serves nothing', async () => {
    const { app, served } = peerApp();
    const response = await app.request(BLOB);
    expect(response.headers.get('www-authenticate')).toBe('PullcachePeer realm="pullcache-peer"');
    await refused(response, 401, 'UNAUTHORIZED', 'missing');
    expect(served).toEqual([]);
  });

  it.each([
    'garbage',
    `t=${NOW / 1000},from=${SELF}`,
    `t=${NOW / 1000},from=${SELF},sig=${'0'.repeat(63)}`,
    `t=${NOW / 1000},from=${SELF},sig=${'G'.repeat(64)}`,
    `t=-5,from=${SELF},sig=${'0'.repeat(64)}`,
  ])('answers 401 for a malformed proof %j', async (header) => {
    const { app, served } = peerApp();
    await refused(
      await app.request(BLOB, { headers: { [PEER_AUTH_HEADER]: header } }),
      401,
      'UNAUTHORIZED',
      'malformed',
    );
    expect(served).toEqual([]);
  });

  it("does not take a /v2 client's Basic or Bearer credentials, not even the secret as a token", async () => {
    const { app, served } = peerApp();
    for (const authorization of [
      `Basic ${Buffer.from('user:password').toString('base64')}`,
      'Bearer a-client-token-of-32-characters!',
      `Bearer ${SECRET}`,
      `Basic ${Buffer.from(`peer:${SECRET}`).toString('base64')}`,
    ]) {
      await refused(await app.request(BLOB, { headers: { authorization } }), 401, 'UNAUTHORIZED', 'missing');
    }
    // The secret in the peer header itself is no signature either.
    await refused(
      await app.request(BLOB, { headers: { [PEER_AUTH_HEADER]: SECRET } }),
      401,
      'UNAUTHORIZED',
      'malformed',
    );
    expect(served).toEqual([]);
  });

  it('answers 403 DENIED when signed with another secret, for another path or method, or by someone else', async () => {
    const { app, served } = peerApp();
    const other = `${PEER_PATH_PREFIX}/blobs/sha256:${'cd'.repeat(32)}`;
    const cases: Record<string, string>[] = [
      signer('another-secret-of-at-least-32-characters')('GET', BLOB),
      signer()('GET', other), // replayed for another digest
      signer()('DELETE', BLOB),
      signer()('GET', `${BLOB}?ns=docker.io`),
      // The sender named in the header is signed too.
      { [PEER_AUTH_HEADER]: signer()('GET', BLOB)[PEER_AUTH_HEADER]!.replace(SELF, '10.0.0.12:5000') },
    ];
    for (const headers of cases) {
      const error = await refused(await app.request(BLOB, { headers }), 403, 'DENIED', 'signature');
      expect(error.message).toContain('cluster.secret');
      expect(JSON.stringify(error)).not.toContain(SECRET);
    }
    expect(served).toEqual([]);
  });

  it('answers 403 for a signature older or newer than the allowed skew, and takes one just within it', async () => {
    const { app, served } = peerApp();
    for (const offset of [-61_000, 61_000, -3_600_000]) {
      const headers = signer(SECRET, () => NOW + offset)('GET', BLOB);
      const error = await refused(await app.request(BLOB, { headers }), 403, 'DENIED', 'clock');
      expect(error.message).toContain('clock skew');
    }
    expect(served).toEqual([]);
    for (const offset of [-59_000, 59_000]) {
      const headers = signer(SECRET, () => NOW + offset)('GET', BLOB);
      expect((await app.request(BLOB, { headers })).status).toBe(200);
    }
    expect(served).toHaveLength(2);
  });

  it('guards only the peer prefix', async () => {
    const { app } = peerApp();
    expect((await app.request('/healthz')).status).toBe(200);
    await refused(await app.request(`${PEER_PATH_PREFIX}/anything/else`), 401, 'UNAUTHORIZED', 'missing');
    await refused(await app.request(PEER_PATH_PREFIX), 401, 'UNAUTHORIZED', 'missing');
  });
});

describe('peerAuth over a real socket', () => {
  let server: ReturnType<typeof serve>;
  let base: string;
  const { app, served } = peerApp(() => Date.now());

  beforeAll(async () => {
    await new Promise<void>((resolve) => {
      server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve());
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('checks the request target as sent: query included, percent-encoding not normalized', async () => {
    const sign = createPeerSigner({ secret: SECRET, self: SELF });
    const target = `${PEER_PATH_PREFIX}/blobs/sha256%3A${'ab'.repeat(32)}?ns=docker.io`;
    const ok = await fetch(`${base}${target}`, { headers: sign('GET', target) });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('blob bytes');
    // The same path written another way is another text: its signature does not carry over.
    const decoded = target.replace('%3A', ':');
    const other = await fetch(`${base}${decoded}`, { headers: sign('GET', target) });
    await refused(other, 403, 'DENIED', 'signature');
    expect(served).toEqual([`sha256:${'ab'.repeat(32)}`]);
  });
});

describe('verifyPeerRequest', () => {
  const field = fc.stringMatching(/^[!-~]{1,60}$/);
  it('verifies what the signer signed, and nothing with one field changed', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('GET', 'HEAD', 'POST'),
        field.map((p) => `/${p}`),
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.constantFrom('10.0.0.1:5000', '[fd00::1]:5000'),
        field.map((p) => `/${p}`),
        (method, target, time, from, otherTarget) => {
          const header = createPeerSigner({ secret: SECRET, self: from, now: () => time })(method, target)[
            PEER_AUTH_HEADER
          ];
          const options = { secret: SECRET, now: () => time };
          expect(verifyPeerRequest(header, method, target, options)).toEqual({ ok: true, from });
          expect(verifyPeerRequest(header, method.toLowerCase(), target, options)).toEqual({
            ok: true,
            from,
          });
          if (otherTarget !== target) {
            expect(verifyPeerRequest(header, method, otherTarget, options)).toEqual({
              ok: false,
              reason: 'signature',
            });
          }
          expect(verifyPeerRequest(header, method, target, { ...options, secret: `${SECRET}x` })).toEqual({
            ok: false,
            reason: 'signature',
          });
        },
      ),
    );
  });
});
