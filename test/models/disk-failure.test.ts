import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OnnxModel } from '../../agent/src/scoring/onnx-model.js';
import { runCli } from '../helpers/agent-process.js';

/**
 * The shipped disk-failure model (models/disk-failure, trained by models/disk-failure/train.py on Backblaze Drive Stats).
 * Inputs, in manifest order: smart_5_raw, smart_187_raw, smart_197_raw, smart_198_raw; NaN = not reported.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
const MODEL_DIR = path.join(ROOT, 'models/disk-failure');
const BUILD = path.join(ROOT, 'build/disk-failure');
const HOLDOUT = path.join(BUILD, 'holdout.csv');
const HOLDOUT_MISSING = path.join(BUILD, 'holdout_missing_187_188_198.csv');
const CROSS = path.join(BUILD, 'cross-model');

interface Golden {
  columns: string[];
  threshold: number;
  inputs: Array<Array<number | null>>;
  probabilities: number[];
  tolerance: number;
  notes: string[];
}

interface Manifest {
  inputs: { features: Array<{ name: string; signal: string; column?: string; optional?: boolean; baseline?: number; range?: [number, number] }> };
  outputs: { threshold?: number };
}

interface EvalJson {
  skipped: { rows: number };
  metrics: { rows: number; positives: number; threshold: number; confusion: { tp: number; fp: number; fn: number; tn: number }; recall: number; prAuc: number; rocAuc: number };
}

const golden = JSON.parse(readFileSync(path.join(MODEL_DIR, 'golden.json'), 'utf8')) as Golden;
const manifest = JSON.parse(readFileSync(path.join(MODEL_DIR, 'manifest.json'), 'utf8')) as Manifest;
const threshold = manifest.outputs.threshold!;

/** JSON has no NaN: golden.json writes a not-reported attribute as null. */
const row = (r: Array<number | null>) => r.map((v) => (v === null ? Number.NaN : v));

let model: OnnxModel;
beforeAll(async () => {
  model = await OnnxModel.load(MODEL_DIR);
});
afterAll(async () => {
  await model?.release();
});

async function score(rows: Array<Array<number | null>>): Promise<Float32Array> {
  return model.run(Float32Array.from(rows.flatMap(row)), rows.length);
}

