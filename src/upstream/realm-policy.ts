/**
 * @module Whether a registry's configured credentials may go to a token realm: only to the registry's
 * own host, its registrable domain (the public suffix list, via tldts) or hosts the config lists.
 * tldts (~2 MB resident with its suffix list) is loaded the first time a realm on another host has
 * to be judged: registries without credentials never ask.
 */
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import type * as Tldts from 'tldts';

export type RealmDecision = { allowed: true } | { allowed: false; reason: string };

export interface RealmPolicyOptions {
  /** The registry's configured URL. */
  registryUrl: string;
  /** `registries.<name>.tokenRealms`: further hosts trusted with the credentials. */
  tokenRealms?: readonly string[] | undefined;
}

export type RealmPolicy = (realm: URL) => RealmDecision;

/** Lower case, no IPv6 brackets, no trailing dot: the form hosts are compared in. */
export function normalizeHost(host: string): string {
  return host
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');
}

let tldts: typeof Tldts | undefined;

// Private suffixes count (github.io, herokuapp.com): x.github.io and y.github.io are different owners.
function registrableDomain(host: string): string | null {
  // require, not import(): the policy answers synchronously. The bundle leaves tldts outside.
  tldts ??= createRequire(import.meta.url)('tldts') as typeof Tldts;
  return tldts.getDomain(host, { allowPrivateDomains: true });
}

export function createRealmPolicy(options: RealmPolicyOptions): RealmPolicy {
  const registry = new URL(options.registryUrl);
  const registryHost = normalizeHost(registry.hostname);
  let registryDomain: string | null | undefined;
  const listed = new Set((options.tokenRealms ?? []).map(normalizeHost));

  return (realm) => {
    const host = normalizeHost(realm.hostname);
    if (listed.has(host)) return { allowed: true };
    // Credentials that reached the registry over TLS must not cross the network in clear text.
    if (registry.protocol === 'https:' && realm.protocol !== 'https:') {
      return { allowed: false, reason: 'the realm is plain http while the registry uses https' };
    }
    if (host === registryHost) return { allowed: true };
    // An IP address has no registrable domain: only the registry's very own address is its realm.
    if (isIP(host) !== 0 || isIP(registryHost) !== 0) {
      return { allowed: false, reason: 'the realm host is not the registry host' };
    }
    registryDomain ??= registrableDomain(registryHost);
    const domain = registrableDomain(host);
    if (registryDomain !== null && domain === registryDomain) return { allowed: true };
    return { allowed: false, reason: "the realm host is outside the registry's domain" };
  };
}
