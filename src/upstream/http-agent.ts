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

/** undici's `request(url, options)`, on the given dispatcher (never the global one). */
export function request(
  url: URL,
  { dispatcher, ...options }: RequestOptions,
): Promise<Dispatcher.ResponseData> {
  return dispatcherRequest.call(dispatcher, {
    ...options,
    origin: url.origin,
    path: `${url.pathname}${url.search}`,
  });
}
