import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ForewarnError, describeError, isForewarnError } from '../../core/errors.js';
import { PACKAGE_ROOT } from '../../core/package-root.js';
import { parseWithUnit } from '../../core/schema-node.js';
import { openSqlClient } from '../sql/open-sql-client.js';
import { redactUrl, type SqlClient } from '../sql/sql-client.js';
import { closedEpisodes, scoredBy, windowReadings, type WindowReadings } from './label-queries.js';
import { ai4iMode, recipeFormat, RECIPE_FORMATS, type LabelWindow, type LabelledEpisode } from './recipe-formats.js';

/**
 * `forewarn central export-labels`: what technicians confirmed in the console, back into training data. For every
 * alert episode closed since a time (resolved with a failure mode: a positive; marked false alarm: a negative) on
 * an asset that the model scores, the asset's readings before the alert, written in the format the model's
 * training recipe reads, with a sidecar `<file>.json` that says where every line came from and which are which.
 */

export const EXPORT_LABELS_USAGE = `forewarn central export-labels — the readings before each alert a technician closed, labelled, in the training recipe's format

Usage:
  forewarn central export-labels --since WHEN --model NAME [--until WHEN] [--window SIZE] [--out FILE]
                                 [--store URL] [--models-dir DIR]

  --since WHEN      episodes closed (resolved or marked false alarm) at or after WHEN: an ISO date or time
                    (2026-01-31, 2026-01-31T08:00:00Z) or a duration back from now (30d, 12h)
  --until WHEN      … and before WHEN (default now)
  --model NAME      ${Object.keys(RECIPE_FORMATS).join(', ')}: the model whose assets and recipe format count
  --window SIZE     the readings before each alert: a duration (24h, 90m) or a number of readings (30c);
                    default ${Object.values(RECIPE_FORMATS)
                      .map((f) => `${f.model} ${windowText(f.defaultWindow)}`)
                      .join(', ')}
  --out FILE        where to write (default ./<model>-labels.<txt|csv>); provenance goes to FILE.json
  --store URL       sqlite:PATH or postgres://… (default $FOREWARN_CENTRAL_STORE or sqlite:./forewarn-central.db)
  --models-dir DIR  where <model>/manifest.json says which metric feeds which column (default the shipped models/)

Positives are episodes resolved with a failure mode (a confirmed failure), negatives those marked false alarm;
episodes still acknowledged or in maintenance are not exported. Alerts about data quality or model drift are not
labels of the machine and are left out. Formats: turbofan-rul C-MAPSS text, machine-failure AI4I 2020 CSV,
disk-failure Backblaze SMART CSV (docs/console.md, "Back to training data"). Exit codes: 0 ok, 1 store failure, 2 bad arguments.`;

export interface ExportLabelsOptions {
  store: string;
  model: string;
  since: number;
  until: number;
  window: LabelWindow | null;
  out: string | null;
  modelsDir: string;
}

function windowText(w: LabelWindow): string {
  return w.kind === 'readings' ? `${w.count}c` : `${w.ms / 3_600_000}h`;
}

const labelsError = (message: string) => new ForewarnError('FW_ERR_LABELS_EXPORT', message);

/** An ISO date/time, or a duration back from `now` (30d, 12h). */
export function parseWhen(option: string, raw: string, now: number): number {
  const text = raw.trim();
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const ts = Date.parse(text);
    if (Number.isFinite(ts)) return ts;
  } else if (/^\d/.test(text) && !/^\d+(\.\d+)?$/.test(text)) {
    try {
      const ms = parseWithUnit(text, 'ms');
      if (typeof ms === 'number' && Number.isFinite(ms) && ms > 0) return now - ms;
    } catch {
      // reported below
    }
  }
  throw labelsError(`--${option}: "${raw}" is neither an ISO date (2026-01-31, 2026-01-31T08:00:00Z) nor a duration back from now (30d, 12h)`);
}

/** `24h`, `90m` (time before the alert) or `30c` / `30 cycles` / `30 readings` (the last readings). */
export function parseWindow(raw: string): LabelWindow {
  const text = raw.trim();
  const readings = /^(\d+)\s*(c|cycles?|readings?)$/.exec(text);
  if (readings) {
    const count = Number(readings[1]);
    if (count >= 1 && count <= 100_000) return { kind: 'readings', count };
  } else if (!/^\d+(\.\d+)?$/.test(text)) {
    try {
      const ms = parseWithUnit(text, 'ms');
      if (typeof ms === 'number' && Number.isFinite(ms) && ms > 0) return { kind: 'time', ms };
    } catch {
      // reported below
    }
  }
  throw labelsError(`--window: "${raw}" is neither a duration (24h, 90m) nor a number of readings from 1 to 100000 (30c)`);
}

