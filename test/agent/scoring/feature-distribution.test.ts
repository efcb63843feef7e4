import { describe, expect, it } from 'vitest';
import { binOf, chancePsi, distributionQuantile, lag1Autocorrelation, profileFeature, psi } from '../../../agent/src/scoring/feature-distribution.js';
import { seededRandom } from '../../helpers/seeded-random.js';

const normal = (random: () => number) => () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());

describe('feature distributions', () => {
  it('bins a value by the number of edges at or below it', () => {
    expect([binOf([1, 2, 3], 0), binOf([1, 2, 3], 1), binOf([1, 2, 3], 2.5), binOf([1, 2, 3], 9), binOf([], 5)]).toEqual([0, 1, 2, 3, 0]);
  });

  it('profiles a continuous input at its deciles, with its support and its missing share', () => {
    const g = normal(seededRandom(7));
    const values = Array.from({ length: 10_000 }, (_, i) => (i % 50 === 0 ? Number.NaN : 100 + 10 * g()));
    const d = profileFeature(values);
    expect(d.edges).toHaveLength(9);
    expect(d.fractions).toHaveLength(10);
    for (const f of d.fractions) expect(f).toBeCloseTo(0.098, 2);
    expect(d.missing).toBeCloseTo(0.02, 3);
    expect(d.support![0]).toBeLessThan(75);
    expect(d.support![1]).toBeGreaterThan(125);
    expect(distributionQuantile(d, 0.5)).toBeCloseTo(100, 0);
  });

  it('gives the minimum of a mostly-zero counter its own bin, and categories one each', () => {
    const counter = Array.from({ length: 1000 }, (_, i) => (i < 950 ? 0 : i - 940));
    const d = profileFeature(counter);
    expect(d.edges[0]).toBe(10);
    expect(d.fractions[0]).toBeCloseTo(0.95, 6);
    expect(d.edges.length).toBeGreaterThan(1);
    expect(profileFeature([0, 0, 1, 2, 2, 2], { categories: 3 })).toEqual({ edges: [0.5, 1.5], fractions: [0.333333, 0.166667, 0.5] });
  });

  it('PSI is near zero for a sample of the same distribution and large for a shifted one', () => {
    const g = normal(seededRandom(11));
    const d = profileFeature(Array.from({ length: 20_000 }, () => g()));
    const count = (xs: number[]) => {
      const c = new Array<number>(d.fractions.length).fill(0);
      for (const x of xs) c[binOf(d.edges, x)]!++;
      return c;
    };
    const same = psi(d, count(Array.from({ length: 2000 }, () => g())));
    const shifted = psi(d, count(Array.from({ length: 2000 }, () => g() + 1)));
    expect(same).toBeLessThan(chancePsi(10, 2000, 0) * 3);
    expect(shifted).toBeGreaterThan(0.25);
    // By hand: all mass in the first bin of two equal halves: (1 − .5)·ln(1/.5) + (floor − .5)·ln(floor/.5).
    const half = { edges: [0], fractions: [0.5, 0.5] };
    const floor = 0.5 / 100;
    expect(psi(half, [100, 0])).toBeCloseTo(0.5 * Math.log(2) + (floor - 0.5) * Math.log(floor / 0.5), 10);
  });

  it('measures autocorrelation, and what chance gives for correlated windows', () => {
    const r = seededRandom(3);
    const white = Array.from({ length: 2000 }, () => r());
    let x = 0;
    const walk = Array.from({ length: 2000 }, () => (x += r() - 0.5));
    expect(Math.abs(lag1Autocorrelation(white))).toBeLessThan(0.1);
    expect(lag1Autocorrelation(walk)).toBeGreaterThan(0.9);
    expect(chancePsi(10, 500, 0.9)).toBeGreaterThan(chancePsi(10, 500, 0) * 10);
  });
});
