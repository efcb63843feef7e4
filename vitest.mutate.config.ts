import { defineConfig } from 'vitest/config';

/**
 * The tests Stryker runs against each mutant (`npm run mutate`, stryker.config.mjs): the fast, in-process tests of
 * the mutated modules. The process, broker and fault suites are left out: they take minutes per run, and a mutant
 * they alone would kill is reported as surviving (docs/testing.md lists the survivors and why).
 */
export default defineConfig({
  test: {
    include: [
      'test/docs.test.ts',
      'test/agent/core/seq-ranges.test.ts',
      'test/agent/sync/central-ack.test.ts',
      'test/agent/health/*.test.ts',
      'test/agent/config/load-config.test.ts',
      'test/agent/config/config-cross-checks.test.ts',
      'test/agent/store/storage-limits.test.ts',
      'test/agent/scoring/drift-monitor.test.ts',
      'test/agent/scoring/risk-scorer.test.ts',
    ],
    testTimeout: 30_000,
    maxWorkers: 1,
  },
});
