import { describe, expect, it } from 'vitest';
import { ConfigError, FlagError, loadConfig, parseConfig } from './config.js';

const minimal = { registries: { 'docker.io': { url: 'https://registry-1.docker.io' } } };

describe('parseConfig', () => {
  it('fills in every default', () => {
    const config = parseConfig(minimal, {});
    expect(config).toMatchObject({
      listen: '0.0.0.0:5000',
      storage: { path: './data', maxSize: null },
      defaultRegistry: 'docker.io',
      cache: { tagTTL: 300_000, serveDeletedTags: false },
      upstream: {
        connectTimeout: 10_000,
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
        maxRedirects: 5,
        minRate: 32 * 1024,
        minRateWindow: 30_000,
        failFast: { failures: 3, coolDown: 10_000 },
        rateLimit: { thresholds: [0.5, 0.25, 0.1], stretch: 4, wait: 60_000 },
      },
      limits: {
        headersTimeout: 10_000,
        requestTimeout: 30_000,
        keepAliveTimeout: 65_000,
        maxConnections: 4096,
      },
      log: { level: 'info' },
    });
  });

  it.each([
    ['32KiB/s', 32 * 1024],
    ['1 MB / s', 1_000_000],
    [500, 500],
    [0, null],
    [null, null],
  ])('reads upstream.minRate %j as %j bytes per second (null: no floor)', (minRate, expected) => {
    expect(parseConfig({ ...minimal, upstream: { minRate } }, {}).upstream.minRate).toBe(expected);
  });

  it.each(['https://r.example/v2', 'https://r.example/v2/', 'https://r.example/v2//', 'https://r.example/'])(
    'takes the registry url %s as the registry base (the /v2 is added to every request)',
    (url) => {
      expect(parseConfig({ registries: { 'docker.io': { url } } }, {}).registries['docker.io']?.url).toBe(
        'https://r.example',
      );
    },
  );

  it('keeps a path prefix before /v2', () => {
    const config = parseConfig({ registries: { 'docker.io': { url: 'https://r.example/mirror/v2/' } } }, {});
    expect(config.registries['docker.io']?.url).toBe('https://r.example/mirror');
  });

  it.each(['0.0.0.0:0', '127.0.0.1:65535', '[::1]:5000', ':5000'])('accepts listen %s', (listen) => {
    expect(parseConfig({ ...minimal, listen }, {}).listen).toBe(listen);
  });

  it('reads units and substitutes ${ENV} values', () => {
    const config = parseConfig(
      {
        storage: { path: '/var/lib/pullcache', maxSize: '50GiB' },
        cache: { tagTTL: '90s' },
        registries: {
          'docker.io': { url: 'https://registry-1.docker.io/', username: 'me', password: '${HUB_TOKEN}' },
        },
      },
      { HUB_TOKEN: 'dckr_pat_x' },
    );
    expect(config.storage.maxSize).toBe(50 * 2 ** 30);
    expect(config.cache.tagTTL).toBe(90_000);
    expect(config.registries['docker.io']).toEqual({
      url: 'https://registry-1.docker.io',
      username: 'me',
      password: 'dckr_pat_x',
    });
  });

  it('normalizes registry keys (index.docker.io is docker.io)', () => {
    const config = parseConfig(
      { registries: { 'index.docker.io': { url: 'https://registry-1.docker.io' } } },
      {},
    );
    expect(Object.keys(config.registries)).toEqual(['docker.io']);
  });

  it.each([
    [{ registries: {} }, 'registries: at least one registry is needed'],
    [{ ...minimal, listen: 'nope' }, 'listen: expected HOST:PORT'],
    [{ ...minimal, bogus: 1 }, 'bogus'],
    [{ registries: { 'docker.io': { url: 'ftp://x' } } }, 'registries.docker.io.url'],
    [
      { registries: { 'docker.io': { url: 'https://x', username: 'u' } } },
      'username and password go together',
    ],
    [
      { registries: { 'Not A Host': { url: 'https://x' } }, defaultRegistry: 'Not A Host' },
      'not a registry host name',
    ],
    [
      { ...minimal, defaultRegistry: 'quay.io' },
      'defaultRegistry: "quay.io" is not one of the configured registries',
    ],
    [{ ...minimal, cache: { tagTTL: 'soon' } }, 'cache.tagTTL: expected a duration'],
    [{ ...minimal, storage: { maxSize: 'lots' } }, 'storage.maxSize: expected a size'],
    [{ ...minimal, log: { level: 'loud' } }, 'log.level'],
    ...['https://auth.example.com', 'auth.example.com:443', 'auth.example.com/token', ''].map(
      (realm): [object, string] => [
        { registries: { 'docker.io': { url: 'https://x', tokenRealms: [realm] } } },
        'registries.docker.io.tokenRealms.0: expected a host name',
      ],
    ),
    [
      { registries: { 'docker.io': { url: 'https://x', tokenRealms: [] } } },
      'registries.docker.io.tokenRealms',
    ],
    [
      { registries: { 'docker.io': { url: 'http://169.254.169.254' } } },
      'registries.docker.io.url: is a link-local or cloud metadata address',
    ],
    [{ ...minimal, listen: '127.0.0.1:99999' }, 'listen: the port must be between 0 and 65535'],
    [{ ...minimal, listen: '127.0.0.1:65536' }, 'listen: the port must be between 0 and 65535'],
    [{ ...minimal, upstream: { minRate: '32KiB' } }, 'upstream.minRate: expected a rate such as "32KiB/s"'],
    [{ ...minimal, upstream: { minRateWindow: '0s' } }, 'upstream.minRateWindow: must be longer than 0'],
    [
      { ...minimal, limits: { headersTimeout: '1m', requestTimeout: '30s' } },
      'limits: headersTimeout must not be longer than requestTimeout',
    ],
    [{ ...minimal, limits: { maxConnections: 0 } }, 'limits.maxConnections'],
    [{ ...minimal, upstream: { failFast: { failures: 0 } } }, 'upstream.failFast.failures'],
    [
      { ...minimal, upstream: { failFast: { coolDown: '500ms' } } },
      'upstream.failFast.coolDown: coolDown must be at least 1s',
    ],
    [{ ...minimal, upstream: { rateLimit: { thresholds: [0.5, 1] } } }, 'upstream.rateLimit.thresholds.1'],
    [
      { ...minimal, upstream: { rateLimit: { thresholds: [0.5, 0.5] } } },
      'upstream.rateLimit.thresholds: thresholds must differ',
    ],
    [{ ...minimal, upstream: { rateLimit: { stretch: 0.5 } } }, 'upstream.rateLimit.stretch'],
  ])('refuses %j naming the bad key', (document, message) => {
    expect(() => parseConfig(document, {})).toThrow(ConfigError);
    expect(() => parseConfig(document, {})).toThrow(message);
  });

  it('reads tokenRealms as lower-case host names or IP addresses', () => {
    const config = parseConfig(
      {
        registries: {
          'docker.io': { url: 'https://x', tokenRealms: ['Auth.Example.NET', '10.0.0.5', '[fd00::5]'] },
        },
      },
      {},
    );
    expect(config.registries['docker.io']!.tokenRealms).toEqual([
      'auth.example.net',
      '10.0.0.5',
      '[fd00::5]',
    ]);
    expect(parseConfig(minimal, {}).registries['docker.io']!.tokenRealms).toBeUndefined();
  });

  it('fails when an ${ENV} variable is not set, naming the key and the variable', () => {
    expect(() =>
      parseConfig(
        { registries: { 'docker.io': { url: 'https://x', username: 'u', password: '${MISSING_PW}' } } },
        {},
      ),
    ).toThrow('registries.docker.io.password: environment variable MISSING_PW is not set');
  });

  it('reports one bad key in one line', () => {
    expect(() => parseConfig({ ...minimal, listen: 'nope' }, {})).toThrow(
      /^invalid configuration: listen: expected HOST:PORT, e.g. 0.0.0.0:5000$/,
    );
  });

  it.each([
    ['15082', '--listen: expected HOST:PORT, e.g. 0.0.0.0:5000, got "15082" (all interfaces: 0.0.0.0:15082)'],
    ['localhost:99999', '--listen: the port must be between 0 and 65535, got "localhost:99999"'],
  ])('refuses --listen %s as a bad flag', (listen, message) => {
    expect(() => parseConfig(minimal, {}, { listen })).toThrow(FlagError);
    expect(() => parseConfig(minimal, {}, { listen })).toThrow(message);
  });

  it('lets flags win over the file', () => {
    const config = parseConfig(minimal, {}, { listen: '127.0.0.1:6000', storage: '/tmp/x' });
    expect(config.listen).toBe('127.0.0.1:6000');
    expect(config.storage.path).toBe('/tmp/x');
  });
});

