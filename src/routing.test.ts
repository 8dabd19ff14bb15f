import { describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';
import { resolveRoute } from './routing.js';

const config = {
  defaultRegistry: 'docker.io',
  registries: {
    'docker.io': { url: 'https://registry-1.docker.io' },
    'quay.io': { url: 'https://quay.io' },
    'ghcr.io': { url: 'https://ghcr.io' },
    'registry.k8s.io': { url: 'https://registry.k8s.io' },
    'localhost:5000': { url: 'http://localhost:5000' },
    LOCALDOMAIN: { url: 'http://localdomain:5000' },
  },
};

describe('resolveRoute', () => {
  it.each([
    // [name, ns, registry, repository, via]
    ['nginx', undefined, 'docker.io', 'library/nginx', 'default'],
    ['library/nginx', undefined, 'docker.io', 'library/nginx', 'default'],
    ['bitnami/redis', undefined, 'docker.io', 'bitnami/redis', 'default'],
    ['a/b/c/d', undefined, 'docker.io', 'a/b/c/d', 'default'],
    ['docker.io/nginx', undefined, 'docker.io', 'library/nginx', 'path'],
    ['index.docker.io/library/nginx', undefined, 'docker.io', 'library/nginx', 'path'],
    ['registry-1.docker.io/user/app', undefined, 'docker.io', 'user/app', 'path'],
    ['quay.io/coreos/flannel', undefined, 'quay.io', 'coreos/flannel', 'path'],
    ['ghcr.io/org/image', undefined, 'ghcr.io', 'org/image', 'path'],
    ['registry.k8s.io/pause', undefined, 'registry.k8s.io', 'pause', 'path'],
    ['localhost:5000/app', undefined, 'localhost:5000', 'app', 'path'],
    // An uppercase first component is a host, as in the reference grammar (pullcache resolve agrees)
    ['LOCALDOMAIN/debian', undefined, 'LOCALDOMAIN', 'debian', 'path'],
    ['LocalDomain/debian/sub', undefined, 'LOCALDOMAIN', 'debian/sub', 'path'],
    ['debian', 'localdomain', 'LOCALDOMAIN', 'debian', 'ns'],
    ['library/nginx', 'docker.io', 'docker.io', 'library/nginx', 'ns'],
    ['nginx', 'docker.io', 'docker.io', 'library/nginx', 'ns'],
    ['coreos/flannel', 'quay.io', 'quay.io', 'coreos/flannel', 'ns'],
    ['pause', 'registry.k8s.io', 'registry.k8s.io', 'pause', 'ns'],
    ['library/nginx', 'index.docker.io', 'docker.io', 'library/nginx', 'ns'],
    // ns wins over a registry-looking first component: containerd sends the path as is
    ['quay.io/x', 'ghcr.io', 'ghcr.io', 'quay.io/x', 'ns'],
  ])('%s (ns=%s) → %s %s', (name, ns, registry, repository, via) => {
    const route = resolveRoute(name, ns, config);
    expect({ registry: route.registry, repository: route.repository, via: route.via }).toEqual({
      registry,
      repository,
      via,
    });
    expect(route.upstream).toBe(config.registries[registry as keyof typeof config.registries]);
  });

  it.each([
    ['gcr.io/x/y', undefined, 'DENIED', 403],
    ['localhost/x', undefined, 'DENIED', 403],
    ['my.registry:8443/x', undefined, 'DENIED', 403],
    ['Docker/docker', undefined, 'DENIED', 403],
    ['Bad_Host/x', undefined, 'NAME_INVALID', 400],
    ['LOCALDOMAIN/Debian', undefined, 'NAME_INVALID', 400],
    ['x', 'gcr.io', 'DENIED', 403],
    ['x', 'bad host!', 'NAME_INVALID', 400],
    ['quay.io/', undefined, 'NAME_INVALID', 400],
    ['Nginx', undefined, 'NAME_INVALID', 400],
    ['quay.io/UPPER', undefined, 'NAME_INVALID', 400],
    ['a//b', undefined, 'NAME_INVALID', 400],
    ['a'.repeat(256), undefined, 'NAME_INVALID', 400],
    ['-leading', 'quay.io', 'NAME_INVALID', 400],
  ])('%s (ns=%s) → %s', (name, ns, code, status) => {
    expect(() => resolveRoute(name, ns, config)).toThrow(expect.objectContaining({ code, status }));
  });

  it('routes to a dotless registry host however the config spells it', () => {
    const parsed = parseConfig({
      registries: { 'docker.io': { url: 'https://r.example' }, localdomain: { url: 'http://ld:5000' } },
    });
    expect(Object.keys(parsed.registries)).toEqual(['docker.io', 'LOCALDOMAIN']);
    const route = resolveRoute('LOCALDOMAIN/debian', undefined, parsed);
    expect(route).toMatchObject({ registry: 'LOCALDOMAIN', repository: 'debian', via: 'path' });
    expect(route.upstream.url).toBe('http://ld:5000');
    // Lowercase, the same component is a Docker Hub namespace.
    expect(resolveRoute('localdomain/debian', undefined, parsed)).toMatchObject({
      registry: 'docker.io',
      repository: 'localdomain/debian',
    });
  });

  it('uses the configured default registry for names without a registry', () => {
    const route = resolveRoute('coreos/flannel', undefined, { ...config, defaultRegistry: 'quay.io' });
    expect(route).toMatchObject({ registry: 'quay.io', repository: 'coreos/flannel', via: 'default' });
    // Single-component names are only expanded to library/ on Docker Hub.
    expect(resolveRoute('pause', undefined, { ...config, defaultRegistry: 'quay.io' }).repository).toBe(
      'pause',
    );
  });
});
