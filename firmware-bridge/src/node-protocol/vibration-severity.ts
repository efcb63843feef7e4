/**
 * ISO 10816-3 vibration severity from acceleration blocks (docs/vibration.md).
 *
 * Broadband velocity RMS by frequency-domain integration: the block (mean removed) is Hann-windowed and transformed
 * as one segment (the whole block, for the finest bins near the 10 Hz edge; Welch-averaged only past MAX_FFT_SIZE),
 * each bin's mean square (scaled by the window's energy, Σw², so a sine of amplitude A gives A²/2, as
 * welchSpectrum does) is divided by (2πf)², the bins whose centre lies in [lowHz, highHz] are summed (Parseval),
 * and the square root is the velocity RMS. Acceleration in m/s² (or g) gives velocity in m/s, reported in mm/s.
 *
 * Limits, checked by `velocityRms`: the block must last at least MIN_CYCLES_AT_LOW_EDGE periods of the lower edge
 * (0.4 s for 10 Hz: 4096 samples at 10 kHz), so the Hann main lobe of a component at the edge stays clear of the
 * DC bin and the 1/f² weighting across it stays small; and the sample rate must be above 2 × highHz, or the band
 * would be cut at the Nyquist frequency and the velocity under-read.
 *
 * Pure functions; imports nothing from the agent.
 */
import { type Samples, welchSpectrum, type Spectrum } from './vibration-features.js';

/** Standard gravity (ISO 80000-3), for blocks in g. */
export const STANDARD_GRAVITY = 9.80665;

/** Periods of the band's lower edge a block must span (0.4 s at 10 Hz). */
export const MIN_CYCLES_AT_LOW_EDGE = 4;

/** Longest single FFT; longer blocks are averaged over Hann segments of this length (50 % overlap). */
export const MAX_FFT_SIZE = 65_536;

/**
 * Factor from a block's SenML unit to m/s²; undefined for a unit that is not an acceleration (a current or
 * temperature waveform has no vibration velocity).
 */
export function accelerationToMs2(unit: string): number | undefined {
  switch (unit.trim()) {
    case 'm/s2':
    case 'm/s^2':
    case 'm/s²':
      return 1;
    case 'g':
      return STANDARD_GRAVITY;
    default:
      return undefined;
  }
}

export interface VelocityOptions {
  sampleRateHz: number;
  /** Physical value = raw × scale, in `unit`. Default 1. */
  scale?: number;
  /** SenML unit of the samples: `m/s2` or `g`. Default `m/s2`. */
  unit?: string;
  /** Band edges in Hz: ISO 10816-3 uses 10–1000 Hz (2–1000 Hz for machines running at 120–600 r/min). */
  lowHz?: number;
  highHz?: number;
}

export type VelocityResult =
  | { ok: true; /** Velocity RMS in the band, mm/s. */ velocityRmsMmS: number; binHz: number; bins: number }
  | { ok: false; /** Why the block cannot give the velocity in this band; nothing was computed. */ error: string };

/** Velocity RMS (mm/s) in [lowHz, highHz] from the one-sided mean-square spectrum of an acceleration in m/s². */
export function velocityRmsFromSpectrum(spectrum: Spectrum, lowHz: number, highHz: number): { velocityRmsMmS: number; bins: number } {
  const { power, binHz } = spectrum;
  let ms = 0;
  let bins = 0;
  const first = Math.max(1, Math.ceil(lowHz / binHz - 1e-9));
  for (let k = first; k < power.length; k++) {
    const f = k * binHz;
    if (f > highHz + 1e-9) break;
    const w = 2 * Math.PI * f;
    ms += power[k]! / (w * w);
    bins++;
  }
  return { velocityRmsMmS: Math.sqrt(ms) * 1000, bins };
}

function nextPow2(n: number): number {
  let p = 4;
  while (p < n) p *= 2;
  return p;
}

