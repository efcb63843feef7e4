import { readFileSync } from 'node:fs';
import { ForewarnError, describeError } from '../core/errors.js';
import { parseCsv } from '../core/csv.js';
import { OnnxModel, encodeFeature } from '../scoring/onnx-model.js';
import { classificationReport, detectionAtFalseAlarms, type ClassificationReport, type DetectionAtFalseAlarm } from './classification-metrics.js';

export interface EvaluationResult {
  model: string;
  version: string;
  sha256: string;
  data: string;
  /** Rows that could not be scored (a missing or non-numeric value), and why. */
  skipped: { rows: number; reasons: Record<string, number> };
  metrics: ClassificationReport;
  /** Recall within each sub-label (e.g. failure mode), where the manifest names them and the file has them. */
  breakdown: Record<string, { positives: number; detected: number; recall: number }>;
  /** Optional inputs the file has no column for: read as missing in every row, as the agent does when a source lacks them. */
  absentOptionalInputs: string[];
  /** The detection rate at fixed false-alarm rates (1 % and 0.1 %), with the threshold that gives each. */
  atFalseAlarms: DetectionAtFalseAlarm[];
}

/** False-alarm rates every evaluation reports the detection rate at. */
export const FALSE_ALARM_RATES = [0.01, 0.001] as const;

const BATCH = 4096;

/** Scores every row of a CSV in the training data's format with the model, through onnxruntime, and measures it. */
export async function evaluateModel(modelDir: string, dataFile: string, options: { threshold?: number } = {}): Promise<EvaluationResult> {
  const model = await OnnxModel.load(modelDir);
  try {
    const m = model.manifest;
    if (m.task !== 'classification' || m.outputs.kind !== 'probability') {
      throw new ForewarnError('FW_ERR_USAGE', `${m.name}: evaluation from CSV supports probability classifiers; this model is ${m.task}/${m.outputs.kind}`);
    }
    const labelColumn = m.label?.column;
    if (!labelColumn) throw new ForewarnError('FW_ERR_MODEL_MANIFEST', `${m.name}: manifest has no label.column to evaluate against`);
    let text: string;
    try {
      text = readFileSync(dataFile, 'utf8');
    } catch (err) {
      throw new ForewarnError('FW_ERR_DATA_FORMAT', `${dataFile}: ${describeError(err)}`);
    }
    const { header, rows } = parseCsv(text);
    const col = (name: string) => header.indexOf(name);
    const featureCols = m.inputs.features.map((f) => ({ f, i: col(f.column ?? f.name) }));
    // An optional input without a column is missing in every row (a vendor that does not report it); a required one is an error.
    const absentOptional = featureCols.filter((c) => c.i < 0 && c.f.optional).map((c) => c.f.column ?? c.f.name);
    const missing = [...featureCols.filter((c) => c.i < 0 && !c.f.optional).map((c) => c.f.column ?? c.f.name), ...(col(labelColumn) < 0 ? [labelColumn] : [])];
    if (missing.length) {
      throw new ForewarnError('FW_ERR_DATA_FORMAT', `${dataFile}: missing column(s) ${missing.map((c) => JSON.stringify(c)).join(', ')}`);
    }
    const labelIdx = col(labelColumn);
    const positive = m.label?.positive ?? 1;
    const breakdownCols = (m.label?.breakdown ?? []).map((name) => ({ name, i: col(name) })).filter((b) => b.i >= 0);

    const width = featureCols.length;
    const data = new Float32Array(rows.length * width);
    const labels: number[] = [];
    const kept: string[][] = [];
    const reasons: Record<string, number> = {};
    for (const row of rows) {
      const values = featureCols.map(({ f, i }) => (i < 0 ? Number.NaN : encodeFeature(row[i], f.categories)));
      // An empty cell of an optional input is a missing value the model handles; anything else must be a number.
      const bad = featureCols.find(({ f, i }, k) => !Number.isFinite(values[k]!) && !(f.optional && (i < 0 || (row[i] ?? '').trim() === '')));
      const label = Number(row[labelIdx]);
      if (bad || !Number.isFinite(label)) {
        const why = bad ? `invalid ${bad.f.column ?? bad.f.name}` : `invalid ${labelColumn}`;
        reasons[why] = (reasons[why] ?? 0) + 1;
        continue;
      }
      data.set(values, kept.length * width);
      labels.push(label === positive ? 1 : 0);
      kept.push(row);
    }
    if (!kept.length) throw new ForewarnError('FW_ERR_DATA_FORMAT', `${dataFile}: no row could be scored`);
    const scores = new Float32Array(kept.length);
    for (let start = 0; start < kept.length; start += BATCH) {
      const n = Math.min(BATCH, kept.length - start);
      scores.set(await model.run(data.subarray(start * width, (start + n) * width), n), start);
    }
    const threshold = options.threshold ?? m.outputs.threshold ?? 0.5;
    const breakdown: EvaluationResult['breakdown'] = {};
    for (const b of breakdownCols) {
      let positives = 0;
      let detected = 0;
      kept.forEach((row, k) => {
        if (Number(row[b.i]) !== 1) return;
        positives++;
        if (scores[k]! >= threshold) detected++;
      });
      breakdown[b.name] = { positives, detected, recall: positives ? detected / positives : Number.NaN };
    }
    return {
      model: m.name,
      version: m.version,
      sha256: m.sha256,
      data: dataFile,
      skipped: { rows: rows.length - kept.length, reasons },
      metrics: classificationReport(scores, labels, threshold),
      breakdown,
      absentOptionalInputs: absentOptional,
      atFalseAlarms: detectionAtFalseAlarms(scores, labels, FALSE_ALARM_RATES),
    };
  } finally {
    await model.release();
  }
}
