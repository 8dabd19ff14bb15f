/**
 * Tiered caches: a node pullcache with `parent:` sends every upstream request to the parent with
 * `?ns=<registry>` and the parent's token, never a registry's credentials; both caches keep what
 * they pass on. While the parent is down, `fallback: direct` goes to the registry itself (once
 * logged, skipped for a cool-down, then tried again) and `fallback: none` answers 502 naming it.
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { http } from 'msw';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ociError, RegistryContent, registryHandlers, sha256 } from '../support/fake-registry.js';
import { firstError, jsonOf } from '../support/http-client.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { captureLogs, settled, startProxy, type TestProxy } from '../support/proxy.js';

const HUB_CREDS = { username: 'hub-robot', password: 'hub-secret-password' };
const PARENT_TOKEN = 'node-to-central-token-0123456789';
const hubContent = new RegistryContent();
const quayContent = new RegistryContent();
const web = hubContent.addImage('library/web', '1.0', 'web layer bytes');
const app = quayContent.addImage('coreos/app', '2.0', 'app layer bytes, from quay');
const later = hubContent.addImage('library/later', '1.0', 'a layer pulled while the parent is down');
for (const tag of ['a', 'b', 'c']) hubContent.tag('library/web', tag, web.manifest);

let hub: LoopbackServer;
let quay: LoopbackServer;
beforeAll(async () => {
  hub = await startLoopback(...registryHandlers(hubContent, { auth: { kind: 'basic', ...HUB_CREDS } }));
  quay = await startLoopback(...registryHandlers(quayContent, { auth: { kind: 'none' } }));
});
afterAll(() => Promise.all([hub.close(), quay.close()]));
beforeEach(() => {
  hub.requests.length = 0;
  quay.requests.length = 0;
});

/** The node's registries: the same names as the parent's, with the credentials for going direct. */
const nodeRegistries = () => ({
  'docker.io': { url: hub.url, ...HUB_CREDS },
  'quay.io': { url: quay.url },
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function digestOf(response: Response): Promise<string> {
  expect(response.status).toBe(200);
  return sha256(Buffer.from(await response.arrayBuffer()));
}

const blobFile = (storage: string, digest: string) =>
  join(storage, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
const blobGets = (server: LoopbackServer, digest: string) =>
  server.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`)).length;

describe('node → central pullcache → registries', () => {
  let central: TestProxy;
  let node: TestProxy;
  beforeAll(async () => {
    central = await startProxy({
      registries: { 'docker.io': { url: hub.url, ...HUB_CREDS }, 'quay.io': { url: quay.url } },
      auth: { tokens: [PARENT_TOKEN] },
    });
    node = await startProxy({
      registries: nodeRegistries(),
      parent: { url: central.url, token: PARENT_TOKEN, fallback: 'none' },
    });
  });
  afterAll(() => Promise.all([node.close(), central.close()]));

  it('pulls two registries through the central cache, and both caches keep every blob', async () => {
    expect(await digestOf(await fetch(`${node.url}/v2/web/manifests/1.0`))).toBe(web.manifest);
    expect(await digestOf(await fetch(`${node.url}/v2/coreos/app/manifests/2.0?ns=quay.io`))).toBe(
      app.manifest,
    );
    for (const digest of [web.config, web.layer]) {
      expect(await digestOf(await fetch(`${node.url}/v2/library/web/blobs/${digest}`))).toBe(digest);
    }
    for (const digest of [app.config, app.layer]) {
      expect(await digestOf(await fetch(`${node.url}/v2/coreos/app/blobs/${digest}?ns=quay.io`))).toBe(
        digest,
      );
    }
    await settled(node.url);
    await settled(central.url, undefined, { authorization: `Bearer ${PARENT_TOKEN}` });
    for (const digest of [web.config, web.layer, app.config, app.layer]) {
      expect(existsSync(blobFile(node.storage, digest)), `node ${digest}`).toBe(true);
      expect(existsSync(blobFile(central.storage, digest)), `central ${digest}`).toBe(true);
    }
    // One download per blob at the registries: the central cache's (it holds the credentials).
    for (const digest of [web.config, web.layer]) expect(blobGets(hub, digest), digest).toBe(1);
    for (const digest of [app.config, app.layer]) expect(blobGets(quay, digest), digest).toBe(1);
  });

  it('answers 502 naming the parent when the parent refuses the node token', async () => {
    const stranger = await startProxy({
      registries: nodeRegistries(),
      parent: { url: central.url, token: 'not-the-token-the-central-has', fallback: 'none' },
    });
    try {
      const response = await fetch(`${stranger.url}/v2/web/manifests/a`);
      expect(response.status).toBe(502);
      const error = await firstError(response);
      expect(error.message).toBe(
        `parent pullcache ${central.url} refused this node's client credentials (parent.token)`,
      );
      expect(error.message).not.toContain('not-the-token');
      expect(hub.requests).toHaveLength(0);
    } finally {
      await stranger.close();
    }
  });
});

