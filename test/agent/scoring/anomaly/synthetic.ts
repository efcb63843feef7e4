import { seededRandom } from '../../../helpers/seeded-random.js';

/** A standard normal generator from a seeded uniform one (Box–Muller). */
export function gaussian(seed: number): () => number {
  const rnd = seededRandom(seed);
  return () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
}

/**
 * A machine of `p` signals driven by two shared factors (so the signals are correlated) plus noise, each on
 * its own level and scale, named s0 … s(p-1).
 */
export function correlatedMachine(seed: number, p: number): () => Record<string, number> {
  const g = gaussian(seed);
  const loads = Array.from({ length: p }, () => [g(), g()]);
  return () => {
    const f = [g(), g()];
    const out: Record<string, number> = {};
    for (let i = 0; i < p; i++) out[`s${i}`] = 50 + 10 * i + (1 + i) * (loads[i]![0]! * f[0]! + loads[i]![1]! * f[1]! + 0.5 * g());
    return out;
  };
}

export const SECOND = 1_000;
