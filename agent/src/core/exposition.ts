/**
 * Prometheus text exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/):
 * one `# HELP` and one `# TYPE` line per family, then its samples. Our own ~100 lines rather than prom-client:
 * every value here is read at scrape time from state the agent already keeps (the database's counters, the
 * components' stats), so a registry of live metric objects would only duplicate it, and prom-client's global
 * registry and default collectors are more than an edge agent needs.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  labels?: Labels;
  value: number;
}

export interface HistogramSample {
  labels?: Labels;
  /** Upper bounds, ascending, without +Inf. */
  buckets: readonly number[];
  /** Cumulative counts per bucket (same length as buckets). */
  counts: readonly number[];
  sum: number;
  count: number;
}

export type MetricFamily =
  | { name: string; help: string; type: 'counter' | 'gauge'; samples: readonly Sample[] }
  | { name: string; help: string; type: 'histogram'; samples: readonly HistogramSample[] };

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value: backslash, double quote and line feed are escaped. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text: backslash and line feed are escaped. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function formatLabels(labels: Labels | undefined, extra?: [string, string]): string {
  const entries = Object.entries(labels ?? {});
  if (extra) entries.push(extra);
  if (!entries.length) return '';
  for (const [k] of entries) if (!LABEL.test(k) || k.startsWith('__')) throw new Error(`invalid label name: ${k}`);
  return `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

/** Renders families in the order given; throws on an invalid metric or label name (a programming error). */
export function renderExposition(families: readonly MetricFamily[]): string {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const f of families) {
    if (!NAME.test(f.name)) throw new Error(`invalid metric name: ${f.name}`);
    if (seen.has(f.name)) throw new Error(`duplicate metric family: ${f.name}`);
    seen.add(f.name);
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    if (f.type === 'histogram') {
      for (const h of f.samples) {
        h.buckets.forEach((le, i) => out.push(`${f.name}_bucket${formatLabels(h.labels, ['le', formatValue(le)])} ${formatValue(h.counts[i] ?? 0)}`));
        out.push(`${f.name}_bucket${formatLabels(h.labels, ['le', '+Inf'])} ${formatValue(h.count)}`);
        out.push(`${f.name}_sum${formatLabels(h.labels)} ${formatValue(h.sum)}`);
        out.push(`${f.name}_count${formatLabels(h.labels)} ${formatValue(h.count)}`);
      }
    } else {
      for (const s of f.samples) out.push(`${f.name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** A histogram with fixed buckets: cheap enough to observe on every scoring batch. */
export class FixedHistogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.counts[i]!++;
  }

  snapshot(labels?: Labels): HistogramSample {
    return { ...(labels ? { labels } : {}), buckets: this.buckets, counts: [...this.counts], sum: this.sum, count: this.count };
  }
}