describe('what the node sends its parent', () => {
  const parentContent = new RegistryContent();
  const cached = parentContent.addImage('library/web', '1.0', 'web layer bytes');
  parentContent.tag('library/web', 'b', cached.manifest);
  let parent: LoopbackServer;
  let node: TestProxy;
  beforeAll(async () => {
    parent = await startLoopback(...registryHandlers(parentContent, { auth: { kind: 'none' } }));
    node = await startProxy({
      registries: nodeRegistries(),
      parent: { url: parent.url, token: PARENT_TOKEN },
    });
  });
  afterAll(() => Promise.all([node.close(), parent.close()]));

  it('sends ?ns=<registry> and the parent token on every request, never the registry credentials', async () => {
    expect(await digestOf(await fetch(`${node.url}/v2/web/manifests/1.0`))).toBe(cached.manifest);
    expect(await digestOf(await fetch(`${node.url}/v2/library/web/blobs/${cached.layer}`))).toBe(
      cached.layer,
    );
    const tags = await fetch(`${node.url}/v2/library/web/tags/list?n=1`);
    expect(await jsonOf(tags)).toEqual({ name: 'library/web', tags: ['1.0'] });
    const other = await fetch(`${node.url}/v2/coreos/app/manifests/2.0?ns=quay.io`);
    expect(other.status).toBe(404); // the parent has no such image: its answer, not the registry's
    await other.arrayBuffer();
    await settled(node.url);

    const hubBasic = `Basic ${Buffer.from(`${HUB_CREDS.username}:${HUB_CREDS.password}`).toString('base64')}`;
    expect(parent.requests.length).toBeGreaterThanOrEqual(5);
    for (const request of parent.requests) {
      const query = new URLSearchParams(request.search);
      expect(query.get('ns'), request.path).toBe(
        request.path.startsWith('/v2/coreos/') ? 'quay.io' : 'docker.io',
      );
      expect(request.headers.authorization, request.path).toBe(`Bearer ${PARENT_TOKEN}`);
      expect(JSON.stringify(request.headers)).not.toContain(hubBasic.slice(6));
    }
    const tagList = parent.requests.find((r) => r.path === '/v2/library/web/tags/list');
    expect(new URLSearchParams(tagList?.search).get('n')).toBe('1');
    // The registries themselves were never asked: a 404 from the parent is an answer.
    expect(hub.requests).toHaveLength(0);
    expect(quay.requests).toHaveLength(0);
  });
});

describe('fallback: none', () => {
  it('answers 502 naming the parent while it is down, and never asks the registry', async () => {
    const parentUrl = `http://127.0.0.1:${await closedPort()}`;
    const node = await startProxy({
      registries: nodeRegistries(),
      parent: { url: parentUrl, fallback: 'none' },
    });
    try {
      const manifest = await fetch(`${node.url}/v2/web/manifests/1.0`);
      expect(manifest.status).toBe(502);
      expect((await firstError(manifest)).message).toBe(`parent pullcache ${parentUrl} is unreachable`);
      const blob = await fetch(`${node.url}/v2/library/web/blobs/${web.layer}`);
      expect(blob.status).toBe(502);
      await blob.arrayBuffer();
      expect(hub.requests).toHaveLength(0);
    } finally {
      await node.close();
    }
  });
});

