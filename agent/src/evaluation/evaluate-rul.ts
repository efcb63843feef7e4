import { readFileSync } from 'node:fs';
import { ForewarnError, describeError } from '../core/errors.js';
import { predictionBounds, type ModelManifest } from '../scoring/model-manifest.js';
import { OnnxModel } from '../scoring/onnx-model.js';

/**
 * Evaluation of a remaining-useful-life model on NASA C-MAPSS files (`forewarn model eval NAME --data X --rul Y`).
 *
 * The data file is in the C-MAPSS format: one line per engine and cycle, whitespace-separated numbers
 * (unit, cycle, 3 operational settings, 21 sensors). The RUL file has one integer per engine, in the order the
 * engines appear in the data file. Each engine is scored once, on the window that ends at its last cycle, as the
 * C-MAPSS test protocol does; the manifest's `inputs.window` says how the window is built.
 */

/** `inputs.window` of a windowed model's manifest: the input tensor is [N, length, features]. */
export interface RulWindow {
  /** Cycles per window (the tensor's axis 1). */
  length: number;
  /** 'cycle': ascending cycle order, the oldest cycle at index 0 and the latest at index length - 1. */
  order: 'cycle';
  /** 'repeat-first': an engine with fewer cycles than `length` is padded at the start with copies of its first cycle. */
  pad: 'repeat-first';
}

export interface CmapssEngine {
  unit: number;
  /** 1-based line number of the engine's first line in the file. */
  line: number;
  /** Cycle numbers, consecutive. */
  cycles: number[];
  /** Every field of every cycle's line, as numbers. */
  rows: number[][];
}

export interface RulMetrics {
  engines: number;
  /** sqrt(mean(d²)), d = predicted - true, in cycles. */
  rmse: number;
  /** The PHM08 / C-MAPSS score: Σ exp(-d/13) - 1 for d < 0 (early), Σ exp(d/10) - 1 for d ≥ 0 (late). Lower is better. */
  nasaScore: number;
  /** Mean of d = predicted - true (positive: late, i.e. optimistic). */
  meanError: number;
  /** Mean of |d|. */
  mae: number;
  /** Engines with d > 0 (predicted later than the true failure). */
  late: number;
  /** Percentiles of d (linear interpolation, as numpy.percentile). */
  errorPercentiles: { min: number; p10: number; p25: number; median: number; p75: number; p90: number; max: number };
}

export interface RulEvaluation extends RulMetrics {
  model: string;
  version: string;
  sha256: string;
  data: string;
  rulFile: string;
  window: RulWindow;
  predictions: Array<{ unit: number; cycles: number; predicted: number; true: number; lower?: number; upper?: number }>;
  /**
   * A model with a calibrated interval (`outputs.interval`): the share of engines whose true RUL lies within the
   * bounds the agent would publish, against the nominal level, and the mean width.
   */
  interval?: { level: number; covered: number; coverage: number; meanWidth: number };
  /** One window scored alone, repeatedly, on one intra-op thread. Absent when `latencyRuns` is 0. */
  latency?: { runs: number; threads: 1; medianMs: number; p95Ms: number; minMs: number };
}

const BATCH = 4096;

function dataError(message: string): ForewarnError {
  return new ForewarnError('FW_ERR_DATA_FORMAT', message);
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ForewarnError('FW_ERR_DATA_FORMAT', `${file}: ${describeError(err)}`, { cause: err });
  }
}

/**
 * Parses a C-MAPSS text file. Blank lines and leading/trailing whitespace are ignored. Every other line must have
 * the same number of fields (at least `minFields`), all numbers; field 1 is the unit (a positive integer), field 2
 * the cycle (a positive integer). An engine's lines are contiguous with consecutive cycles.
 */
