/** @module The hono environment: Node's request/response bindings and what handlers tell the request log. */
import type { HttpBindings } from '@hono/node-server';
import type { RegistryError } from '../errors.js';
import type { CacheOutcome } from '../pull/types.js';

/** What a request was about, set by the /v2 handler for logs and metrics. */
export interface PullInfo {
  endpoint: 'base' | 'manifest' | 'blob' | 'tags' | 'referrers' | 'upload' | 'catalog' | 'peer';
  registry?: string;
  repository?: string;
  reference?: string;
  cache?: CacheOutcome;
}

export type Env = {
  Bindings: HttpBindings;
  Variables: {
    requestId: string;
    pull: PullInfo | undefined;
    error: RegistryError | undefined;
    /** The cluster member a verified peer request came from (peerAuth sets it). */
    peer: string | undefined;
  };
};
