import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/azurite.ts'],
    // The tests run the functions themselves (lib/functions.ts skips registering with a Functions host).
    env: { EMFLEET_LOCAL_HOST: '1' },
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
