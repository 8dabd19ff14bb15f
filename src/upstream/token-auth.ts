/**
 * @module Bearer tokens from a registry's token endpoint (the distribution token protocol), cached per
 * realm + service + scope + credentials until shortly before they expire; concurrent requests for one
 * token share one fetch.
 */
import { LRUCache } from 'lru-cache';
import type { Dispatcher } from 'undici';
import { type RegistryError, unauthorized, upstreamUnavailable } from '../errors.js';
import { request } from './http-agent.js';
import { readLimited } from './read-limited.js';
import type { RealmPolicy } from './realm-policy.js';
import { transportError } from './transport-error.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface BearerChallenge {
  realm: string;
  service: string | undefined;
}

export interface TokenAuthOptions {
  registry: string;
  dispatcher: Dispatcher;
  credentials: Credentials | undefined;
  /** Whether the credentials may go to a realm; without one they go to none (anonymous tokens). */
  realmPolicy?: RealmPolicy | undefined;
  /** Called when a token is fetched anonymously because the realm may not have the credentials. */
  onCredentialsWithheld?: ((realmHost: string, reason: string) => void) | undefined;
  headersTimeout: number;
  bodyTimeout: number;
  /** Injected clock (milliseconds, monotonic) for tests. */
  now?: () => number;
  /** Called once per real token fetch (metrics, tests). */
  onFetch?: (scope: string) => void;
}

// The spec: a token without expires_in is valid for 60 seconds.
const DEFAULT_EXPIRES_IN_S = 60;
// Refresh a little before expiry so a token never dies mid-request.
const EXPIRY_MARGIN_S = 10;
const MAX_TOKEN_RESPONSE_BYTES = 1 << 20; // 1 MiB: tokens are a few KB

/** How long to keep a token that the endpoint says lives `expiresIn` seconds. */
export function tokenLifetimeMs(expiresIn: number | undefined): number {
  const seconds = expiresIn && expiresIn > 0 ? expiresIn : DEFAULT_EXPIRES_IN_S;
  const margin = Math.min(EXPIRY_MARGIN_S, seconds / 4);
  return Math.max(1, Math.floor((seconds - margin) * 1000));
}

export interface TokenAuth {
  /** A token for `scope` (e.g. `repository:library/nginx:pull`), from cache or one shared fetch. */
  token(challenge: BearerChallenge, scope: string): Promise<string>;
  /**
   * Forgets `token`, which the registry refused (revoked or expired early), if it is still the one
   * cached: a fresh one already being fetched for the scope (another request saw the refusal first)
   * is left to finish.
   */
  forget(challenge: BearerChallenge, scope: string, token: string): void;
}

export function createTokenAuth(options: TokenAuthOptions): TokenAuth {
  const perf = options.now ? { now: options.now } : undefined;
  const cache = new LRUCache<string, string, { realm: URL; challenge: BearerChallenge; scope: string }>({
    max: 10_000,
    ttl: tokenLifetimeMs(undefined),
    ...(perf ? { perf, ttlResolution: 0 } : {}),
    fetchMethod: async (_key, _stale, { options: entry, context }) => {
      const { token, expiresIn } = await fetchToken(options, context.realm, context.challenge, context.scope);
      entry.ttl = tokenLifetimeMs(expiresIn);
      return token;
    },
  });
  const keyOf = (realm: URL, challenge: BearerChallenge, scope: string) =>
    JSON.stringify([
      challenge.realm,
      challenge.service ?? '',
      scope,
      credentialsFor(options, realm)?.username ?? '',
    ]);

  return {
    async token(challenge, scope) {
      const realm = parseRealm(options.registry, challenge.realm);
      const token = await cache.fetch(keyOf(realm, challenge, scope), {
        context: { realm, challenge, scope },
      });
      if (token === undefined) throw tokenError(options.registry, 'the token endpoint returned no token');
      return token;
    },
    forget(challenge, scope, token) {
      const realm = urlOrNull(challenge.realm);
      if (!realm) return;
      const key = keyOf(realm, challenge, scope);
      // Deleting a fetch in flight would abort it, failing every request waiting for it.
      if (cache.peek(key) === token) cache.delete(key);
    },
  };
}

/** The realm as a URL; anything but http(s) is refused before a connection is made. */
function parseRealm(registry: string, realm: string): URL {
  const url = urlOrNull(realm);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw tokenError(registry, 'its token realm is not an http(s) URL');
  }
  return url;
}

function urlOrNull(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

/** The credentials to send to `realm`: the configured ones if the realm policy allows it. */
function credentialsFor(options: TokenAuthOptions, realm: URL): Credentials | undefined {
  if (!options.credentials || !options.realmPolicy) return undefined;
  return options.realmPolicy(realm).allowed ? options.credentials : undefined;
}

async function fetchToken(
  options: TokenAuthOptions,
  realm: URL,
  challenge: BearerChallenge,
  scope: string,
): Promise<{ token: string; expiresIn: number | undefined }> {
  const url = new URL(realm);
  if (challenge.service !== undefined) url.searchParams.set('service', challenge.service);
  if (scope !== '') url.searchParams.set('scope', scope);
  const headers: Record<string, string> = { accept: 'application/json' };
  const credentials = credentialsFor(options, realm);
  if (credentials) {
    const { username, password } = credentials;
    headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  } else if (options.credentials && options.realmPolicy) {
    const decision = options.realmPolicy(realm);
    if (!decision.allowed) options.onCredentialsWithheld?.(realm.host, decision.reason);
  }
  options.onFetch?.(scope);
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: 'GET',
      headers,
      dispatcher: options.dispatcher,
      headersTimeout: options.headersTimeout,
      bodyTimeout: options.bodyTimeout,
    });
  } catch (error) {
    // A realm that does not answer within headersTimeout is a 504 TIMEOUT like a silent registry.
    throw transportError(options.registry, error, `token endpoint of ${options.registry}`);
  }
  let text: string;
  try {
    text = (await readLimited(response.body, MAX_TOKEN_RESPONSE_BYTES)).toString('utf8');
  } catch (error) {
    throw tokenError(options.registry, (error as Error).message);
  }
  if (response.statusCode === 401 || response.statusCode === 403) {
    const what = credentials ? 'the configured credentials' : 'an anonymous token';
    throw unauthorized(`${options.registry} refused ${what}`, undefined, {
      registry: options.registry,
      status: response.statusCode,
    });
  }
  if (response.statusCode !== 200) {
    throw tokenError(options.registry, `the token endpoint answered ${response.statusCode}`);
  }
  let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    body = JSON.parse(text);
  } catch {
    throw tokenError(options.registry, 'the token endpoint answered with invalid JSON');
  }
  const token = typeof body.token === 'string' ? body.token : body.access_token;
  if (typeof token !== 'string' || token === '') throw tokenError(options.registry, 'no token in the answer');
  return { token, expiresIn: typeof body.expires_in === 'number' ? body.expires_in : undefined };
}

function tokenError(registry: string, reason: string): RegistryError {
  return upstreamUnavailable(registry, `cannot get a token from ${registry}: ${reason}`);
}
