/**
 * @module undici's Agent and `request`, loaded without the rest of undici: its index also loads
 * fetch, WebSocket, the cache stores, mocks and proxy agents, ~8 MB of resident memory in every
 * pullcache process (bench/RESULTS.md, "Start cost") for code we never call.
 */
import { createRequire } from 'node:module';
import type { Dispatcher, Agent as UndiciAgent } from 'undici';

// undici has no `exports` map, so its files are importable by path; the types are the index's.
const load = createRequire(import.meta.url);
const AgentClass = load('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;
const dispatcherRequest = load('undici/lib/api/api-request.js') as (
  this: Dispatcher,
  options: Dispatcher.RequestOptions,
) => Promise<Dispatcher.ResponseData>;

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
