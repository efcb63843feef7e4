import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isForewarnError } from '../../../agent/src/core/errors.js';
import { evaluateRul, nasaTerm, parseCmapss, parseRulFile, rulMetrics, writeWindow } from '../../../agent/src/evaluation/evaluate-rul.js';
import { OnnxModel } from '../../../agent/src/scoring/onnx-model.js';

/**
 * The shipped turbofan-rul model (models/turbofan-rul, trained by models/turbofan-rul/train.py on NASA C-MAPSS FD001)
 * and `evaluateRul`, which scores C-MAPSS files with it.
 */

const ROOT = path.resolve(import.meta.dirname, '../../..');
const MODEL_DIR = path.join(ROOT, 'models/turbofan-rul');
const BUILD = path.join(ROOT, 'build/turbofan-rul');
const HOLDOUT = path.join(BUILD, 'holdout_FD001.txt');
const HOLDOUT_RUL = path.join(BUILD, 'holdout_RUL_FD001.txt');
const HOLDOUT_FULL = path.join(BUILD, 'holdout_full_FD001.txt');
const HOLDOUT_FULL_RUL = path.join(BUILD, 'holdout_full_RUL_FD001.txt');

interface Golden {
  columns: string[];
  inputs: number[][][];
  rul: number[];
  tolerance: number;
  notes: string[];
}

interface Manifest {
  task: string;
  inputs: {
    tensor: string;
    window: { length: number; order: string; pad: string };
    features: Array<{ name: string; signal: string; column: string; baseline: number; range: [number, number] }>;
  };
  outputs: { tensor: string; kind: string; threshold?: number };
}

const golden = JSON.parse(readFileSync(path.join(MODEL_DIR, 'golden.json'), 'utf8')) as Golden;
const manifest = JSON.parse(readFileSync(path.join(MODEL_DIR, 'manifest.json'), 'utf8')) as Manifest;
const WINDOW = 30;
const columns = manifest.inputs.features.map((f) => Number(f.column));

/** A C-MAPSS line (26 fields) with the given sensor values at the manifest's columns and FD001's constants elsewhere. */
function cmapssLine(unit: number, cycle: number, values: readonly number[], trailing = ''): string {
  // unit, cycle, os1, os2, os3, s1..s21 (the constant sensors at their FD001 values)
  const fields: number[] = [unit, cycle, 0.0001, -0.0002, 100, 518.67, 0, 0, 0, 14.62, 21.61, 0, 0, 0, 1.3, 0, 0, 0, 0, 0, 0.03, 0, 2388, 100, 0, 0];
  columns.forEach((c, j) => (fields[c] = values[j]!));
  return fields.map(String).join(' ') + trailing;
}

function tmpFile(name: string, text: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'fw-rul-')), name);
  writeFileSync(file, text);
  return file;
}

