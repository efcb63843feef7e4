import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { ForewarnError, describeError, isForewarnError } from '../../core/errors.js';
import { parseWithUnit } from '../../core/schema-node.js';
import { exitStatus } from '../central-report.js';
import { tableExists } from '../fleet/retention.js';
import { openSqlClient } from '../sql/open-sql-client.js';
import { redactUrl, type SqlClient } from '../sql/sql-client.js';
import { parseGpuCostConfig, type GpuCostConfig } from './gpu-cost-config.js';
import { gpuCostReport, REPORT_BY, reportCsv, type GpuCostReport, type ReportBy } from './gpu-cost-report.js';

/** `forewarn central gpu-cost`: the daily GPU cost report from a central store, as a table, JSON or CSV. */

export const GPU_COST_USAGE = `forewarn central gpu-cost — what the fleet's GPUs cost while idle, down and in energy, per day

Usage:
  forewarn central gpu-cost --since WHEN [--until WHEN] [--by host|group|model|gpu] [--csv FILE] [--json]
                            [--config FILE] [--store URL]

  --since WHEN    from WHEN: an ISO date or time (2026-01-31, 2026-01-31T08:00:00Z) or a duration back from now (7d)
  --until WHEN    … to WHEN (default now); both are rounded out to whole hours, days are UTC days
  --by KEY        one line per day and host (default), fleet group, GPU model or single GPU
  --csv FILE      write the lines as CSV to FILE (- for standard output) instead of the table
  --json          print the whole report as JSON (lines, totals per key, the daily trend, the fleet)
  --config FILE   central's configuration file: its gpuCost section has the prices, models and groups
                  (without it every price is 0 and every GPU model "unknown")
  --store URL     sqlite:PATH or postgres://… (default $FOREWARN_CENTRAL_STORE or sqlite:./forewarn-central.db)

Figures and formulas: docs/gpu-cost.md. Exit codes: 0 ok, 1 store failure, 2 bad arguments or configuration.`;

export interface GpuCostCommandOptions {
  store: string;
  from: number;
  to: number;
  by: ReportBy;
  csv: string | null;
  json: boolean;
  config: GpuCostConfig;
}

const usage = (message: string) => new ForewarnError('FW_ERR_USAGE', message);

/** An ISO date/time, or a duration back from `now` (7d, 12h). */
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
  throw usage(`--${option}: "${raw}" is neither an ISO date (2026-01-31, 2026-01-31T08:00:00Z) nor a duration back from now (7d, 12h)`);
}

/** The `gpuCost` section of central's configuration file. */
export function readGpuCostConfig(file: string | undefined): GpuCostConfig {
  if (!file) return parseGpuCostConfig(undefined);
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'), { maxAliasCount: 100 }) ?? {};
  } catch (err) {
    throw new ForewarnError('FW_ERR_CONFIG_READ', `--config ${file}: ${describeError(err)}`, { cause: err });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new ForewarnError('FW_ERR_CONFIG_INVALID', `${file}: (root): must be a mapping of sections`);
  try {
    return parseGpuCostConfig((doc as Record<string, unknown>).gpuCost);
  } catch (err) {
    if (isForewarnError(err)) throw new ForewarnError(err.code, `${file}: ${err.message}`, { cause: err });
    throw err;
  }
}

export function parseGpuCostOptions(argv: string[], env: NodeJS.ProcessEnv, defaults: { store: string; now: number }): GpuCostCommandOptions {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      store: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      by: { type: 'string', default: 'host' },
      csv: { type: 'string' },
      json: { type: 'boolean', default: false },
      config: { type: 'string' },
    },
  });
  if (positionals.length) throw usage(`unexpected argument: ${positionals[0]}`);
  if (!values.since) throw usage('--since: required (an ISO date or a duration such as 7d)');
  const from = parseWhen('since', values.since, defaults.now);
  const to = values.until ? parseWhen('until', values.until, defaults.now) : defaults.now;
  if (to <= from) throw usage(`--until: ${new Date(to).toISOString()} is not after --since ${new Date(from).toISOString()}`);
  if (!(REPORT_BY as readonly string[]).includes(values.by)) throw usage(`--by: "${values.by}" must be one of ${REPORT_BY.join(', ')}`);
  if (values.csv !== undefined && values.json) throw usage('--csv and --json: choose one');
  return {
    store: values.store ?? env.FOREWARN_CENTRAL_STORE ?? defaults.store,
    from,
    to,
    by: values.by as ReportBy,
    csv: values.csv ?? null,
    json: values.json,
    config: readGpuCostConfig(values.config),
  };
}

