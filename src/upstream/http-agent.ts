/**
 * @module undici's Agent and `request`, loaded without the rest of undici: its index also loads
 * fetch, WebSocket, the cache stores, mocks and proxy agents, ~8 MB of resident memory in every
 * pullcache process (bench/RESULTS.md, "Start cost") for code we never call.
 */
// undici has no `exports` map, so its files are importable by path (types: undici-lib.d.ts); the
// bundle (scripts/build.mjs) then holds only these and what they require.
import type { Dispatcher, Agent as UndiciAgent } from 'undici';
import dispatcherRequest from 'undici/lib/api/api-request.js';
import AgentClass from 'undici/lib/dispatcher/agent.js';

export type AgentOptions = UndiciAgent.Options;

/** A keep-alive connection pool per origin (undici's Agent). */
export function createAgent(options: AgentOptions): Dispatcher {
  return new AgentClass(options);
}

export type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & {
  dispatcher: Dispatcher;
};

/**
 * undici's `request(url, options)`, on the given dispatcher (never the global one). A GET or HEAD
 * whose connection closes under it before any answer goes once more (`closedBeforeAnswer`).
 */
export async function request(
  url: URL,
  { dispatcher, ...options }: RequestOptions,
): Promise<Dispatcher.ResponseData> {
  const send = () =>
    dispatcherRequest.call(dispatcher, {
      ...options,
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
    });
  try {
    return await send();
  } catch (error) {
    const idempotent = options.method === 'GET' || options.method === 'HEAD';
    const aborted = (options.signal as AbortSignal | null | undefined)?.aborted === true;
    if (!idempotent || aborted || !closedBeforeAnswer(error)) throw error;
    return send();
  }
}

/**
 * The connection closed under a request before any answer came: most often a kept-alive connection
 * the other side (or a proxy on the way) had just closed as the request went out, so the request
 * never reached a handler. Go's http.Transport sends an idempotent request again then, and so does
 * `request`, once. undici does not say whether the connection was a reused one (its byte counts are
 * the request's), so a server that hangs up on every request costs two attempts.
 */
export function closedBeforeAnswer(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE';
}
