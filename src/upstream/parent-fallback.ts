/**
 * @module `parent.fallback: direct`: a registry's requests go to the parent pullcache, and to the
 * registry itself while the parent cannot serve them. A parent that cannot be reached (refused,
 * reset, no connection in time, its token refused) is skipped by every registry for a cool-down,
 * after which one request at a time tries it again; a parent that answers 5xx or sends no headers
 * in time sends only that request to the registry. Answers below 500 (404, 401, 429) and a pull
 * limit the parent reported spent are the parent's answer and go to the client as they are.
 */
import { RegistryError } from '../errors.js';
import { discard, type RegistryClient, type UpstreamRequest } from './registry-client.js';

// 10s: a parent that restarts (a rollout) is back within seconds; until then each request would
// otherwise pay a failed connection before going to the registry.
export const PARENT_RETRY_MS = 10_000;

export interface ParentHealthOptions {
  retryMs?: number;
  now?: () => number;
  /** The parent became unusable (logged once until it is back). */
  onDown?: (reason: string) => void;
  onUp?: () => void;
}

/** Whether the parent is worth asking, shared by every registry's client. */
export interface ParentHealth {
  /** True when this request should go to the parent (it may be the one probe while it is down). */
  tryParent(): boolean;
  reached(): void;
  unreachable(reason: string): void;
}

export function createParentHealth(options: ParentHealthOptions = {}): ParentHealth {
  const now = options.now ?? Date.now;
  const retryMs = options.retryMs ?? PARENT_RETRY_MS;
  let down = false;
  let retryAt = 0;
  let probing = false;
  return {
    tryParent() {
      if (!down) return true;
      if (probing || now() < retryAt) return false;
      probing = true;
      return true;
    },
    reached() {
      probing = false;
      if (!down) return;
      down = false;
      options.onUp?.();
    },
    unreachable(reason) {
      probing = false;
      retryAt = now() + retryMs;
      if (down) return;
      down = true;
      options.onDown?.(reason);
    },
  };
}

export interface FallbackHooks {
  /** One request went to the registry because the parent could not serve it. */
  onFallback?: (registry: string, reason: string) => void;
}

/** `parent` for `direct`'s registry, with `direct` taking over what the parent cannot serve. */
export function withDirectFallback(
  parent: RegistryClient,
  direct: RegistryClient,
  health: ParentHealth,
  hooks: FallbackHooks = {},
): RegistryClient {
  async function send(req: UpstreamRequest) {
    if (!health.tryParent()) return direct.send(req);
    let reason: string;
    try {
      const response = await parent.send(req);
      health.reached();
      if (response.status < 500) return response;
      await discard(response);
      reason = `the parent answered ${response.status}`;
    } catch (error) {
      if (req.signal?.aborted || !(error instanceof RegistryError)) throw error;
      // A spent pull limit is the registry's answer, which the parent passed on: going around it
      // would spend this node's own limit too.
      if (reasonOf(error) === 'RATE_LIMIT_SPENT') throw error;
      reason = error.message;
      if (reasonOf(error) === 'UND_ERR_HEADERS_TIMEOUT')
        health.reached(); // slow, but there
      else health.unreachable(reason);
    }
    hooks.onFallback?.(direct.name, reason);
    return direct.send(req);
  }
  // The limit that stretches tag TTLs is the parent's view of the registry, where the pulls go.
  return {
    name: direct.name,
    budget: parent.budget,
    send,
    close: async () => {
      await Promise.all([parent.close(), direct.close()]);
    },
  };
}

function reasonOf(error: RegistryError): string | undefined {
  return (error.detail as { reason?: string } | undefined)?.reason;
}
