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
  outputs: { tensor: string; kind: 'probability' | 'rul' | 'anomaly'; meaning: string; threshold?: number };
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