describe('loadConfig', () => {
  it('loads the embedded default: Docker Hub and the common public registries, cache in ./data', () => {
    const config = loadConfig(undefined, {});
    expect(config.defaultRegistry).toBe('docker.io');
    expect(config.registries['docker.io']?.url).toBe('https://registry-1.docker.io');
    expect(Object.keys(config.registries)).toEqual(['docker.io', 'quay.io', 'ghcr.io', 'registry.k8s.io']);
    expect(config.storage.path).toBe('./data');
  });

  it('does not blame the file for a bad --listen flag', () => {
    expect(() => loadConfig(undefined, {}, { listen: '15082' })).toThrow(/^--listen: /);
  });

  it('names the file when it cannot be read', () => {
    expect(() => loadConfig('/nonexistent/pullcache.yaml', {})).toThrow(
      /cannot read config file \/nonexistent/,
    );
  });
});

describe('parseConfig: cluster', () => {
  const secret = 's'.repeat(32);
  const cluster = (value: object) => ({ ...minimal, cluster: { secret, ...value } });

  it('is absent by default: one replica, its own cache', () => {
    expect(parseConfig(minimal, {}).cluster).toBeUndefined();
  });

  it('fills in the defaults and reads the DNS name lower-case, without a trailing dot', () => {
    expect(parseConfig(cluster({ peers: { dns: 'Pullcache-Peers.pullcache.svc.' } }), {}).cluster).toEqual({
      peers: { dns: 'pullcache-peers.pullcache.svc' },
      port: 5000,
      secret,
      refresh: 5_000,
      peerTimeout: 500,
    });
  });

  it('reads static members and self in one canonical HOST:PORT form, with the secret from the environment', () => {
    const config = parseConfig(
      cluster({
        peers: { static: ['10.0.0.11:5000', '[FD00:0::12]:5000', 'Pullcache-2.peers:5000'] },
        self: '[fd00::12]:5000',
        secret: '${PEER_SECRET}',
        refresh: '30s',
        peerTimeout: '250ms',
      }),
      { PEER_SECRET: 'p'.repeat(40) },
    ).cluster!;
    expect(config.peers.static).toEqual(['10.0.0.11:5000', '[fd00::12]:5000', 'pullcache-2.peers:5000']);
    expect(config.self).toBe('[fd00::12]:5000');
    expect(config.secret).toBe('p'.repeat(40));
    expect([config.refresh, config.peerTimeout]).toEqual([30_000, 250]);
  });

  it('takes a resolver as IP, IPv4:PORT or [IPv6]:PORT', () => {
    for (const resolver of ['127.0.0.1', '127.0.0.1:5353', '[::1]:5353', 'fd00::53']) {
      expect(parseConfig(cluster({ peers: { dns: 'peers', resolver } }), {}).cluster?.peers.resolver).toBe(
        resolver,
      );
    }
  });

  it.each([
    [{ peers: { dns: 'peers' }, secret: undefined }, 'cluster.secret'],
    [{ peers: { dns: 'peers' }, secret: 'short' }, 'cluster.secret: secret must be at least 32 characters'],
    [{ peers: {} }, 'cluster.peers: expected exactly one of dns and static'],
    [
      { peers: { dns: 'peers', static: ['10.0.0.1:5000'] } },
      'cluster.peers: expected exactly one of dns and static',
    ],
    [{ peers: { static: [] } }, 'cluster.peers.static'],
    [{ peers: { static: ['10.0.0.1'] } }, 'cluster.peers.static.0: expected HOST:PORT'],
    [{ peers: { static: ['10.0.0.1:0'] } }, 'cluster.peers.static.0: expected HOST:PORT'],
    [{ peers: { static: ['fd00::1:5000'] } }, 'cluster.peers.static.0: expected HOST:PORT'],
    [{ peers: { static: ['http://10.0.0.1:5000'] } }, 'cluster.peers.static.0: expected HOST:PORT'],
    [
      { peers: { static: ['10.0.0.1:5000'] }, self: '10.0.0.2:5000' },
      'cluster.self: self must be one of peers.static',
    ],
    [{ peers: { dns: 'peers' }, self: 'me' }, 'cluster.self: expected HOST:PORT'],
    [
      { peers: { dns: 'peers' }, self: '10.0.0.1:6000' },
      'cluster.self: self must use cluster.port with peers.dns',
    ],
    [{ peers: { dns: 'not a name' } }, 'cluster.peers.dns: expected a DNS name'],
    [
      { peers: { dns: 'peers', resolver: 'dns.example.com' } },
      'cluster.peers.resolver: expected a DNS server',
    ],
    [{ peers: { dns: 'peers' }, port: 0 }, 'cluster.port'],
    [{ peers: { dns: 'peers' }, refresh: '10ms' }, 'cluster.refresh: refresh must be at least 100ms'],
    [{ peers: { dns: 'peers' }, peerTimeout: 0 }, 'cluster.peerTimeout: peerTimeout must be positive'],
    [{ peers: { dns: 'peers' }, peerTimeout: 'soon' }, 'cluster.peerTimeout: expected a duration'],
    [{ peers: { dns: 'peers' }, bogus: 1 }, 'bogus'],
  ])('refuses cluster %j naming the bad key', (value, message) => {
    expect(() => parseConfig(cluster(value), {})).toThrow(ConfigError);
    expect(() => parseConfig(cluster(value), {})).toThrow(message);
  });
});

