/** Metrics for a binary classifier's scores, as the model cards report them. Pure functions. */

export interface Confusion {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

export interface ClassificationReport {
  rows: number;
  positives: number;
  threshold: number;
  confusion: Confusion;
  precision: number;
  recall: number;
  f1: number;
  accuracy: number;
  /** Average precision: the area under the precision–recall curve, step-wise (as scikit-learn computes it). */
  prAuc: number;
  rocAuc: number;
}

export function confusionAt(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold: number): Confusion {
  const c: Confusion = { tp: 0, fp: 0, fn: 0, tn: 0 };
  for (let i = 0; i < scores.length; i++) {
    const predicted = scores[i]! >= threshold;
    const actual = labels[i]! === 1;
    if (predicted && actual) c.tp++;
    else if (predicted) c.fp++;
    else if (actual) c.fn++;
    else c.tn++;
  }
  return c;
}

const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);

/** Descending by score; ties are handled as one step, as scikit-learn does. */
function rankedSteps(scores: ArrayLike<number>, labels: ArrayLike<number>): Array<{ tp: number; fp: number }> {
  const idx = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const steps: Array<{ tp: number; fp: number }> = [];
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < idx.length; k++) {
    if (labels[idx[k]!] === 1) tp++;
    else fp++;
    const next = idx[k + 1];
    if (next === undefined || scores[next] !== scores[idx[k]!]) steps.push({ tp, fp });
  }
  return steps;
}

export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const steps = rankedSteps(scores, labels);
  const positives = steps.length ? steps[steps.length - 1]!.tp : 0;
  if (!positives) return 0;
  let ap = 0;
  let prevRecall = 0;
  for (const s of steps) {
    const recall = s.tp / positives;
    ap += (recall - prevRecall) * (s.tp / (s.tp + s.fp));
    prevRecall = recall;
  }
  return ap;
}

export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const steps = rankedSteps(scores, labels);
  const last = steps[steps.length - 1];
  if (!last || !last.tp || !last.fp) return Number.NaN;
  let auc = 0;
  let prev = { tp: 0, fp: 0 };
  for (const s of steps) {
    auc += ((s.fp - prev.fp) / last.fp) * ((s.tp + prev.tp) / 2 / last.tp);
    prev = s;
  }
  return auc;
}

/** The detection rate where at most `rate` of the negatives are flagged, and the threshold (score ≥ it) that gives it. */
export interface DetectionAtFalseAlarm {
  /** The false-alarm rate asked for. */
  rate: number;
  threshold: number;
  /** Share of the positives with a score at or above the threshold. */
  detectionRate: number;
  /** The false-alarm rate the threshold actually gives (≤ rate). */
  falseAlarmRate: number;
}

/**
 * For each rate, the lowest threshold that flags at most that share of the negatives, and the detection rate there:
 * how a disk or machine card states its goal ("detects X % at 1 % false alarms"). NaN without negatives or positives.
 */
export function detectionAtFalseAlarms(scores: ArrayLike<number>, labels: ArrayLike<number>, rates: readonly number[]): DetectionAtFalseAlarm[] {
  const negatives: number[] = [];
  const positives: number[] = [];
  for (let i = 0; i < labels.length; i++) (labels[i] === 1 ? positives : negatives).push(scores[i]!);
  negatives.sort((a, b) => b - a);
  return rates.map((rate) => {
    if (!negatives.length || !positives.length) return { rate, threshold: Number.NaN, detectionRate: Number.NaN, falseAlarmRate: Number.NaN };
    // Allowed false alarms: the k highest-scoring negatives at most. The threshold sits just above the next one, so
    // ties with it are not flagged either.
    const k = Math.floor(rate * negatives.length);
    const above = k < negatives.length ? negatives[k]! : Number.NEGATIVE_INFINITY;
    const threshold = above === Number.NEGATIVE_INFINITY ? Math.min(...positives, ...negatives) : nextUp(above);
    const flagged = (xs: number[]) => xs.filter((x) => x >= threshold).length;
    return { rate, threshold, detectionRate: flagged(positives) / positives.length, falseAlarmRate: flagged(negatives) / negatives.length };
  });
}

/** The smallest double above x. */
function nextUp(x: number): number {
  if (Number.isNaN(x) || x === Number.POSITIVE_INFINITY) return x;
  if (x === 0) return Number.MIN_VALUE;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  view.setBigUint64(0, x > 0 ? bits + 1n : bits - 1n);
  return view.getFloat64(0);
}

export function classificationReport(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold: number): ClassificationReport {
  const c = confusionAt(scores, labels, threshold);
  const precision = ratio(c.tp, c.tp + c.fp);
  const recall = ratio(c.tp, c.tp + c.fn);
  return {
    rows: scores.length,
    positives: c.tp + c.fn,
    threshold,
    confusion: c,
    precision,
    recall,
    f1: ratio(2 * precision * recall, precision + recall),
    accuracy: ratio(c.tp + c.tn, scores.length),
    prAuc: averagePrecision(scores, labels),
    rocAuc: rocAuc(scores, labels),
  };
}
