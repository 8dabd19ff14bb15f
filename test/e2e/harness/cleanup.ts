/** @module A stack of teardown steps for afterAll: run in reverse order, every step even if one fails. */

export interface Cleanup {
  /** Registers a step, returns `value`: `const r = cleanup.add(await startRegistry(), (r) => r.stop())`. */
  add<T>(value: T, step: (value: T) => unknown): T;
  defer(step: () => unknown): void;
  run(): Promise<void>;
}

export function createCleanup(): Cleanup {
  const steps: (() => unknown)[] = [];
  return {
    add(value, step) {
      steps.push(() => step(value));
      return value;
    },
    defer(step) {
      steps.push(step);
    },
    async run() {
      const errors: unknown[] = [];
      for (const step of steps.splice(0).reverse()) {
        try {
          await step();
        } catch (error) {
          errors.push(error);
        }
      }
      if (errors.length > 0) throw new AggregateError(errors, `${errors.length} cleanup step(s) failed`);
    },
  };
}
