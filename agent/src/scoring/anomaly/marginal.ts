/**
 * Per-signal scaling for the anomaly detector: each signal's value → a normal score, from its own recent
 * distribution (a Gaussian copula, or "nonparanormal" model).
 *
 * First a robust-enough location and scale, an exponentially weighted mean and variance with the baseline's
 * half-life: z = (y − m) / s. Then z goes through the signal's own empirical distribution, a decaying histogram
 * of its past z (50 bins, finest near 0, out to ±100σ), to the normal quantile of its rank: z* = Φ⁻¹(F(z)). For a Gaussian signal
 * z* ≈ z. For one that is not, z* is what its value would be if it were: a disk whose I/O rate bursts to a
 * hundred times its level 2 % of the time gets z* ≈ 2 for a burst, not 30, so its normal bursts do not swamp
 * every other signal's share of the distance (nor push the calibrated threshold so high that a 5σ change in a
 * temperature goes unseen). Beyond the point where the histogram still has TAIL_SUPPORT values further out,
 * z* continues linearly from there, so values never seen before stay far out (for a Gaussian signal, z* = z
 * in its tails too). Until a signal has MIN_HISTORY values, z* = z.
 *
 * Memory per signal: 50 bins + 3 numbers (424 bytes). Time per signal and reading: one pass over its bins.
 */

/**
 * Bin edges over z: a quarter of a standard deviation wide within ±4, then wider and wider out to ±100 (a
 * signal whose normal bursts lie at 30σ in its own units still has them counted where they are). A value
 * beyond ±100 counts in the end bin.
 */
const OUTER = [4, 5, 6.5, 8.5, 12, 17, 25, 40, 70, 100];
const EDGES = [
  ...OUTER.slice(1)
    .reverse()
    .map((e) => -e),
  ...Array.from({ length: 33 }, (_, k) => -4 + k / 4),
  ...OUTER.slice(1),
];
export const MARGINAL_BINS = EDGES.length - 1;
/** Values a signal needs before its own distribution is used. */
const MIN_HISTORY = 100;
/** The empirical distribution is trusted out to where this many values lie beyond. */
const TAIL_SUPPORT = 20;
const RESCALE_EXP = 64;
/** A signal whose standard deviation is below this fraction of its mean level is constant. */
const RELATIVE_FLOOR = 1e-4;
const ABSOLUTE_FLOOR = 1e-9;

export interface MarginalState {
  ref: number | null;
  last: number | null;
  loc: number[];
  variance: number[];
  total: number[];
  /** Per signal, its non-empty bins: [bin, weight]. */
  bins: Array<Array<[number, number]>>;
}

export class MarginalMap {
  private loc = new Float64Array(0);
  private variance = new Float64Array(0);
  private total = new Float64Array(0);
  private bins = new Float64Array(0);
  private ref: number | null = null;
  private last: number | null = null;
  /** The weight of a value learned now (at `last`), relative to `ref`. */
  private now = 0;

  constructor(private readonly halfLifeMs: number) {}

  /** Sets the clock for the reading about to be scored and learned (once per reading, not per signal). */
  begin(ts: number): void {
    if (this.ref === null) this.ref = ts;
    if ((ts - this.ref) / this.halfLifeMs > RESCALE_EXP) {
      const f = 2 ** (-(ts - this.ref) / this.halfLifeMs);
      for (let k = 0; k < this.bins.length; k++) this.bins[k]! *= f;
      for (let k = 0; k < this.total.length; k++) this.total[k]! *= f;
      this.ref = ts;
    }
    if (this.last === null || ts > this.last) this.last = ts;
    this.now = 2 ** ((this.last - this.ref) / this.halfLifeMs);
  }

  get size(): number {
    return this.loc.length;
  }

