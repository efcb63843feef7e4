/**
 * A simulated milling machine that follows the generation rules of the AI4I 2020 predictive-maintenance data set
 * (S. Matzka, "Explainable Artificial Intelligence for Predictive Maintenance Applications", 2020; UCI id 601).
 *
 * One call of `next()` is one machining process of one product, like one row of AI4I. The readings are
 * statistically like the data set (so a model trained on it scores them sensibly) and the five failure modes are
 * evaluated with the published rules on the values exactly as emitted (rounded like the data set).
 *
 * Calibration: the constants below marked "calibrated" were fitted once, offline, to the 8,000 rows of
 * ai4i2020_train.csv (rows ordered by UDI; lags measured in UDI steps because the rows are a subset of the
 * 10,000). The data itself is not shipped or read at run time.
 *
 * See firmware-bridge/README.md for what is modelled, the options, and what is not modelled.
 */
import { Prng } from './prng.js';

export type ProductType = 'L' | 'M' | 'H';
/** Index = the code used as the `product_type` signal (L = 0, M = 1, H = 2). */
export const PRODUCT_TYPES: readonly ProductType[] = ['L', 'M', 'H'];

export interface MillingMachineOptions {
  /** Random seed (default 1). The same seed and options give an identical sequence. */
  seed?: number;
  /**
   * Mean simulated seconds one process takes (default 60). A process's duration is proportional to the
   * tool-wear minutes it adds (tool wear is cutting time), scaled so the mean over the product mix is this value:
   * with the AI4I mix an L product takes 0.77×, M 1.15× and H 1.92× `processSeconds`.
   */
  processSeconds?: number;
  /**
   * Relative share of L, M and H products (default the data set's 0.6 / 0.3 / 0.1). The AI4I paper's text says
   * 50 / 30 / 20 %, but the published data has 6,000 / 2,997 / 1,003 of 10,000, and the model is trained on the data.
   */
  productMix?: { L: number; M: number; H: number };
  /**
   * Multiplies the tool wear one process adds (default 1, i.e. 2/3/5 min for L/M/H; the result is rounded to whole
   * minutes, at least 1). Use e.g. 10 in demos to wear a tool out in about 8 processes instead of about 83.
   */
  wearMultiplier?: number;
  /** Tool wear [min] the first tool starts with (default 0, a fresh tool). */
  initialToolWearMin?: number;
  /**
   * Range of the wear at which a tool is retired, in whole minutes; each tool draws its limit uniformly from it
   * (default [200, 230], calibrated, see DEFAULT_TOOL_LIFE_MIN). A tool runs until a process *starts* at or beyond
   * its limit; it is also retired early (but never below the lower bound) when the next process would take it past
   * the upper bound. After that last process it is swapped (failed or replaced) and the next process starts at 0.
   * So the wear at a tool change is always within the range, except with a `wearMultiplier` so large that one
   * process adds more than the width of the range, where it can exceed the upper bound by less than one process.
   */
  toolLifeMin?: readonly [number, number];
  /**
   * Probability that a retired tool failed (TWF, a machine failure) rather than being replaced on schedule
   * (default 51/120 = 0.425: the AI4I description reports 120 tool ends, 51 failures and 69 replacements).
   */
  toolFailureShare?: number;
  /** Probability of a random failure (RNF) per process regardless of the readings (default 0.001, as published). */
  randomFailureProbability?: number;
  /**
   * Multiplies the correlation time of the temperature random walks (default 1 = calibrated to the data: about
   * 2,500 processes for the air temperature, 860 for the process–air difference). Values below 1 make the
   * temperatures wander faster with the same spread, so short runs see the whole range (and heat-dissipation
   * failures come sooner); values above 1 make them slower.
   */
  temperatureTimeScale?: number;
  /**
   * Heat-dissipation degradation, in kelvin per simulated hour (default 0). The process temperature runs this much
   * closer to the air temperature for every simulated hour elapsed (a fouled heat exchanger or a failing coolant
   * pump), up to at most 8 K, so heat-dissipation failures (HDF) become more frequent as time goes on.
   */
  heatDissipationLossKPerHour?: number;
}

