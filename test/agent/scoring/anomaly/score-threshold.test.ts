import { describe, expect, it } from 'vitest';
import { HIST_MAX, MIN_CALIBRATION, ScoreThreshold } from '../../../../agent/src/scoring/anomaly/score-threshold.js';
import { gaussian } from './synthetic.js';

const HOUR = 3_600_000;
/** Upper quantiles of the standard normal. */
const Z = { 1e-2: 2.326, 1e-3: 3.09, 1e-4: 3.719, 1e-5: 4.265 } as const;

function filled(n: number, seed = 1, halfLifeMs = 1000 * HOUR) {
  const t = new ScoreThreshold(halfLifeMs);
  const g = gaussian(seed);
  for (let k = 0; k < n; k++) t.add(g(), k * 1000);
  return t;
}

describe('ScoreThreshold', () => {
  it('has no threshold until it has seen enough scores', () => {
    expect(filled(MIN_CALIBRATION - 1).calibrate(1e-3)).toBeNull();
    expect(filled(MIN_CALIBRATION + 1).calibrate(1e-3)).not.toBeNull();
  });

  it('finds the empirical quantile where enough scores lie beyond it', () => {
    const t = filled(200_000);
    expect(t.calibrate(1e-2)!.threshold).toBeCloseTo(Z[1e-2], 1);
    expect(t.calibrate(1e-3)!.threshold).toBeCloseTo(Z[1e-3], 1);
  });

  it('extrapolates rare quantiles from the tail (peaks over threshold) where the history is too short for them', () => {
    // 20,000 scores hold 2 beyond the 1e-4 quantile and 0.2 beyond 1e-5: the empirical ones would be guesses.
    // Over 40 seeds the fitted tail is off by 0.15 (RMSE, 1e-4) and 0.35 (1e-5), bias under 0.06.
    for (const seed of [1, 2, 3]) {
      const t = filled(20_000, seed);
      const q4 = t.calibrate(1e-4)!.threshold;
      const q5 = t.calibrate(1e-5)!.threshold;
      expect(Math.abs(q4 - Z[1e-4])).toBeLessThan(0.45);
      expect(Math.abs(q5 - Z[1e-5])).toBeLessThan(1);
      expect(q5).toBeGreaterThan(q4);
    }
  });

  it('forgets old scores with its half-life', () => {
    const t = new ScoreThreshold(HOUR);
    const g = gaussian(4);
    let ts = 0;
    for (let k = 0; k < 20_000; k++) t.add(g(), (ts += 1000));
    expect(t.effectiveCount()).toBeGreaterThan(4_000); // about 1.44 × 3600 readings of 1 s
    expect(t.effectiveCount()).toBeLessThan(6_500);
    // The same process, shifted up by 2: after ten half-lives the old one is forgotten.
    for (let k = 0; k < 36_000; k++) t.add(g() + 2, (ts += 1000));
    expect(t.calibrate(1e-2)!.threshold).toBeCloseTo(Z[1e-2] + 2, 0);
  });

  it('counts a flagged score no higher than its ceiling, and ignores them beyond what false alarms explain', () => {
    const t = filled(20_000);
    const judged = t.calibrate(1e-3)!;
    expect(judged.ceiling).toBeGreaterThan(judged.threshold);
    expect(judged.ceiling).toBeLessThanOrEqual(HIST_MAX);
    // A huge score is clipped to the ceiling: the threshold barely moves.
    expect(t.add(1e6, 20_000_000, judged, 1e-3)).toBe(true);
    expect(t.calibrate(1e-3)!.threshold).toBeCloseTo(judged.threshold, 1);
    // A flood of flagged scores is cut off at ten times the false-alarm rate (1 % of 20,000 here): a safety
    // net, as the detector already passes only the first flagged reading of an episode.
    let taken = 0;
    for (let k = 0; k < 2_000; k++) if (t.add(judged.threshold + 1, 20_000_000 + k, judged, 1e-3)) taken++;
    expect(taken).toBeGreaterThan(150);
    expect(taken).toBeLessThan(250);
    expect(t.calibrate(1e-3)!.threshold).toBeLessThan(judged.threshold + 1 + 2 * 0.125);
  });

  it('survives a JSON round trip exactly and rejects a malformed state', () => {
    const t = filled(3_000);
    const copy = ScoreThreshold.fromJSON(JSON.parse(JSON.stringify(t.toJSON())), 1000 * HOUR);
    expect(copy.toJSON()).toEqual(t.toJSON());
    expect(copy.calibrate(1e-4)).toEqual(t.calibrate(1e-4));
    for (const bad of [
      null,
      {},
      { ...t.toJSON(), total: -1 },
      { ...t.toJSON(), bins: [[0, Number.NaN]] },
      { ...t.toJSON(), bins: [[1e6, 1]] },
      { ...t.toJSON(), refTs: null },
    ]) {
      expect(() => ScoreThreshold.fromJSON(bad, HOUR)).toThrow();
    }
  });
});
