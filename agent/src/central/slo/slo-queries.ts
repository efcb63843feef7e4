import type { SqlQueries } from '../sql/sql-client.js';
import { GroupMatcher, LATENCY_BUCKETS_S, MINUTE_WINDOW_MAX_MS, type SliName, type SloConfig, type SloObjective } from './slo-config.js';
import { ALAT_COLUMNS, DAY_MS, HOUR_MS, LAT_COLUMNS, MINUTE_MS, appliedSkew, countMinuteEnds } from './slo-projection.js';

/**
 * The indicators as sums over the SLO counters (slo-projection.ts) and the ledger's open gaps and announced
 * drops, bounded by their window: a window up to 6 h reads the per-minute counters, a longer one the hourly ones.
 * A window of W ending at `now` covers the buckets that start in [end − W, end), where `end` is the end of the
 * bucket (minute or hour) holding `now`: the current bucket counts as it fills. docs/slo.md gives each formula.
 */

export interface Counts {
  good: number;
  total: number;
}

export type Level = 'agent' | 'asset';

/** A key of a count map: the agent, or the agent and asset joined by NUL. */
export const assetKey = (agentId: string, asset: string) => `${agentId}\u0000${asset}`;

/** Indicators per asset; completeness is per agent (a missing seq names no asset). */
export const ASSET_LEVEL_SLIS: readonly SliName[] = ['freshness', 'delivery-latency', 'scoring-coverage', 'alert-latency'];

export interface WindowSpan {
  table: 'slo_minute' | 'slo_hour';
  start: number;
  end: number;
}

export function windowSpan(windowMs: number, now: number): WindowSpan {
  const unit = windowMs <= MINUTE_WINDOW_MAX_MS ? MINUTE_MS : HOUR_MS;
  const end = Math.floor(now / unit) * unit + unit;
  return { table: unit === MINUTE_MS ? 'slo_minute' : 'slo_hour', start: end - windowMs, end };
}

const upTo = (columns: readonly string[], thresholdSeconds: number) =>
  columns
    .filter((_c, i) => LATENCY_BUCKETS_S[i]! <= thresholdSeconds)
    .map((c) => `SUM(${c})`)
    .join(' + ') || '0';

/** SQL for (good, total) of a counter-based indicator; freshness and completeness add to these in code. */
function sums(sli: SliName, thresholdSeconds: number): { good: string; total: string } {
  switch (sli) {
    case 'delivery-latency':
      return { good: upTo(LAT_COLUMNS, thresholdSeconds), total: 'SUM(readings)' };
    case 'alert-latency':
      return { good: upTo(ALAT_COLUMNS, thresholdSeconds), total: 'SUM(alerts)' };
    case 'scoring-coverage':
      // Per bucket row: a second model's or a repeated risk record never scores more than the readings there were.
      return { good: 'SUM(CASE WHEN cov_scored < cov_expected THEN cov_scored ELSE cov_expected END)', total: 'SUM(cov_expected)' };
    case 'completeness':
      return { good: 'SUM(records)', total: 'SUM(records)' };
    case 'freshness':
      return { good: '0', total: 'SUM(stale_minutes)' };
  }
}

interface SliQuery {
  sli: SliName;
  thresholdSeconds: number;
  /** Only this agent (the detail of one). */
  agentId?: string;
}

interface Span {
  table: 'slo_minute' | 'slo_hour';
  start: number;
  end: number;
}

type Row = { agent_id: string; asset?: string; day?: number; good: number | null; total: number | null };

function add(map: Map<string, Counts>, key: string, good: number, total: number): void {
  const c = map.get(key);
  if (c) {
    c.good += good;
    c.total += total;
  } else map.set(key, { good, total });
}

/**
 * (good, total) per agent or per asset over one span. With `byDay`, keys carry the UTC day index after a NUL
 * (`agent\0day`), for the trend.
 */