export interface FailureModes {
  twf: boolean;
  hdf: boolean;
  pwf: boolean;
  osf: boolean;
  rnf: boolean;
}

export interface MillingSample {
  /** 0-based process counter. */
  cycle: number;
  /** Simulated time since start [s] at the end of this process (when its readings are complete). */
  simSeconds: number;
  productType: ProductType;
  /** 0/1/2, the index in PRODUCT_TYPES. */
  productTypeCode: number;
  /** Rounded to 0.1 K. */
  airTemperatureK: number;
  /** Rounded to 0.1 K. */
  processTemperatureK: number;
  /** Whole rpm. */
  rotationalSpeedRpm: number;
  /** Rounded to 0.1 N·m, always > 0. */
  torqueNm: number;
  /** Wear at the START of this process, whole minutes, as in AI4I. */
  toolWearMin: number;
  /** Any failure mode. */
  failed: boolean;
  modes: FailureModes;
  /** The tool was swapped after this process (tool wear failure or scheduled replacement); the next starts at 0. */
  toolReplaced: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Published rules (AI4I description)
// ---------------------------------------------------------------------------------------------------------------

/** Tool wear added by one process [min], by product type (published: H/M/L add 5/3/2 min; confirmed in the data). */
export const WEAR_PER_PROCESS_MIN: Readonly<Record<ProductType, number>> = { L: 2, M: 3, H: 5 };
/** Overstrain limit: tool wear × torque above this [min·N·m] is an OSF (published). */
export const OVERSTRAIN_LIMIT_MIN_NM: Readonly<Record<ProductType, number>> = { L: 11_000, M: 12_000, H: 13_000 };
/** HDF: process − air temperature below this [K] ... */
const HDF_MAX_DIFF_DECI_K = 86; // 8.6 K, compared in exact tenths of a kelvin
/** ... and rotational speed below this [rpm]. */
const HDF_MAX_RPM = 1380;
/** PWF: mechanical power outside [3500, 9000] W. */
const PWF_MIN_W = 3500;
const PWF_MAX_W = 9000;
/**
 * Tool life. Published: "replaced or fails at a randomly selected tool wear between 200 and 240 min". In the data
 * the tools end earlier than a uniform 200–240 limit would give: over the 86 tool changes seen between consecutive
 * rows the last wear has mean 216.0 min (sd 9.9, quartiles 208 / 215 / 222), against ≈ 221 min (sd 11.8) for a
 * uniform 200–240 limit, and the wear column has mean 107.6 min (sd 63.8). A uniform limit of 200–230 min
 * reproduces both (tool ends 215.9 ± 8.8 min, wear 108.0 ± 63.4 min over 10^6 simulated processes), and with them
 * the rates of overstrain and tool-wear failures, so it is the default; pass `toolLifeMin: [200, 240]` for the
 * published range.
 */
const DEFAULT_TOOL_LIFE_MIN: readonly [number, number] = [200, 230];
/** 51 tool failures out of 120 tool ends (published). */
const DEFAULT_TOOL_FAILURE_SHARE = 51 / 120;
const DEFAULT_RANDOM_FAILURE_PROBABILITY = 0.001;

// ---------------------------------------------------------------------------------------------------------------
// Calibrated to ai4i2020_train.csv (8,000 rows)
// ---------------------------------------------------------------------------------------------------------------

/** Product mix of the data (L 60.3 %, M 29.7 %, H 10.0 % of the 8,000 rows; 6000/2997/1003 in the full set). */
const DEFAULT_PRODUCT_MIX = { L: 0.6, M: 0.3, H: 0.1 } as const;

/**
 * Air temperature: a stationary AR(1) (discrete Ornstein–Uhlenbeck) walk with mean 300 K and σ 2 K (published).
 * φ fitted by least squares on the log-variogram of the data at lags 1–1,500 (σ fixed at 2 K, the 0.1 K rounding
 * noise included): φ = 0.99960, i.e. correlation time ≈ 2,530 processes and a step of ≈ 0.056 K per process
 * (the data's lag-1 difference has sd 0.069 K including rounding).
 */
const AIR_MEAN_K = 300;
const AIR_SD_K = 2;
const AIR_PHI = 0.999605;

/**
 * Process − air temperature difference: mean 10 K, σ 1 K (published: process = air + 10 K + a walk with σ 1 K).
 * In the data this difference is strongly anti-correlated with the air temperature (r = −0.70, so the process
 * temperature has σ 1.48 K rather than √5 = 2.24 K). That is very likely a chance correlation of two finite random
 * walks, but it is what the model was trained on, so it is reproduced:
 *   diff = 10 + 1 K × (ρ·a + √(1−ρ²)·w),   a = (air − 300)/2,  ρ = −0.70,
 * with w its own unit AR(1) walk. φ_w fitted on the variogram of the difference (lags 1–1,500, rounding included):
 * φ_w = 0.99884, correlation time ≈ 860 processes.
 */
const DIFF_MEAN_K = 10;
const DIFF_SD_K = 1;
const DIFF_AIR_CORRELATION = -0.7;
const DIFF_PHI = 0.998836;
/** Heat-dissipation degradation never takes more than this off the difference. */
const MAX_HEAT_DISSIPATION_LOSS_K = 8;

/** Torque: normal around 40 N·m with σ 10 N·m (published; the data: mean 40.00, sd 9.96, skew −0.03, min 3.8). */
const TORQUE_MEAN_NM = 40;
const TORQUE_SD_NM = 10;

/**
 * Rotational speed given torque. The published "derived from a power of 2860 W with normal noise" does not
 * reproduce the data (mean 1539 rpm, σ 180, skew +2.0, r(rpm, torque) = −0.875), so the conditional mean was fitted
 * directly: least squares of a piecewise-linear curve in torque (knots below) to the 8,000 rows, with the two end
 * knots pinned (0 N·m: 3000 rpm, where the few low-torque rows lie exactly on rpm = 3000 − 30·torque; 80 N·m:
 * 1250 rpm, an extrapolation beyond the data's maximum of 76.2 N·m). The residual about the curve is Gaussian
 * (kurtosis 3.03 for torque > 16 N·m) with sd 50.5 rpm and no trend in torque, air temperature or wear.
 */
const RPM_CURVE_TORQUE_NM = [0, 12, 15, 18, 22, 26, 30, 35, 40, 45, 50, 55, 60, 65, 70, 80] as const;
const RPM_CURVE_RPM = [3000, 2662, 2311, 2098, 1904, 1769, 1664, 1573, 1495, 1443, 1400, 1361, 1332, 1299, 1285, 1250] as const;
const RPM_NOISE_SD = 50.5;

/** Mean rotational speed at the given torque: linear interpolation on the calibrated curve, linear beyond it. */
function rpmCurve(torqueNm: number): number {
  const xs = RPM_CURVE_TORQUE_NM;
  const ys = RPM_CURVE_RPM;
  const last = xs.length - 1;
  let i = 0;
  if (torqueNm >= xs[last - 1]!) i = last - 1;
  else while (i < last - 1 && torqueNm >= xs[i + 1]!) i++;
  const x0 = xs[i]!;
  const x1 = xs[i + 1]!;
  const y0 = ys[i]!;
  const y1 = ys[i + 1]!;
  return y0 + ((y1 - y0) * (torqueNm - x0)) / (x1 - x0);
}

/** Round to one decimal, as the data set does for temperatures and torque. */
function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** Innovation scale of a unit-variance AR(1) with coefficient phi. */
function arInnovation(phi: number): number {
  return Math.sqrt(1 - phi * phi);
}

function positiveOr(name: string, v: number | undefined, dflt: number, allowZero = false): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new RangeError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} finite number, got ${v}`);
  }
  return v;
}

function probabilityOr(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v < 0 || v > 1) throw new RangeError(`${name} must be in [0, 1], got ${v}`);
  return v;
}

export class MillingMachineSimulator {
  private readonly processSeconds: number;
  private readonly mixWeights: readonly number[];
  private readonly wearPerProcess: readonly number[];
  /** Duration of a process of each type [s]. */
  private readonly durationSeconds: readonly number[];
  private readonly toolLife: readonly [number, number];
  private readonly toolFailureShare: number;
  private readonly randomFailureProbability: number;
  private readonly heatLossKPerHour: number;
  private readonly airPhi: number;
  private readonly diffPhi: number;

  // Independent random streams, one per part of the model (see prng.ts).
  private readonly typeRng: Prng;
  private readonly loadRng: Prng;
  private readonly thermalRng: Prng;
  private readonly toolRng: Prng;
  private readonly randomFailureRng: Prng;

  private cycle = 0;
  private simSeconds = 0;
  /** Standardised air-temperature walk (unit variance). */
  private airState: number;
  /** Standardised independent part of the process–air difference (unit variance). */
  private diffState: number;
  private toolWear: number;
  private toolLimit: number;

  constructor(options: MillingMachineOptions = {}) {
    const seed = options.seed ?? 1;
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    this.processSeconds = positiveOr('processSeconds', options.processSeconds, 60);

    const mix = options.productMix ?? DEFAULT_PRODUCT_MIX;
    this.mixWeights = PRODUCT_TYPES.map((t) => positiveOr(`productMix.${t}`, mix[t], 0, true));
    if (!(this.mixWeights.reduce((a, b) => a + b, 0) > 0)) throw new RangeError('productMix must have a positive share');

    const wearMultiplier = positiveOr('wearMultiplier', options.wearMultiplier, 1);
    this.wearPerProcess = PRODUCT_TYPES.map((t) => Math.max(1, Math.round(WEAR_PER_PROCESS_MIN[t] * wearMultiplier)));
    // Tool wear is cutting time, so a process lasts in proportion to the wear it adds (before any multiplier).
    const mixTotal = this.mixWeights.reduce((a, b) => a + b, 0);
    const meanWear = PRODUCT_TYPES.reduce((acc, t, i) => acc + (this.mixWeights[i]! / mixTotal) * WEAR_PER_PROCESS_MIN[t], 0);
    this.durationSeconds = PRODUCT_TYPES.map((t) => (this.processSeconds * WEAR_PER_PROCESS_MIN[t]) / meanWear);

    const life = options.toolLifeMin ?? DEFAULT_TOOL_LIFE_MIN;
    const lo = Math.ceil(life[0]);
    const hi = Math.floor(life[1]);
    if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo < 1 || hi < lo) {
      throw new RangeError(`toolLifeMin must be [min, max] with 1 <= min <= max, got [${life[0]}, ${life[1]}]`);
    }
    this.toolLife = [lo, hi];
    this.toolFailureShare = probabilityOr('toolFailureShare', options.toolFailureShare, DEFAULT_TOOL_FAILURE_SHARE);
    this.randomFailureProbability = probabilityOr('randomFailureProbability', options.randomFailureProbability, DEFAULT_RANDOM_FAILURE_PROBABILITY);
    this.heatLossKPerHour = positiveOr('heatDissipationLossKPerHour', options.heatDissipationLossKPerHour, 0, true);
    const timeScale = positiveOr('temperatureTimeScale', options.temperatureTimeScale, 1);
    // Scaling the correlation time τ = −1/ln φ by k gives φ^(1/k).
    this.airPhi = Math.pow(AIR_PHI, 1 / timeScale);
    this.diffPhi = Math.pow(DIFF_PHI, 1 / timeScale);

    this.typeRng = Prng.derive(seed, 'milling/type');
    this.loadRng = Prng.derive(seed, 'milling/load');
    this.thermalRng = Prng.derive(seed, 'milling/thermal');
    this.toolRng = Prng.derive(seed, 'milling/tool');
    this.randomFailureRng = Prng.derive(seed, 'milling/rnf');

    // Start the walks in their stationary distribution, so the first process is already typical.
    this.airState = this.thermalRng.normal();
    this.diffState = this.thermalRng.normal();
    this.toolWear = Math.round(positiveOr('initialToolWearMin', options.initialToolWearMin, 0, true));
    this.toolLimit = this.drawToolLimit();
  }

  /** One machining process. A pure function of the seed, the options and the number of earlier calls. */
  next(): MillingSample {
    const cycle = this.cycle++;
    const startSeconds = this.simSeconds;

    // Product.
    const code = this.typeRng.pick(this.mixWeights);
    const productType = PRODUCT_TYPES[code]!;

    // Load: torque, then the speed the drive settles at under that torque.
    let torqueNm = 0;
    while (!(torqueNm > 0)) torqueNm = round1(this.loadRng.normal(TORQUE_MEAN_NM, TORQUE_SD_NM));
    const rotationalSpeedRpm = Math.max(1, Math.round(rpmCurve(torqueNm) + this.loadRng.normal(0, RPM_NOISE_SD)));

    // Temperatures: read the walks, then advance them for the next process.
    const airRaw = AIR_MEAN_K + AIR_SD_K * this.airState;
    const heatLoss = Math.min(MAX_HEAT_DISSIPATION_LOSS_K, (this.heatLossKPerHour * startSeconds) / 3600);
    const rho = DIFF_AIR_CORRELATION;
    const diffRaw = DIFF_MEAN_K - heatLoss + DIFF_SD_K * (rho * this.airState + Math.sqrt(1 - rho * rho) * this.diffState);
    const airTemperatureK = round1(airRaw);
    // Heat flows out of the process, so it is never modelled colder than the air around it.
    const processTemperatureK = round1(airRaw + Math.max(0, diffRaw));
    this.airState = this.airPhi * this.airState + arInnovation(this.airPhi) * this.thermalRng.normal();
    this.diffState = this.diffPhi * this.diffState + arInnovation(this.diffPhi) * this.thermalRng.normal();

    // Tool.
    const toolWearMin = this.toolWear;
    const wearAdded = this.wearPerProcess[code]!;
    const [lifeMin, lifeMax] = this.toolLife;
    const toolEnds = toolWearMin >= this.toolLimit || (toolWearMin >= lifeMin && toolWearMin + wearAdded > lifeMax);
    const twf = toolEnds && this.toolRng.bernoulli(this.toolFailureShare);
    if (toolEnds) {
      this.toolWear = 0;
      this.toolLimit = this.drawToolLimit();
    } else {
      this.toolWear = toolWearMin + wearAdded;
    }

    // Failure rules, on the values exactly as emitted.
    const diffDeciK = Math.round(processTemperatureK * 10) - Math.round(airTemperatureK * 10);
    const hdf = diffDeciK < HDF_MAX_DIFF_DECI_K && rotationalSpeedRpm < HDF_MAX_RPM;
    const powerW = (torqueNm * rotationalSpeedRpm * 2 * Math.PI) / 60;
    const pwf = powerW < PWF_MIN_W || powerW > PWF_MAX_W;
    const osf = toolWearMin * torqueNm > OVERSTRAIN_LIMIT_MIN_NM[productType];
    const rnf = this.randomFailureRng.bernoulli(this.randomFailureProbability);
    const modes: FailureModes = { twf, hdf, pwf, osf, rnf };

    this.simSeconds = startSeconds + this.durationSeconds[code]!;
    return {
      cycle,
      simSeconds: this.simSeconds,
      productType,
      productTypeCode: code,
      airTemperatureK,
      processTemperatureK,
      rotationalSpeedRpm,
      torqueNm,
      toolWearMin,
      failed: twf || hdf || pwf || osf || rnf,
      modes,
      toolReplaced: toolEnds,
    };
  }

  private drawToolLimit(): number {
    return this.toolRng.int(this.toolLife[0], this.toolLife[1]);
  }
}

/**
 * Maps a sample onto the signal names of the agent's telemetry: product_type (code), air_temperature (K),
 * process_temperature (K), rotational_speed (rpm), torque (N.m), tool_wear (min).
 */
export function millingSignals(s: MillingSample): Record<string, number> {
  return {
    product_type: s.productTypeCode,
    air_temperature: s.airTemperatureK,
    process_temperature: s.processTemperatureK,
    rotational_speed: s.rotationalSpeedRpm,
    torque: s.torqueNm,
    tool_wear: s.toolWearMin,
  };
}