export function parseExportLabelsOptions(argv: string[], env: NodeJS.ProcessEnv, defaults: { store: string; now: number }): ExportLabelsOptions {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      store: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      model: { type: 'string' },
      window: { type: 'string' },
      out: { type: 'string' },
      'models-dir': { type: 'string' },
    },
  });
  if (positionals.length) throw new ForewarnError('FW_ERR_USAGE', `unexpected argument: ${positionals[0]}`);
  if (!values.model) throw labelsError('--model: required (one of ' + Object.keys(RECIPE_FORMATS).join(', ') + ')');
  if (!RECIPE_FORMATS[values.model]) {
    throw labelsError(`--model: "${values.model}" has no training-recipe format here (one of ${Object.keys(RECIPE_FORMATS).join(', ')})`);
  }
  if (!values.since) throw labelsError('--since: required (an ISO date or a duration such as 30d)');
  const since = parseWhen('since', values.since, defaults.now);
  const until = values.until ? parseWhen('until', values.until, defaults.now) : defaults.now;
  if (until <= since) throw labelsError(`--until: ${new Date(until).toISOString()} is not after --since ${new Date(since).toISOString()}`);
  return {
    store: values.store ?? env.FOREWARN_CENTRAL_STORE ?? defaults.store,
    model: values.model,
    since,
    until,
    window: values.window ? parseWindow(values.window) : null,
    out: values.out ?? null,
    modelsDir: values['models-dir'] ?? path.join(PACKAGE_ROOT, 'models'),
  };
}

export interface ExportSummary {
  file: string;
  sidecar: string;
  episodes: number;
  positives: number;
  negatives: number;
  rows: number;
  positiveRows: number;
  negativeRows: number;
  /** Closed episodes on the model's assets that had no usable reading in their window. */
  empty: number;
}

interface SidecarEpisode {
  label: LabelledEpisode['label'];
  positive: boolean;
  unit?: number;
  agentId: string;
  asset: string;
  alertKey: string;
  rule: string;
  raisedAt: string;
  failureMode: string | null;
  ai4iFailureType?: string | null;
  actionTaken: string | null;
  note: string | null;
  resolvedBy: string;
  resolvedAt: string;
  window: { from: string; to: string; fromTs: number; toTs: number; boundaries: 'from < ts <= to' };
  lines: { first: number; last: number; count: number } | null;
  skipped: { missingInput: number; qualityFlagged: number };
  cut?: true;
}

