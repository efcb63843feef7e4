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
