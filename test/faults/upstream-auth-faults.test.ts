/**
 * Misbehaving upstreams over loopback: token realms on foreign hosts (credentials withheld), redirects
 * and realms aimed at link-local or metadata addresses (refused before connecting), a blob CDN with a
 * scope-less challenge, and a token endpoint that never answers. Host names are mapped to addresses
 * by a lookup the test injects, so registrable domains are real while every socket stays on loopback.
 */
import { Socket } from 'node:net';
import { HttpResponse, http } from 'msw';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { tableLookup } from '../support/dns-table.js';
import {
  cdnHandlers,
  OCI_MANIFEST,
  RegistryContent,
  registryHandlers,
  serveBytes,
  sha256,
  TokenIssuer,
} from '../support/fake-registry.js';
import { firstError } from '../support/http-client.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { captureLogs, startProxy, type TestProxy } from '../support/proxy.js';

const PASSWORD = 'pw-never-leaks-9f3';
const USERNAME = 'mirror-bot';
const BASIC = `Basic ${Buffer.from(`${USERNAME}:${PASSWORD}`).toString('base64')}`;

const at = (server: LoopbackServer, host: string) => `http://${host}:${server.port}`;

/** Every log line and error body the test saw, for a search for the credentials. */
const leaks = (text: string) => text.includes(PASSWORD) || text.includes(BASIC.slice(6));

describe('a token realm on another host than the registry', () => {
  const content = new RegistryContent();
  const image = content.addImage('team/app', 'v1');
  const { lookup } = tableLookup({
    'registry.pullcache.test': ['127.0.0.1'],
    'auth.pullcache.test': ['127.0.0.1'],
    'tokens.elsewhere.test': ['127.0.0.1'],
    'evil.example': ['127.0.0.1'],
  });
  const servers: LoopbackServer[] = [];
  const proxies: TestProxy[] = [];

  /** A registry at registry.pullcache.test whose realm is `realmHost`, behind a fresh proxy. */
  async function setup(realmHost: string, issuer: TokenIssuer, registry: Record<string, unknown> = {}) {
    const realm = await startLoopback(...issuer.handlers());
    const upstream = await startLoopback();
    upstream.use(
      ...registryHandlers(content, {
        auth: { kind: 'bearer', realm: `${at(realm, realmHost)}/token`, service: 'svc', tokens: issuer },
      }),
    );
    servers.push(realm, upstream);
    const logs = captureLogs();
    const proxy = await startProxy(
      {
        registries: {
          'docker.io': { url: 'http://127.0.0.1:9' },
          'registry.pullcache.test': {
            url: at(upstream, 'registry.pullcache.test'),
            username: USERNAME,
            password: PASSWORD,
            ...registry,
          },
        },
      },
      { logger: logs.logger, lookup },
    );
    proxies.push(proxy);
    const pull = () => fetch(`${proxy.url}/v2/registry.pullcache.test/team/app/manifests/v1`);
    return { realm, upstream, logs, pull };
  }

  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all(servers.map((s) => s.close()));
  });

  it('gets an anonymous token from a foreign realm, sends that token to the registry, and warns naming the realm host', async () => {
    const { realm, upstream, logs, pull } = await setup('evil.example', new TokenIssuer());
    const response = await pull();
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-content-digest')).toBe(image.manifest);
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(image.manifest);

    expect(realm.requests).toHaveLength(1);
    expect(realm.requests[0]!.headers.authorization).toBeUndefined();
    expect(new URLSearchParams(realm.requests[0]!.search).get('scope')).toBe('repository:team/app:pull');
    // The registry got the anonymous token, and never the credentials.
    const authorized = upstream.requests.filter((r) => r.headers.authorization !== undefined);
    expect(authorized.map((r) => r.headers.authorization)).toEqual(['Bearer token-1']);

    const warnings = logs.lines().filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      registry: 'registry.pullcache.test',
      realmHost: `evil.example:${realm.port}`,
    });
    expect(String(warnings[0]!.msg)).toContain(`evil.example:${realm.port}`);
    expect(String(warnings[0]!.msg)).toContain('tokenRealms');
    expect(leaks(JSON.stringify(logs.lines()))).toBe(false);
  });

  it('answers 401 without the credentials anywhere when the foreign realm refuses anonymous requests', async () => {
    const issuer = new TokenIssuer({ credentials: { username: USERNAME, password: PASSWORD } });
    const { realm, upstream, logs, pull } = await setup('evil.example', issuer);
    const response = await pull();
    expect(response.status).toBe(401);
    const text = await response.text();
    expect(JSON.parse(text).errors[0]).toMatchObject({
      code: 'UNAUTHORIZED',
      message: 'registry.pullcache.test refused an anonymous token',
    });
    expect(leaks(text)).toBe(false);
    expect(realm.requests.map((r) => r.headers.authorization)).toEqual([undefined]);
    expect(upstream.requests.every((r) => r.headers.authorization === undefined)).toBe(true);
    expect(leaks(JSON.stringify(logs.lines()))).toBe(false);
  });

  it('sends the credentials to a realm on the registry host or its registrable domain, without a warning', async () => {
    for (const realmHost of ['registry.pullcache.test', 'auth.pullcache.test']) {
      const issuer = new TokenIssuer({ credentials: { username: USERNAME, password: PASSWORD } });
      const { realm, logs, pull } = await setup(realmHost, issuer);
      const response = await pull();
      expect(response.status, realmHost).toBe(200);
      await response.arrayBuffer();
      expect(realm.requests.map((r) => r.headers.authorization)).toEqual([BASIC]);
      expect(logs.lines().filter((l) => l.level === 40)).toEqual([]);
    }
  });

  it('sends the credentials to a realm host listed in tokenRealms', async () => {
    const issuer = new TokenIssuer({ credentials: { username: USERNAME, password: PASSWORD } });
    const { realm, logs, pull } = await setup('tokens.elsewhere.test', issuer, {
      tokenRealms: ['tokens.elsewhere.test'],
    });
    const response = await pull();
    expect(response.status).toBe(200);
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(image.manifest);
    expect(realm.requests.map((r) => r.headers.authorization)).toEqual([BASIC]);
    expect(logs.lines().filter((l) => l.level === 40)).toEqual([]);
  });

  it('refuses a tokenRealms entry that is not a bare host name', async () => {
    await expect(
      startProxy({
        registries: {
          'docker.io': { url: 'http://127.0.0.1:9', tokenRealms: ['https://auth.example.com/token'] },
        },
      }),
    ).rejects.toThrow(/registries\.docker\.io\.tokenRealms\.0: expected a host name/);
  });
});

