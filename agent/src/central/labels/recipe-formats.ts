import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ForewarnError, describeError } from '../../core/errors.js';

/**
 * The input formats of the shipped models' training recipes (models/<name>/train.py), and how central's telemetry
 * maps back onto them: one reading (a telemetry record of the asset: `metrics`, `quality`) becomes one line of the
 * file the recipe reads. The manifest (`inputs.features[].signal`, `column`) says which metric feeds which
 * column, so a model whose signals are renamed in its manifest is followed here without a code change.
 *
 * - turbofan-rul: NASA C-MAPSS text (`read_cmapss`): 26 space-separated fields per line, unit, cycle, os1–os3,
 *   s1–s21; one unit per labelled episode, cycles numbered 1..n oldest first, so its last cycle is the reading at
 *   the alert. Columns the agent does not publish (the dropped constant sensors, the settings, as `cmapss.os1` …)
 *   are `nan`, which Python's float() reads; the recipe does not use them.
 * - machine-failure: the AI4I 2020 CSV (`read_csv`): UDI, Product ID, Type (L/M/H), the five readings, then the
 *   labels `Machine failure` and the failure-type flags TWF, HDF, PWF, OSF, RNF.
 * - disk-failure: Backblaze Drive Stats CSV (`read_drives`), with exactly the shipped files' header: date,
 *   serial_number, model, capacity_bytes, failure, smart_<id>_raw …; an attribute the disk does not report is
 *   blank, as in Backblaze's files.
 */

export interface ManifestFeature {
  name: string;
  signal: string;
  column?: string;
  categories?: string[];
  optional?: boolean;
}

/** One reading of the asset: a telemetry record's time, its metrics, and the metrics its quality check failed. */
export interface LabelReading {
  ts: number;
  seq: number;
  metrics: Record<string, number>;
  quality: Record<string, string>;
}

export type LabelKind = 'failure' | 'false-alarm';

/** What a technician said about one alert episode, and where it happened. */
export interface LabelledEpisode {
  agentId: string;
  asset: string;
  alertKey: string;
  rule: string;
  raisedTs: number;
  label: LabelKind;
  failureMode: string | null;
  actionTaken: string | null;
  note: string | null;
  resolvedBy: string;
  resolvedTs: number;
}

export type LabelWindow = { kind: 'time'; ms: number } | { kind: 'readings'; count: number };

export interface RenderedFile {
  text: string;
  /** Per data line of `text` (header excluded), which episode (index into the episodes given) it came from. */
  lineEpisodes: number[];
  /** The columns, in the order written. */
  columns: string[];
}

export interface RecipeFormat {
  model: string;
  /** What the file is, for the sidecar and --help. */
  description: string;
  /** Default file extension. */
  extension: 'txt' | 'csv';
  defaultWindow: LabelWindow;
  /** How the recipe takes the file (its --extra-labels). */
  recipe: string;
  /** Writes the episodes' readings (each oldest first) in the recipe's format. */
  render(features: readonly ManifestFeature[], episodes: ReadonlyArray<{ episode: LabelledEpisode; readings: readonly LabelReading[] }>): RenderedFile;
}

const HOUR_MS = 3_600_000;

/** A number as the ingested JSON held it (shortest round-trip form); `nan`/blank for a missing one. */
const num = (v: number | undefined, missing: string): string => (v === undefined ? missing : String(v));

/** The metric that feeds a column: the manifest's signal for a model input, else `fallback`. */
function signalFor(features: readonly ManifestFeature[], column: string, fallback: string): string {
  return features.find((f) => (f.column ?? f.name) === column || f.name === column)?.signal ?? fallback;
}

// ---- turbofan-rul: C-MAPSS text ---------------------------------------------------------------------------

const CMAPSS_SETTINGS = ['os1', 'os2', 'os3'];
const CMAPSS_SENSORS = Array.from({ length: 21 }, (_, i) => `s${i + 1}`);