/** Broadband velocity RMS (mm/s) of one acceleration block, or why it cannot be computed. */
export function velocityRms(x: Samples, options: VelocityOptions): VelocityResult {
  const { sampleRateHz: fs, scale = 1, unit = 'm/s2', lowHz = 10, highHz = 1000 } = options;
  const toMs2 = accelerationToMs2(unit);
  if (toMs2 === undefined) return { ok: false, error: `unit ${JSON.stringify(unit)} is not an acceleration (m/s2 or g)` };
  if (!(fs > 0) || !Number.isFinite(fs)) return { ok: false, error: `sample rate ${fs} Hz is not a positive number` };
  if (!(lowHz > 0 && highHz > lowHz)) return { ok: false, error: `band ${lowHz}–${highHz} Hz is not 0 < low < high` };
  if (fs <= 2 * highHz) return { ok: false, error: `sample rate ${fs} Hz cannot cover ${highHz} Hz (it needs more than ${2 * highHz} Hz)` };
  const seconds = x.length / fs;
  const needed = MIN_CYCLES_AT_LOW_EDGE / lowHz;
  if (seconds < needed - 1e-9)
    return {
      ok: false,
      error: `block of ${x.length} samples (${round(seconds)} s) is shorter than the ${round(needed)} s that a ${lowHz} Hz lower edge needs (${Math.ceil(needed * fs)} samples at ${fs} Hz)`,
    };
  const fftSize = Math.min(MAX_FFT_SIZE, nextPow2(x.length));
  const spectrum = welchSpectrum(x, fs, { scale: scale * toMs2, fftSize });
  const { velocityRmsMmS, bins } = velocityRmsFromSpectrum(spectrum, lowHz, highHz);
  if (!Number.isFinite(velocityRmsMmS)) return { ok: false, error: 'the block holds values that are not finite numbers' };
  return { ok: true, velocityRmsMmS, binHz: spectrum.binHz, bins };
}

// ISO 10816-3 zones ------------------------------------------------------------------------------------------------

export type MachineGroup = 1 | 2;
export type Foundation = 'rigid' | 'flexible';
export type Zone = 'A' | 'B' | 'C' | 'D';

/** Zone boundaries in mm/s RMS: A/B, B/C, C/D. */
export interface ZoneBoundaries {
  ab: number;
  bc: number;
  cd: number;
}

/**
 * ISO 10816-3:2009, Annex A (Tables A.1 and A.2): broadband velocity RMS on bearing housings, 10–1000 Hz.
 * Group 1: large machines, 300 kW–50 MW (or shaft height ≥ 315 mm); group 2: medium machines, 15–300 kW
 * (160 mm ≤ shaft height < 315 mm). docs/vibration.md cites where the figures were checked.
 */
export const ISO10816_3_BOUNDARIES: Readonly<Record<MachineGroup, Readonly<Record<Foundation, Readonly<ZoneBoundaries>>>>> = Object.freeze({
  1: Object.freeze({ rigid: Object.freeze({ ab: 2.3, bc: 4.5, cd: 7.1 }), flexible: Object.freeze({ ab: 3.5, bc: 7.1, cd: 11.0 }) }),
  2: Object.freeze({ rigid: Object.freeze({ ab: 1.4, bc: 2.8, cd: 4.5 }), flexible: Object.freeze({ ab: 2.3, bc: 4.5, cd: 7.1 }) }),
});

export function iso10816Boundaries(group: MachineGroup, foundation: Foundation): ZoneBoundaries {
  const b = ISO10816_3_BOUNDARIES[group]?.[foundation];
  if (!b) throw new RangeError(`no ISO 10816-3 boundaries for machine group ${String(group)} on a ${String(foundation)} foundation`);
  return b;
}

/**
 * The zone of a velocity. A boundary value belongs to the zone below it: the standard's zones are "up to" their
 * upper boundary, so 2.8 mm/s on a group 2 rigid machine is still zone B.
 */
export function iso10816Zone(velocityMmS: number, b: ZoneBoundaries): Zone {
  if (velocityMmS > b.cd) return 'D';
  if (velocityMmS > b.bc) return 'C';
  if (velocityMmS > b.ab) return 'B';
  return 'A';
}

/** Zones as numbers in telemetry (readings carry numbers only): A 1, B 2, C 3, D 4. */
export const ZONE_NUMBER: Readonly<Record<Zone, number>> = Object.freeze({ A: 1, B: 2, C: 3, D: 4 });

const round = (x: number) => Number(x.toPrecision(3));