describe('disk-failure model (Backblaze SMART)', () => {
  it('declares four optional raw SMART inputs with a threshold', () => {
    expect(manifest.inputs.features.map((f) => f.name)).toEqual(['smart_5_raw', 'smart_187_raw', 'smart_197_raw', 'smart_198_raw']);
    expect(golden.columns).toEqual(manifest.inputs.features.map((f) => f.column));
    for (const f of manifest.inputs.features) {
      expect(f.signal).toMatch(/^smart\.\d+\.raw$/);
      expect(f.optional).toBe(true);
      expect(f.baseline).toBe(0);
      expect(f.range).toEqual([0, 1e9]);
    }
    expect(threshold).toBe(0.118);
    expect(golden.threshold).toBe(threshold);
  });

  it("reproduces the training recipe's probabilities through onnxruntime-node, NaN cells included", async () => {
    expect(golden.inputs.length).toBeGreaterThanOrEqual(25);
    expect(golden.inputs.some((r) => r.includes(null))).toBe(true);
    const scores = await score(golden.inputs);
    expect(scores).toHaveLength(golden.probabilities.length);
    golden.probabilities.forEach((p, i) => expect(Math.abs(scores[i]! - p), `row ${i}: ${golden.notes[i]}`).toBeLessThanOrEqual(golden.tolerance));
    // The golden rows span both sides of the threshold, so this cannot pass with a constant output.
    expect(Math.max(...scores) - Math.min(...scores)).toBeGreaterThan(0.9);
  });

  it('gives a finite probability whatever is missing', async () => {
    const patterns: Array<Array<number | null>> = [];
    for (let mask = 0; mask < 16; mask++) {
      patterns.push([0, 0, 0, 0].map((_, j) => ((mask >> j) & 1 ? null : 0)));
      patterns.push([120, 3, 40, 40].map((v, j) => ((mask >> j) & 1 ? null : v)));
    }
    const scores = await score(patterns);
    scores.forEach((p, i) => {
      expect(Number.isFinite(p), `pattern ${JSON.stringify(patterns[i])}`).toBe(true);
      expect(p).toBeGreaterThan(0);
      expect(p).toBeLessThan(1);
    });
  });

  it('alarms on a drive with many reallocated and pending sectors, not on a clean one, with or without 187/198', async () => {
    const [bad, badNoVendorAttrs, clean, cleanNoVendorAttrs] = await score([
      [2000, 0, 500, 500],
      [2000, null, 500, null],
      [0, 0, 0, 0],
      [0, null, 0, null],
    ]);
    expect(bad!).toBeGreaterThanOrEqual(threshold);
    expect(badNoVendorAttrs!).toBeGreaterThanOrEqual(threshold);
    expect(clean!).toBeLessThan(threshold);
    expect(cleanNoVendorAttrs!).toBeLessThan(threshold);
    expect(clean!).toBeLessThan(0.01);
  });

  it('never lowers the risk as pending sectors grow, other inputs fixed', async () => {
    const pending = [0, 1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256, 512, 1024, 4096, 65536, 1e6, 1e9];
    const contexts: Array<(p: number) => Array<number | null>> = [
      (p) => [0, 0, p, 0], // 198 fixed at 0
      (p) => [0, 0, p, p], // 198 tracking 197, as on the Seagate training drives
      (p) => [8, null, p, null], // a vendor without 187 and 198
      (p) => [100, 2, p, 0],
    ];
    for (const ctx of contexts) {
      const rows = pending.map(ctx);
      const scores = Array.from(await score(rows));
      for (let i = 1; i < scores.length; i++) {
        expect(scores[i]!, `${JSON.stringify(rows[i])} vs ${JSON.stringify(rows[i - 1])}`).toBeGreaterThanOrEqual(scores[i - 1]!);
      }
      expect(scores[scores.length - 1]!).toBeGreaterThan(scores[0]! + 0.2);
    }
    // The same holds for reallocated sectors and for 198 (unreadable = max(197, 198)).
    for (const ctx of [(v: number) => [v, 0, 0, 0], (v: number) => [0, null, 0, v]] as Array<(v: number) => Array<number | null>>) {
      const scores = Array.from(await score(pending.map(ctx)));
      for (let i = 1; i < scores.length; i++) expect(scores[i]!).toBeGreaterThanOrEqual(scores[i - 1]!);
    }
  });

  it.skipIf(!existsSync(HOLDOUT))('model eval on the holdout reproduces the model card (needs build/disk-failure from train.py)', async () => {
    const r = await runCli(['model', 'eval', 'disk-failure', '--data', HOLDOUT, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as EvalJson;
    expect(out.skipped.rows).toBe(0);
    expect(out.metrics).toMatchObject({ rows: 4923, positives: 68, threshold: 0.118, confusion: { tp: 35, fp: 51, fn: 33, tn: 4804 } });
    expect(out.metrics.recall).toBeCloseTo(0.5147, 4);
    expect(out.metrics.prAuc).toBeCloseTo(0.443, 4);
    expect(out.metrics.rocAuc).toBeCloseTo(0.8386, 4);
  });

  it.skipIf(!existsSync(HOLDOUT_MISSING))('model eval on the holdout with 187/188/198 blank reproduces the model card', async () => {
    const r = await runCli(['model', 'eval', 'disk-failure', '--data', HOLDOUT_MISSING, '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as EvalJson;
    // Empty cells of optional inputs are scored as NaN, not skipped.
    expect(out.skipped.rows).toBe(0);
    expect(out.metrics).toMatchObject({ rows: 4923, positives: 68, confusion: { tp: 35, fp: 52, fn: 33, tn: 4803 } });
    expect(out.metrics.prAuc).toBeCloseTo(0.4425, 4);
    expect(out.metrics.rocAuc).toBeCloseTo(0.8385, 4);
  });

  it.skipIf(!existsSync(path.join(CROSS, 'models')))('cross-model checks reproduce the model card (train on one Seagate model, test on the other)', async () => {
    const cases = [
      { model: 'disk-failure-trained-on-st8000nm0055', data: 'ST8000DM002.csv', rows: 9936, threshold: 0.118, confusion: { tp: 74, fp: 115, fn: 48, tn: 9699 }, prAuc: 0.4715, rocAuc: 0.8604 },
      { model: 'disk-failure-trained-on-st8000dm002', data: 'ST8000NM0055.csv', rows: 14679, threshold: 0.084, confusion: { tp: 97, fp: 116, fn: 124, tn: 14342 }, prAuc: 0.4084, rocAuc: 0.8344 },
    ];
    for (const c of cases) {
      const r = await runCli(['model', 'eval', c.model, '--models-dir', path.join(CROSS, 'models'), '--data', path.join(CROSS, c.data), '--json']);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as EvalJson;
      expect(out.metrics).toMatchObject({ rows: c.rows, threshold: c.threshold, confusion: c.confusion });
      expect(out.metrics.prAuc).toBeCloseTo(c.prAuc, 4);
      expect(out.metrics.rocAuc).toBeCloseTo(c.rocAuc, 4);
    }
  });
});