describe('fallback: direct', () => {
  it('pulls from the registry itself while the parent is down, logging it once', async () => {
    const logs = captureLogs();
    const parentUrl = `http://127.0.0.1:${await closedPort()}`;
    const node = await startProxy(
      { registries: nodeRegistries(), parent: { url: parentUrl } },
      { logger: logs.logger },
    );
    try {
      expect(await digestOf(await fetch(`${node.url}/v2/later/manifests/1.0`))).toBe(later.manifest);
      for (const digest of [later.config, later.layer]) {
        expect(await digestOf(await fetch(`${node.url}/v2/library/later/blobs/${digest}`))).toBe(digest);
      }
      await settled(node.url);
      for (const digest of [later.config, later.layer]) {
        expect(blobGets(hub, digest), digest).toBe(1);
        expect(existsSync(blobFile(node.storage, digest)), digest).toBe(true);
      }
      // With the registry's credentials, which go to the registry only.
      expect(
        hub.requests.filter((r) => r.headers.authorization?.startsWith('Basic ')).length,
      ).toBeGreaterThan(0);
      const down = logs.lines().filter((l) => String(l.msg).startsWith('parent pullcache unreachable'));
      expect(down).toHaveLength(1);
      expect(down[0]).toMatchObject({ level: 40, parent: parentUrl });
    } finally {
      await node.close();
    }
  });

  it('sends a request the parent answers 5xx to the registry, and keeps asking the parent', async () => {
    const logs = captureLogs();
    let failing = true;
    const parentContent = new RegistryContent();
    const parent = await startLoopback(
      http.all('*', () => (failing ? ociError(503, 'UNAVAILABLE', 'cache storage error: EIO') : undefined)),
      ...registryHandlers(parentContent, { auth: { kind: 'none' } }),
    );
    parentContent.addImage('library/web', 'b', 'web layer bytes');
    const node = await startProxy(
      { registries: nodeRegistries(), parent: { url: parent.url }, prefetch: { layers: false } },
      { logger: logs.logger },
    );
    try {
      expect(await digestOf(await fetch(`${node.url}/v2/web/manifests/c`))).toBe(web.manifest);
      expect(parent.count('GET', '/v2/library/web/manifests/c')).toBe(1);
      expect(hub.count('GET', '/v2/library/web/manifests/c')).toBeGreaterThanOrEqual(1);
      expect(
        logs
          .lines()
          .filter((l) => l.msg === 'parent pullcache could not serve a request: sent it to the registry'),
      ).toMatchObject([{ registry: 'docker.io', reason: 'the parent answered 503' }]);
      failing = false;
      hub.requests.length = 0;
      const fromParent = await fetch(`${node.url}/v2/web/manifests/b`);
      expect(fromParent.status).toBe(200);
      await fromParent.arrayBuffer();
      expect(parent.count('GET', '/v2/library/web/manifests/b')).toBe(1);
      expect(hub.requests).toHaveLength(0);
    } finally {
      await node.close();
      await parent.close();
    }
  });

  it('skips a parent that broke off for a cool-down, then tries it again', async () => {
    const logs = captureLogs();
    let clock = 1_000_000;
    let breaking = true;
    const parentContent = new RegistryContent();
    parentContent.addImage('library/web', 'a', 'web layer bytes');
    parentContent.tag('library/web', 'b', parentContent.tags.get('library/web')!.get('a')!);
    const parent = await startLoopback(
      http.all('*', () => {
        if (breaking) throw new Error('reset'); // the loopback server destroys the socket
        return undefined;
      }),
      ...registryHandlers(parentContent, { auth: { kind: 'none' } }),
    );
    const node = await startProxy(
      { registries: nodeRegistries(), parent: { url: parent.url }, prefetch: { layers: false } },
      { logger: logs.logger, now: () => clock },
    );
    try {
      expect(await digestOf(await fetch(`${node.url}/v2/web/manifests/a`))).toBe(web.manifest);
      // The request, and once more on a new connection (http-agent.ts): both hung up on.
      expect(parent.requests).toHaveLength(2);
      breaking = false;
      // Within the cool-down the parent is not asked, even though it would answer now.
      expect(await digestOf(await fetch(`${node.url}/v2/web/manifests/b`))).toBe(web.manifest);
      expect(parent.requests).toHaveLength(2);
      clock += 10_000;
      hub.requests.length = 0;
      const back = await fetch(`${node.url}/v2/library/web/blobs/${web.layer}`);
      expect(await digestOf(back)).toBe(web.layer);
      expect(parent.requests.map((r) => r.path)).toEqual([
        '/v2/library/web/manifests/a',
        '/v2/library/web/manifests/a',
        `/v2/library/web/blobs/${web.layer}`,
      ]);
      expect(hub.requests).toHaveLength(0);
      const messages = logs.lines().map((l) => String(l.msg));
      expect(messages.filter((m) => m.startsWith('parent pullcache unreachable'))).toHaveLength(1);
      expect(messages).toContain('parent pullcache reachable again: pulling through it');
    } finally {
      await node.close();
      await parent.close();
    }
  });

  it('never falls back for an answer below 500: the parent’s 404 is the client’s', async () => {
    const parent = await startLoopback(
      ...registryHandlers(new RegistryContent(), { auth: { kind: 'none' } }),
    );
    const node = await startProxy({ registries: nodeRegistries(), parent: { url: parent.url } });
    try {
      const response = await fetch(`${node.url}/v2/web/manifests/1.0`);
      expect(response.status).toBe(404);
      expect((await firstError(response)).code).toBe('MANIFEST_UNKNOWN');
      expect(hub.requests).toHaveLength(0);
    } finally {
      await node.close();
      await parent.close();
    }
  });
});
