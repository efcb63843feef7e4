import { Prng } from '../../firmware-bridge/src/simulators/prng.js';

/** A seeded uniform [0, 1) generator for fuzz tests, so a failing case can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  const prng = new Prng(seed);
  return () => prng.next();
}