/** Runs the export against an open store (the command opens it; tests may pass their own). */
export async function exportLabels(sql: SqlClient, o: ExportLabelsOptions, now = Date.now()): Promise<ExportSummary> {
  const { format, features } = recipeFormat(o.model, o.modelsDir);
  const window = o.window ?? format.defaultWindow;
  const file = path.resolve(o.out ?? `${o.model}-labels.${format.extension}`);
  const { episodes: closed, cut } = await closedEpisodes(sql, o.since, o.until);
  const picked: Array<{ episode: LabelledEpisode; w: WindowReadings }> = [];
  for (const episode of closed) {
    if (!(await scoredBy(sql, episode.agentId, episode.asset, o.model, episode.raisedTs))) continue;
    picked.push({ episode, w: await windowReadings(sql, episode.agentId, episode.asset, episode.raisedTs, window, features) });
  }
  const rendered = format.render(
    features,
    picked.map((p) => ({ episode: p.episode, readings: p.w.readings })),
  );
  // Line numbers in the file, 1-based, counting the header line where the format has one.
  const headerLines = format.extension === 'csv' ? 1 : 0;
  const lines = new Map<number, { first: number; last: number; count: number }>();
  rendered.lineEpisodes.forEach((ep, i) => {
    const line = i + 1 + headerLines;
    const l = lines.get(ep);
    if (l) Object.assign(l, { last: line, count: l.count + 1 });
    else lines.set(ep, { first: line, last: line, count: 1 });
  });
  let unit = 0;
  const sidecarEpisodes = picked.map<SidecarEpisode>(({ episode: e, w }, i) => {
    const at = lines.get(i) ?? null;
    const entry: SidecarEpisode = {
      label: e.label,
      positive: e.label === 'failure',
      agentId: e.agentId,
      asset: e.asset,
      alertKey: e.alertKey,
      rule: e.rule,
      raisedAt: new Date(e.raisedTs).toISOString(),
      failureMode: e.failureMode,
      actionTaken: e.actionTaken,
      note: e.note,
      resolvedBy: e.resolvedBy,
      resolvedAt: new Date(e.resolvedTs).toISOString(),
      window: { from: new Date(w.from).toISOString(), to: new Date(w.to).toISOString(), fromTs: w.from, toTs: w.to, boundaries: 'from < ts <= to' },
      lines: at,
      skipped: { missingInput: w.missingInput, qualityFlagged: w.qualityFlagged },
    };
    if (o.model === 'turbofan-rul' && at) entry.unit = ++unit;
    if (o.model === 'machine-failure') entry.ai4iFailureType = e.label === 'failure' ? ai4iMode(e.failureMode) : null;
    if (w.cut) entry.cut = true;
    return entry;
  });
  const exported = sidecarEpisodes.filter((e) => e.lines);
  const rowsOf = (positive: boolean) => exported.filter((e) => e.positive === positive).reduce((n, e) => n + e.lines!.count, 0);
  const summary: ExportSummary = {
    file,
    sidecar: `${file}.json`,
    episodes: exported.length,
    positives: exported.filter((e) => e.positive).length,
    negatives: exported.filter((e) => !e.positive).length,
    rows: rendered.lineEpisodes.length,
    positiveRows: rowsOf(true),
    negativeRows: rowsOf(false),
    empty: sidecarEpisodes.length - exported.length,
  };
  const notes = [
    'positive: an episode a technician resolved with a failure mode (a confirmed failure); negative: one marked false alarm. Every line of an episode carries its label.',
    `Each episode's lines are the readings of its asset in (window.from, window.to], oldest first; window.to is the alert's raise time. Readings that lacked a required model input or had one flagged by a data-quality check are skipped (counted per episode).`,
    ...(o.model === 'turbofan-rul'
      ? [
          'C-MAPSS text has no label column: the label of unit N is the episode with "unit": N here. Cycles are renumbered 1..n per unit; the last is the reading at the alert.',
        ]
      : []),
    ...(o.model === 'machine-failure'
      ? ['The failure-type column (TWF, HDF, PWF, OSF, RNF) is set when the failure mode names one (ai4iFailureType); otherwise only Machine failure is 1.']
      : []),
    ...(cut
      ? [`More than ${closed.length} episodes were closed in the period: only the first ${closed.length} by closing time are here; narrow --since/--until.`]
      : []),
  ];
  const sidecar = {
    model: o.model,
    format: format.description,
    columns: rendered.columns,
    recipe: format.recipe,
    store: redactUrl(o.store),
    exportedAt: new Date(now).toISOString(),
    closedSince: new Date(o.since).toISOString(),
    closedBefore: new Date(o.until).toISOString(),
    window: window.kind === 'time' ? { hours: window.ms / 3_600_000 } : { readings: window.count },
    counts: {
      episodes: summary.episodes,
      positives: summary.positives,
      negatives: summary.negatives,
      lines: summary.rows,
      positiveLines: summary.positiveRows,
      negativeLines: summary.negativeRows,
      episodesWithoutReadings: summary.empty,
    },
    notes,
    episodes: sidecarEpisodes,
  };
  // Written beside the target and renamed: a reader never sees half a file.
  for (const [target, text] of [
    [file, rendered.text],
    [summary.sidecar, `${JSON.stringify(sidecar, null, 2)}\n`],
  ] as const) {
    const tmp = `${target}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, text);
      renameSync(tmp, target);
    } catch (err) {
      throw new ForewarnError('FW_ERR_LABELS_EXPORT', `${target}: ${describeError(err)}`, { cause: err });
    }
  }
  return summary;
}

/** `forewarn central export-labels …`: parses, opens the store read-only, exports, prints what it wrote. */
export async function runExportLabels(argv: string[], defaults: { store: string; env?: NodeJS.ProcessEnv; now?: number }): Promise<number> {
  const now = defaults.now ?? Date.now();
  const o = parseExportLabelsOptions(argv, defaults.env ?? process.env, { store: defaults.store, now });
  recipeFormat(o.model, o.modelsDir); // a bad manifest is an argument error, before the store is opened
  let sql: SqlClient;
  try {
    sql = await openSqlClient(o.store, { readonly: true });
  } catch (err) {
    if (isForewarnError(err)) throw err;
    throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${redactUrl(o.store)}: ${describeError(err)}`, { cause: err });
  }
  try {
    const s = await exportLabels(sql, o, now);
    process.stdout.write(
      `${s.file}: ${s.rows} lines from ${s.episodes} episodes — ${s.positives} confirmed failures (positives, ${s.positiveRows} lines), ` +
        `${s.negatives} false alarms (negatives, ${s.negativeRows} lines)` +
        (s.empty ? `; ${s.empty} closed episodes had no usable readings in their window` : '') +
        `\n${s.sidecar}: provenance of every episode (agent, asset, alert, failure mode, who closed it, when, its lines)\n`,
    );
    return 0;
  } finally {
    await sql.close().catch(() => undefined);
  }
}

/**
 * The subcommand as central's dispatch calls it: --help, then the export; FW_ERR_LABELS_EXPORT and usage errors
 * exit 2 (EXIT_CODES), a store that fails exits 1.
 */
export async function exportLabelsCommand(argv: string[], defaultStore: string): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${EXPORT_LABELS_USAGE}\n`);
    return 0;
  }
  try {
    return await runExportLabels(argv, { store: defaultStore });
  } catch (err) {
    const usage = isForewarnError(err, 'FW_ERR_USAGE') || String((err as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS');
    const code = isForewarnError(err) ? ` [${err.code}]` : '';
    process.stderr.write(`forewarn central export-labels: ${describeError(err)}${code}\n${usage ? `\n${EXPORT_LABELS_USAGE}\n` : ''}`);
    return usage || isForewarnError(err, 'FW_ERR_LABELS_EXPORT') ? 2 : 1;
  }
}