export function parseCmapss(text: string, source: string, minFields = 26): CmapssEngine[] {
  const engines: CmapssEngine[] = [];
  const seen = new Set<number>();
  let fieldCount: number | undefined;
  let current: CmapssEngine | undefined;
  const lines = text.split(/\r?\n/);
  for (let n = 1; n <= lines.length; n++) {
    const trimmed = lines[n - 1]!.trim();
    if (trimmed === '') continue;
    const fields = trimmed.split(/\s+/);
    if (fields.length < minFields) {
      throw dataError(`${source}:${n}: ${fields.length} field(s), expected at least ${minFields} (C-MAPSS: unit, cycle, 3 settings, 21 sensors)`);
    }
    if (fieldCount === undefined) fieldCount = fields.length;
    else if (fields.length !== fieldCount) throw dataError(`${source}:${n}: ${fields.length} fields, the first line has ${fieldCount}`);
    const row = fields.map((f, j) => {
      const v = Number(f);
      if (!Number.isFinite(v)) throw dataError(`${source}:${n}: field ${j + 1} is not a number: ${JSON.stringify(f)}`);
      return v;
    });
    const [unit, cycle] = row as [number, number];
    if (!Number.isInteger(unit) || unit < 1) throw dataError(`${source}:${n}: unit must be a positive integer, got ${fields[0]}`);
    if (!Number.isInteger(cycle) || cycle < 1) throw dataError(`${source}:${n}: cycle must be a positive integer, got ${fields[1]}`);
    if (!current || current.unit !== unit) {
      if (seen.has(unit)) throw dataError(`${source}:${n}: engine ${unit} appears again after other engines (an engine's lines must be contiguous)`);
      seen.add(unit);
      current = { unit, line: n, cycles: [], rows: [] };
      engines.push(current);
    } else {
      const prev = current.cycles[current.cycles.length - 1]!;
      if (cycle !== prev + 1) throw dataError(`${source}:${n}: engine ${unit}: cycle ${cycle} follows cycle ${prev} (cycles must be consecutive)`);
    }
    current.cycles.push(cycle);
    current.rows.push(row);
  }
  if (!engines.length) throw dataError(`${source}: no data lines`);
  return engines;
}

/** Parses a C-MAPSS RUL file: one non-negative integer per non-blank line, in engine order. */
export function parseRulFile(text: string, source: string): number[] {
  const out: number[] = [];
  const lines = text.split(/\r?\n/);
  for (let n = 1; n <= lines.length; n++) {
    const trimmed = lines[n - 1]!.trim();
    if (trimmed === '') continue;
    if (!/^\d+$/.test(trimmed)) throw dataError(`${source}:${n}: expected one non-negative integer (the engine's true RUL), got ${JSON.stringify(trimmed)}`);
    out.push(Number(trimmed));
  }
  if (!out.length) throw dataError(`${source}: no RUL values`);
  return out;
}

/**
 * The manifest's `inputs.window`, checked for C-MAPSS evaluation: windows in cycle order, padded by repeating the
 * first cycle (the schema's defaults when `order` / `pad` are absent, and what the agent's RiskScorer does).
 */
export function rulWindow(manifest: ModelManifest): RulWindow {
  const w = manifest.inputs.window;
  const where = `${manifest.name}: manifest inputs.window`;
  if (!w) throw new ForewarnError('FW_ERR_MODEL_MANIFEST', `${where} is missing: not a sequence model, cannot score C-MAPSS engines`);
  if (w.order !== undefined && w.order !== 'cycle')
    throw new ForewarnError('FW_ERR_MODEL_MANIFEST', `${where}.order is ${JSON.stringify(w.order)}; C-MAPSS windows are in "cycle" order`);
  if (w.pad !== undefined && w.pad !== 'repeat-first') throw new ForewarnError('FW_ERR_MODEL_MANIFEST', `${where}.pad must be "repeat-first"`);
  return { length: w.length, order: 'cycle', pad: 'repeat-first' };
}

/** 0-based field index of each input feature in a C-MAPSS line (the manifest's `column`, e.g. "6" for s2). */
export function featureColumns(manifest: ModelManifest): number[] {
  return manifest.inputs.features.map((f) => {
    const c = f.column ?? '';
    if (!/^\d+$/.test(c)) {
      throw new ForewarnError(
        'FW_ERR_MODEL_MANIFEST',
        `${manifest.name}: feature ${f.name}: column must be a 0-based C-MAPSS field index, got ${JSON.stringify(f.column)}`,
      );
    }
    return Number(c);
  });
}

/**
 * Writes the window ending at `rows`' last cycle into `out` at `offset`: `length` cycles, oldest first, each the
 * values of `columns` in order. Missing cycles before the first are copies of the first (pad 'repeat-first').
 */
export function writeWindow(rows: readonly (readonly number[])[], columns: readonly number[], length: number, out: Float32Array, offset = 0): void {
  if (!rows.length) throw new RangeError('an engine without cycles has no window');
  const first = rows.length - length;
  for (let t = 0; t < length; t++) {
    const row = rows[Math.max(0, first + t)]!;
    for (let j = 0; j < columns.length; j++) out[offset + t * columns.length + j] = row[columns[j]!]!;
  }
}

