#!/usr/bin/env node
// What the anomaly detector's precision matrix costs while its baseline is young (issue #13, docs/benchmarks.md,
// "Then: the floor under a Node agent"). A detector with SIGNALS signals (default 41, the host-only agent's) is fed
// correlated readings one second apart; it prints how often the precision matrix is recomputed per range of
// readings, and the median time of update() with and without a recomputation at readings 61–400, back to back.
// Run it under the daemon's flags and others, e.g.:
//   npm run build
//   node --no-opt scripts/anomaly-refresh-cost.mjs
//   node '--turbo-filter=packed*' scripts/anomaly-refresh-cost.mjs
// It watches AnomalyDetector's private precisionFor(): a measuring aid, not an API.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { AnomalyDetector } = await import(path.join(root, 'dist/agent/src/scoring/anomaly/detector.js'));
const SIGNALS = Number(process.argv[2] ?? 41);

function detector() {
  const d = new AnomalyDetector({ falseAlarmRate: 1e-4, warmupSamples: 50, halfLifeHours: 24, maxSignals: 64 });
  const watch = { recomputed: false };
  const own = d.precisionFor.bind(d);
  d.precisionFor = (scored) => {
    const before = d.precision;
    const p = own(scored);
    watch.recomputed = p !== before;
    return p;
  };
  return { d, watch };
}

// Sums of uniforms (about normal), with one factor shared by every signal: correlated, as host metrics are.
const noise = () => Math.random() + Math.random() + Math.random() + Math.random() + Math.random() + Math.random() - 3;
function reading() {
  const common = noise();
  const v = {};
  for (let i = 0; i < SIGNALS; i++) v[`s${i}`] = 100 + i + 10 * (0.5 * common + noise());
  return v;
}

const t0 = Date.UTC(2026, 11, 8);
{
  const { d, watch } = detector();
  let count = 0;
  let from = 1;
  for (let n = 1; n <= 86_400; n++) {
    d.update(reading(), t0 + n * 1000);
    if (watch.recomputed) count++;
    if ([60, 240, 1000, 5000, 20_000, 86_400].includes(n)) {
      console.log(`readings ${from}–${n}: ${count} recomputations, ${((count / (n - from + 1)) * 100).toFixed(1)} per 100 readings`);
      count = 0;
      from = n + 1;
    }
  }
}
{
  const { d, watch } = detector();
  const withIt = [];
  const without = [];
  for (let n = 1; n <= 400; n++) {
    const v = reading();
    const start = process.hrtime.bigint();
    d.update(v, t0 + n * 1000);
    const us = Number(process.hrtime.bigint() - start) / 1000;
    if (n > 60) (watch.recomputed ? withIt : without).push(us);
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  console.log(
    `update() at readings 61–400, ${SIGNALS} signals, flags [${process.execArgv.join(' ')}]: ${median(withIt).toFixed(0)} µs with a recomputation (${withIt.length}), ${median(without).toFixed(0)} µs without (${without.length})`,
  );
}
