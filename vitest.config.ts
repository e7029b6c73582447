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
    // Bounds for a hang, not for speed: no test asserts on elapsed time, and one that passes takes the
    // same time under any bound. Generous, so the suite passes with both cores busy (test:stress).
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
});