/** Where the process tried to open sockets to: every net/tls connect, as the `host:port` it was given. */
function watchConnects() {
  const spy = vi.spyOn(Socket.prototype, 'connect');
  return () =>
    spy.mock.calls.map((args) => {
      const first = args[0] as unknown;
      const options = (Array.isArray(first) ? first[0] : first) as { host?: string; port?: number };
      return `${options.host}:${options.port}`;
    });
}

describe('redirects and token realms aimed at link-local or metadata addresses', () => {
  const content = new RegistryContent();
  const image = content.addImage('team/app', 'v1');
  const control = content.addBlob('served by a CDN on loopback');
  const { lookup, asked } = tableLookup({
    'registry.pullcache.test': ['127.0.0.1'],
    'realm.pullcache.test': ['127.0.0.1'],
    'metadata.pullcache.test': ['169.254.169.254'],
    'imds6.pullcache.test': ['fd00:ec2::254'],
    // A name with one good and one forbidden address: judged whole, so the bait is never reached.
    'dual.pullcache.test': ['127.0.0.1', 'fe80::a9fe:a9fe'],
  });
  let registry: LoopbackServer;
  let bait: LoopbackServer;
  let proxy: TestProxy;
  let target = '';
  // One registry per token realm: a registry's challenge is remembered per host.
  const realms = {
    literal: 'http://169.254.169.254/token',
    named: '', // the bait, by a name that also resolves to a link-local address (set in beforeAll)
    file: 'file:///etc/passwd',
  };
  const challengers = new Map<string, LoopbackServer>();

  beforeAll(async () => {
    bait = await startLoopback(http.all('*', () => HttpResponse.json({ secret: 'instance credentials' })));
    realms.named = `${at(bait, 'dual.pullcache.test')}/token`;
    registry = await startLoopback(
      http.get('/v2/team/app/blobs/:digest', ({ request, params }) =>
        target === ''
          ? serveBytes(request, content.blobs.get(String(params.digest))!)
          : new HttpResponse(null, { status: 307, headers: { location: target } }),
      ),
    );
    const registries: Record<string, unknown> = {
      'docker.io': { url: 'http://127.0.0.1:9' },
      'registry.pullcache.test': {
        url: at(registry, 'registry.pullcache.test'),
        username: USERNAME,
        password: PASSWORD,
      },
    };
    for (const [kind, realm] of Object.entries(realms)) {
      const challenger = await startLoopback(
        http.get('/v2/*', () =>
          HttpResponse.json(
            { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] },
            { status: 401, headers: { 'www-authenticate': `Bearer realm="${realm}",service="svc"` } },
          ),
        ),
      );
      challengers.set(kind, challenger);
      // realm.pullcache.test on the challenger's port: the realm policy would trust a realm there.
      registries[`${kind}.pullcache.test`] = {
        url: at(challenger, 'realm.pullcache.test'),
        username: USERNAME,
        password: PASSWORD,
      };
    }
    proxy = await startProxy({ registries }, { lookup });
  });
  afterAll(async () => {
    await proxy.close();
    await Promise.all([registry.close(), bait.close(), ...[...challengers.values()].map((c) => c.close())]);
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const blob = () => fetch(`${proxy.url}/v2/registry.pullcache.test/team/app/blobs/${image.layer}`);
  const manifestOf = (kind: keyof typeof realms) =>
    fetch(`${proxy.url}/v2/${kind}.pullcache.test/team/app/manifests/v1`);

  it('answers a clear 502 for a redirect to a metadata IP literal, without opening a socket to it', async () => {
    for (const literal of ['169.254.169.254', '[fe80::1]', '[::ffff:169.254.169.254]', '100.100.100.200']) {
      target = `http://${literal}/latest/meta-data/iam/security-credentials/`;
      const host = new URL(target).hostname.replace(/^\[(.*)\]$/, '$1'); // as URL normalizes it
      const connects = watchConnects();
      const response = await blob();
      expect(response.status, literal).toBe(502);
      const error = await firstError(response);
      expect(error.code).toBe('UNAVAILABLE');
      expect(error.message).toBe(
        `refused to connect to ${host} for upstream registry registry.pullcache.test: a link-local or cloud metadata address`,
      );
      expect(error.detail).toMatchObject({
        registry: 'registry.pullcache.test',
        reason: 'ADDRESS_FORBIDDEN',
      });
      // Only the test's own socket to the proxy and the proxy's to the registry, if any were new.
      const expected = [new URL(proxy.url).host, `registry.pullcache.test:${registry.port}`];
      expect(connects().filter((c) => !expected.includes(c))).toEqual([]);
      vi.restoreAllMocks();
    }
    // The watch does see a new connection: a redirect to a CDN on a loopback address (another blob,
    // so the one the other tests ask for stays uncached).
    const cdn = await startLoopback(...cdnHandlers(content));
    try {
      const connects = watchConnects();
      target = `${cdn.url}/blobs/${control}`;
      const response = await fetch(`${proxy.url}/v2/registry.pullcache.test/team/app/blobs/${control}`);
      expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(control);
      expect(connects()).toContain(`127.0.0.1:${cdn.port}`);
    } finally {
      await cdn.close();
    }
  });

  it('answers a clear 502 for a redirect to a name that resolves to a metadata address, refused after DNS', async () => {
    for (const [name, address] of [
      ['metadata.pullcache.test', '169.254.169.254'],
      ['imds6.pullcache.test', 'fd00:ec2::254'],
    ] as const) {
      target = `http://${name}/latest/meta-data/`;
      const response = await blob();
      expect(response.status, name).toBe(502);
      const error = await firstError(response);
      expect(error.message).toBe(
        `refused to connect to ${name} (${address}) for upstream registry registry.pullcache.test: a link-local or cloud metadata address`,
      );
      expect(asked).toContain(name);
    }
  });

  it('refuses a name with any forbidden address before connecting to its good one', async () => {
    target = `${at(bait, 'dual.pullcache.test')}/latest/meta-data/`;
    const response = await blob();
    expect(response.status).toBe(502);
    expect((await firstError(response)).message).toContain('dual.pullcache.test (fe80::a9fe:a9fe)');
    expect(bait.requests).toHaveLength(0);
  });

  it('refuses a token realm at a metadata IP literal without opening a socket to it', async () => {
    const connects = watchConnects();
    const response = await manifestOf('literal');
    expect(response.status).toBe(502);
    expect((await firstError(response)).message).toBe(
      'refused to connect to 169.254.169.254 for token endpoint of literal.pullcache.test: a link-local or cloud metadata address',
    );
    expect(connects().filter((c) => c.startsWith('169.254.'))).toEqual([]);
    expect(challengers.get('literal')!.requests).toHaveLength(1);
  });

  it('refuses a token realm whose name resolves to a link-local address: the bait gets no request', async () => {
    const response = await manifestOf('named');
    expect(response.status).toBe(502);
    expect((await firstError(response)).message).toBe(
      'refused to connect to dual.pullcache.test (fe80::a9fe:a9fe) for token endpoint of named.pullcache.test: a link-local or cloud metadata address',
    );
    expect(bait.requests).toHaveLength(0);
  });

  it('refuses token realms and redirects that are not http(s)', async () => {
    const realm = await manifestOf('file');
    expect(realm.status).toBe(502);
    expect(await firstError(realm)).toMatchObject({
      code: 'UNAVAILABLE',
      message: 'cannot get a token from file.pullcache.test: its token realm is not an http(s) URL',
    });
    target = 'file:///etc/passwd';
    const redirect = await blob();
    expect(redirect.status).toBe(502);
    expect((await firstError(redirect)).message).toBe(
      'registry.pullcache.test redirected to an unsupported URL scheme',
    );
  });

  it('still serves the blob itself when the registry answers it directly', async () => {
    target = '';
    const response = await blob();
    expect(response.status).toBe(200);
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(image.layer);
  });
});
describe('a blob CDN that answers with its own scope-less Bearer challenge', () => {
  const content = new RegistryContent();
  const image = content.addImage('team/app', 'v1', Buffer.alloc(50_000, 3));
  const second = content.addBlob(Buffer.alloc(20_000, 4));
  const issued = new Set<string>();
  let registry: LoopbackServer;
  let cdn: LoopbackServer;
  let cdnAuth: LoopbackServer;
  let proxy: TestProxy;

  beforeAll(async () => {
    cdnAuth = await startLoopback(
      http.get('/token', () => {
        const token = `cdn-token-${issued.size + 1}`;
        issued.add(token);
        return HttpResponse.json({ token, expires_in: 300 });
      }),
    );
    cdn = await startLoopback(
      http.get('/blobs/:digest', ({ request, params }) => {
        const token = request.headers.get('authorization')?.replace(/^Bearer /, '') ?? '';
        if (!issued.has(token)) {
          return new HttpResponse('no', {
            status: 401,
            // localhost, while the registry is 127.0.0.1: another host, so our credentials stay home.
            headers: {
              'www-authenticate': `Bearer realm="http://localhost:${cdnAuth.port}/token",service="cdn"`,
            },
          });
        }
        const bytes = content.blobs.get(String(params.digest));
        return bytes ? serveBytes(request, bytes) : new HttpResponse(null, { status: 404 });
      }),
    );
    registry = await startLoopback(
      ...registryHandlers(content, {
        auth: { kind: 'basic', username: USERNAME, password: PASSWORD },
        blobRedirect: `http://localhost:${cdn.port}`,
      }),
    );
    const { lookup } = tableLookup({ localhost: ['127.0.0.1'] });
    proxy = await startProxy(
      {
        registries: {
          'docker.io': { url: 'http://127.0.0.1:9' },
          'registry.pullcache.test': { url: registry.url, username: USERNAME, password: PASSWORD },
        },
      },
      { lookup },
    );
  });
  afterAll(async () => {
    await proxy.close();
    await Promise.all([registry.close(), cdn.close(), cdnAuth.close()]);
  });

  it('gets an anonymous scope-less token for the CDN and serves the blob byte for byte', async () => {
    const response = await fetch(`${proxy.url}/v2/registry.pullcache.test/team/app/blobs/${image.layer}`);
    expect(response.status).toBe(200);
    const body = Buffer.from(await response.arrayBuffer());
    expect(sha256(body)).toBe(image.layer);
    expect(body.equals(content.blobs.get(image.layer)!)).toBe(true);

    expect(cdnAuth.requests).toHaveLength(1);
    const tokenRequest = new URLSearchParams(cdnAuth.requests[0]!.search);
    expect(tokenRequest.has('scope')).toBe(false);
    expect(tokenRequest.get('service')).toBe('cdn');
    expect(cdnAuth.requests[0]!.headers.authorization).toBeUndefined();
    // The CDN saw one challenge, then the token; never the registry's Basic credentials.
    expect(cdn.requests.map((r) => r.headers.authorization)).toEqual([undefined, 'Bearer cdn-token-1']);
  });

  it('sends the CDN its token up front for the next blob: no second challenge, no second token fetch', async () => {
    const response = await fetch(`${proxy.url}/v2/registry.pullcache.test/team/app/blobs/${second}`);
    expect(response.status).toBe(200);
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(second);
    expect(cdnAuth.requests).toHaveLength(1);
    expect(cdn.requests.slice(2).map((r) => r.headers.authorization)).toEqual(['Bearer cdn-token-1']);
    expect(
      registry.requests.every(
        (r) => r.headers.authorization === undefined || r.headers.authorization === BASIC,
      ),
    ).toBe(true);
  });
});

describe('a token endpoint that never sends its headers', () => {
  const content = new RegistryContent();
  content.addImage('team/app', 'v1');
  const HEADERS_TIMEOUT_MS = 800;
  let registry: LoopbackServer;
  let realm: LoopbackServer;
  let proxy: TestProxy;

  beforeAll(async () => {
    realm = await startLoopback(http.get('/token', () => new Promise<never>(() => {})));
    registry = await startLoopback(
      ...registryHandlers(content, {
        auth: { kind: 'bearer', realm: `${realm.url}/token`, service: 'svc', tokens: new TokenIssuer() },
      }),
    );
    proxy = await startProxy({
      upstream: { headersTimeout: `${HEADERS_TIMEOUT_MS}ms` },
      registries: { 'docker.io': { url: registry.url, username: USERNAME, password: PASSWORD } },
    });
  });
  afterAll(async () => {
    await proxy.close();
    await Promise.all([registry.close(), realm.close()]);
  });

  it('answers 504 TIMEOUT naming the registry, after one token request, within the headers timeout', async () => {
    const started = performance.now();
    const response = await fetch(`${proxy.url}/v2/team/app/manifests/v1`, {
      headers: { accept: OCI_MANIFEST },
    });
    const elapsed = performance.now() - started;
    expect(response.status).toBe(504);
    const text = await response.text();
    expect(JSON.parse(text).errors[0]).toMatchObject({
      code: 'TIMEOUT',
      message: 'token endpoint of docker.io did not answer in time',
      detail: { registry: 'docker.io', reason: 'UND_ERR_HEADERS_TIMEOUT' },
    });
    expect(leaks(text)).toBe(false);
    expect(realm.count('GET', '/token')).toBe(1);
    // The registry's challenge, then nothing: no retry hammered the silent endpoint.
    expect(registry.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v2/team/app/manifests/v1']);
    // The configured timeout, not the 30 s default, with room for a busy machine. (No lower bound:
    // undici's coarse timers may fire up to half a second early.)
    expect(elapsed).toBeLessThan(HEADERS_TIMEOUT_MS + 5_000);
  });
});
