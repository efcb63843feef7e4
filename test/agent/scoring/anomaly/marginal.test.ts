import { describe, expect, it } from 'vitest';
import { MarginalMap, normalQuantile } from '../../../../agent/src/scoring/anomaly/marginal.js';
import { gaussian } from './synthetic.js';

const HOUR = 3_600_000;

/** A map of one signal that has learned `count` standardised values from `next`. */
function learned(next: () => number, count: number): MarginalMap {
  const m = new MarginalMap(1000 * HOUR);
  m.grow();
  for (let k = 0; k < count; k++) {
    m.begin(k * 1000);
    const y = next();
    m.learn(0, y, m.z(0, y), k === 0 ? 1 : Math.max(1 / (k + 1), 1e-4), 1, k < 10 ? 0 : 1);
  }
  return m;
}

describe('MarginalMap', () => {
  it('computes normal quantiles', () => {
    for (const [p, z] of [
      [0.5, 0],
      [0.975, 1.959964],
      [0.999, 3.090232],
      [1e-5, -4.264891],
      [1 - 1e-7, 5.199338],
    ] as const)
      expect(normalQuantile(p)).toBeCloseTo(z, 5);
  });

  it('leaves a Gaussian signal as it is, tails included', () => {
    const m = learned(gaussian(1), 20_000);
    for (const z of [-3, -1, 0, 0.5, 2, 3]) expect(m.normal(0, z)).toBeCloseTo(z, 0);
    // Beyond what it has seen, a value stays as far out as it is.
    expect(m.normal(0, 8)).toBeGreaterThan(7);
    expect(m.normal(0, -8)).toBeLessThan(-7);
  });

  it('gives the normal bursts of a bursty signal a normal score, and a value beyond them a high one', () => {
    const g = gaussian(2);
    // 2 % of the time a burst 500 times the usual level.
    const m = learned(() => (Math.abs(g()) > 2.33 ? 1e7 : 2e4 * (1 + 0.05 * g())), 20_000);
    const burst = m.normal(0, m.z(0, 1e7));
    expect(burst).toBeGreaterThan(1.5);
    expect(burst).toBeLessThan(3.5);
    expect(m.normal(0, m.z(0, 2e4))).toBeLessThan(1);
    expect(m.normal(0, m.z(0, 1e9))).toBeGreaterThan(10);
  });

  it('is not fooled by a single earlier outlier', () => {
    const g = gaussian(3);
    const m = learned(g, 5_000);
    const before = m.normal(0, 6);
    m.begin(5_000_000);
    m.learn(0, 6, 6, 1e-4, 1, 1);
    expect(m.normal(0, 6)).toBeCloseTo(before, 1);
  });
});
