/**
 * Vibration features computed at the edge from one sample block (e.g. 4096 samples at 10 kHz), so that
 * the agent stores and scores a handful of numbers per block instead of the raw samples.
 *
 * Time domain, about the block's mean (an accelerometer's offset and gravity are not vibration):
 *   rms, peak (largest |x − mean|), crest factor = peak / rms, kurtosis = m4 / m2² (3 for Gaussian noise,
 *   1.5 for a sine; impacts from a bearing defect raise it), skewness = m3 / m2^1.5.
 * Frequency domain: a Welch estimate (Hann window, 50 % overlap, radix-2 real FFT) of the one-sided
 * spectrum, scaled so that it sums to the mean square; a band's energy is the mean square of the signal
 * in that band (a sine of amplitude A inside the band gives A²/2), its rms the square root.
 *
 * All functions are pure; inputs are Int16Array with a scale (physical = raw × scale) or Float32Array.
 */

export type Samples = Int16Array | Float32Array | Float64Array;

export interface TimeFeatures {
  samples: number;
  mean: number;
  rms: number;
  peak: number;
  crestFactor: number;
  kurtosis: number;
  skewness: number;
}

/** Time-domain features of `x × scale`. A constant signal has rms 0 and crest factor, kurtosis, skewness 0. */
export function timeFeatures(x: Samples, scale = 1): TimeFeatures {
  const n = x.length;
  if (n === 0) return { samples: 0, mean: 0, rms: 0, peak: 0, crestFactor: 0, kurtosis: 0, skewness: 0 };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[i]!;
  const meanRaw = sum / n;
  let m2 = 0;
  let m3 = 0;
  let m4 = 0;
  let peak = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i]! - meanRaw;
    const d2 = d * d;
    m2 += d2;
    m3 += d2 * d;
    m4 += d2 * d2;
    const a = Math.abs(d);
    if (a > peak) peak = a;
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  const s = Math.abs(scale);
  const rmsRaw = Math.sqrt(m2);
  const flat = m2 <= 0;
  return {
    samples: n,
    mean: meanRaw * scale,
    rms: rmsRaw * s,
    peak: peak * s,
    crestFactor: flat ? 0 : peak / rmsRaw,
    kurtosis: flat ? 0 : m4 / (m2 * m2),
    skewness: flat ? 0 : (Math.sign(scale) * m3) / (m2 * rmsRaw),
  };
}

/** A radix-2 FFT of real input of length n (a power of two, ≥ 4), through a complex FFT of length n/2. */
export class RealFft {
  readonly size: number;
  private readonly m: number;
  private readonly rev: Uint32Array;
  private readonly cosM: Float64Array;
  private readonly sinM: Float64Array;
  private readonly cosN: Float64Array;
  private readonly sinN: Float64Array;
  private readonly re: Float64Array;
  private readonly im: Float64Array;

  constructor(n: number) {
    if (!Number.isInteger(n) || n < 4 || (n & (n - 1)) !== 0) throw new RangeError(`FFT size must be a power of two ≥ 4, got ${n}`);
    this.size = n;
    const m = n / 2;
    this.m = m;
    const bits = Math.log2(m);
    this.rev = new Uint32Array(m);
    for (let i = 0; i < m; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.rev[i] = r;
    }
    this.cosM = new Float64Array(m / 2);
    this.sinM = new Float64Array(m / 2);
    for (let j = 0; j < m / 2; j++) {
      this.cosM[j] = Math.cos((2 * Math.PI * j) / m);
      this.sinM[j] = Math.sin((2 * Math.PI * j) / m);
    }
    this.cosN = new Float64Array(m + 1);
    this.sinN = new Float64Array(m + 1);
    for (let k = 0; k <= m; k++) {
      this.cosN[k] = Math.cos((2 * Math.PI * k) / n);
      this.sinN[k] = Math.sin((2 * Math.PI * k) / n);
    }
    this.re = new Float64Array(m);
    this.im = new Float64Array(m);
  }