async function dataError(data: string, rul: string): Promise<{ code: string; message: string }> {
  try {
    await evaluateRul(MODEL_DIR, data, rul, { latencyRuns: 0 });
  } catch (err) {
    if (isForewarnError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected the evaluation to fail');
}

function goldenIndex(pattern: RegExp): number {
  const i = golden.notes.findIndex((n) => pattern.test(n));
  if (i < 0) throw new Error(`no golden window matches ${pattern}`);
  return i;
}

let model: OnnxModel;
beforeAll(async () => {
  model = await OnnxModel.load(MODEL_DIR);
});
afterAll(async () => {
  await model?.release();
});

describe('turbofan-rul model (NASA C-MAPSS FD001)', () => {
  it('declares a [N, 30, 14] window of raw C-MAPSS sensors and a RUL output in cycles', () => {
    expect(manifest.task).toBe('regression');
    expect(manifest.inputs.window).toEqual({ length: WINDOW, order: 'cycle', pad: 'repeat-first' });
    expect(manifest.inputs.features.map((f) => f.name)).toEqual(['s2', 's3', 's4', 's7', 's8', 's9', 's11', 's12', 's13', 's14', 's15', 's17', 's20', 's21']);
    expect(golden.columns).toEqual(manifest.inputs.features.map((f) => f.name));
    for (const f of manifest.inputs.features) {
      expect(f.signal).toBe(`cmapss.${f.name}`);
      // 0-based field of a C-MAPSS line: unit, cycle, 3 settings, then s1 at 5.
      expect(Number(f.column)).toBe(4 + Number(f.name.slice(1)));
      expect(f.baseline).toBeGreaterThan(f.range[0]);
      expect(f.baseline).toBeLessThan(f.range[1]);
    }
    expect(manifest.outputs).toMatchObject({ tensor: 'rul', kind: 'rul', threshold: 30 });
    expect(model.steps).toBe(WINDOW);
  });

  it("reproduces the training recipe's predictions through onnxruntime-node", async () => {
    expect(golden.inputs.length).toBeGreaterThanOrEqual(10);
    for (const w of golden.inputs) {
      expect(w).toHaveLength(WINDOW);
      for (const row of w) expect(row).toHaveLength(manifest.inputs.features.length);
    }
    const out = await model.run(Float32Array.from(golden.inputs.flat(2)), golden.inputs.length);
    expect(out).toHaveLength(golden.rul.length);
    golden.rul.forEach((r, i) => expect(Math.abs(out[i]! - r), `window ${i}: ${golden.notes[i]}`).toBeLessThanOrEqual(golden.tolerance));
    // The golden windows run from a healthy engine to one at failure, so this cannot pass with a constant output.
    expect(Math.max(...out) - Math.min(...out)).toBeGreaterThan(80);
    for (const r of out) expect(r).toBeGreaterThanOrEqual(0);
  });
});

describe('RUL metrics', () => {
  it('computes RMSE, the NASA score and the error distribution from known predictions', () => {
    // d = predicted - true = -2, 0, 5
    const m = rulMetrics([10, 20, 30], [12, 20, 25]);
    expect(m.engines).toBe(3);
    expect(m.rmse).toBeCloseTo(Math.sqrt((4 + 0 + 25) / 3), 12);
    expect(m.nasaScore).toBeCloseTo(Math.exp(2 / 13) - 1 + 0 + (Math.exp(5 / 10) - 1), 12);
    expect(m.meanError).toBeCloseTo(1, 12);
    expect(m.mae).toBeCloseTo(7 / 3, 12);
    expect(m.late).toBe(1);
    expect(m.errorPercentiles).toMatchObject({ min: -2, p25: -1, median: 0, p75: 2.5, max: 5 });
    expect(m.errorPercentiles.p10).toBeCloseTo(-1.6, 12);
    expect(m.errorPercentiles.p90).toBeCloseTo(4, 12);
  });

  it('penalises late predictions more than early ones (asymmetric score)', () => {
    expect(nasaTerm(0)).toBe(0);
    expect(nasaTerm(-13)).toBeCloseTo(Math.E - 1, 12);
    expect(nasaTerm(10)).toBeCloseTo(Math.E - 1, 12);
    expect(nasaTerm(20)).toBeGreaterThan(nasaTerm(-20));
    expect(() => rulMetrics([1, 2], [1])).toThrow(RangeError);
  });
});

describe('C-MAPSS windows', () => {
  it('takes the last cycles of an engine, oldest first, and pads a short engine by repeating its first cycle', () => {
    const rows = [1, 2, 3].map((c) => [7, c, 10 * c, 100 * c]);
    const out = new Float32Array(5 * 2);
    writeWindow(rows, [2, 3], 5, out);
    expect(Array.from(out)).toEqual([10, 100, 10, 100, 10, 100, 20, 200, 30, 300]);
    const long = Array.from({ length: 8 }, (_, i) => [7, i + 1, i + 1, -(i + 1)]);
    const out2 = new Float32Array(3 * 2);
    writeWindow(long, [2, 3], 3, out2);
    expect(Array.from(out2)).toEqual([6, -6, 7, -7, 8, -8]);
  });

  it('parses whitespace-separated lines, tolerating trailing spaces, blank lines and CRLF', () => {
    const text = '1 1 ' + '0 '.repeat(24) + '  \r\n\r\n1 2 ' + '0 '.repeat(24) + '\n  \n2 5 ' + '1 '.repeat(24) + '\n';
    const engines = parseCmapss(text, 'x.txt');
    expect(engines.map((e) => [e.unit, e.cycles, e.line])).toEqual([
      [1, [1, 2], 1],
      [2, [5], 5],
    ]);
    expect(engines[1]!.rows[0]).toHaveLength(26);
    expect(parseRulFile('112 \n\n98\r\n', 'r.txt')).toEqual([112, 98]);
  });
});

describe('evaluateRul', () => {
  it('scores each engine at its last cycle and matches RMSE and score computed by hand', async () => {
    // Engine 7: 35 cycles whose last 30 are a golden window (the first 5 differ, and must be ignored).
    // Engine 3: 10 cycles (padded to 30 by the evaluation); engine 12: a single cycle.
    const gFull = goldenIndex(/25th percentile/);
    const g10 = goldenIndex(/first 10 cycle/);
    const g1 = goldenIndex(/first 1 cycle/);
    const lines: string[] = [];
    const w = golden.inputs[gFull]!;
    for (let c = 1; c <= 5; c++)
      lines.push(
        cmapssLine(
          7,
          c,
          w[0]!.map((v) => v * 1.01),
        ),
      );
    w.forEach((row, t) => lines.push(cmapssLine(7, t + 6, row, t % 3 === 0 ? '  ' : '')));
    lines.push('');
    golden.inputs[g10]!.slice(WINDOW - 10).forEach((row, t) => lines.push(cmapssLine(3, t + 1, row)));
    lines.push(cmapssLine(12, 1, golden.inputs[g1]![WINDOW - 1]!), '', '');
    const data = tmpFile('test_tiny.txt', lines.join('\n'));
    const truth = [40, 118, 125];
    const rul = tmpFile('RUL_tiny.txt', truth.join('\n') + '\n');

    const r = await evaluateRul(MODEL_DIR, data, rul, { latencyRuns: 0 });
    expect(r).toMatchObject({ model: 'turbofan-rul', engines: 3, window: { length: 30, order: 'cycle', pad: 'repeat-first' } });
    expect(r.latency).toBeUndefined();
    expect(r.predictions.map((p) => [p.unit, p.cycles, p.true])).toEqual([
      [7, 35, 40],
      [3, 10, 118],
      [12, 1, 125],
    ]);
    // The windows the evaluation built (padding included) are the recipe's golden windows.
    const expected = [golden.rul[gFull]!, golden.rul[g10]!, golden.rul[g1]!];
    r.predictions.forEach((p, i) => expect(Math.abs(p.predicted - expected[i]!), `engine ${p.unit}`).toBeLessThanOrEqual(golden.tolerance));
    // By hand, from the predictions.
    const d = r.predictions.map((p) => p.predicted - p.true);
    expect(r.rmse).toBeCloseTo(Math.sqrt((d[0]! ** 2 + d[1]! ** 2 + d[2]! ** 2) / 3), 9);
    const score = d.reduce((s, x) => s + (x < 0 ? Math.exp(-x / 13) - 1 : Math.exp(x / 10) - 1), 0);
    expect(r.nasaScore).toBeCloseTo(score, 9);
    expect(r.meanError).toBeCloseTo((d[0]! + d[1]! + d[2]!) / 3, 9);
    // The manifest's calibrated interval: each engine's bounds, and the share of true RULs inside them.
    const iv = (JSON.parse(readFileSync(path.join(MODEL_DIR, 'manifest.json'), 'utf8')) as { outputs: { interval: { level: number } } }).outputs.interval;
    const inside = r.predictions.filter((p) => {
      expect(p.lower!).toBeLessThanOrEqual(p.predicted);
      expect(p.upper!).toBeGreaterThanOrEqual(p.predicted);
      return p.true >= p.lower! && p.true <= p.upper!;
    }).length;
    expect(r.interval).toMatchObject({ level: iv.level, covered: inside, coverage: inside / 3 });
    expect(r.interval!.meanWidth).toBeCloseTo(r.predictions.reduce((s, p) => s + p.upper! - p.lower!, 0) / 3, 9);
  });

  it('measures the latency of one window on one thread', async () => {
    const data = tmpFile('one.txt', golden.inputs[0]!.map((row, t) => cmapssLine(1, t + 1, row)).join('\n'));
    const r = await evaluateRul(MODEL_DIR, data, tmpFile('one_rul.txt', '50\n'), { latencyRuns: 200 });
    expect(r.latency).toMatchObject({ runs: 200, threads: 1 });
    // What it measures, not how fast this machine is (test/bench measures speed): ordered, positive percentiles.
    const { minMs, medianMs, p95Ms } = r.latency!;
    expect(minMs).toBeGreaterThan(0);
    expect(minMs).toBeLessThanOrEqual(medianMs);
    expect(medianMs).toBeLessThanOrEqual(p95Ms);
    expect(Number.isFinite(p95Ms)).toBe(true);
  });

  describe('refuses malformed files with the line at fault', () => {
    const good = (unit: number, cycle: number) => cmapssLine(unit, cycle, golden.inputs[0]![0]!);
    const oneRul = () => tmpFile('rul.txt', '10\n');

    it('a field that is not a number', async () => {
      const bad = good(1, 3).replace(/ \S+$/, ' 23.4x');
      const err = await dataError(tmpFile('d.txt', [good(1, 1), good(1, 2), bad].join('\n')), oneRul());
      expect(err.code).toBe('FW_ERR_DATA_FORMAT');
      expect(err.message).toMatch(/d\.txt:3: field 26 is not a number: "23\.4x"/);
    });

    it('a short line, or one with another number of fields', async () => {
      let err = await dataError(tmpFile('d.txt', [good(1, 1), '1 2 0.1 0.2 100 518.67'].join('\n')), oneRul());
      expect(err).toMatchObject({ code: 'FW_ERR_DATA_FORMAT' });
      expect(err.message).toMatch(/d\.txt:2: 6 field\(s\), expected at least 26/);
      err = await dataError(tmpFile('d.txt', [good(1, 1), `${good(1, 2)} 7`].join('\n')), oneRul());
      expect(err.message).toMatch(/d\.txt:2: 27 fields, the first line has 26/);
    });

    it('cycles that are not consecutive, an engine split in two, a bad unit', async () => {
      let err = await dataError(tmpFile('d.txt', [good(1, 1), good(1, 3)].join('\n')), oneRul());
      expect(err.message).toMatch(/d\.txt:2: engine 1: cycle 3 follows cycle 1/);
      err = await dataError(tmpFile('d.txt', [good(1, 1), good(2, 1), good(1, 2)].join('\n')), tmpFile('r.txt', '1\n2\n'));
      expect(err.message).toMatch(/d\.txt:3: engine 1 appears again/);
      err = await dataError(tmpFile('d.txt', good(1, 1).replace(/^1 /, '1.5 ')), oneRul());
      expect(err.message).toMatch(/d\.txt:1: unit must be a positive integer/);
    });

    it('an empty or missing data file', async () => {
      expect((await dataError(tmpFile('d.txt', '\n  \n'), oneRul())).message).toMatch(/no data lines/);
      const err = await dataError(path.join(tmpdir(), 'fw-no-such-file.txt'), oneRul());
      expect(err.code).toBe('FW_ERR_DATA_FORMAT');
    });

    it('a RUL file that is not one integer per engine', async () => {
      const data = tmpFile('d.txt', [good(1, 1), good(2, 1), good(3, 1)].join('\n'));
      let err = await dataError(data, tmpFile('r.txt', '10\n12.5\n7\n'));
      expect(err).toMatchObject({ code: 'FW_ERR_DATA_FORMAT' });
      expect(err.message).toMatch(/r\.txt:2: expected one non-negative integer .*"12\.5"/);
      err = await dataError(data, tmpFile('r.txt', '10\n12\n'));
      expect(err.message).toMatch(/r\.txt: 2 RUL value\(s\) for 3 engine\(s\)/);
      err = await dataError(data, tmpFile('r.txt', '10 11 12\n'));
      expect(err.message).toMatch(/r\.txt:1:/);
    });

    it('a model that is not a windowed RUL model', async () => {
      const data = tmpFile('d.txt', good(1, 1));
      try {
        await evaluateRul(path.join(ROOT, 'models/machine-failure'), data, oneRul(), { latencyRuns: 0 });
        throw new Error('expected the evaluation to fail');
      } catch (err) {
        expect(isForewarnError(err, 'FW_ERR_MODEL_MANIFEST')).toBe(true);
      }
    });
  });

  // Figures of MODEL_CARD.md; the files come from `/usr/bin/python3 models/turbofan-rul/train.py`.
  it.skipIf(!existsSync(HOLDOUT) || !existsSync(HOLDOUT_RUL))('reproduces the model card on the truncated holdout engines', async () => {
    const r = await evaluateRul(MODEL_DIR, HOLDOUT, HOLDOUT_RUL, { latencyRuns: 0 });
    expect(r.engines).toBe(20);
    expect(r.predictions.map((p) => p.true)).toEqual([78, 29, 102, 104, 54, 16, 141, 68, 131, 101, 115, 112, 34, 53, 71, 76, 13, 82, 25, 110]);
    expect(r.rmse).toBeCloseTo(CARD.truncated.rmse, 2);
    expect(r.nasaScore).toBeCloseTo(CARD.truncated.nasaScore, 1);
    expect(r.meanError).toBeCloseTo(CARD.truncated.meanError, 2);
  });

  it.skipIf(!existsSync(HOLDOUT_FULL) || !existsSync(HOLDOUT_FULL_RUL))('reproduces the model card at the last cycle of the holdout engines', async () => {
    const r = await evaluateRul(MODEL_DIR, HOLDOUT_FULL, HOLDOUT_FULL_RUL, { latencyRuns: 0 });
    expect(r.engines).toBe(20);
    expect(r.predictions.every((p) => p.true === 0)).toBe(true);
    expect(r.rmse).toBeCloseTo(CARD.lastCycle.rmse, 2);
    expect(r.nasaScore).toBeCloseTo(CARD.lastCycle.nasaScore, 1);
  });
});

/** The holdout figures quoted in MODEL_CARD.md (from the recipe's manifest metrics). */
const CARD = {
  truncated: { rmse: 13.5815, nasaScore: 59.3212, meanError: 1.6187 },
  lastCycle: { rmse: 3.4567, nasaScore: 7.6836 },
};
