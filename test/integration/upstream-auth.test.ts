/**
 * Upstream auth and transport, through the real undici path over loopback: a Docker-Hub-like
 * registry (Bearer challenge, token realm on another port, 307 to a CDN port), a Basic-auth registry,
 * and registries that rate-limit, fail or cannot be reached.
 */
import { request as httpRequest } from 'node:http';
import { HttpResponse, http } from 'msw';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  cdnHandlers,
  OCI_MANIFEST,
  RegistryContent,
  registryHandlers,
  sha256,
  TokenIssuer,
} from '../support/fake-registry.js';
import { firstError, type OciErrorBody } from '../support/http-client.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { startProxy, type TestProxy } from '../support/proxy.js';

describe('a Docker-Hub-like upstream (Bearer token realm, blob redirects to a CDN)', () => {
  const content = new RegistryContent();
  const image = content.addImage('library/demo', '1.0', Buffer.alloc(300_000, 7));
  content.tag('library/demo', 'accept-test', image.manifest);
  const other = content.addImage('team/app', 'v2');
  const tokens = new TokenIssuer({
    expiresIn: 300,
    credentials: { username: 'hubuser', password: 's3cret-pw' },
  });
  let registry: LoopbackServer;
  let auth: LoopbackServer;
  let cdn: LoopbackServer;
  let proxy: TestProxy;

  beforeAll(async () => {
    auth = await startLoopback(...tokens.handlers());
    cdn = await startLoopback(...cdnHandlers(content));
    registry = await startLoopback();
    registry.use(
      ...registryHandlers(content, {
        auth: { kind: 'bearer', realm: `${auth.url}/token`, service: 'fake-hub', tokens },
        blobRedirect: cdn.url,
        headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '99;w=21600' },
      }),
    );
    proxy = await startProxy({
      registries: { 'docker.io': { url: registry.url, username: 'hubuser', password: 's3cret-pw' } },
    });
  });
  afterAll(async () => {
    await proxy.close();
    await Promise.all([registry.close(), auth.close(), cdn.close()]);
  });

  it('pulls a manifest by tag byte for byte, with its digest and media type', async () => {
    const response = await fetch(`${proxy.url}/v2/demo/manifests/1.0`, { headers: { accept: OCI_MANIFEST } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(response.headers.get('docker-content-digest')).toBe(image.manifest);
    expect(response.headers.get('ratelimit-remaining')).toBe('99;w=21600');
    const body = Buffer.from(await response.arrayBuffer());
    expect(body.equals(content.manifests.get(image.manifest)!.bytes)).toBe(true);
    expect(response.headers.get('content-length')).toBe(String(body.length));
  });

  it('fetches one token for many concurrent requests of one repository and sends it to the registry only', async () => {
    const before = auth.count('GET', '/token');
    const requests = Array.from({ length: 12 }, (_, i) =>
      i % 2 === 0
        ? fetch(`${proxy.url}/v2/team/app/manifests/v2`)
        : fetch(`${proxy.url}/v2/team/app/blobs/${other.layer}`),
    );
    const responses = await Promise.all(requests);
    for (const response of responses) {
      expect(response.status).toBe(200);
      await response.arrayBuffer();
    }
    expect(auth.count('GET', '/token') - before).toBe(1);
    const tokenRequest = auth.requests.findLast((r) => r.path === '/token')!;
    expect(new URLSearchParams(tokenRequest.search).get('scope')).toBe('repository:team/app:pull');
    expect(new URLSearchParams(tokenRequest.search).get('service')).toBe('fake-hub');
    expect(tokenRequest.headers.authorization).toBe(
      `Basic ${Buffer.from('hubuser:s3cret-pw').toString('base64')}`,
    );
    // And later requests reuse it: no further token fetch.
    await (await fetch(`${proxy.url}/v2/team/app/manifests/v2`)).arrayBuffer();
    expect(auth.count('GET', '/token') - before).toBe(1);
  });

  it('answers concurrent first requests of a fresh proxy: their 401s are no refusal of a token', async () => {
    // Before the first challenge is learned every request goes without a token and gets a 401; one
    // of them taking the others' 401 for a refused token used to abort the token fetch they shared.
    const fresh = await startProxy({
      registries: { 'docker.io': { url: registry.url, username: 'hubuser', password: 's3cret-pw' } },
    });
    try {
      const responses = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          i % 2 === 0
            ? fetch(`${fresh.url}/v2/team/app/manifests/v2`)
            : fetch(`${fresh.url}/v2/team/app/blobs/${other.layer}`),
        ),
      );
      for (const response of responses) {
        expect(response.status).toBe(200);
        await response.arrayBuffer();
      }
    } finally {
      await fresh.close();
    }
  });

  it('follows the 307 to the CDN for blobs without sending it the Authorization header', async () => {
    const response = await fetch(`${proxy.url}/v2/library/demo/blobs/${image.layer}`);
    expect(response.status).toBe(200);
    const body = Buffer.from(await response.arrayBuffer());
    expect(body.equals(content.blobs.get(image.layer)!)).toBe(true);
    expect(response.headers.get('docker-content-digest')).toBe(image.layer);
    expect(cdn.count('GET', `/blobs/${image.layer}`)).toBeGreaterThan(0);
    expect(cdn.requests.every((r) => r.headers.authorization === undefined)).toBe(true);
    // The registry itself got the token.
    const blobCall = registry.requests.findLast((r) => r.path.includes('/blobs/'))!;
    expect(blobCall.headers.authorization).toMatch(/^Bearer token-\d+$/);
  });

  it('passes a Range request through and answers 206', async () => {
    const response = await fetch(`${proxy.url}/v2/library/demo/blobs/${image.layer}`, {
      headers: { range: 'bytes=100-199' },
    });
    expect(response.status).toBe(206);
    expect(response.headers.get('content-range')).toBe(`bytes 100-199/300000`);
    expect(
      Buffer.from(await response.arrayBuffer()).equals(content.blobs.get(image.layer)!.subarray(100, 200)),
    ).toBe(true);
  });

  it('fetches a fresh token when the registry refuses a cached one', async () => {
    // Tag lists are never cached, so each one reaches the registry.
    await (await fetch(`${proxy.url}/v2/library/demo/tags/list`)).arrayBuffer();
    const before = auth.count('GET', '/token');
    tokens.revokeAll();
    const response = await fetch(`${proxy.url}/v2/library/demo/tags/list`);
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    expect(auth.count('GET', '/token') - before).toBe(1);
  });

  it('merges repeated Accept header lines into one upstream Accept header', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${proxy.url}/v2/library/demo/manifests/accept-test`, {
        method: 'HEAD',
        headers: {
          accept: [OCI_MANIFEST, 'application/vnd.docker.distribution.manifest.v2+json', OCI_MANIFEST],
        },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(200);
    const seen = registry.requests.findLast((r) => r.path.endsWith('/manifests/accept-test'))!;
    expect(seen.headers.accept).toBe(`${OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json`);
  });

  it('answers an unknown manifest with the upstream 404 and its OCI error body', async () => {
    const response = await fetch(`${proxy.url}/v2/library/demo/manifests/nope`);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }],
    });
  });

  it('keeps credentials and tokens out of error bodies when the token endpoint refuses them', async () => {
    const badTokens = new TokenIssuer({ credentials: { username: 'x', password: 'other' } });
    const badAuth = await startLoopback(...badTokens.handlers());
    const badRegistry = await startLoopback(
      ...registryHandlers(content, {
        auth: { kind: 'bearer', realm: `${badAuth.url}/token`, service: 's', tokens: badTokens },
      }),
    );
    const badProxy = await startProxy({
      registries: { 'docker.io': { url: badRegistry.url, username: 'hubuser', password: 's3cret-pw' } },
    });
    try {
      const response = await fetch(`${badProxy.url}/v2/library/demo/manifests/1.0`);
      expect(response.status).toBe(401);
      const text = await response.text();
      expect((JSON.parse(text) as OciErrorBody).errors[0]!.code).toBe('UNAUTHORIZED');
      expect(text).not.toContain('s3cret-pw');
      expect(text).not.toContain(Buffer.from('hubuser:s3cret-pw').toString('base64'));
    } finally {
      await badProxy.close();
      await Promise.all([badAuth.close(), badRegistry.close()]);
    }
  });
});

describe('an upstream that redirects every request to another registry (registry.k8s.io → Artifact Registry)', () => {
  const artifactContent = new RegistryContent();
  const image = artifactContent.addImage('k8s-artifacts-prod/images/pause', '3.9');
  const artifactTokens = new TokenIssuer({ expiresIn: 300 });
  let front: LoopbackServer;
  let artifact: LoopbackServer;
  let realm: LoopbackServer;
  let proxy: TestProxy;

  beforeAll(async () => {
    realm = await startLoopback(...artifactTokens.handlers());
    artifact = await startLoopback(
      ...registryHandlers(artifactContent, {
        auth: { kind: 'bearer', realm: `${realm.url}/token`, service: 'artifact', tokens: artifactTokens },
      }),
    );
    front = await startLoopback(
      http.all('/v2/*', ({ request }) => {
        const path = new URL(request.url).pathname.replace(/^\/v2\//, '/v2/k8s-artifacts-prod/images/');
        return new HttpResponse(null, { status: 307, headers: { location: `${artifact.url}${path}` } });
      }),
    );
    proxy = await startProxy({
      registries: {
        'docker.io': { url: 'http://127.0.0.1:9' },
        'registry.k8s.io': { url: front.url, username: 'k8s-user', password: 'k8s-secret' },
      },
    });
  });
  afterAll(async () => {
    await proxy.close();
    await Promise.all([front.close(), artifact.close(), realm.close()]);
  });

  it("answers the redirect target's own challenge, with anonymous tokens of its scope", async () => {
    const manifest = await fetch(`${proxy.url}/v2/pause/manifests/3.9?ns=registry.k8s.io`);
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get('docker-content-digest')).toBe(image.manifest);
    await manifest.arrayBuffer();
    for (const digest of [image.layer, image.config]) {
      const blob = await fetch(`${proxy.url}/v2/pause/blobs/${digest}?ns=registry.k8s.io`);
      expect(blob.status).toBe(200);
      expect(sha256(Buffer.from(await blob.arrayBuffer()))).toBe(digest);
    }
    // One token for the target's scope, fetched without our credentials, reused for every request.
    expect(realm.requests).toHaveLength(1);
    expect(new URLSearchParams(realm.requests[0]!.search).get('scope')).toBe(
      'repository:k8s-artifacts-prod/images/pause:pull',
    );
    expect(realm.requests[0]!.headers.authorization).toBeUndefined();
    // The registry that redirected never saw a token; the target saw ours only after its challenge.
    expect(front.requests.every((r) => r.headers.authorization === undefined)).toBe(true);
    expect(artifact.requests.filter((r) => r.headers.authorization === undefined)).toHaveLength(1);
  });
});

describe('a Basic-auth upstream', () => {
  const content = new RegistryContent();
  const image = content.addImage('org/tool', 'latest');
  let registry: LoopbackServer;
  let proxy: TestProxy;

  beforeAll(async () => {
    registry = await startLoopback(
      ...registryHandlers(content, { auth: { kind: 'basic', username: 'ci', password: 'pa55' } }),
    );
    proxy = await startProxy({
      registries: {
        'docker.io': { url: 'http://127.0.0.1:9' },
        'registry.example.test': { url: registry.url, username: 'ci', password: 'pa55' },
      },
    });
  });
  afterAll(async () => {
    await proxy.close();
    await registry.close();
  });

  it('sends the credentials after the Basic challenge and then up front', async () => {
    const response = await fetch(`${proxy.url}/v2/registry.example.test/org/tool/manifests/latest`);
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-content-digest')).toBe(image.manifest);
    await response.arrayBuffer();
    for (let i = 0; i < 3; i++) {
      const tags = await fetch(`${proxy.url}/v2/registry.example.test/org/tool/tags/list`);
      expect(tags.status).toBe(200);
      await tags.arrayBuffer();
    }
    // One challenge round trip, then credentials on every request.
    expect(registry.requests.filter((r) => r.headers.authorization === undefined)).toHaveLength(1);
    expect(registry.count('GET', '/v2/org/tool/manifests/latest')).toBe(2);
    expect(registry.count('GET', '/v2/org/tool/tags/list')).toBe(3);
  });
});

describe('an upstream that rate-limits, fails or cannot be reached', () => {
  let registry: LoopbackServer;
  let proxy: TestProxy;
  let closedPort: number;

  beforeAll(async () => {
    registry = await startLoopback(
      http.get('/v2/hub/limited/manifests/:tag', () =>
        HttpResponse.json(
          { errors: [{ code: 'TOOMANYREQUESTS', message: 'You have reached your pull rate limit.' }] },
          {
            status: 429,
            headers: {
              'retry-after': '120',
              'ratelimit-limit': '100;w=21600',
              'ratelimit-remaining': '0;w=21600',
            },
          },
        ),
      ),
      http.get('/v2/library/broken/manifests/:tag', () =>
        HttpResponse.json({ errors: [{ code: 'UNKNOWN', message: 'database on fire' }] }, { status: 503 }),
      ),
      http.get(
        '/v2/library/html/manifests/:tag',
        () => new HttpResponse('<html>bad gateway</html>', { status: 502 }),
      ),
    );
    const spare = await startLoopback();
    closedPort = spare.port;
    await spare.close();
    proxy = await startProxy({
      registries: {
        'docker.io': { url: registry.url },
        // Its own registry: after its 429 no manifest request goes to it for the Retry-After.
        'limited.example.test': { url: registry.url },
        'down.example.test': {
          url: `http://127.0.0.1:${closedPort}`,
          username: 'u',
          password: 'do-not-leak',
        },
      },
    });
  });
  afterAll(async () => {
    await proxy.close();
    await registry.close();
  });
  afterEach(() => {
    registry.requests.length = 0;
  });

  it('passes 429 on with Retry-After and the rate-limit headers, and asks no more until then', async () => {
    const url = `${proxy.url}/v2/limited.example.test/hub/limited/manifests/latest`;
    const response = await fetch(url);
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('120');
    expect(response.headers.get('ratelimit-remaining')).toBe('0;w=21600');
    expect(await firstError(response)).toEqual({
      code: 'TOOMANYREQUESTS',
      message: 'You have reached your pull rate limit.',
    });
    const again = await fetch(url);
    expect(again.status).toBe(429);
    expect(Number(again.headers.get('retry-after'))).toBeLessThanOrEqual(120);
    expect(again.headers.get('ratelimit-remaining')).toBe('0;w=21600');
    expect((await firstError(again)).code).toBe('TOOMANYREQUESTS');
    expect(registry.count('GET', '/v2/hub/limited/manifests/latest')).toBe(1);
  });

  it('passes a 5xx on with its status and OCI error body', async () => {
    const response = await fetch(`${proxy.url}/v2/broken/manifests/latest`);
    expect(response.status).toBe(503);
    expect(await firstError(response)).toEqual({ code: 'UNKNOWN', message: 'database on fire' });
  });

  it('answers a non-OCI 5xx body with an OCI error of its own', async () => {
    const response = await fetch(`${proxy.url}/v2/html/manifests/latest`);
    expect(response.status).toBe(502);
    const error = await firstError(response);
    expect(error.code).toBe('UNAVAILABLE');
    expect(error.message).toContain('docker.io');
  });

  it('answers 502 naming the registry, not its credentials, when it cannot be reached', async () => {
    const response = await fetch(`${proxy.url}/v2/down.example.test/x/y/manifests/latest`);
    expect(response.status).toBe(502);
    const text = await response.text();
    const error = (JSON.parse(text) as OciErrorBody).errors[0]!;
    expect(error.code).toBe('UNAVAILABLE');
    expect(error.message).toContain('down.example.test');
    expect(text).not.toContain('do-not-leak');
  });
});