describe('parseConfig: prefetch and parent', () => {
  it('prefetches images up to 10 GiB by default, and has no parent', () => {
    const config = parseConfig(minimal, {});
    expect(config.prefetch).toEqual({ layers: true, maxBytes: 10 * 2 ** 30 });
    expect(config.parent).toBeUndefined();
  });

  it('reads a parent with its token from the environment, falling back to direct by default', () => {
    const config = parseConfig(
      { ...minimal, parent: { url: 'http://central.pullcache.svc:5000/v2/', token: '${PARENT}' } },
      { PARENT: 'a-token-for-the-central-cache' },
    );
    expect(config.parent).toEqual({
      url: 'http://central.pullcache.svc:5000',
      token: 'a-token-for-the-central-cache',
      fallback: 'direct',
    });
  });

  it.each([
    [{ parent: { url: 'ftp://central' } }, 'parent.url: expected an http(s) URL'],
    [{ parent: { url: 'http://169.254.169.254' } }, 'parent.url: is a link-local or cloud metadata address'],
    [{ parent: { url: 'http://central', fallback: 'registry' } }, 'parent.fallback'],
    [{ parent: { url: 'http://central', token: '' } }, 'parent.token'],
    [{ parent: { token: 'x' } }, 'parent.url'],
    [{ prefetch: { maxBytes: 'big' } }, 'prefetch.maxBytes: expected a size'],
    [{ prefetch: { layers: 'yes' } }, 'prefetch.layers'],
  ])('refuses %j naming the bad key', (value, message) => {
    expect(() => parseConfig({ ...minimal, ...value }, {})).toThrow(message);
  });
});

