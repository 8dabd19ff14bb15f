/**
 * @module Which upstream registry a `/v2/<name>/...` request goes to, decided before any network
 * traffic: containerd's `?ns=`, then a configured registry host as the first path component, then the
 * default registry (Docker Hub normalization for short names). Registries not configured are refused.
 */
import type { Config, RegistryConfig } from './config.js';
import { denied, nameInvalid } from './errors.js';
import {
  assertRepositoryPath,
  DOCKER_HUB,
  isRegistryComponent,
  isValidDomain,
  normalizeRegistryHost,
} from './reference.js';

export interface Route {
  registry: string;
  repository: string;
  upstream: RegistryConfig;
  /** How the registry was chosen; `ns` answers carry the OCI-Namespace header. */
  via: 'ns' | 'path' | 'default';
}

type RoutingConfig = Pick<Config, 'registries' | 'defaultRegistry'>;

export function resolveRoute(name: string, ns: string | undefined, config: RoutingConfig): Route {
  if (ns !== undefined) {
    if (!isValidDomain(ns))
      throw nameInvalid('invalid ns parameter: not a registry host', { ns: ns.slice(0, 256) });
    const registry = normalizeRegistryHost(ns);
    return build(registry, name, config, 'ns');
  }
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  // The reference grammar's rule, so `/v2/<name>` and `pullcache resolve <name>` agree.
  if (slash !== -1 && isRegistryComponent(first)) {
    if (!isValidDomain(first))
      throw nameInvalid('invalid registry host in repository name', { name: name.slice(0, 256) });
    return build(normalizeRegistryHost(first), name.slice(slash + 1), config, 'path');
  }
  return build(config.defaultRegistry, name, config, 'default');
}

function build(registry: string, path: string, config: RoutingConfig, via: Route['via']): Route {
  // An invalid name is a 400 whatever the config allows, as parseReference reports it.
  assertRepositoryPath(path);
  const upstream = config.registries[registry];
  if (!upstream) {
    throw denied(`registry ${registry} is not allowed by this proxy`, {
      registry,
      allowed: Object.keys(config.registries),
    });
  }
  // Docker Hub keeps official images under library/: `nginx` is `library/nginx`.
  const repository = registry === DOCKER_HUB && !path.includes('/') ? `library/${path}` : path;
  return { registry, repository, upstream, via };
}