  /** Appends a signal with no history. */
  grow(): void {
    const p = this.size;
    this.loc = resized(this.loc, p + 1);
    this.variance = resized(this.variance, p + 1);
    this.total = resized(this.total, p + 1);
    this.bins = resized(this.bins, (p + 1) * MARGINAL_BINS);
  }

  /** Keeps only the signals at `keep` (ascending), in that order. */
  keep(keep: readonly number[]): void {
    const loc = new Float64Array(keep.length);
    const variance = new Float64Array(keep.length);
    const total = new Float64Array(keep.length);
    const bins = new Float64Array(keep.length * MARGINAL_BINS);
    keep.forEach((i, a) => {
      loc[a] = this.loc[i]!;
      variance[a] = this.variance[i]!;
      total[a] = this.total[i]!;
      bins.set(this.bins.subarray(i * MARGINAL_BINS, (i + 1) * MARGINAL_BINS), a * MARGINAL_BINS);
    });
    Object.assign(this, { loc, variance, total, bins });
  }

  private floor(i: number): number {
    const f = RELATIVE_FLOOR * Math.abs(this.loc[i]!) + ABSOLUTE_FLOOR;
    return f * f;
  }

  /** Whether the signal varies at all (a constant one is left out of the score). */
  varies(i: number): boolean {
    return this.variance[i]! > this.floor(i);
  }

  /** The standardised deviation of value y. */
  z(i: number, y: number): number {
    return (y - this.loc[i]!) / Math.sqrt(Math.max(this.variance[i]!, this.floor(i)));
  }

  /**
   * The normal score of a standardised deviation z, through the signal's own distribution. The empirical
   * distribution is used where it has support: beyond the points with TAIL_SUPPORT values further out, the
   * score goes on linearly from there, so a value never seen before stays as far out as it is, and a single
   * earlier outlier does not make the next one look normal.
   */
  normal(i: number, z: number): number {
    const total = this.total[i]!;
    const now = this.now;
    if (!(now > 0) || total / now < MIN_HISTORY) return z;
    const base = i * MARGINAL_BINS;
    const support = TAIL_SUPPORT * now;
    const hi = this.tailPoint(base, support, true);
    if (z >= hi) return normalQuantile(1 - support / total) + (z - hi);
    const lo = this.tailPoint(base, support, false);
    if (z <= lo) return normalQuantile(support / total) - (lo - z);
    const b = binOf(z);
    let below = 0;
    for (let k = 0; k < b; k++) below += this.bins[base + k]!;
    const f = (below + (this.bins[base + b]! * (z - EDGES[b]!)) / (EDGES[b + 1]! - EDGES[b]!)) / total;
    return normalQuantile(Math.min(1 - support / total, Math.max(support / total, f)));
  }

  /** The z beyond which `mass` of the signal's weight lies (above it when `upper`, else below). */
  private tailPoint(base: number, mass: number, upper: boolean): number {
    let acc = 0;
    for (let k = 0; k < MARGINAL_BINS; k++) {
      const b = upper ? MARGINAL_BINS - 1 - k : k;
      const w = this.bins[base + b]!;
      if (w > 0 && acc + w >= mass) {
        const frac = (mass - acc) / w;
        return upper ? EDGES[b + 1]! - frac * (EDGES[b + 1]! - EDGES[b]!) : EDGES[b]! + frac * (EDGES[b + 1]! - EDGES[b]!);
      }
      acc += w;
    }
    return upper ? EDGES[MARGINAL_BINS]! : EDGES[0]!;
  }

  /**
   * Learns value y, whose standardised deviation (before this update) was z: the mean and variance move by
   * `rate` toward it (its deviation scaled by `clip`), and z enters the histogram with weight `weight`, at the
   * time given to begin().
   */
  learn(i: number, y: number, z: number, rate: number, clip: number, weight: number): void {
    const dev = (y - this.loc[i]!) * clip;
    this.loc[i]! += rate * dev;
    this.variance[i] = (1 - rate) * (this.variance[i]! + rate * dev * dev);
    if (!(weight > 0)) return;
    // A late reading (older than the newest) counts as if it came now: a small error, and no second clock.
    const w = weight * this.now;
    this.bins[i * MARGINAL_BINS + binOf(z)]! += w;
    this.total[i]! += w;
  }