async function spanCounts(q: SqlQueries, slo: SloConfig, s: SliQuery, span: Span, now: number, level: Level, byDay = false): Promise<Map<string, Counts>> {
  const out = new Map<string, Counts>();
  // Freshness is judged per asset (callers roll it up).
  if (s.sli === 'freshness') level = 'asset';
  const { good, total } = sums(s.sli, s.thresholdSeconds);
  const keyCols = ['agent_id', ...(level === 'asset' ? ['asset'] : []), ...(byDay ? [`bucket / ${DAY_MS} AS day`] : [])];
  const groupBy = ['agent_id', ...(level === 'asset' ? ['asset'] : []), ...(byDay ? [`bucket / ${DAY_MS}`] : [])];
  const agentFilter = s.agentId !== undefined ? ' AND agent_id = ?' : '';
  const params = [span.start, span.end, ...(s.agentId !== undefined ? [s.agentId] : [])];
  const keyOf = (r: Row) => [r.agent_id, ...(level === 'asset' ? [r.asset ?? ''] : []), ...(byDay ? [String(r.day)] : [])].join('\u0000');
  const rows = await q.all<Row>(
    `SELECT ${keyCols.join(', ')}, ${good} AS good, ${total} AS total FROM ${span.table}
     WHERE bucket >= ? AND bucket < ?${agentFilter} GROUP BY ${groupBy.join(', ')}`,
    params,
  );
  if (s.sli === 'freshness') {
    // `total` above is the stale minutes counted at ingest; the rest is computed per asset from slo_assets.
    const stale = new Map<string, number>();
    for (const r of rows) stale.set(keyOf(r), Number(r.total ?? 0));
    const maxAge = slo.freshness.maxAgeSeconds * 1000;
    const assets = await q.all<{ agent_id: string; asset: string; first_seen_ts: number; newest_ts: number; counted_ts: number }>(
      `SELECT agent_id, asset, first_seen_ts, newest_ts, counted_ts FROM slo_assets${s.agentId !== undefined ? ' WHERE agent_id = ?' : ''}`,
      s.agentId !== undefined ? [s.agentId] : [],
    );
    const days = byDay ? dayRange(span.start, span.end) : [null];
    for (const a of assets) {
      for (const d of days) {
        const from = d === null ? span.start : Math.max(span.start, d * DAY_MS);
        const to = d === null ? span.end : Math.min(span.end, (d + 1) * DAY_MS);
        // Minutes starting in [from, to), judged at their end e: e in [from + 1 min, to], e <= now, e >= first seen.
        const last = Math.min(to, now);
        const minutes = countMinuteEnds(Math.max(from + MINUTE_MS, a.first_seen_ts), last);
        if (!minutes) continue;
        const open = countMinuteEnds(Math.max(a.newest_ts + maxAge, a.counted_ts, from + MINUTE_MS, a.first_seen_ts), last);
        const key = [a.agent_id, ...(level === 'asset' ? [a.asset] : []), ...(d === null ? [] : [String(d)])].join('\u0000');
        const recorded = stale.get(key) ?? 0;
        const bad = Math.min(minutes, recorded + open);
        add(out, key, minutes - bad, minutes);
      }
    }
    return out;
  }
  for (const r of rows) add(out, keyOf(r), Number(r.good ?? 0), Number(r.total ?? 0));
  if (s.sli === 'completeness') {
    // Against the records received: seqs still missing whose gap opened in the window, and seqs the agent
    // announced as dropped or no longer held in it. A gap repaired later stops counting; its records count as received.
    for (const [table, col] of [
      ['gaps', 'opened_ts'],
      ['dropped', 'received_ts'],
      ['unavailable', 'received_ts'],
    ] as const) {
      const bad = await q.all<{ agent_id: string; day?: number; n: number | null }>(
        `SELECT agent_id${byDay ? `, ${col} / ${DAY_MS} AS day` : ''}, SUM(to_seq - from_seq + 1) AS n FROM ${table}
         WHERE ${col} >= ? AND ${col} < ?${agentFilter} GROUP BY agent_id${byDay ? `, ${col} / ${DAY_MS}` : ''}`,
        params,
      );
      for (const b of bad) add(out, [b.agent_id, ...(byDay ? [String(b.day)] : [])].join('\u0000'), 0, Number(b.n ?? 0));
    }
  }
  // A row without events of this indicator (a reading of an asset no model is bound to) is not in it.
  for (const [key, c] of out) if (c.total === 0) out.delete(key);
  return out;
}

function dayRange(start: number, end: number): number[] {
  const out: number[] = [];
  for (let d = Math.floor(start / DAY_MS); d * DAY_MS < end; d++) out.push(d);
  return out;
}

/** (good, total) per agent or asset over the window of `windowMs` ending at `now`. */
export async function windowCounts(q: SqlQueries, slo: SloConfig, s: SliQuery, windowMs: number, now: number, level: Level): Promise<Map<string, Counts>> {
  // Freshness is judged per asset; its agent-level counts are the sums of its assets'.
  if (s.sli === 'freshness' && level === 'agent') return rollUp(await spanCounts(q, slo, s, windowSpan(windowMs, now), now, 'asset'));
  return spanCounts(q, slo, s, windowSpan(windowMs, now), now, level);
}

