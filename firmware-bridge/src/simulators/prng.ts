/**
 * Small, fast, seeded pseudo-random numbers for the simulators. Not cryptographic.
 *
 * - `splitmix32` scrambles a 32-bit value; it turns a seed (and a label) into well-spread stream seeds.
 * - `Prng` is mulberry32 (32-bit state, period 2^32, passes gjrand/PractRand to a few GB), with Box–Muller
 *   normals. Everything is a pure function of the seed and the number of calls, so a simulator that draws in a
 *   fixed order replays exactly.
 *
 * Simulators should give each independent part of the model its own stream (`Prng.derive(seed, 'torque')`),
 * so that switching one option on (which may change how many numbers one part draws) does not shift the
 * random numbers every other part sees.
 */

/** One round of splitmix32: a bijective 32-bit mixer. Returns an unsigned 32-bit integer. */
export function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** FNV-1a of a string, for turning a stream label into 32 bits. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A stream seed from a user seed and a label; different labels give unrelated streams. */
export function deriveSeed(seed: number, label: string): number {
  // Fold in the high bits too, so seeds above 2^32 (or negative ones) still differ.
  const lo = seed | 0;
  const hi = Math.floor(seed / 0x1_0000_0000) | 0;
  return splitmix32(splitmix32(lo ^ splitmix32(hi)) ^ fnv1a(label));
}

export class Prng {
  private state: number;
  private spareNormal: number | null = null;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    this.state = splitmix32(Math.trunc(seed) | 0);
  }

  /** A generator for the stream `label` of `seed`. */
  static derive(seed: number, label: string): Prng {
    return new Prng(deriveSeed(seed, label));
  }

  /** Next unsigned 32-bit integer (mulberry32). */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform in [min, max). */
  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** Uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    const lo = Math.ceil(min);
    const hi = Math.floor(max);
    if (hi < lo) throw new RangeError(`empty integer range [${min}, ${max}]`);
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.next() < p;
  }

  /** Normal with the given mean and standard deviation (Box–Muller; the second value is kept for the next call). */
  normal(mean = 0, sd = 1): number {
    let z: number;
    if (this.spareNormal !== null) {
      z = this.spareNormal;
      this.spareNormal = null;
    } else {
      // 1 - next() is in (0, 1], so the log is finite.
      const u = 1 - this.next();
      const v = this.next();
      const r = Math.sqrt(-2 * Math.log(u));
      z = r * Math.cos(2 * Math.PI * v);
      this.spareNormal = r * Math.sin(2 * Math.PI * v);
    }
    return mean + sd * z;
  }

  /** Index drawn with probability proportional to `weights` (non-negative, not all zero). */
  pick(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    if (!(total > 0)) throw new RangeError('weights must have a positive sum');
    let u = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      u -= weights[i] ?? 0;
      if (u < 0) return i;
    }
    // Rounding can leave u at a hair above zero: fall back to the last index with weight.
    for (let i = weights.length - 1; i >= 0; i--) if ((weights[i] ?? 0) > 0) return i;
    return weights.length - 1;
  }
}