  /** X[k] for k = 0 … n/2 of the real input `x` (length n) into outRe / outIm (length n/2 + 1). */
  transform(x: ArrayLike<number>, outRe: Float64Array, outIm: Float64Array): void {
    const { m, re, im, rev, cosM, sinM, cosN, sinN } = this;
    // Even samples as the real part, odd as the imaginary part, loaded in bit-reversed order.
    for (let i = 0; i < m; i++) {
      const j = rev[i]!;
      re[i] = x[2 * j]!;
      im[i] = x[2 * j + 1]!;
    }
    for (let size = 2; size <= m; size *= 2) {
      const half = size / 2;
      const step = m / size;
      for (let start = 0; start < m; start += size) {
        for (let k = 0; k < half; k++) {
          const wr = cosM[k * step]!;
          const wi = -sinM[k * step]!;
          const a = start + k;
          const b = a + half;
          const tr = re[b]! * wr - im[b]! * wi;
          const ti = re[b]! * wi + im[b]! * wr;
          re[b] = re[a]! - tr;
          im[b] = im[a]! - ti;
          re[a] = re[a]! + tr;
          im[a] = im[a]! + ti;
        }
      }
    }
    // Split: X[k] = E[k] + e^{-2πik/n} O[k], with E, O the transforms of the even and odd samples.
    for (let k = 0; k <= m; k++) {
      const a = re[k % m]!;
      const b = im[k % m]!;
      const c = re[(m - k) % m]!;
      const d = im[(m - k) % m]!;
      const eRe = (a + c) / 2;
      const eIm = (b - d) / 2;
      const oRe = (b + d) / 2;
      const oIm = -(a - c) / 2;
      const cs = cosN[k]!;
      const sn = sinN[k]!;
      outRe[k] = eRe + cs * oRe + sn * oIm;
      outIm[k] = eIm + cs * oIm - sn * oRe;
    }
  }
}

const fftCache = new Map<number, RealFft>();
function fftOf(n: number): RealFft {
  let f = fftCache.get(n);
  if (!f) {
    f = new RealFft(n);
    fftCache.set(n, f);
  }
  return f;
}

/** Periodic Hann window of length n. */
export function hannWindow(n: number): Float64Array {
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n);
  return w;
}

export interface Spectrum {
  /** One-sided mean-square per bin, bins 0 … fftSize/2; sums to the mean square of the (mean-removed) signal. */
  power: Float64Array;
  binHz: number;
  fftSize: number;
  segments: number;
}

function nextPow2(n: number): number {
  let p = 4;
  while (p < n) p *= 2;
  return p;
}

/**
 * Welch spectrum of `x × scale` with the mean removed: Hann-windowed segments of `fftSize` samples, 50 %
 * overlap (spread evenly so the whole block is covered); a block shorter than fftSize is one segment,
 * zero-padded.
 */
export function welchSpectrum(x: Samples, sampleRateHz: number, options: { scale?: number; fftSize?: number } = {}): Spectrum {
  const scale = options.scale ?? 1;
  const n = x.length;
  const fftSize = nextPow2(Math.max(4, options.fftSize ?? 4096));
  const segLen = Math.min(n, fftSize);
  const fft = fftOf(fftSize);
  const power = new Float64Array(fftSize / 2 + 1);
  const result: Spectrum = { power, binHz: sampleRateHz / fftSize, fftSize, segments: 0 };
  if (n < 2) return result;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[i]!;
  const mean = sum / n;
  const w = hannWindow(segLen);
  let w2 = 0;
  for (let i = 0; i < segLen; i++) w2 += w[i]! * w[i]!;
  const hop = segLen / 2;
  const segments = n <= segLen ? 1 : Math.ceil((n - segLen) / hop) + 1;
  const buf = new Float64Array(fftSize);
  const re = new Float64Array(fftSize / 2 + 1);
  const im = new Float64Array(fftSize / 2 + 1);
  const norm = (scale * scale) / (fftSize * w2 * segments);
  for (let s = 0; s < segments; s++) {
    const offset = segments === 1 ? 0 : Math.round((s * (n - segLen)) / (segments - 1));
    for (let i = 0; i < segLen; i++) buf[i] = (x[offset + i]! - mean) * w[i]!;
    fft.transform(buf, re, im);
    for (let k = 0; k <= fftSize / 2; k++) {
      const p = re[k]! * re[k]! + im[k]! * im[k]!;
      power[k] = power[k]! + (k === 0 || k === fftSize / 2 ? p : 2 * p) * norm;
    }
  }
  result.segments = segments;
  return result;
}

export interface BandSpec {
  name?: string;
  lowHz: number;
  highHz: number;
}

export interface BandEnergy extends BandSpec {
  /** Mean square of the signal in [lowHz, highHz) (unit²). */
  energy: number;
  rms: number;
}

