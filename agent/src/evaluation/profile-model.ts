import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ForewarnError, describeError } from '../core/errors.js';
import { parseCsv } from '../core/csv.js';
import { encodeFeature } from '../scoring/onnx-model.js';
import { readModel, type ModelManifest } from '../scoring/model-manifest.js';
import { featureColumns, parseCmapss } from './evaluate-rul.js';
import { profileFeature, type FeatureDistribution } from '../scoring/feature-distribution.js';

/**
 * `forewarn model profile`: summarises a model's training data per input into its manifest
 * (`inputs.features[].distribution`), the reference the agent's drift monitor compares live inputs with.
 * Reads the same formats as `model eval`: a CSV with the manifest's columns, or C-MAPSS text for window models.
 */

export interface ProfileResult {
  model: string;
  version: string;
  data: string;
  /** Rows (or cycles) profiled, after exclusions. */
  rows: number;
  /** Rows skipped because a required input was unreadable. */
  skipped: number;
  features: Array<{ name: string; bins: number; missing: number }>;
  /** Where the manifest was written, when it was. */
  written?: string;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ForewarnError('FW_ERR_DATA_FORMAT', `${file}: ${describeError(err)}`);
  }
}

/** Per feature, its training values (NaN = missing). */
function columnsOf(manifest: ModelManifest, dataFile: string, excludeFile: string | undefined, skipped: { rows: number }): number[][] {
  const features = manifest.inputs.features;
  if (manifest.inputs.window) {
    // Window models see one cycle per row: profile every cycle of every engine not held out.
    const excluded = new Set(excludeFile ? parseCmapss(readText(excludeFile), excludeFile).map((e) => e.unit) : []);
    const cols = featureColumns(manifest);
    const out = features.map(() => [] as number[]);
    for (const engine of parseCmapss(readText(dataFile), dataFile)) {
      if (excluded.has(engine.unit)) continue;
      for (const row of engine.rows) cols.forEach((c, j) => out[j]!.push(row[c]!));
    }
    return out;
  }
  if (excludeFile) throw new ForewarnError('FW_ERR_USAGE', '--exclude applies to C-MAPSS (window) models; give the training split as --data');
  const { header, rows } = parseCsv(readText(dataFile));
  const idx = features.map((f) => header.indexOf(f.column ?? f.name));
  const absent = features.filter((_, j) => idx[j]! < 0).map((f) => JSON.stringify(f.column ?? f.name));
  if (absent.length) throw new ForewarnError('FW_ERR_DATA_FORMAT', `${dataFile}: missing column(s) ${absent.join(', ')}`);
  const encoded = rows.map((r) => features.map((f, j) => encodeFeature(r[idx[j]!], f.categories)));
  // As `model eval` does: a row with an unreadable required input is skipped (and counted), not profiled.
  const usable = encoded.filter((values) => features.every((f, j) => f.optional || Number.isFinite(values[j])));
  skipped.rows = encoded.length - usable.length;
  return features.map((_, j) => usable.map((values) => values[j]!));
}

/** The recipes' JSON layout: two-space indent, short lists of scalars on one line. */
export function formatManifest(manifest: unknown): string {
  const text = JSON.stringify(manifest, null, 2);
  return `${text.replace(/\[\s*\n\s*([^[\]{}]*?)\s*\n\s*\]/g, (whole, inner: string) => {
    const one = `[${inner.replace(/,\s*\n\s*/g, ', ')}]`;
    return one.length <= 100 ? one : whole;
  })}\n`;
}

export function profileModel(modelDir: string, dataFile: string, options: { exclude?: string; write?: boolean } = {}): ProfileResult {
  // readModel checks the manifest and the model's checksum: never annotate a manifest that does not hold.
  const { manifest } = readModel(modelDir);
  const skipped = { rows: 0 };
  const columns = columnsOf(manifest, dataFile, options.exclude, skipped);
  const rows = columns[0]?.length ?? 0;
  if (!rows) throw new ForewarnError('FW_ERR_DATA_FORMAT', `${dataFile}: no rows to profile`);
  const distributions: FeatureDistribution[] = manifest.inputs.features.map((f, j) => {
    const values = columns[j]!;
    if (!values.some(Number.isFinite)) throw new ForewarnError('FW_ERR_DATA_FORMAT', `${dataFile}: ${f.column ?? f.name} has no numeric value`);
    return profileFeature(values, f.categories ? { categories: f.categories.length } : {});
  });
  const result: ProfileResult = {
    model: manifest.name,
    version: manifest.version,
    data: dataFile,
    rows,
    skipped: skipped.rows,
    features: manifest.inputs.features.map((f, j) => ({ name: f.name, bins: distributions[j]!.fractions.length, missing: distributions[j]!.missing ?? 0 })),
  };
  if (options.write) {
    const file = path.join(modelDir, 'manifest.json');
    // Rewrite the manifest as read, with only the distributions changed.
    const raw = JSON.parse(readText(file)) as { inputs: { features: Array<Record<string, unknown>> } };
    raw.inputs.features.forEach((f, j) => (f.distribution = distributions[j]));
    writeFileSync(file, formatManifest(raw));
    result.written = file;
  }
  return result;
}
