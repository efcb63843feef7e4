import { describe, expect, it } from 'vitest';
import {
  ISO10816_3_BOUNDARIES,
  STANDARD_GRAVITY,
  ZONE_NUMBER,
  accelerationToMs2,
  iso10816Boundaries,
  iso10816Zone,
  velocityRms,
  type Foundation,
  type MachineGroup,
} from '../../../firmware-bridge/src/node-protocol/vibration-severity.js';
import { Prng } from '../../../firmware-bridge/src/simulators/prng.js';

const FS = 10_000;
const N = 4096;

/** Velocity RMS (mm/s) of an acceleration sine of amplitude `a` m/s² at `hz`: a / (2πf) / √2. */
const sineVelocity = (a: number, hz: number) => (a / (2 * Math.PI * hz) / Math.SQRT2) * 1000;

/**
 * Velocity RMS (mm/s) in [lo, hi] of white acceleration noise of standard deviation σ m/s² sampled at fs: its
 * one-sided density σ² / (fs/2) integrated over 1/(2πf)², i.e. σ² / (fs/2) / (4π²) × (1/lo − 1/hi).
 */
const noiseVelocity = (sigma: number, lo = 10, hi = 1000, fs = FS) =>
  Math.sqrt(((sigma * sigma) / (fs / 2) / (4 * Math.PI * Math.PI)) * (1 / lo - 1 / hi)) * 1000;

function signal(parts: Array<{ a: number; hz: number }>, noiseSigma: number, seed: number, n = N, fs = FS): Float64Array {
  const rng = new Prng(seed);
  const phases = parts.map(() => rng.uniform(0, 2 * Math.PI));
  return Float64Array.from({ length: n }, (_, k) => {
    let x = 9.81; // gravity on a vertical axis: an offset, not vibration
    parts.forEach((p, i) => (x += p.a * Math.sin((2 * Math.PI * p.hz * k) / fs + phases[i]!)));
    return x + (noiseSigma > 0 ? rng.normal(0, noiseSigma) : 0);
  });
}

function velocity(x: Float64Array | Int16Array, options: Partial<Parameters<typeof velocityRms>[1]> = {}): number {
  const r = velocityRms(x, { sampleRateHz: FS, ...options });
  if (!r.ok) throw new Error(r.error);
  return r.velocityRmsMmS;
}

