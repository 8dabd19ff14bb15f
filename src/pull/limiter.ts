/** @module At most N things at once; the rest wait in order (upstream downloads per registry). */

export function createLimiter(max: number) {
  let running = 0;
  const waiting: (() => void)[] = [];
  return {
    /** Resolves with a release function once a slot is free. */
    async acquire(): Promise<() => void> {
      if (running >= max) await new Promise<void>((resolve) => waiting.push(resolve));
      else running++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const next = waiting.shift();
        if (next)
          next(); // the slot passes straight on
        else running--;
      };
    },
    get waiting() {
      return waiting.length;
    },
  };
}