/** numpy.percentile with linear interpolation, on a sorted array. */
function percentile(sorted: readonly number[], q: number): number {
  const pos = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** The NASA (PHM08) score of one error d = predicted - true. */
export function nasaTerm(d: number): number {
  return d < 0 ? Math.exp(-d / 13) - 1 : Math.exp(d / 10) - 1;
}

/** RMSE, NASA score and the error distribution of `predicted` against `actual` (cycles). */
export function rulMetrics(predicted: ArrayLike<number>, actual: ArrayLike<number>): RulMetrics {
  if (predicted.length !== actual.length) throw new RangeError(`${predicted.length} predictions for ${actual.length} true values`);
  if (!predicted.length) throw new RangeError('no predictions');
  const d: number[] = [];
  for (let i = 0; i < predicted.length; i++) d.push(predicted[i]! - actual[i]!);
  const n = d.length;
  const sorted = [...d].sort((a, b) => a - b);
  return {
    engines: n,
    rmse: Math.sqrt(d.reduce((s, x) => s + x * x, 0) / n),
    nasaScore: d.reduce((s, x) => s + nasaTerm(x), 0),
    meanError: d.reduce((s, x) => s + x, 0) / n,
    mae: d.reduce((s, x) => s + Math.abs(x), 0) / n,
    late: d.filter((x) => x > 0).length,
    errorPercentiles: {
      min: sorted[0]!,
      p10: percentile(sorted, 10),
      p25: percentile(sorted, 25),
      median: percentile(sorted, 50),
      p75: percentile(sorted, 75),
      p90: percentile(sorted, 90),
      max: sorted[n - 1]!,
    },
  };
}

/**
 * Scores the last window of every engine in a C-MAPSS data file with the model in `modelDir` and compares the
 * predictions with the RUL file (one true RUL per engine, in engine order).
 */
export async function evaluateRul(modelDir: string, dataFile: string, rulFile: string, options: { latencyRuns?: number } = {}): Promise<RulEvaluation> {
  const model = await OnnxModel.load(modelDir);
  try {
    const m = model.manifest;
    const window = rulWindow(m);
    if (m.task !== 'regression' || m.outputs.kind !== 'rul') {
      throw new ForewarnError(
        'FW_ERR_USAGE',
        `${m.name}: RUL evaluation needs a regression model with outputs.kind "rul"; this model is ${m.task}/${m.outputs.kind}`,
      );
    }
    const columns = featureColumns(m);
    const engines = parseCmapss(readText(dataFile), dataFile, Math.max(26, ...columns.map((c) => c + 1)));
    const truth = parseRulFile(readText(rulFile), rulFile);
    if (truth.length !== engines.length) {
      throw dataError(`${rulFile}: ${truth.length} RUL value(s) for ${engines.length} engine(s) in ${dataFile}`);
    }
    const { length } = window;
    const width = columns.length;
    const size = length * width;
    const data = new Float32Array(engines.length * size);
    engines.forEach((e, i) => writeWindow(e.rows, columns, length, data, i * size));
    const predicted = new Float32Array(engines.length);
    for (let start = 0; start < engines.length; start += BATCH) {
      const n = Math.min(BATCH, engines.length - start);
      predicted.set(await model.run(data.subarray(start * size, (start + n) * size), n), start);
    }
    predicted.forEach((p, i) => {
      if (!Number.isFinite(p)) throw new ForewarnError('FW_ERR_MODEL_OUTPUT', `${m.name}: engine ${engines[i]!.unit}: the model returned ${p}`);
    });
    const result: RulEvaluation = {
      model: m.name,
      version: m.version,
      sha256: m.sha256,
      data: dataFile,
      rulFile,
      window,
      ...rulMetrics(predicted, truth),
      predictions: engines.map((e, i) => ({ unit: e.unit, cycles: e.cycles.length, predicted: predicted[i]!, true: truth[i]! })),
    };
    const iv = m.outputs.interval;
    if (iv) {
      let covered = 0;
      let width = 0;
      result.predictions.forEach((p) => {
        const b = predictionBounds(iv, p.predicted);
        p.lower = b.lower;
        p.upper = b.upper;
        if (p.true >= b.lower && p.true <= b.upper) covered++;
        width += b.upper - b.lower;
      });
      const n = result.predictions.length;
      result.interval = { level: iv.level, covered, coverage: covered / n, meanWidth: width / n };
    }
    const runs = options.latencyRuns ?? 1000;
    if (runs > 0) result.latency = await measureLatency(model, data.slice(0, size), runs);
    return result;
  } finally {
    await model.release();
  }
}

/** Times `runs` single-window inferences (after 50 unmeasured ones). */
async function measureLatency(model: OnnxModel, window: Float32Array, runs: number): Promise<NonNullable<RulEvaluation['latency']>> {
  for (let i = 0; i < 50; i++) await model.run(window, 1);
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await model.run(window, 1);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.sort((a, b) => a - b);
  return { runs, threads: 1, medianMs: percentile(ms, 50), p95Ms: percentile(ms, 95), minMs: ms[0]! };
}