const turbofan: RecipeFormat = {
  model: 'turbofan-rul',
  description:
    'NASA C-MAPSS text (train_FD001.txt layout): unit cycle os1 os2 os3 s1 … s21, space-separated; one unit per labelled episode, cycles 1..n oldest first, the last cycle being the reading at the alert; nan where the agent does not publish a column',
  extension: 'txt',
  defaultWindow: { kind: 'readings', count: 30 },
  recipe: 'python3 models/turbofan-rul/train.py --extra-labels FILE (FILE.json says which units are failures)',
  render(features, episodes) {
    // Manifest features carry the C-MAPSS field index as their column ("6" for s2); the others follow cmapss.<name>.
    const byIndex = new Map(features.filter((f) => f.column !== undefined).map((f) => [Number(f.column), f.signal]));
    const names = ['unit', 'cycle', ...CMAPSS_SETTINGS, ...CMAPSS_SENSORS];
    const signals = names.map((n, i) => (i < 2 ? '' : (byIndex.get(i) ?? signalFor(features, n, `cmapss.${n}`))));
    const lines: string[] = [];
    const lineEpisodes: number[] = [];
    let unit = 0;
    episodes.forEach(({ readings }, e) => {
      if (!readings.length) return;
      unit++;
      readings.forEach((r, i) => {
        lines.push([String(unit), String(i + 1), ...signals.slice(2).map((s) => num(r.metrics[s], 'nan'))].join(' '));
        lineEpisodes.push(e);
      });
    });
    return { text: lines.map((l) => `${l}\n`).join(''), lineEpisodes, columns: names };
  },
};

// ---- machine-failure: AI4I 2020 CSV -----------------------------------------------------------------------

/** AI4I's failure-type columns, and the words of a technician's failure mode that name each. */
export const AI4I_MODES: ReadonlyArray<[string, RegExp]> = [
  ['TWF', /\btwf\b|tool[\s_.-]*wear/i],
  ['HDF', /\bhdf\b|heat[\s_.-]*dissipation|cooling|overheat/i],
  ['PWF', /\bpwf\b|power/i],
  ['OSF', /\bosf\b|over[\s_.-]*strain/i],
  ['RNF', /\brnf\b|random/i],
];

/** The AI4I failure-type column a failure mode names, or null (then only `Machine failure` is set). */
export function ai4iMode(failureMode: string | null): string | null {
  if (!failureMode) return null;
  return AI4I_MODES.find(([, re]) => re.test(failureMode))?.[0] ?? null;
}

const csvCell = (v: string): string => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

const machine: RecipeFormat = {
  model: 'machine-failure',
  description:
    'AI4I 2020 CSV: UDI, Product ID (the asset), Type (L/M/H), the five readings in their units, then the labels Machine failure and TWF, HDF, PWF, OSF, RNF; one row per reading of the window',
  extension: 'csv',
  defaultWindow: { kind: 'time', ms: 24 * HOUR_MS },
  recipe: 'python3 models/machine-failure/train.py --extra-labels FILE',
  render(features, episodes) {
    const inputs = features.map((f) => ({ column: f.column ?? f.name, f }));
    const columns = ['UDI', 'Product ID', ...inputs.map((i) => i.column), 'Machine failure', ...AI4I_MODES.map(([m]) => m)];
    const lines = [columns.map(csvCell).join(',')];
    const lineEpisodes: number[] = [];
    let udi = 0;
    episodes.forEach(({ episode, readings }, e) => {
      const mode = episode.label === 'failure' ? ai4iMode(episode.failureMode) : null;
      const labels = [episode.label === 'failure' ? '1' : '0', ...AI4I_MODES.map(([m]) => (m === mode ? '1' : '0'))];
      for (const r of readings) {
        const cells = inputs.map(({ f }) => {
          const v = r.metrics[f.signal];
          if (v !== undefined && f.categories) return f.categories[v] ?? String(v);
          return num(v, '');
        });
        lines.push([String(++udi), csvCell(episode.asset), ...cells, ...labels].join(','));
        lineEpisodes.push(e);
      }
    });
    return { text: lines.map((l) => `${l}\n`).join(''), lineEpisodes, columns };
  },
};