function rollUp(perAsset: ReadonlyMap<string, Counts>): Map<string, Counts> {
  const out = new Map<string, Counts>();
  for (const [key, c] of perAsset) add(out, key.split('\u0000')[0]!, c.good, c.total);
  return out;
}

/** Sums agents' counts per group (an agent may belong to several). */
export function groupCounts(perAgent: ReadonlyMap<string, Counts>, groups: GroupMatcher, group: string): Counts {
  const out = { good: 0, total: 0 };
  for (const [key, c] of perAgent) {
    if (!groups.has(key.split('\u0000')[0]!, group)) continue;
    out.good += c.good;
    out.total += c.total;
  }
  return out;
}

export const ratio = (c: Counts): number | null => (c.total > 0 ? c.good / c.total : null);

/** Burn rate: the error rate over the budget's rate (1 − target); 0 without events. */
export function burnRate(c: Counts, target: number): number {
  return c.total > 0 ? (c.total - c.good) / c.total / (1 - target) : 0;
}

/** The share of the error budget left: 1 untouched, 0 spent, below 0 overspent. */
export function budgetRemaining(c: Counts, target: number): number {
  return 1 - burnRate(c, target);
}

export interface TrendPoint {
  /** The end of the day (or now, for today). */
  ts: number;
  sli: number | null;
  remaining: number;
}

/**
 * One point per UTC day for the last `days` days (today last, up to now): the budget remaining over the
 * objective's window (in whole days) ending with that day. One query per counter table, grouped by day.
 */
export async function budgetTrend(q: SqlQueries, slo: SloConfig, o: SloObjective, groups: GroupMatcher, now: number, days: number): Promise<TrendPoint[]> {
  const windowDays = Math.max(1, Math.ceil(o.windowMs / DAY_MS));
  const today = Math.floor(now / DAY_MS);
  const first = today - days + 1;
  const span: Span = { table: 'slo_hour', start: (first - windowDays + 1) * DAY_MS, end: (today + 1) * DAY_MS };
  const perAssetOrAgent = await spanCounts(
    q,
    slo,
    { sli: o.sli, thresholdSeconds: o.thresholdSeconds },
    span,
    now,
    o.sli === 'freshness' ? 'asset' : 'agent',
    true,
  );
  const daily = new Map<number, Counts>();
  for (const [key, c] of perAssetOrAgent) {
    const parts = key.split('\u0000');
    if (!groups.has(parts[0]!, o.group)) continue;
    const day = Number(parts.at(-1));
    const d = daily.get(day) ?? { good: 0, total: 0 };
    d.good += c.good;
    d.total += c.total;
    daily.set(day, d);
  }
  const out: TrendPoint[] = [];
  for (let d = first; d <= today; d++) {
    const c = { good: 0, total: 0 };
    for (let x = d - windowDays + 1; x <= d; x++) {
      const v = daily.get(x);
      if (v) {
        c.good += v.good;
        c.total += v.total;
      }
    }
    out.push({ ts: Math.min((d + 1) * DAY_MS, now), sli: ratio(c), remaining: budgetRemaining(c, o.target) });
  }
  return out;
}

export interface AgentClock {
  agentId: string;
  /** The offset estimate (ms the agent's clock runs ahead of central's): −(least status delay). */
  estimatedSkewMs: number;
  /** What latencies were corrected by (0 when the estimate is within the tolerance). */
  appliedSkewMs: number;
  samples: number;
  sampledTs: number;
}

export async function agentClocks(q: SqlQueries, slo: SloConfig, agentId?: string): Promise<AgentClock[]> {
  const rows = await q.all<{ agent_id: string; min_delay_ms: number; min_delay_ts: number; samples: number }>(
    `SELECT agent_id, min_delay_ms, min_delay_ts, samples FROM slo_agents${agentId !== undefined ? ' WHERE agent_id = ?' : ''} ORDER BY agent_id`,
    agentId !== undefined ? [agentId] : [],
  );
  return rows.map((r) => ({
    agentId: r.agent_id,
    estimatedSkewMs: -Number(r.min_delay_ms) || 0,
    appliedSkewMs: appliedSkew(Number(r.min_delay_ms), slo.clockSkewToleranceSeconds),
    samples: Number(r.samples),
    sampledTs: Number(r.min_delay_ts),
  }));
}
