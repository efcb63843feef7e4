// Mutation testing (docs/testing.md): `npm run mutate` mutates the modules where a silent regression hurts most and
// runs the fast tests of vitest.mutate.config.ts against each mutant. Not part of `npm test`: it takes tens of
// minutes on two cores. A subset: `npm run mutate -- --mutate agent/src/core/seq-ranges.ts`.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutate.config.ts', related: true },
  plugins: ['@stryker-mutator/vitest-runner'],
  checkers: [],
  mutate: [
    'agent/src/core/seq-ranges.ts',
    'agent/src/sync/central-ack.ts',
    'agent/src/health/health-rules.ts',
    'agent/src/health/data-quality.ts',
    'agent/src/health/health-monitor.ts',
    'agent/src/config/load-config.ts',
    'agent/src/store/storage-limits.ts',
    'agent/src/scoring/drift-monitor.ts',
    'agent/src/scoring/risk-scorer.ts',
  ],
  // Two shared cores: one test process at a time.
  concurrency: 1,
  coverageAnalysis: 'perTest',
  timeoutMS: 20_000,
  ignorePatterns: ['dist', 'reports', '.stryker-tmp', 'models/**/build', 'data', 'firmware-bridge/c', 'test/agent/sources/host/fixtures/sys'],
  reporters: ['clear-text', 'progress', 'json', 'html'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
