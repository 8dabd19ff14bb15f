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
