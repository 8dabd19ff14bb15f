/** @module Concurrent calls with one key share one in-flight promise (one upstream request, many waiters). */

export function createSingleFlight<V>() {
  const inflight = new Map<string, Promise<V>>();
  return function share(key: string, work: () => Promise<V>): Promise<V> {
    const running = inflight.get(key);
    if (running) return running;
    const promise = work().finally(() => inflight.delete(key));
    inflight.set(key, promise);
    return promise;
  };
}
