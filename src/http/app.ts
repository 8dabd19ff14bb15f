/** @module The hono app: the /v2 API behind one error boundary that writes OCI error bodies. */
import { Hono } from 'hono';
import type { Logger } from 'pino';
import { RegistryError } from '../errors.js';
import { type Env, rawPath } from './send.js';
import { API_VERSION_HEADER, createV2Handler, type V2Deps } from './v2-routes.js';

export interface AppDeps extends V2Deps {
  logger: Logger;
}

export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  const v2 = createV2Handler(deps);
  app.get('/_pullcache/stats', (c) => c.json(deps.puller.stats()));
  // Matched on the raw path: the router sees `/v2/../x` already resolved to `/x`, which must be refused.
  app.all('*', (c) => {
    if (rawPath(c).startsWith('/v2')) return v2(c);
    throw new RegistryError('UNSUPPORTED', 404, 'not found: this path is not part of the registry API');
  });

  app.onError((error, c) => {
    const known = error instanceof RegistryError;
    const failure = known
      ? error
      : new RegistryError('UNKNOWN', 500, 'internal error', { detail: { requestPath: c.req.path } });
    if (!known) deps.logger.error({ err: error, path: c.req.path }, 'unhandled error');
    else if (failure.status >= 500)
      deps.logger.warn(
        { code: failure.code, msg: failure.message, detail: failure.detail },
        'upstream failure',
      );
    const headers = { ...API_VERSION_HEADER, ...failure.headers };
    if (c.req.method === 'HEAD') return c.body(null, failure.status as 400, headers);
    return c.json(failure.toBody(), failure.status as 400, headers);
  });
  return app;
}
