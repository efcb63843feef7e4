/**
 * Cost of the adaptive anomaly detector (agent/src/scoring/anomaly/detector.ts) per reading, for an asset
 * with 10, 30 and 100 signals, and its memory per asset. The detector is first taught 30,000 readings 5 s
 * apart (its steady state after warm-up: the precision matrix is recomputed only as the baseline turns over);
 * then each call scores and learns a batch of readings from a correlated synthetic machine.
 */
import { type BenchReport, measure, round } from './bench-harness.js';
import { AnomalyDetector } from '../../agent/src/scoring/anomaly/detector.js';
import { seededRandom } from '../helpers/seeded-random.js';

const SIGNALS = [10, 30, 100];
const TRAIN = 30_000;
const BATCH = 200;
const STEP_MS = 5_000;

/** Readings of p signals driven by three shared factors plus noise, so the covariance is not diagonal. */
function readings(p: number, count: number, seed: number): Array<Record<string, number>> {
  const rnd = seededRandom(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const loads = Array.from({ length: p }, () => [gauss(), gauss(), gauss()]);
  const names = Array.from({ length: p }, (_, i) => `signal.${i}`);
  return Array.from({ length: count }, () => {
    const f = [gauss(), gauss(), gauss()];
    const out: Record<string, number> = {};
    names.forEach((n, i) => (out[n] = 100 + i + loads[i]![0]! * f[0]! + loads[i]![1]! * f[1]! + loads[i]![2]! * f[2]! + 0.5 * gauss()));
    return out;
  });
}

export async function run(): Promise<BenchReport> {
  const rows: BenchReport['rows'] = [];
  for (const p of SIGNALS) {
    const data = readings(p, 4_096, p);
    const d = new AnomalyDetector({ falseAlarmRate: 1e-4, warmupSamples: 1_000, halfLifeHours: 24, maxSignals: Math.max(64, p) });
    let ts = 0;
    let k = 0;
    const t0 = performance.now();
    for (; k < TRAIN; k++) d.update(data[k % data.length]!, (ts += STEP_MS));
    const trainMs = performance.now() - t0;
    const m = await measure(
      () => {
        for (let b = 0; b < BATCH; b++, k++) d.update(data[k % data.length]!, (ts += STEP_MS));
      },
      200,
      { warmup: 10 },
    );
    const s = d.summary();
    rows.push({
      signals: p,
      state: s.state,
      us_per_update_p50: round((m.medianMs * 1000) / BATCH),
      us_per_update_p99_batch: round((m.p99Ms * 1000) / BATCH),
      us_per_update_mean: round((m.meanMs * 1000) / BATCH),
      us_per_update_incl_warmup: round((trainMs * 1000) / TRAIN),
      bytes_per_asset: s.bytes,
      state_json_bytes: JSON.stringify(d.toJSON()).length,
    });
  }
  return {
    name: 'Anomaly detector: cost per reading and memory per asset',
    rows,
    notes: [
      `Each call scores and learns ${BATCH} readings; us_per_update = call time / ${BATCH} (p99 is of the batch mean, so the occasional precision-matrix refresh shows in the mean, not as one slow reading).`,
      'us_per_update_incl_warmup: the first 30,000 readings, where the baseline turns over fast and the precision matrix is refreshed more often.',
      "bytes_per_asset: the detector's own estimate (typed arrays + per-signal overhead); state_json_bytes: what is persisted in the meta table.",
    ],
  };
}
