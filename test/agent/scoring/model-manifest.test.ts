import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { predictionBounds, readModel, type PredictionInterval } from '../../../agent/src/scoring/model-manifest.js';
import { isForewarnError } from '../../../agent/src/core/errors.js';

const MODELS = path.resolve(import.meta.dirname, '../../../models');

/** A copy of a shipped model folder whose manifest `edit` changes. */
function withManifest(model: string, edit: (m: { outputs: Record<string, unknown> }) => void): string {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'fw-manifest-')), model);
  cpSync(path.join(MODELS, model), dir, { recursive: true });
  const file = path.join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(file, 'utf8')) as { outputs: Record<string, unknown> };
  edit(m);
  writeFileSync(file, JSON.stringify(m));
  return dir;
}

function readError(dir: string): { code: string; message: string; details: readonly string[] } {
  try {
    readModel(dir);
  } catch (err) {
    if (isForewarnError(err)) return { code: err.code, message: err.message, details: err.details };
    throw err;
  }
  throw new Error('expected the manifest to be refused');
}

const interval = (bins: PredictionInterval['bins'], level = 0.9): PredictionInterval => ({ level, bins });

describe('outputs.interval in a model manifest', () => {
  it('the shipped turbofan-rul manifest carries a valid interval that contains every prediction', () => {
    const { manifest } = readModel(path.join(MODELS, 'turbofan-rul'));
    const iv = manifest.outputs.interval;
    expect(iv, 'turbofan-rul has outputs.interval').toBeDefined();
    expect(iv!.level).toBeGreaterThan(0);
    expect(iv!.level).toBeLessThan(1);
    for (let p = 0; p <= 150; p += 0.5) {
      const b = predictionBounds(iv!, p);
      expect(b.lower).toBeLessThanOrEqual(p);
      expect(b.upper).toBeGreaterThanOrEqual(p);
      expect(b.lower).toBeGreaterThanOrEqual(0);
    }
  });

  it('takes the offsets of the first bin whose predictionBelow exceeds the prediction, the last bin above them all', () => {
    const iv = interval([
      { predictionBelow: 20, lower: -3, upper: 4 },
      { predictionBelow: 60, lower: -10, upper: 12 },
      { lower: -30, upper: 20 },
    ]);
    expect(predictionBounds(iv, 10)).toEqual({ level: 0.9, lower: 7, upper: 14 });
    expect(predictionBounds(iv, 20)).toEqual({ level: 0.9, lower: 10, upper: 32 });
    expect(predictionBounds(iv, 59.5)).toEqual({ level: 0.9, lower: 49.5, upper: 71.5 });
    expect(predictionBounds(iv, 100)).toEqual({ level: 0.9, lower: 70, upper: 120 });
    // A remaining life is never negative: the lower bound stops at 0.
    expect(predictionBounds(iv, 1)).toEqual({ level: 0.9, lower: 0, upper: 5 });
  });

  it.each([
    ['a positive lower offset', [{ lower: 2, upper: 5 }], /outputs\.interval\.bins\.0\.lower: must be <= 0/],
    ['a negative upper offset', [{ lower: -2, upper: -1 }], /outputs\.interval\.bins\.0\.upper: must be >= 0/],
    ['a level of 1', null, /outputs\.interval\.level: must be < 1/],
    ['an unknown field', [{ lower: -1, upper: 1, width: 2 }], /outputs\.interval\.bins\.0: must NOT have additional properties/],
  ])('refuses %s with the path of the field (FW_ERR_MODEL_MANIFEST)', (_what, bins, pattern) => {
    const dir = withManifest('turbofan-rul', (m) => {
      m.outputs.interval = bins ? { level: 0.9, bins } : { level: 1, bins: [{ lower: -1, upper: 1 }] };
    });
    const err = readError(dir);
    expect(err.code).toBe('FW_ERR_MODEL_MANIFEST');
    expect(err.message).toMatch(/invalid manifest/);
    expect(err.details.join('\n')).toMatch(pattern);
  });

  it.each([
    [
      'a bin before the last without predictionBelow',
      [
        { lower: -1, upper: 1 },
        { lower: -2, upper: 2 },
      ],
      /bins\.0: predictionBelow is required/,
    ],
    ['a last bin with predictionBelow', [{ predictionBelow: 30, lower: -1, upper: 1 }], /bins\.0: the last bin takes every prediction left/],
    [
      'bins out of order',
      [
        { predictionBelow: 50, lower: -1, upper: 1 },
        { predictionBelow: 30, lower: -2, upper: 2 },
        { lower: -3, upper: 3 },
      ],
      /bins\.1: predictionBelow 30 must be greater than the previous bin's 50/,
    ],
  ])('refuses %s (FW_ERR_MODEL_MANIFEST, path: message)', (_what, bins, pattern) => {
    const err = readError(withManifest('turbofan-rul', (m) => (m.outputs.interval = { level: 0.9, bins })));
    expect(err.code).toBe('FW_ERR_MODEL_MANIFEST');
    expect(err.message).toMatch(pattern);
    expect(err.message).toMatch(/manifest\.json: outputs\.interval\./);
  });

  it('refuses an interval on a model that does not predict a remaining life', () => {
    const err = readError(withManifest('machine-failure', (m) => (m.outputs.interval = { level: 0.9, bins: [{ lower: -0.1, upper: 0.1 }] })));
    expect(err.code).toBe('FW_ERR_MODEL_MANIFEST');
    expect(err.message).toMatch(/outputs\.interval: only a model of kind rul has an interval \(this one is probability\)/);
  });
});