const pad = (s: string, n: number, right = false) => (right ? s.padStart(n) : s.padEnd(n));

/** The report as an aligned table: one line per day and key, then the totals per key and for the fleet. */
export function formatReport(r: GpuCostReport): string {
  const head = ['day', r.by, 'gpus', 'busy h', 'idle h', 'down h', 'gap h', 'kWh', 'idle cost', 'down cost', 'energy cost', 'total'];
  const lines: string[][] = [head];
  const figures = (f: GpuCostReport['fleet']) => [
    String(f.gpus),
    f.busyHours.toFixed(2),
    f.idleHours.toFixed(2),
    f.downHours.toFixed(2),
    f.gapHours.toFixed(2),
    f.energyKwh.toFixed(3),
    f.idleCost.toFixed(2),
    f.downtimeCost.toFixed(2),
    f.energyCost.toFixed(2),
    f.totalCost.toFixed(2),
  ];
  for (const row of r.rows) lines.push([row.day, row.key, ...figures(row)]);
  for (const t of r.totals) lines.push(['total', t.key, ...figures(t)]);
  lines.push(['total', 'fleet', ...figures(r.fleet)]);
  const widths = head.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  const text = lines.map((l) => l.map((c, i) => pad(c, widths[i]!, i >= 2)).join('  ')).join('\n');
  return `GPU cost ${new Date(r.from).toISOString()} – ${new Date(r.to).toISOString()} (${r.currency}; ${r.pricePerKwh} per kWh)\n${text}\n`;
}

export async function runGpuCost(argv: string[], defaults: { store: string; env?: NodeJS.ProcessEnv; now?: number }): Promise<number> {
  const o = parseGpuCostOptions(argv, defaults.env ?? process.env, { store: defaults.store, now: defaults.now ?? Date.now() });
  let sql: SqlClient;
  try {
    sql = await openSqlClient(o.store, { readonly: true });
  } catch (err) {
    if (isForewarnError(err)) throw err;
    throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${redactUrl(o.store)}: ${describeError(err)}`, { cause: err });
  }
  let report: GpuCostReport;
  try {
    if (!(await tableExists(sql, 'gpu_cost_hourly')))
      throw new ForewarnError('FW_ERR_STORAGE_OPEN', `${redactUrl(o.store)}: no GPU cost tables (has a central with GPU cost run on this store?)`);
    report = await gpuCostReport(sql, o.config, { from: o.from, to: o.to, by: o.by });
  } finally {
    await sql.close().catch(() => undefined);
  }
  if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else if (o.csv === '-') process.stdout.write(reportCsv(report));
  else if (o.csv) {
    // Written beside the target and renamed: a reader never sees half a file.
    const tmp = `${o.csv}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, reportCsv(report));
      renameSync(tmp, o.csv);
    } catch (err) {
      throw new ForewarnError('FW_ERR_STORAGE_WRITE', `--csv ${o.csv}: ${describeError(err)}`, { cause: err });
    }
    process.stdout.write(`${o.csv}: ${report.rows.length} lines (${report.by} per day), total ${report.fleet.totalCost.toFixed(2)} ${report.currency}\n`);
  } else process.stdout.write(formatReport(report));
  return 0;
}

/** The subcommand as central's dispatch calls it. */
export function gpuCostCommand(argv: string[], defaultStore: string): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${GPU_COST_USAGE}\n`);
    return Promise.resolve(0);
  }
  return exitStatus('central gpu-cost', GPU_COST_USAGE, () => runGpuCost(argv, { store: defaultStore }));
}
