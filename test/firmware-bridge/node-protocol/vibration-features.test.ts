import { describe, expect, it } from 'vitest';
import {
  RawBlockRing,
  RealFft,
  bandEnergies,
  timeFeatures,
  vibrationFeatures,
  welchSpectrum,
} from '../../../firmware-bridge/src/node-protocol/vibration-features.js';
import { Prng } from '../../../firmware-bridge/src/simulators/prng.js';

const FS = 10_000;
const sine = (n: number, a: number, hz: number, phase = 0, fs = FS) =>
  Float64Array.from({ length: n }, (_, k) => a * Math.sin((2 * Math.PI * hz * k) / fs + phase));

describe('RealFft', () => {
  it('matches a direct DFT', () => {
    const rng = new Prng(1);
    for (const n of [4, 8, 64, 256]) {
      const x = Float64Array.from({ length: n }, () => rng.normal());
      const re = new Float64Array(n / 2 + 1);
      const im = new Float64Array(n / 2 + 1);
      new RealFft(n).transform(x, re, im);
      for (let k = 0; k <= n / 2; k++) {
        let r = 0;
        let i = 0;
        for (let t = 0; t < n; t++) {
          r += x[t]! * Math.cos((2 * Math.PI * k * t) / n);
          i -= x[t]! * Math.sin((2 * Math.PI * k * t) / n);
        }
        expect(re[k]).toBeCloseTo(r, 9);
        expect(im[k]).toBeCloseTo(i, 9);
      }
    }
  });

  it('satisfies Parseval: Σ|X|² over the full spectrum = n Σx²', () => {
    const rng = new Prng(2);
    const n = 4096;
    const x = Float64Array.from({ length: n }, () => rng.normal());
    const re = new Float64Array(n / 2 + 1);
    const im = new Float64Array(n / 2 + 1);
    new RealFft(n).transform(x, re, im);
    let spec = 0;
    for (let k = 0; k <= n / 2; k++) spec += (k === 0 || k === n / 2 ? 1 : 2) * (re[k]! ** 2 + im[k]! ** 2);
    const energy = x.reduce((s, v) => s + v * v, 0);
    expect(spec / (n * energy)).toBeCloseTo(1, 12);
  });

  it('refuses sizes that are not powers of two', () => {
    expect(() => new RealFft(1000)).toThrow(RangeError);
    expect(() => new RealFft(2)).toThrow(RangeError);
  });
});

describe('time-domain features against closed forms', () => {
  it('a sine of amplitude A: RMS A/√2, peak A, crest √2, kurtosis 1.5, skewness 0', () => {
    const A = 3.7;
    const t = timeFeatures(sine(10_000, A, 50)); // exactly 50 periods
    expect(t.rms).toBeCloseTo(A / Math.SQRT2, 12);
    expect(t.peak).toBeCloseTo(A, 12);
    expect(t.crestFactor).toBeCloseTo(Math.SQRT2, 12);
    expect(t.kurtosis).toBeCloseTo(1.5, 12);
    expect(t.skewness).toBeCloseTo(0, 12);
    expect(t.mean).toBeCloseTo(0, 12);
  });

  it('removes the mean (an offset is not vibration)', () => {
    const x = sine(10_000, 2, 50).map((v) => v + 9.81);
    const t = timeFeatures(x);
    expect(t.mean).toBeCloseTo(9.81, 12);
    expect(t.rms).toBeCloseTo(2 / Math.SQRT2, 12);
  });

  it('applies the scale of Int16Array samples', () => {
    const counts = Int16Array.from(sine(10_000, 10_000, 50), Math.round);
    const t = timeFeatures(counts, 0.002);
    expect(t.rms).toBeCloseTo(20 / Math.SQRT2, 3);
    expect(t.peak).toBeCloseTo(20, 6);
    expect(t.kurtosis).toBeCloseTo(1.5, 4);
  });

  it('Gaussian noise has kurtosis ≈ 3 and skewness ≈ 0', () => {
    const rng = new Prng(4);
    const t = timeFeatures(Float32Array.from({ length: 200_000 }, () => rng.normal(0, 2)));
    expect(t.rms).toBeCloseTo(2, 1);
    expect(t.kurtosis).toBeGreaterThan(2.9);
    expect(t.kurtosis).toBeLessThan(3.1);
    expect(Math.abs(t.skewness)).toBeLessThan(0.03);
  });

  it('a flat or empty signal gives zeros, not NaN', () => {
    expect(timeFeatures(new Float32Array(100).fill(5))).toMatchObject({ rms: 0, crestFactor: 0, kurtosis: 0, skewness: 0, mean: 5 });
    expect(timeFeatures(new Int16Array(0)).samples).toBe(0);
  });

  it('impacts raise kurtosis and crest factor', () => {
    const x = sine(10_000, 1, 50);
    for (let k = 0; k < x.length; k += 93) x[k] = x[k]! + 8;
    const t = timeFeatures(x);
    expect(t.kurtosis).toBeGreaterThan(5);
    expect(t.crestFactor).toBeGreaterThan(4);
  });
});

