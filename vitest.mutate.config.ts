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
      'test/agent/config/config-safety.test.ts',
      'test/agent/store/storage-limits.test.ts',
      'test/agent/scoring/drift-monitor.test.ts',
      'test/agent/scoring/risk-scorer.test.ts',
      // The scorer's model swaps and shadows, driven by the model updater in process (about 2 s).
      'test/agent/model-lifecycle/model-updater.test.ts',
    ],
    // The whole default demo (9,000 readings through the real models) runs in a beforeAll: Stryker counts what a
    // hook covers as covered by no test, so every mutant it reaches ran every related test (two hours estimated for
    // health-monitor.ts alone). The monitor's, scorer's and drift monitor's own tests stand in for it.
    exclude: [
      'test/agent/health/default-demo-alerts.test.ts',
      // A run may leave out more (comma-separated), e.g. the slow alert-rules suite for health-monitor.ts: the score
      // is then a lower bound (docs/testing.md says which runs did).
      ...(process.env.FOREWARN_MUTATE_EXCLUDE?.split(',').filter(Boolean) ?? []),
    ],
    testTimeout: 30_000,
    maxWorkers: 1,
  },
});
