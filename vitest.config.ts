import { defineConfig } from 'vitest/config';

// Unit tests sit beside the code; integration tests (msw upstreams over loopback) under test/integration.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/integration/**/*.test.ts'],
    testTimeout: 20_000,
  },
});
