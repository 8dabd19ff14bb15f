/**
 * @module The peer endpoint: other members ask this replica for a blob (`GET`/`HEAD`, with `Range`)
 * or a manifest (by tag or digest) at the `/v2` paths under `/_pullcache/peer` (peer-paths.ts), signed with the
 * cluster secret (peerAuth guards the prefix before this runs). It answers through the pull layer
 * like a client request, from the store or from the one download in flight, streaming as the bytes
 * arrive, but marked as a peer's request: never forwarded to another peer.
 *
 * While the answer is not ready (its upstream has not answered yet) it sends `102 Processing` every
 * third of `peerTimeout`: the asking replica then knows this one is alive and waits for the bytes
 * instead of fetching the blob from the upstream a second time; one that sends nothing is skipped.
 */
import type { Context } from 'hono';
import { parseRangeHeader } from '../byte-range.js';
import type { ChunkSource } from '../chunk-source.js';
import type { Config } from '../config.js';
import { parseDigest } from '../digest.js';
import { badRequest, notFound, unsupported } from '../errors.js';
import { mergeAccept } from '../http/accept.js';
import type { Env, PullInfo } from '../http/env.js';
import { headerValues, rawPath, sendSource } from '../http/send.js';
import { parseV2Path } from '../http/v2-path.js';
import { API_VERSION_HEADER, blobHeaders } from '../http/v2-routes.js';
import type { Metrics } from '../metrics.js';
import type { Puller } from '../pull/puller.js';
import { assertTag } from '../reference.js';
import { resolveRoute } from '../routing.js';
import { PEER_PATH_PREFIX } from './peer-auth.js';

export interface PeerRoutesDeps {
  config: Pick<Config, 'registries' | 'defaultRegistry'> & { cluster: { peerTimeout: number } };
  puller: Puller;
  metrics: Metrics;
}

export function createPeerHandler({ config, puller, metrics }: PeerRoutesDeps) {
  const beatEvery = Math.max(10, Math.floor(config.cluster.peerTimeout / 3));

  return async function peerHandler(c: Context<Env>): Promise<Response> {
    const raw = rawPath(c);
    // Matched on the raw path, as /v2 is: the router has already resolved any `..` in it.
    const endpoint = raw.startsWith(`${PEER_PATH_PREFIX}/v2/`)
      ? parseV2Path(raw.slice(PEER_PATH_PREFIX.length))
      : null;
    if (endpoint?.kind !== 'blob' && endpoint?.kind !== 'manifest') throw notFound();
    const method = c.req.method;
    if (method !== 'GET' && method !== 'HEAD') throw unsupported(`${method} is not a peer request`);
    const head = method === 'HEAD';
    const ns = c.req.query('ns');
    if (ns === undefined) throw badRequest('a peer request names its registry with ?ns=');
    const route = resolveRoute(endpoint.name, ns, config);
    const from = c.get('peer')!;
    const info: PullInfo = { endpoint: 'peer', registry: route.registry, repository: route.repository };
    c.set('pull', info);

    if (endpoint.kind === 'blob') {
      info.reference = endpoint.digest;
      parseDigest(endpoint.digest);
      const range = parseRangeHeader(c.req.header('range'));
      const answer = await whileWaiting(
        c,
        puller.blob(route, endpoint.digest, { head, range, fromPeer: from }),
        beatEvery,
      );
      info.cache = answer.cache;
      metrics.peerRequests.inc({ peer: from, direction: 'served', kind: 'blob' });
      const source = answer.source
        ? counted(answer.source, (bytes) => metrics.peerBytes.inc({ peer: from, direction: 'served' }, bytes))
        : null;
      const headers = { ...API_VERSION_HEADER, ...blobHeaders(answer) };
      return sendSource(c, answer.range ? 206 : 200, headers, source);
    }

    const reference = endpoint.reference;
    info.reference = reference;
    if (reference.includes(':')) parseDigest(reference);
    else assertTag(reference);
    const accept = mergeAccept(headerValues(c, 'accept'));
    const answer = await whileWaiting(
      c,
      puller.manifest(route, reference, { head, accept, fromPeer: from }),
      beatEvery,
    );
    info.cache = answer.cache;
    metrics.peerRequests.inc({ peer: from, direction: 'served', kind: 'manifest' });
    const headers = {
      ...API_VERSION_HEADER,
      'content-type': answer.mediaType,
      'content-length': String(answer.size),
      'docker-content-digest': answer.digest,
    };
    return head ? c.body(null, 200, headers) : c.body(new Uint8Array(answer.bytes!), 200, headers);
  };
}

/** Waits for `work`, sending `102 Processing` every `everyMs` until the answer's own headers go out. */
async function whileWaiting<T>(c: Context<Env>, work: Promise<T>, everyMs: number): Promise<T> {
  const outgoing = c.env?.outgoing;
  if (!outgoing) return work; // in-process requests (unit tests) have no socket to keep alive
  const timer = setInterval(() => {
    if (!outgoing.headersSent && !outgoing.destroyed) outgoing.writeProcessing();
  }, everyMs);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

/** The source, reporting every chunk it yields. */
function counted(source: ChunkSource, onBytes: (bytes: number) => void): ChunkSource {
  return {
    length: source.length,
    ...(source.buffering ? { buffering: source.buffering } : {}),
    async read(buffer) {
      const n = await source.read(buffer);
      if (n > 0) onBytes(n);
      return n;
    },
    close: () => source.close(),
  };
}
