import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['jaf-source'] },
  test: {
    include: ['test/**/*.test.ts'],
    // Real Piscina threads and real timers: keep files from competing for the 2 cores too hard.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
