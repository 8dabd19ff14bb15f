/**
 * @module HTTP to one upstream registry: a keep-alive undici Agent, the registry's auth challenge
 * learned once and answered before each request, redirects to blob CDNs followed without our
 * Authorization header, no connection to link-local or metadata addresses, and transport failures
 * turned into errors that name the registry. Every request passes the upstream's health (refused at
 * once while it cools down) and, for manifests, its rate-limit budget (refused while spent); every
 * answer of the registry itself updates the budget.
 */
import type { LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { upstreamCoolingDown, upstreamRateLimited, upstreamUnavailable } from '../errors.js';
import { createGuardedConnector } from './address-guard.js';
import { createAgent, request } from './http-agent.js';
import type { BudgetNotice, RateLimitBudget } from './rate-limit-budget.js';
import { createRealmPolicy } from './realm-policy.js';
import { type BearerChallenge, type Credentials, createTokenAuth, type TokenAuth } from './token-auth.js';
import { answerOf, transportError } from './transport-error.js';
import type { HealthNotice, HealthPass, UpstreamHealth } from './upstream-health.js';
import { parseWwwAuthenticate } from './www-authenticate.js';

export interface RegistryClientOptions {
  /** The registry's name in the config (docker.io); used in errors and logs. */
  name: string;
  /** Base URL, e.g. https://registry-1.docker.io (no trailing slash). */
  url: string;
  credentials: Credentials | undefined;
  /** Hosts besides the registry's own domain that its token realm may live on (get the credentials). */
  tokenRealms?: readonly string[] | undefined;
  connectTimeout: number;
  headersTimeout: number;
  bodyTimeout: number;
  maxRedirects: number;
  /** Called once per token fetch (metrics, tests). */
  onTokenFetch?: (scope: string) => void;
  /** Called with each upstream answer's status and time to headers (metrics). */
  onResponse?: (status: number, seconds: number) => void;
  /** Called when a request got no answer at all (metrics). */
  onError?: (reason: string) => void;
  /** Called when a token realm gets an anonymous request instead of the credentials (a warning). */
  onCredentialsWithheld?: (realmHost: string, reason: string) => void;
  /** DNS lookup for every upstream connection (tests map names); node:dns otherwise. */
  lookup?: LookupFunction | undefined;
  /** Whether the upstream answers at all; requests are refused at once while it cools down. */
  health: UpstreamHealth;
  /** What is left of its pull limit; manifest requests are refused while it is spent. */
  budget: RateLimitBudget;
  /** Called when the upstream stops or starts answering again (logs). */
  onHealth?: (notice: HealthNotice) => void;
  /** Called when the budget runs low, is spent or is restored (logs). */
  onBudget?: (notice: BudgetNotice) => void;
  /** A fixed Authorization sent up front to the registry's own origin only (a parent pullcache's token). */
  authorization?: string | undefined;
  /** How errors name the other side; `upstream registry <name>` by default. */
  describe?: string | undefined;
}

export interface UpstreamRequest {
  method: 'GET' | 'HEAD';
  /** Path below /v2/, e.g. `library/nginx/manifests/latest`. */
  path: string;
  query?: URLSearchParams;
  headers?: Record<string, string>;
  /** Repository the request is about: the token scope `repository:<repository>:pull`. */
  repository: string;
  /** A manifest request, what pull limits count: refused (429) without asking while the budget is spent. */
  limited?: boolean;
  signal?: AbortSignal;
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}

export interface RegistryClient {
  readonly name: string;
  /** What is left of its pull limit (the pull layer stretches tag TTLs by it). */
  readonly budget: RateLimitBudget;
  send(req: UpstreamRequest): Promise<UpstreamResponse>;
  close(): Promise<void>;
}

type AuthState = { scheme: 'none' } | { scheme: 'basic' } | ({ scheme: 'bearer' } & BearerChallenge);

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export function createRegistryClient(options: RegistryClientOptions): RegistryClient {
  const origin = new URL(options.url).origin;
  const basePath = new URL(options.url).pathname.replace(/\/+$/, '');
  const agent = createAgent({
    // Redirects and token realms are the upstream's choice: none may reach link-local or metadata.
    connect: createGuardedConnector({ timeout: options.connectTimeout, lookup: options.lookup }),
    keepAliveTimeout: 30_000, // 30s: reuse connections across a burst of pulls
    keepAliveMaxTimeout: 600_000, // 10m
    headersTimeout: options.headersTimeout,
    bodyTimeout: options.bodyTimeout,
  });
  const tokenOptions = {
    registry: options.name,
    dispatcher: agent,
    headersTimeout: options.headersTimeout,
    bodyTimeout: options.bodyTimeout,
    ...(options.onTokenFetch ? { onFetch: options.onTokenFetch } : {}),
  };
  // The configured credentials go only to the registry's own token realm (its host, its registrable
  // domain or a listed host); a host it redirects to (registry.k8s.io → Artifact Registry, a blob
  // CDN) gets anonymous tokens from its own challenge.
  const ownTokens: TokenAuth = createTokenAuth({
    ...tokenOptions,
    credentials: options.credentials,
    realmPolicy: createRealmPolicy({ registryUrl: options.url, tokenRealms: options.tokenRealms }),
    onCredentialsWithheld: options.onCredentialsWithheld,
  });
  const foreignTokens: TokenAuth = createTokenAuth({ ...tokenOptions, credentials: undefined });
  // Learned from each host's first 401 and reused, so later requests authenticate up front.
  const authByOrigin = new Map<string, AuthState>();
  // Scopes other hosts asked for, by the repository path they use (it differs from ours).
  const foreignScopes = new Map<string, string>();
  // Other hosts whose challenge named no scope (a CDN): one scope-less token serves all their paths.
  const scopelessOrigins = new Set<string>();

  async function authorization(url: URL, scope: string): Promise<string | undefined> {
    const state = authByOrigin.get(url.origin);
    const own = url.origin === origin;
    if (state?.scheme === 'bearer')
      return `Bearer ${await (own ? ownTokens : foreignTokens).token(state, scope)}`;
    if (state?.scheme === 'basic' && own && options.credentials) {
      const { username, password } = options.credentials;
      return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    }
    return undefined;
  }

  /** The request, if the upstream's health and budget let it go; each outcome is reported to health. */
  async function send(req: UpstreamRequest): Promise<UpstreamResponse> {
    if (req.limited) {
      const wait = options.budget.retryAfter();
      if (wait !== null) throw upstreamRateLimited(options.name, wait, options.budget.reading()?.headers);
    }
    const admission = options.health.admit();
    if (!admission.admitted) throw upstreamCoolingDown(options.name, admission.retryAfterSeconds);
    const { pass } = admission;
    try {
      const response = await follow(req);
      tell(pass.answered());
      return response;
    } catch (error) {
      settle(pass, error);
      throw error;
    }
  }

  function settle(pass: HealthPass, error: unknown): void {
    const answer = answerOf(error);
    if (answer === 'none') tell(pass.failed());
    else if (answer === 'answered') tell(pass.answered());
    else pass.released();
  }

  function tell(notice: HealthNotice | null): void {
    if (notice) options.onHealth?.(notice);
  }

  /** The request and the redirects it is answered with, up to maxRedirects. */
  async function follow(req: UpstreamRequest): Promise<UpstreamResponse> {
    let url = new URL(`${origin}${basePath}/v2/${req.path}`);
    if (req.query) url.search = req.query.toString();
    for (let hop = 0; ; hop++) {
      const response = await sendAuthorized(req, url);
      const location = response.headers.location;
      if (!REDIRECT_STATUSES.has(response.status) || typeof location !== 'string') return response;
      await discard(response);
      if (hop >= options.maxRedirects) {
        throw upstreamUnavailable(options.name, `${options.name} redirected too many times`);
      }
      url = new URL(location, url);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') {
        throw upstreamUnavailable(options.name, `${options.name} redirected to an unsupported URL scheme`);
      }
    }
  }

  /** One request to one host, answering that host's auth challenge once if it makes one. */
  async function sendAuthorized(req: UpstreamRequest, url: URL): Promise<UpstreamResponse> {
    const own = url.origin === origin;
    const repositoryKey = `${url.origin}${repositoryPathOf(url.pathname)}`;
    let scope: string | undefined = own
      ? `repository:${req.repository}:pull`
      : (foreignScopes.get(repositoryKey) ?? (scopelessOrigins.has(url.origin) ? '' : undefined));
    // The Bearer token this request sent, if any: only a refusal of that one is a refused token
    // (concurrent first requests all get a 401 before any of them has a token).
    let sentToken: string | undefined;
    const withAuth = async () => {
      // A host that redirected us has not told us its scope for this repository yet: ask it first.
      const header =
        own && options.authorization
          ? options.authorization
          : scope !== undefined
            ? await authorization(url, scope)
            : undefined;
      sentToken = header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
      // Each host gets only the authorization it asked for itself: never another host's.
      return dispatch(req, url, header ? { ...req.headers, authorization: header } : { ...req.headers });
    };
    const response = await withAuth();
    if (response.status !== 401) return response;

    const challenges = parseWwwAuthenticate(response.headers['www-authenticate']);
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    const basic = challenges.find((c) => c.scheme === 'basic');
    const previous = authByOrigin.get(url.origin);
    if (bearer?.params.realm) {
      const state: AuthState = {
        scheme: 'bearer',
        realm: bearer.params.realm,
        service: bearer.params.service,
      };
      authByOrigin.set(url.origin, state);
      scope = bearer.params.scope ?? scope ?? '';
      if (!own && bearer.params.scope !== undefined) foreignScopes.set(repositoryKey, scope);
      else if (!own) scopelessOrigins.add(url.origin);
      // A token we sent was refused: fetch a fresh one instead of the cached one.
      if (sentToken !== undefined && previous?.scheme === 'bearer')
        (own ? ownTokens : foreignTokens).forget(state, scope, sentToken);
    } else if (basic && own && options.credentials && previous?.scheme !== 'basic') {
      authByOrigin.set(url.origin, { scheme: 'basic' });
    } else {
      return response; // nothing more we can offer: the client sees the registry's 401
    }
    await discard(response);
    return withAuth();
  }

  async function dispatch(req: UpstreamRequest, url: URL, headers: Record<string, string>) {
    const started = performance.now();
    try {
      const response = await request(url, {
        method: req.method,
        headers,
        dispatcher: agent,
        signal: req.signal,
      });
      options.onResponse?.(response.statusCode, (performance.now() - started) / 1000);
      // Only the registry's own answers speak for its limit (a CDN it redirects to has none).
      if (url.origin === origin) observeBudget(response.statusCode, response.headers);
      return { status: response.statusCode, headers: response.headers, body: response.body };
    } catch (error) {
      const failure = transportError(options.name, error, options.describe);
      options.onError?.(String((failure.detail as { reason?: string } | undefined)?.reason ?? failure.code));
      throw failure;
    }
  }

  function observeBudget(status: number, headers: UpstreamResponse['headers']): void {
    for (const notice of options.budget.observe(status, headers)) options.onBudget?.(notice);
    // A 429 that does not say when: the client is told the wait the window implies (and gets no sooner).
    if (status === 429 && headers['retry-after'] === undefined) {
      const wait = options.budget.retryAfter();
      if (wait !== null) headers['retry-after'] = String(wait);
    }
  }

  return {
    name: options.name,
    budget: options.budget,
    send,
    close: () => agent.close(),
  };
}

/** `/v2/<repository>/` of a registry API path, the part token scopes are about. */
function repositoryPathOf(pathname: string): string {
  return /^(.*\/v2\/.+?)\/(?:manifests|blobs|tags|referrers)\//.exec(pathname)?.[1] ?? pathname;
}

/** Reads and drops an answer we will not use, so its connection can be reused. */
export async function discard(response: UpstreamResponse): Promise<void> {
  try {
    await (response.body as Dispatcher.ResponseData['body']).dump({ limit: 1 << 20 });
  } catch {
    response.body.destroy();
  }
}
