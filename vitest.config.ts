import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/temp-root.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests share one Docker engine and one Elasticsearch on a 2-core machine.
    fileParallelism: false,
  },
});
