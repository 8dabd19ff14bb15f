import { defineConfig } from 'vitest/config';

// Unit tests sit beside the code; integration tests (msw upstreams over loopback) under test/integration;
// the fault suite (misbehaving upstreams, full and broken disks, signals) under test/faults.
export default defineConfig({
  test: {
    include: [
      'src/**/*.test.ts',
      'test/contract/**/*.test.ts',
      'test/integration/**/*.test.ts',
      'test/faults/**/*.test.ts',
    ],
    testTimeout: 20_000,
  },
});