  bytes(): number {
    return this.loc.byteLength + this.variance.byteLength + this.total.byteLength + this.bins.byteLength;
  }

  toJSON(): MarginalState {
    const bins: MarginalState['bins'] = [];
    for (let i = 0; i < this.size; i++) {
      const row: Array<[number, number]> = [];
      for (let b = 0; b < MARGINAL_BINS; b++) if (this.bins[i * MARGINAL_BINS + b]! > 0) row.push([b, this.bins[i * MARGINAL_BINS + b]!]);
      bins.push(row);
    }
    return { ref: this.ref, last: this.last, loc: Array.from(this.loc), variance: Array.from(this.variance), total: Array.from(this.total), bins };
  }

  /** Restores `size` signals from toJSON's output; throws on anything malformed. */
  static fromJSON(state: unknown, size: number, halfLifeMs: number): MarginalMap {
    const s = state as Partial<MarginalState> | null;
    if (!s || typeof s !== 'object') throw new Error('marginals: not an object');
    const m = new MarginalMap(halfLifeMs);
    const finite = (v: unknown, what: string) => {
      if (!Number.isFinite(v)) throw new Error(`marginals: ${what} must be a finite number`);
      return v as number;
    };
    const array = (v: unknown, what: string, min = -Infinity) => {
      if (!Array.isArray(v) || v.length !== size) throw new Error(`marginals: ${what} must hold ${size} numbers`);
      return Float64Array.from(v, (x) => {
        const n = finite(x, what);
        if (n < min) throw new Error(`marginals: negative ${what}`);
        return n;
      });
    };
    m.ref = s.ref === null ? null : finite(s.ref, 'ref');
    m.last = s.last === null ? null : finite(s.last, 'last');
    if ((m.ref === null) !== (m.last === null)) throw new Error('marginals: inconsistent timestamps');
    m.now = m.ref === null ? 0 : 2 ** ((m.last! - m.ref) / halfLifeMs);
    m.loc = array(s.loc, 'loc');
    m.variance = array(s.variance, 'variance', 0);
    m.total = array(s.total, 'total', 0);
    m.bins = new Float64Array(size * MARGINAL_BINS);
    if (!Array.isArray(s.bins) || s.bins.length !== size) throw new Error('marginals: bad bins');
    s.bins.forEach((row, i) => {
      if (!Array.isArray(row)) throw new Error('marginals: bad bins');
      for (const e of row as unknown[]) {
        if (!Array.isArray(e) || e.length !== 2) throw new Error('marginals: bad bin');
        const [b, w] = e as [unknown, unknown];
        if (!Number.isInteger(b) || (b as number) < 0 || (b as number) >= MARGINAL_BINS || !Number.isFinite(w) || (w as number) < 0)
          throw new Error('marginals: bad bin');
        m.bins[i * MARGINAL_BINS + (b as number)] = w as number;
      }
    });
    return m;
  }
}

function binOf(z: number): number {
  if (z >= -4 && z < 4) return 9 + Math.floor((z + 4) * 4);
  if (z >= 4) {
    let b = 41;
    while (b < MARGINAL_BINS - 1 && z >= EDGES[b + 1]!) b++;
    return b;
  }
  let b = 8;
  while (b > 0 && z < EDGES[b]!) b--;
  return b;
}

function resized(a: Float64Array, n: number): Float64Array<ArrayBuffer> {
  const out = new Float64Array(n);
  out.set(a.subarray(0, Math.min(n, a.length)));
  return out;
}

/** Φ⁻¹(p), the standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (p <= 0) return -Infinity;
  if (p >= 1) return Infinity;
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - low) {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    return -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}
