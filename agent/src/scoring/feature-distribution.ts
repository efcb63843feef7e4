/**
 * What a model's training data looked like, per input, and how far live inputs have moved from it.
 *
 * A distribution is a histogram over bins cut at the training deciles (or one bin per category), stored in the
 * manifest as `inputs.features[].distribution` by `forewarn model profile`. Drift is the population stability
 * index (PSI) of a window of live values against it: Σ (a − e) · ln(a / e) over the bins, where e and a are the
 * training and live fractions. Rules of thumb used across credit scoring and MLOps: < 0.1 stable, 0.1–0.25 a
 * shift worth watching, > 0.25 a shift the model was not trained for.
 *
 * Those rules assume independent samples. Inputs that wander slowly (an air temperature, a random walk in the
 * AI4I data) sit in one or two bins over any short window, and their PSI is large even on the training data
 * replayed in order. So the monitor also measures the window's lag-1 autocorrelation ρ, takes the effective
 * sample size n(1−ρ)/(1+ρ), and judges only the PSI beyond what chance gives at that size, ≈ (bins−1)/n_eff
 * (n·PSI is about χ² with bins−1 degrees of freedom when nothing changed). And where an input is slow — its
 * window's lag-1 autocorrelation ≥ 0.5, or its interquartile range under half the training's — a window shows only
 * the part of its range the input is in for now: PSI says nothing, and is not used. Such an input drifts when a
 * share of its values leaves the training support (beyond the 0.1%/99.9% quantiles). Replayed in order, the AI4I
 * training data itself "drifts" in over 95% of 500-row windows by plain PSI ≥ 0.25, and in none by these rules
 * (test/agent/scoring/drift-monitor.test.ts).
 */

export interface FeatureDistribution {
  /** Ascending cut points: bin i holds values v with edges[i-1] <= v < edges[i] (open at both ends). */
  edges: number[];
  /** Training fraction per bin, edges.length + 1 of them, summing to 1 − missing. */
  fractions: number[];
  /** Training fraction with no value (an optional input the model handles missing). */
  missing?: number;
  /** The 0.1% and 99.9% training quantiles: values beyond them are inputs the model has hardly seen. */
  support?: [number, number];
}

/** Index of the bin holding `v`: the number of edges at or below it. */
export function binOf(edges: readonly number[], v: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (edges[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

/** numpy.quantile's default (linear) on a sorted array. */
function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/**
 * Profiles training values of one input (NaN = missing). Continuous inputs are cut at their deciles — fewer
 * bins where values repeat (a SMART counter that is mostly 0) — and categories get one bin each.
 */
export function profileFeature(values: ArrayLike<number>, options: { categories?: number; bins?: number } = {}): FeatureDistribution {
  const present: number[] = [];
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i])) present.push(values[i]!);
  if (!present.length) throw new RangeError('no values to profile');
  present.sort((a, b) => a - b);
  let edges: number[];
  if (options.categories) {
    edges = Array.from({ length: options.categories - 1 }, (_, k) => k + 0.5);
  } else {
    const bins = options.bins ?? 10;
    const min = present[0]!;
    const cuts = new Set<number>();
    for (let k = 1; k < bins; k++) cuts.add(quantile(present, k / bins));
    // Counters that are mostly zero (SMART errors) have every decile at the minimum: give the minimum its own
    // bin and cut the rest at its quartiles, so growth above zero is still seen.
    const above = present.findIndex((v) => v > min);
    if (above > 0 && above / present.length >= 1 / bins) {
      cuts.add(present[above]!);
      const tail = present.slice(above);
      for (const q of [0.25, 0.5, 0.75]) cuts.add(quantile(tail, q));
    }
    // A cut at the minimum would leave an empty first bin.
    edges = [...cuts].filter((e) => e > min).sort((a, b) => a - b);
  }
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const v of present) counts[binOf(edges, v)]!++;
  const missing = (values.length - present.length) / values.length;
  return {
    edges: edges.map((e) => Number(e.toPrecision(7))),
    fractions: counts.map((c) => round6(c / values.length)),
    ...(missing > 0 ? { missing: round6(missing) } : {}),
    ...(options.categories ? {} : { support: [quantile(present, 0.001), quantile(present, 0.999)].map((e) => Number(e.toPrecision(7))) as [number, number] }),
  };
}

/**
 * PSI of observed bin counts against a training distribution. Empty bins on either side are smoothed with half
 * a count, so one unseen bin in a small window reads as a shift, not as infinity.
 */
export function psi(expected: FeatureDistribution, counts: readonly number[], missingCount = 0): number {
  const total = counts.reduce((n, c) => n + c, 0) + missingCount;
  if (!total) return 0;
  const floor = 0.5 / total;
  const term = (e: number, observed: number) => {
    const a = Math.max(observed / total, floor);
    const ex = Math.max(e, floor);
    return (a - ex) * Math.log(a / ex);
  };
  let sum = 0;
  for (let i = 0; i < expected.fractions.length; i++) sum += term(expected.fractions[i]!, counts[i] ?? 0);
  if ((expected.missing ?? 0) > 0 || missingCount > 0) sum += term(expected.missing ?? 0, missingCount);
  return sum;
}

/** Lag-1 autocorrelation of a series (0 when it is constant or too short). */
export function lag1Autocorrelation(x: ArrayLike<number>): number {
  const n = x.length;
  if (n < 3) return 0;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i]!;
  mean /= n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i]! - mean;
    den += d * d;
    if (i > 0) num += d * (x[i - 1]! - mean);
  }
  return den > 0 ? num / den : 0;
}

/** PSI that chance alone gives for a window of `n` values with lag-1 autocorrelation `rho`, over `bins` bins. */
export function chancePsi(bins: number, n: number, rho: number): number {
  const r = Math.min(0.999, Math.max(0, rho));
  const nEff = Math.max(1, (n * (1 - r)) / (1 + r));
  return Math.max(0, bins - 1) / nEff;
}

/** The `q` quantile of a distribution, to the resolution of its bins (the upper edge of the bin it falls in). */
export function distributionQuantile(d: FeatureDistribution, q: number): number {
  const present = d.fractions.reduce((a, b) => a + b, 0);
  let cum = 0;
  for (let i = 0; i < d.edges.length; i++) {
    cum += d.fractions[i]! / present;
    if (cum >= q) return d.edges[i]!;
  }
  return d.edges[d.edges.length - 1] ?? 0;
}

/** Interquartile range of finite values (linear interpolation). */
export function interquartileRange(values: ArrayLike<number>): number {
  const v = Array.from(values)
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  if (v.length < 4) return 0;
  const at = (q: number) => {
    const pos = (v.length - 1) * q;
    const lo = Math.floor(pos);
    return v[lo]! + (v[Math.ceil(pos)]! - v[lo]!) * (pos - lo);
  };
  return at(0.75) - at(0.25);
}
