import type { HistogramSample, MetricFamily, Sample } from '../../core/exposition.js';
import type { SqlQueries } from '../sql/sql-client.js';
import { GroupMatcher, LATENCY_BUCKETS_S, type SloConfig } from './slo-config.js';
import { ALAT_COLUMNS, COUNTER_COLUMNS, LAT_COLUMNS, MINUTE_MS, countMinuteEnds } from './slo-projection.js';
import { agentClocks } from './slo-queries.js';
import { sloSummary } from './slo-status.js';

/**
 * The SLO families of central's `/metrics`, read at scrape time (docs/slo.md, "Metrics"). The event counters
 * are totals since each agent was first seen (`slo_totals`, never pruned), so Prometheus' `rate()` and SLO
 * generators (sloth, pyrra) work on them; the budget and burn-rate gauges are central's own computation.
 */

type Totals = Record<string, number> & { agent_id: string };

export async function sloMetrics(q: SqlQueries, slo: SloConfig, now: number): Promise<MetricFamily[]> {
  const groups = new GroupMatcher(slo.groups);
  const totals = await q.all<Totals>(`SELECT agent_id, ${COUNTER_COLUMNS.join(', ')} FROM slo_totals ORDER BY agent_id`);
  const events: Sample[] = [];
  const good: Sample[] = [];
  const push = (sli: string, agent: string, total: number, ok: number) => {
    for (const group of groups.of(agent)) {
      events.push({ labels: { sli, group, agent }, value: total });
      good.push({ labels: { sli, group, agent }, value: ok });
    }
  };
  // Freshness: minutes judged since each asset was first seen, and those judged fresh.
  const maxAge = slo.freshness.maxAgeSeconds * 1000;
  const minutes = new Map<string, { total: number; stale: number }>();
  for (const a of await q.all<{ agent_id: string; first_seen_ts: number; newest_ts: number; counted_ts: number }>(
    'SELECT agent_id, first_seen_ts, newest_ts, counted_ts FROM slo_assets',
  )) {
    const m = minutes.get(a.agent_id) ?? { total: 0, stale: 0 };
    m.total += countMinuteEnds(Number(a.first_seen_ts), now);
    m.stale += countMinuteEnds(Math.max(Number(a.newest_ts) + maxAge, Number(a.counted_ts), Number(a.first_seen_ts) + MINUTE_MS), now);
    minutes.set(a.agent_id, m);
  }
  // Completeness: received against received + open gaps + dropped + unavailable (a repaired gap lowers the total).
  const missing = new Map<string, number>();
  for (const table of ['gaps', 'dropped', 'unavailable']) {
    for (const r of await q.all<{ agent_id: string; n: number | null }>(`SELECT agent_id, SUM(to_seq - from_seq + 1) AS n FROM ${table} GROUP BY agent_id`))
      missing.set(r.agent_id, (missing.get(r.agent_id) ?? 0) + Number(r.n ?? 0));
  }
  const latency: HistogramSample[] = [];
  const alertLatency: HistogramSample[] = [];
  const histogram = (t: Totals, cols: readonly string[], count: string, sum: string, agent: string): HistogramSample => {
    let running = 0;
    const counts = cols.map((c) => (running += Number(t[c] ?? 0)));
    return { labels: { agent }, buckets: LATENCY_BUCKETS_S, counts, count: Number(t[count] ?? 0), sum: Number(t[sum] ?? 0) / 1000 };
  };
  for (const t of totals) {
    const agent = t.agent_id;
    const m = minutes.get(agent);
    if (m) push('freshness', agent, m.total, Math.max(0, m.total - Math.min(m.total, Number(t.stale_minutes) + m.stale)));
    const received = Number(t.records);
    push('completeness', agent, received + (missing.get(agent) ?? 0), received);
    const expected = Number(t.cov_expected);
    if (expected > 0) push('scoring-coverage', agent, expected, Math.min(expected, Number(t.cov_scored)));
    latency.push(histogram(t, LAT_COLUMNS, 'readings', 'lat_sum_ms', agent));
    alertLatency.push(histogram(t, ALAT_COLUMNS, 'alerts', 'alat_sum_ms', agent));
  }
  const budget: Sample[] = [];
  const burn: Sample[] = [];
  const value: Sample[] = [];
  const target: Sample[] = [];
  for (const o of slo.objectives) {
    const s = await sloSummary(q, slo, o, now);
    const labels = { slo: o.name, sli: o.sli, group: o.group };
    budget.push({ labels, value: s.errorBudgetRemaining });
    target.push({ labels, value: o.target });
    if (s.value !== null) value.push({ labels, value: s.value });
    const seen = new Set<string>();
    for (const b of s.burnRates) {
      for (const [window, rate] of [
        [b.longWindow, b.longRate],
        [b.shortWindow, b.shortRate],
      ] as const) {
        if (seen.has(window)) continue;
        seen.add(window);
        burn.push({ labels: { ...labels, window }, value: rate });
      }
    }
  }
  const clocks = await agentClocks(q, slo);
  return [
    {
      name: 'forewarn_sli_events_total',
      help: 'SLI events per agent and group since the agent was first seen (freshness: minutes; completeness: records; scoring-coverage: reading-model pairs).',
      type: 'counter',
      samples: events,
    },
    {
      name: 'forewarn_sli_good_events_total',
      help: 'SLI events that were good (fresh minutes, records received, readings scored by a model in state ok).',
      type: 'counter',
      samples: good,
    },
    {
      name: 'forewarn_delivery_latency_seconds',
      help: 'Reading timestamp (corrected for the agent clock offset) to central commit.',
      type: 'histogram',
      samples: latency,
    },
    {
      name: 'forewarn_alert_latency_seconds',
      help: 'First reading past a threshold (the condition began) to the alert at central.',
      type: 'histogram',
      samples: alertLatency,
    },
    { name: 'forewarn_slo_objective_ratio', help: 'The objective (target) of each SLO.', type: 'gauge', samples: target },
    { name: 'forewarn_slo_sli_ratio', help: "Each SLO's indicator over its window.", type: 'gauge', samples: value },
    {
      name: 'forewarn_slo_error_budget_remaining_ratio',
      help: 'Share of the error budget left over the SLO window (negative: overspent).',
      type: 'gauge',
      samples: budget,
    },
    { name: 'forewarn_slo_burn_rate', help: 'Error rate over the window divided by the error budget rate (1 - target).', type: 'gauge', samples: burn },
    {
      name: 'forewarn_agent_clock_offset_seconds',
      help: "Estimated offset of the agent's clock ahead of central's (least status delay); latencies are corrected by it beyond the tolerance.",
      type: 'gauge',
      samples: clocks.map((c) => ({ labels: { agent: c.agentId }, value: c.estimatedSkewMs / 1000 })),
    },
  ];
}
