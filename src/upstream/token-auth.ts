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
  /** Forgets a token the registry refused (revoked or expired early). */
  forget(challenge: BearerChallenge, scope: string): void;
}

export function createTokenAuth(options: TokenAuthOptions): TokenAuth {
  const { credentials } = options;
  const perf = options.now ? { now: options.now } : undefined;
  const cache = new LRUCache<string, string, { challenge: BearerChallenge; scope: string }>({
    max: 10_000,
    ttl: tokenLifetimeMs(undefined),
    ...(perf ? { perf, ttlResolution: 0 } : {}),
    fetchMethod: async (_key, _stale, { options: entry, context }) => {
      const { token, expiresIn } = await fetchToken(options, context.challenge, context.scope);
      entry.ttl = tokenLifetimeMs(expiresIn);
      return token;
    },
  });
  const keyOf = (challenge: BearerChallenge, scope: string) =>
    JSON.stringify([challenge.realm, challenge.service ?? '', scope, credentials?.username ?? '']);

  return {
    async token(challenge, scope) {
      const token = await cache.fetch(keyOf(challenge, scope), { context: { challenge, scope } });
      if (token === undefined) throw tokenError(options.registry, 'the token endpoint returned no token');
      return token;
    },
    forget(challenge, scope) {
      cache.delete(keyOf(challenge, scope));
    },
  };
}

async function fetchToken(
  options: TokenAuthOptions,
  challenge: BearerChallenge,
  scope: string,
): Promise<{ token: string; expiresIn: number | undefined }> {
  const url = new URL(challenge.realm);
  if (challenge.service !== undefined) url.searchParams.set('service', challenge.service);
  if (scope !== '') url.searchParams.set('scope', scope);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.credentials) {
    const { username, password } = options.credentials;
    headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
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
    throw unauthorized(`${options.registry} refused the configured credentials`, undefined, {
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
