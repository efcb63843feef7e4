import { Prng } from '../../firmware-bridge/src/simulators/prng.js';

/** A seeded uniform [0, 1) generator for fuzz tests, so a failing case can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  const prng = new Prng(seed);
  return () => prng.next();
}

/**
 * `length` characters that do not compress (hex of a seeded generator): padding for storage tests, whose sizes
 * must not shrink because the outbox deflates telemetry.
 */
export function incompressible(length: number, seed = 1): string {
  const next = seededRandom(seed);
  let out = '';
  while (out.length < length)
    out += Math.floor(next() * 0x100000000)
      .toString(16)
      .padStart(8, '0');
  return out.slice(0, length);
}