/** Energy in each band: the sum of the bins whose centre frequency lies in [lowHz, highHz). */
export function bandEnergies(spectrum: Spectrum, bands: readonly BandSpec[]): BandEnergy[] {
  return bands.map((b) => {
    let e = 0;
    const first = Math.max(0, Math.ceil(b.lowHz / spectrum.binHz));
    for (let k = first; k < spectrum.power.length && k * spectrum.binHz < b.highHz; k++) e += spectrum.power[k]!;
    return { ...b, energy: e, rms: Math.sqrt(e) };
  });
}

/** Default bands for 10 kHz vibration: octave-like bands up to the Nyquist frequency. */
export const DEFAULT_BANDS: readonly BandSpec[] = [
  { name: '10-100Hz', lowHz: 10, highHz: 100 },
  { name: '100-500Hz', lowHz: 100, highHz: 500 },
  { name: '500-1000Hz', lowHz: 500, highHz: 1000 },
  { name: '1-2kHz', lowHz: 1000, highHz: 2000 },
  { name: '2-5kHz', lowHz: 2000, highHz: 5000 },
];

export interface VibrationFeatureOptions {
  sampleRateHz: number;
  /** Physical value = raw × scale. Default 1. */
  scale?: number;
  bands?: readonly BandSpec[];
  /** FFT length (a power of two). Default 4096: 2.44 Hz bins at 10 kHz. */
  fftSize?: number;
}

export interface VibrationFeatures extends TimeFeatures {
  bands: BandEnergy[];
  /** Centre frequency of the strongest bin above 0 Hz. */
  dominantHz: number;
  fftSize: number;
  segments: number;
}

/** Time- and frequency-domain features of one block. */
export function vibrationFeatures(x: Samples, options: VibrationFeatureOptions): VibrationFeatures {
  const scale = options.scale ?? 1;
  const t = timeFeatures(x, scale);
  const spec = welchSpectrum(x, options.sampleRateHz, { scale, fftSize: options.fftSize ?? 4096 });
  let best = 1;
  for (let k = 2; k < spec.power.length; k++) if (spec.power[k]! > spec.power[best]!) best = k;
  return {
    ...t,
    bands: bandEnergies(spec, options.bands ?? DEFAULT_BANDS),
    dominantHz: best * spec.binHz,
    fftSize: spec.fftSize,
    segments: spec.segments,
  };
}

// ---------------------------------------------------------------------------------------------------------

export interface RawBlock {
  name: string;
  unit: string;
  /** Seconds since the epoch of sample 0. */
  startTime: number;
  sampleRateHz: number;
  scale: number;
  samples: Int16Array;
}

/**
 * The last `capacity` raw blocks, for diagnosis. Raw blocks are kept only on request: nothing is stored
 * while the ring is off, `enable()` keeps every block (a standing request, e.g. while an alert is open),
 * `requestCapture(n)` keeps the next n. Blocks are copied, so callers may reuse their buffers; memory is
 * bounded by capacity × the largest block.
 */
export class RawBlockRing {
  private readonly ring: Array<RawBlock | undefined>;
  private next = 0;
  private count = 0;
  private standing = false;
  private pending = 0;

  constructor(readonly capacity = 8) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.ring = new Array<RawBlock | undefined>(capacity);
  }

  enable(): void {
    this.standing = true;
  }

  disable(): void {
    this.standing = false;
    this.pending = 0;
  }

  /** Keep the next `blocks` blocks offered. */
  requestCapture(blocks: number): void {
    this.pending = Math.max(this.pending, Math.floor(blocks));
  }

  get capturing(): boolean {
    return this.standing || this.pending > 0;
  }

  /** Offers a block; returns whether it was kept. */
  offer(block: RawBlock): boolean {
    if (!this.capturing) return false;
    if (this.pending > 0) this.pending--;
    this.ring[this.next] = { ...block, samples: block.samples.slice() };
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
    return true;
  }

  get size(): number {
    return this.count;
  }

  /** Bytes of samples held. */
  get bytes(): number {
    let b = 0;
    for (const r of this.ring) b += r ? r.samples.byteLength : 0;
    return b;
  }

  /** The blocks held, oldest first. */
  snapshot(): RawBlock[] {
    const out: RawBlock[] = [];
    for (let i = 0; i < this.count; i++) {
      const r = this.ring[(this.next - this.count + i + this.capacity) % this.capacity];
      if (r) out.push(r);
    }
    return out;
  }

  clear(): void {
    this.ring.fill(undefined);
    this.count = 0;
    this.next = 0;
  }
}