describe('storage.s3', () => {
  const s3 = (value: unknown) => ({ ...minimal, storage: { path: '/tmp/spool', s3: value } });

  it('is absent by default: the cache is the storage folder', () => {
    expect(parseConfig(minimal, {}).storage.s3).toBeUndefined();
  });

  it('fills in the defaults around a bucket name, leaving path style to the endpoint', () => {
    expect(parseConfig(s3({ bucket: 'pullcache' }), {}).storage.s3).toEqual({
      bucket: 'pullcache',
      region: 'us-east-1',
      prefix: '',
      redirect: false,
    });
    const rgw = parseConfig(
      s3({ bucket: 'cache', endpoint: 'http://rgw.internal:7480', prefix: 'pc/', forcePathStyle: true }),
      {},
    );
    expect(rgw.storage.s3).toMatchObject({ endpoint: 'http://rgw.internal:7480', forcePathStyle: true });
  });

  it.each([
    [{}, 'storage.s3.bucket'],
    [{ bucket: 'Bad_Name' }, 'storage.s3.bucket: expected an S3 bucket name'],
    [{ bucket: 'ok-name', endpoint: 'ftp://x' }, 'storage.s3.endpoint: expected an http(s) URL'],
    [{ bucket: 'ok-name', accessKeyId: 'AKIA' }, 'accessKeyId'],
    [{ bucket: 'ok-name', redirect: 'yes' }, 'storage.s3.redirect'],
  ])('refuses %j naming the bad key', (value, message) => {
    expect(() => parseConfig(s3(value), {})).toThrow(message);
  });
});
