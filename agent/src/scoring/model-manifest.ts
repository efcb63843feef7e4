import type { FeatureDistribution } from './feature-distribution.js';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { ForewarnError, describeError } from '../core/errors.js';
import { PACKAGE_ROOT } from '../core/package-root.js';

export interface FeatureSpec {
  name: string;
  signal: string;
  column?: string;
  unit: string;
  categories?: string[];
  range?: [number, number];
  baseline?: number;
  /** The model handles this input missing: an absent signal is fed as NaN instead of holding the score back. */
  optional?: boolean;
  /** Grows until reset (tool wear): exempt from the step and flatline checks. */
  counter?: boolean;
  description?: string;
  /** The training data's histogram of this input (`forewarn model profile`), for drift detection. */
  distribution?: FeatureDistribution;
}

/**
 * A calibrated prediction interval (RUL models): offsets from the prediction per range of the prediction
 * (split-conformal, Mondrian by predicted value; models/turbofan-rul/cv_protocol.py computes them).
 */
export interface PredictionInterval {
  /** Nominal coverage, e.g. 0.9. */
  level: number;
  method?: string;
  /** Ascending by `predictionBelow`; the last bin has none and holds every prediction above the others. */
  bins: Array<{ predictionBelow?: number; lower: number; upper: number; calibration?: number }>;
}

export interface ModelManifest {
  schemaVersion: 1;
  name: string;
  version: string;
  task: 'classification' | 'regression' | 'anomaly';
  description?: string;
  file: string;
  sha256: string;
  inputs: {
    tensor: string;
    dtype: 'float32';
    features: FeatureSpec[];
    /**
     * Sequence models: the input is [N, length, features], the last `length` readings of an asset oldest first.
     * Until an asset has that many, the window is padded by repeating its first reading.
     */
    window?: { length: number; order?: string; pad?: 'repeat-first' };
  };
  outputs: { tensor: string; kind: 'probability' | 'rul' | 'anomaly'; meaning: string; threshold?: number; interval?: PredictionInterval };
  preprocessing?: string;
  label?: { column?: string; positive?: number; breakdown?: string[] };
  training?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
}

let validator: (((data: unknown) => boolean) & { errors?: Array<{ instancePath: string; message?: string }> | null }) | undefined;

function validateManifest(data: unknown): string[] {
  if (!validator) {
    const schema = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'models', 'manifest.schema.json'), 'utf8')) as object;
    validator = new Ajv({ allErrors: true, strict: false }).compile(schema);
  }
  if (validator(data)) return [];
  return (validator.errors ?? []).map((e) => `${e.instancePath.split('/').slice(1).join('.') || '(root)'}: ${e.message ?? 'invalid'}`);
}

/** Reads and validates `<dir>/manifest.json`, and checks the model file's sha256. Returns the manifest and the model bytes. */
export function readModel(dir: string): { manifest: ModelManifest; bytes: Buffer; file: string } {
  const manifestFile = path.join(dir, 'manifest.json');
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(manifestFile, 'utf8'));
  } catch (err) {
    throw new ForewarnError('FW_ERR_MODEL_MANIFEST', `${manifestFile}: ${describeError(err)}`);
  }
  const problems = validateManifest(data);
  if (problems.length) {
    throw new ForewarnError('FW_ERR_MODEL_MANIFEST', `${manifestFile}: invalid manifest`, { details: problems });
  }
  const manifest = data as ModelManifest;
  const names = new Set<string>();
  for (const f of manifest.inputs.features) {
    if (names.has(f.name)) throw new ForewarnError('FW_ERR_MODEL_MANIFEST', `${manifestFile}: inputs.features: duplicate name ${f.name}`);
    names.add(f.name);
    const d = f.distribution;
    if (d && (d.fractions.length !== d.edges.length + 1 || d.edges.some((e, i) => i > 0 && e <= d.edges[i - 1]!))) {
      throw new ForewarnError(
        'FW_ERR_MODEL_MANIFEST',
        `${manifestFile}: inputs.features ${f.name}: distribution needs ascending edges and one fraction more than edges`,
      );
    }
  }
  const intervalProblem = manifest.outputs.interval && checkInterval(manifest.outputs.kind, manifest.outputs.interval);
  if (intervalProblem) throw new ForewarnError('FW_ERR_MODEL_MANIFEST', `${manifestFile}: ${intervalProblem}`);
  const file = path.join(dir, manifest.file);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new ForewarnError('FW_ERR_MODEL_LOAD', `${file}: ${describeError(err)}`);
  }
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== manifest.sha256) {
    throw new ForewarnError('FW_ERR_MODEL_CHECKSUM', `${file}: sha256 is ${actual}, the manifest says ${manifest.sha256}`);
  }
  return { manifest, bytes, file };
}

/** What the schema cannot say about `outputs.interval`: a RUL model's, bins in order, one open bin, the last. */
function checkInterval(kind: ModelManifest['outputs']['kind'], interval: PredictionInterval): string | undefined {
  if (kind !== 'rul') return `outputs.interval: only a model of kind rul has an interval (this one is ${kind})`;
  const { bins } = interval;
  for (let i = 0; i < bins.length; i++) {
    const below = bins[i]!.predictionBelow;
    const last = i === bins.length - 1;
    if (last && below !== undefined) return `outputs.interval.bins.${i}: the last bin takes every prediction left, without predictionBelow`;
    if (!last && below === undefined) return `outputs.interval.bins.${i}: predictionBelow is required on every bin but the last`;
    const previous = i > 0 ? bins[i - 1]!.predictionBelow : undefined;
    if (below !== undefined && previous !== undefined && below <= previous) {
      return `outputs.interval.bins.${i}: predictionBelow ${below} must be greater than the previous bin's ${previous}`;
    }
  }
  return undefined;
}

/**
 * The interval around a prediction: the offsets of the first bin whose `predictionBelow` exceeds it (else the
 * last bin's), the lower bound no lower than 0 (a remaining life is never negative). Contains the prediction.
 */
export function predictionBounds(interval: PredictionInterval, prediction: number): { level: number; lower: number; upper: number } {
  const bin = interval.bins.find((b) => b.predictionBelow === undefined || prediction < b.predictionBelow) ?? interval.bins.at(-1)!;
  return { level: interval.level, lower: Math.max(0, Math.min(prediction, prediction + bin.lower)), upper: prediction + bin.upper };
}