describe('band energies', () => {
  const BANDS = [
    { lowHz: 0, highHz: 500 },
    { lowHz: 500, highHz: 1000 },
    { lowHz: 1000, highHz: 1500 },
    { lowHz: 1500, highHz: 5000.1 },
  ];

  it('put a sine’s mean square, A²/2, in the band that holds its frequency', () => {
    const A = 2;
    const f = vibrationFeatures(sine(8192, A, 1234), { sampleRateHz: FS, bands: BANDS });
    const e = f.bands.map((b) => b.energy);
    expect(e[2]! / ((A * A) / 2)).toBeCloseTo(1, 2);
    expect(e[0]! + e[1]! + e[3]!).toBeLessThan(1e-4);
    expect(Math.abs(f.dominantHz - 1234)).toBeLessThanOrEqual(FS / 4096);
    expect(f.bands[2]!.rms).toBeCloseTo(A / Math.SQRT2, 2);
  });

  it('separate two sines into their bands', () => {
    const x = sine(10_000, 1, 300).map((v, k) => v + 3 * Math.sin((2 * Math.PI * 2500 * k) / FS));
    const e = vibrationFeatures(x, { sampleRateHz: FS, bands: BANDS }).bands.map((b) => b.energy);
    expect(e[0]).toBeCloseTo(0.5, 2);
    expect(e[3]).toBeCloseTo(4.5, 1);
    expect(e[1]! + e[2]!).toBeLessThan(1e-3);
  });

  it('sum to the mean square for white noise', () => {
    const rng = new Prng(9);
    const x = Float32Array.from({ length: 40_960 }, () => rng.normal(0, 1.5));
    const s = welchSpectrum(x, FS, { fftSize: 1024 });
    expect(s.segments).toBe(79);
    const total = bandEnergies(s, [{ lowHz: 0, highHz: FS }])[0]!.energy;
    expect(total / 2.25).toBeCloseTo(1, 1);
  });

  it('handle a block shorter than the FFT (zero-padded)', () => {
    const f = vibrationFeatures(sine(1000, 1, 700), { sampleRateHz: FS, bands: BANDS, fftSize: 4096 });
    expect(f.segments).toBe(1);
    expect(f.bands[1]!.energy / 0.5).toBeCloseTo(1, 1);
  });

  it('locate a peak with configurable narrow bands', () => {
    const x = sine(10_000, 1, 107.4);
    const bands = [95, 100, 105, 110, 115].map((lo) => ({ name: `${lo}`, lowHz: lo, highHz: lo + 5 }));
    const e = vibrationFeatures(x, { sampleRateHz: FS, bands, fftSize: 8192 }).bands;
    const best = e.reduce((a, b) => (b.energy > a.energy ? b : a));
    expect(best.name).toBe('105');
  });
});

describe('RawBlockRing', () => {
  const block = (i: number) => ({ name: 'n:vib', unit: 'g', startTime: i, sampleRateHz: FS, scale: 1, samples: Int16Array.of(i, i) });

  it('keeps nothing unless asked', () => {
    const r = new RawBlockRing(4);
    expect(r.offer(block(1))).toBe(false);
    expect(r.size).toBe(0);
  });

  it('keeps the next n blocks on request, then stops', () => {
    const r = new RawBlockRing(4);
    r.requestCapture(2);
    expect([1, 2, 3].map((i) => r.offer(block(i)))).toEqual([true, true, false]);
    expect(r.snapshot().map((b) => b.startTime)).toEqual([1, 2]);
  });

  it('keeps the last N while enabled, oldest first, as copies', () => {
    const r = new RawBlockRing(3);
    r.enable();
    const src = block(0);
    r.offer(src);
    src.samples[0] = 99;
    expect(r.snapshot()[0]!.samples[0]).toBe(0);
    for (let i = 1; i <= 5; i++) r.offer(block(i));
    expect(r.snapshot().map((b) => b.startTime)).toEqual([3, 4, 5]);
    expect(r.size).toBe(3);
    expect(r.bytes).toBe(3 * 4);
    r.disable();
    expect(r.offer(block(6))).toBe(false);
    r.clear();
    expect(r.snapshot()).toEqual([]);
  });
});
