/** @module A one-shot wake-up shared by everyone waiting for the next change (one promise, not one per waiter). */

export interface Signal {
  promise: Promise<void>;
  resolve: () => void;
}

export function createSignal(): Signal {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
