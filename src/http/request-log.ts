/**
 * @module One JSON log line and one set of metrics per request, written when the response is done
 * (streamed blobs finish long after the handler returns): request id, client, what was pulled, the
 * cache result, status, bytes and duration. Server errors log at warn; nothing secret is logged.
 */
import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';
import type { Env } from './env.js';

/** A manifest or blob answer as sent: what was pulled, how the cache served it, bytes on the wire. */
export interface AnsweredPull {
  endpoint: 'manifest' | 'blob';
  registry: string;
  repository: string;
  reference: string;
  cache: 'hit' | 'miss' | 'revalidated' | 'stale';
  status: number;
  bytes: number;
  /** The client went away before the end. */
  aborted: boolean;
}

export function requestLog(
  logger: Logger,
  metrics: Metrics,
  onAnswered?: (pull: AnsweredPull) => void,
): MiddlewareHandler<Env> {
  return async function requestLogMiddleware(c, next) {
    const started = performance.now();
    const incoming = c.env?.incoming;
    const outgoing = c.env?.outgoing;
    const supplied = c.req.header('x-request-id');
    // A client's id is kept only if it is short and plain: it goes into every log line.
    const requestId = supplied && /^[\w.:-]{1,64}$/.test(supplied) ? supplied : randomUUID();
    c.set('requestId', requestId);
    c.header('x-request-id', requestId);
    const socket = incoming?.socket;
    const bytesBefore = socket?.bytesWritten ?? 0;
    await next();
    const headersAt = performance.now();

    const finish = (aborted: boolean) => {
      const pull = c.get('pull');
      const status = outgoing?.statusCode ?? c.res.status;
      const bytes = socket
        ? socket.bytesWritten - bytesBefore
        : Number(c.res.headers.get('content-length') ?? 0);
      const endpoint = pull?.endpoint ?? endpointOf(c.req.path);
      metrics.httpRequests.inc({ endpoint, method: c.req.method, status: String(status) });
      metrics.httpDuration.observe({ endpoint }, (headersAt - started) / 1000);
      if (
        pull?.cache &&
        pull.cache !== 'pass' &&
        (pull.endpoint === 'manifest' || pull.endpoint === 'blob')
      ) {
        metrics.cacheResults.inc({ kind: pull.endpoint, result: pull.cache });
        if (pull.cache === 'hit' && pull.registry && !aborted) {
          metrics.servedFromCacheBytes.inc({ registry: pull.registry }, bytes);
        }
        if (pull.registry && pull.repository && pull.reference)
          onAnswered?.({
            endpoint: pull.endpoint,
            registry: pull.registry,
            repository: pull.repository,
            reference: pull.reference,
            cache: pull.cache,
            status,
            bytes,
            aborted,
          });
      }
      const error = c.get('error');
      const line = {
        reqId: requestId,
        client: incoming?.socket.remoteAddress,
        method: c.req.method,
        path: c.req.path,
        registry: pull?.registry,
        repository: pull?.repository,
        reference: pull?.reference,
        cache: pull?.cache,
        status,
        bytes,
        ms: Math.round(performance.now() - started),
        ...(aborted ? { aborted: true } : {}),
        ...(error ? { error: error.code, message: error.message } : {}),
      };
      if (status >= 500 || aborted) logger.warn(line, 'request');
      else logger.info(line, 'request');
    };

    if (!outgoing) {
      finish(false);
    } else if (outgoing.writableFinished) {
      finish(false);
    } else {
      // 'close' fires for complete and broken responses alike; 'finish' only for complete ones.
      outgoing.once('close', () => finish(!outgoing.writableFinished));
    }
  };
}

function endpointOf(path: string): string {
  if (path === '/metrics') return 'metrics';
  if (path === '/healthz' || path === '/readyz') return 'health';
  if (path.startsWith('/_pullcache/peer/')) return 'peer';
  if (path.startsWith('/_pullcache/')) return 'admin';
  return 'other';
}
