import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/azurite.ts'],
    // The tests run the functions themselves (lib/functions.ts skips registering with a Functions host).
    env: { EMFLEET_LOCAL_HOST: '1' },
    // Most test time is waiting (Azurite, loopback HTTP, relay round trips, bakes), not CPU: three
    // files at once on a 2-core machine halves the suite's wall time (210 s → 95 s measured).
    maxWorkers: 3,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
