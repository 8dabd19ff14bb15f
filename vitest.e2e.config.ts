import { defineConfig } from 'vitest/config';

// End-to-end: real docker-registry, skopeo and containerd. Suites start their own servers on
// loopback ports, so they run one file at a time on these 2-core machines.
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