describe('velocityRms: broadband velocity by frequency-domain integration', () => {
  // Frequencies off the 2.44 Hz bins on purpose (a sine between two bins spreads over four), 20–900 Hz.
  const FREQS = [20, 33.7, 97.3, 250, 412.9, 612.7, 900];
  const AMPLITUDES = [0.5, 3, 20]; // m/s²

  for (const hz of FREQS)
    it(`a ${hz} Hz sine with noise at several amplitudes is within 2 % of its velocity`, () => {
      for (const [i, a] of AMPLITUDES.entries()) {
        const sigma = a / 50;
        const expected = Math.hypot(sineVelocity(a, hz), noiseVelocity(sigma));
        const got = velocity(signal([{ a, hz }], sigma, 100 * hz + i));
        expect(Math.abs(got / expected - 1), `${a} m/s² at ${hz} Hz: ${got} vs ${expected} mm/s`).toBeLessThan(0.02);
      }
    });

  it('sums several in-band sines as the root of the summed squares (Parseval)', () => {
    const parts = [
      { a: 1, hz: 29.95 },
      { a: 2, hz: 107.4 },
      { a: 0.8, hz: 214.8 },
      { a: 5, hz: 701 },
    ];
    const expected = Math.hypot(...parts.map((p) => sineVelocity(p.a, p.hz)), noiseVelocity(0.05));
    expect(Math.abs(velocity(signal(parts, 0.05, 7)) / expected - 1)).toBeLessThan(0.02);
  });

  it('rejects sines outside 10–1000 Hz: below the lower edge, above the upper one, and far above', () => {
    for (const hz of [3, 5, 1100, 2500, 4000]) {
      const out = velocity(signal([{ a: 10, hz }], 0, hz));
      // Under 1 % of what the same sine would read in band (at its own frequency's velocity).
      expect(out, `${hz} Hz`).toBeLessThan(0.01 * sineVelocity(10, hz));
    }
    // And an out-of-band sine next to an in-band one does not move the in-band reading.
    const inBand = sineVelocity(2, 150);
    const got = velocity(
      signal(
        [
          { a: 2, hz: 150 },
          { a: 40, hz: 2000 },
          { a: 0.5, hz: 4 },
        ],
        0,
        11,
      ),
    );
    expect(Math.abs(got / inBand - 1)).toBeLessThan(0.02);
  });

  it('reads raw int16 counts with a scale, and g as 9.80665 m/s²', () => {
    const a = 4; // m/s²
    const hz = 160.2;
    const scale = 0.002;
    const raw = Int16Array.from(signal([{ a, hz }], 0, 3), (v) => Math.round(v / scale));
    expect(Math.abs(velocity(raw, { scale }) / sineVelocity(a, hz) - 1)).toBeLessThan(0.02);
    const inG = Float64Array.from(signal([{ a, hz }], 0, 3), (v) => v / STANDARD_GRAVITY);
    expect(Math.abs(velocity(inG, { unit: 'g' }) / sineVelocity(a, hz) - 1)).toBeLessThan(0.02);
    expect(accelerationToMs2('g')).toBe(STANDARD_GRAVITY);
    expect(accelerationToMs2('m/s2')).toBe(1);
  });

  it('averages blocks longer than one FFT, and reads a 2 Hz lower edge from a long enough block', () => {
    const long = signal([{ a: 1, hz: 50.3 }], 0, 5, 200_000);
    expect(Math.abs(velocity(long) / sineVelocity(1, 50.3) - 1)).toBeLessThan(0.02);
    const slow = signal([{ a: 0.2, hz: 4 }], 0, 6, 25_000, 2500);
    const r = velocityRms(slow, { sampleRateHz: 2500, lowHz: 2 });
    expect(r.ok && Math.abs(r.velocityRmsMmS / sineVelocity(0.2, 4) - 1)).toBeLessThan(0.02);
  });

  it('refuses, with the reason, what it cannot measure: a non-acceleration unit, a short block, a low sample rate, non-finite values', () => {
    const x = signal([{ a: 1, hz: 100 }], 0, 1);
    const refused = (r: ReturnType<typeof velocityRms>) => (r.ok ? 'ok' : r.error);
    expect(refused(velocityRms(x, { sampleRateHz: FS, unit: 'A' }))).toMatch(/unit "A" is not an acceleration/);
    expect(refused(velocityRms(x.subarray(0, 3000), { sampleRateHz: FS }))).toMatch(/shorter than the 0.4 s that a 10 Hz lower edge needs \(4000 samples/);
    expect(refused(velocityRms(x, { sampleRateHz: 1800 }))).toMatch(/cannot cover 1000 Hz/);
    expect(refused(velocityRms(x, { sampleRateHz: FS, lowHz: 2 }))).toMatch(/2 Hz lower edge/);
    const bad = x.slice();
    bad[10] = Number.NaN;
    expect(refused(velocityRms(bad, { sampleRateHz: FS }))).toMatch(/not finite/);
    expect(refused(velocityRms(x.subarray(0, 4000), { sampleRateHz: FS }))).toBe('ok'); // exactly 0.4 s
  });
});

describe('ISO 10816-3 zones', () => {
  const TABLE: Array<[MachineGroup, Foundation, number, number, number]> = [
    [1, 'rigid', 2.3, 4.5, 7.1],
    [1, 'flexible', 3.5, 7.1, 11.0],
    [2, 'rigid', 1.4, 2.8, 4.5],
    [2, 'flexible', 2.3, 4.5, 7.1],
  ];

  it('has the boundaries of the standard for each machine group and foundation', () => {
    for (const [g, f, ab, bc, cd] of TABLE) expect(iso10816Boundaries(g, f)).toEqual({ ab, bc, cd });
    expect(Object.keys(ISO10816_3_BOUNDARIES)).toEqual(['1', '2']);
    expect(() => iso10816Boundaries(3 as MachineGroup, 'rigid')).toThrow(/machine group 3/);
  });

  it('puts a velocity just below each boundary in the lower zone and just above it in the higher one', () => {
    for (const [g, f, ab, bc, cd] of TABLE) {
      const b = iso10816Boundaries(g, f);
      const at = (v: number) => iso10816Zone(v, b);
      expect([at(0), at(ab - 0.01), at(ab), at(ab + 0.01)], `${g} ${f} A/B`).toEqual(['A', 'A', 'A', 'B']);
      expect([at(bc - 0.01), at(bc), at(bc + 0.01)], `${g} ${f} B/C`).toEqual(['B', 'B', 'C']);
      expect([at(cd - 0.01), at(cd), at(cd + 0.01), at(1000)], `${g} ${f} C/D`).toEqual(['C', 'C', 'D', 'D']);
    }
    expect(ZONE_NUMBER).toEqual({ A: 1, B: 2, C: 3, D: 4 });
  });

  it('zones a measured synthetic velocity as its true velocity just below and just above a boundary', () => {
    // A sine whose velocity is 3 % under / over the B/C boundary of group 2 rigid (2.8 mm/s): the 2 % accuracy
    // keeps each on its side.
    const b = iso10816Boundaries(2, 'rigid');
    const hz = 73.1;
    const amplitudeFor = (v: number) => (v / 1000) * Math.SQRT2 * 2 * Math.PI * hz;
    expect(iso10816Zone(velocity(signal([{ a: amplitudeFor(b.bc * 0.97), hz }], 0, 1)), b)).toBe('B');
    expect(iso10816Zone(velocity(signal([{ a: amplitudeFor(b.bc * 1.03), hz }], 0, 1)), b)).toBe('C');
    expect(iso10816Zone(velocity(signal([{ a: amplitudeFor(b.cd * 0.97), hz }], 0, 2)), b)).toBe('C');
    expect(iso10816Zone(velocity(signal([{ a: amplitudeFor(b.cd * 1.03), hz }], 0, 2)), b)).toBe('D');
  });
});
