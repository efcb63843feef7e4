import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['dist/**', 'node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests start their own mosquitto and agent processes; keep parallelism modest on 2-core hosts.
    maxWorkers: 2,
  },
});
