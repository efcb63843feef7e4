import { describe, expect, it } from 'vitest';
import { averagePrecision, classificationReport, rocAuc } from '../../../agent/src/evaluation/classification-metrics.js';

// Worked by hand: positives rank 1, 3 and 6 of 6.
const scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
const labels = [1, 0, 1, 0, 0, 1];

describe('classification metrics', () => {
  it('computes average precision as scikit-learn does', () => {
    expect(averagePrecision(scores, labels)).toBeCloseTo((1 + 2 / 3 + 3 / 6) / 3, 12);
    // Tied scores form one step.
    expect(averagePrecision([0.5, 0.5], [1, 0])).toBeCloseTo(0.5, 12);
    expect(averagePrecision([0.1, 0.2], [0, 0])).toBe(0);
  });

  it('computes ROC AUC as the share of correctly ordered positive/negative pairs', () => {
    expect(rocAuc(scores, labels)).toBeCloseTo(5 / 9, 12);
    expect(rocAuc([0.5, 0.5], [1, 0])).toBeCloseTo(0.5, 12);
    expect(rocAuc([0.1], [1])).toBeNaN();
  });

  it('reports the confusion matrix, precision, recall and F1 at the threshold', () => {
    const r = classificationReport(scores, labels, 0.65);
    expect(r.confusion).toEqual({ tp: 2, fp: 1, fn: 1, tn: 2 });
    expect(r.precision).toBeCloseTo(2 / 3, 12);
    expect(r.recall).toBeCloseTo(2 / 3, 12);
    expect(r.f1).toBeCloseTo(2 / 3, 12);
    expect(r).toMatchObject({ rows: 6, positives: 3, threshold: 0.65, accuracy: 4 / 6 });
    // A score equal to the threshold counts as positive.
    expect(classificationReport([0.5], [1], 0.5).confusion.tp).toBe(1);
  });
});