// ---- disk-failure: Backblaze Drive Stats CSV ----------------------------------------------------------------

/** The SMART attributes of the shipped training files (models/disk-failure/train.py reads this header). */
const BACKBLAZE_SMART = [1, 4, 5, 7, 9, 12, 184, 187, 188, 190, 191, 192, 193, 194, 195, 197, 198, 199, 240, 241, 242];
const BACKBLAZE_HEAD = ['date', 'serial_number', 'model', 'capacity_bytes', 'failure'];

const disk: RecipeFormat = {
  model: 'disk-failure',
  description:
    'Backblaze Drive Stats CSV with the shipped files\' header (date, serial_number, model, capacity_bytes, failure, smart_<id>_raw …); one row per reading of the window, date = its UTC day, serial_number = the asset without "disk-", blank where the disk reports no value',
  extension: 'csv',
  defaultWindow: { kind: 'time', ms: 24 * HOUR_MS },
  recipe: 'python3 models/disk-failure/train.py --extra-labels FILE',
  render(features, episodes) {
    const smart = BACKBLAZE_SMART.map((id) => ({ column: `smart_${id}_raw`, signal: signalFor(features, `smart_${id}_raw`, `smart.${id}.raw`) }));
    const columns = [...BACKBLAZE_HEAD, ...smart.map((s) => s.column)];
    const lines = [columns.join(',')];
    const lineEpisodes: number[] = [];
    // Backblaze files hold no quotes (the recipe refuses them): a comma or quote in a name becomes "_".
    const plain = (v: string) => v.replace(/[",\r\n]/g, '_');
    episodes.forEach(({ episode, readings }, e) => {
      const serial = plain(episode.asset.replace(/^disk-/, ''));
      for (const r of readings) {
        const day = new Date(r.ts).toISOString().slice(0, 10);
        lines.push(
          [
            day,
            serial,
            '',
            num(r.metrics['disk.capacity_bytes'], ''),
            episode.label === 'failure' ? '1' : '0',
            ...smart.map((s) => num(r.metrics[s.signal], '')),
          ].join(','),
        );
        lineEpisodes.push(e);
      }
    });
    return { text: lines.map((l) => `${l}\n`).join(''), lineEpisodes, columns };
  },
};

export const RECIPE_FORMATS: Readonly<Record<string, RecipeFormat>> = { [turbofan.model]: turbofan, [machine.model]: machine, [disk.model]: disk };

/** The format of `model` and its manifest's input features (from `<modelsDir>/<model>/manifest.json`). */
export function recipeFormat(model: string, modelsDir: string): { format: RecipeFormat; features: ManifestFeature[] } {
  const format = RECIPE_FORMATS[model];
  if (!format) {
    throw new ForewarnError(
      'FW_ERR_LABELS_EXPORT',
      `--model: "${model}" has no training-recipe format here (one of ${Object.keys(RECIPE_FORMATS).join(', ')})`,
    );
  }
  const file = path.join(modelsDir, model, 'manifest.json');
  let features: unknown;
  try {
    features = (JSON.parse(readFileSync(file, 'utf8')) as { inputs?: { features?: unknown } }).inputs?.features;
  } catch (err) {
    throw new ForewarnError('FW_ERR_LABELS_EXPORT', `${file}: ${describeError(err)}`, { cause: err });
  }
  if (
    !Array.isArray(features) ||
    !features.every((f) => typeof (f as ManifestFeature)?.signal === 'string' && typeof (f as ManifestFeature).name === 'string')
  ) {
    throw new ForewarnError('FW_ERR_LABELS_EXPORT', `${file}: inputs.features: must list features with name and signal`);
  }
  return { format, features: features as ManifestFeature[] };
}
