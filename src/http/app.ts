/**
 * @module The hono app: the /v2 API, health and metrics endpoints, the peer endpoint in a cluster,
 * the request log, and one error boundary that writes OCI error bodies.
 */
import { Hono } from 'hono';
import type { Logger } from 'pino';
import { PEER_PATH_PREFIX, peerAuth } from '../cluster/peer-auth.js';
import { createPeerHandler } from '../cluster/peer-routes.js';
import type { Config } from '../config.js';
import { internalError, notFound, RegistryError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { clientAccess } from './client-access.js';
import type { Env } from './env.js';
import { type AnsweredPull, requestLog } from './request-log.js';
import { rawPath } from './send.js';
import { addStatusPage, type StatusPageDeps } from './status-page.js';
import { API_VERSION_HEADER, createV2Handler, type V2Deps } from './v2-routes.js';

export interface AppDeps extends V2Deps {
  config: V2Deps['config'] & Pick<Config, 'auth' | 'allowedClients' | 'cluster'>;
  logger: Logger;
  metrics: Metrics;
  /** Throws when the cache cannot take writes (readiness). */
  probeStorage(): Promise<void>;
  /** The status page's data. */
  status: StatusPageDeps;
  /** Each manifest or blob answer, once sent (traffic history, pull counts). */
  onAnswered?: (pull: AnsweredPull) => void;
}

export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();
  const v2 = createV2Handler(deps);
  app.use('*', requestLog(deps.logger, deps.metrics, deps.onAnswered));
  const access = clientAccess(deps.config);
  if (access) app.use('*', access);

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    try {
      await deps.probeStorage();
      return c.json({ status: 'ready' });
    } catch (error) {
      deps.logger.warn({ error: (error as Error).message }, 'storage is not writable');
      return c.json({ status: 'not ready', reason: 'storage is not writable' }, 503);
    }
  });
  app.get('/metrics', async (c) =>
    c.body(await deps.metrics.registry.metrics(), 200, { 'content-type': deps.metrics.registry.contentType }),
  );
  app.get('/_pullcache/stats', async (c) => {
    await deps.status.syncRemovals(); // what `pullcache rm`/`prune` removed is not counted
    return c.json(deps.puller.stats());
  });
  addStatusPage(app, deps.status);

  const { cluster } = deps.config;
  if (cluster) {
    // Signed requests only, whatever client credentials come with them (client access lets the
    // prefix through to this guard).
    app.use(`${PEER_PATH_PREFIX}/*`, peerAuth({ secret: cluster.secret }));
    app.all(`${PEER_PATH_PREFIX}/*`, createPeerHandler({ ...deps, config: { ...deps.config, cluster } }));
  }

  // Matched on the raw path: the router sees `/v2/../x` already resolved to `/x`, which must be refused.
  app.all('*', (c) => {
    if (rawPath(c).startsWith('/v2')) return v2(c);
    throw notFound();
  });

  app.onError((error, c) => {
    const known = error instanceof RegistryError;
    const failure = known ? error : internalError({ requestId: c.get('requestId') });
    if (!known) deps.logger.error({ err: error, reqId: c.get('requestId') }, 'unhandled error');
    c.set('error', failure);
    const headers = { ...API_VERSION_HEADER, ...failure.headers };
    if (c.req.method === 'HEAD') return c.body(null, failure.status as 400, headers);
    return c.json(failure.toBody(), failure.status as 400, headers);
  });
  return app;
}
