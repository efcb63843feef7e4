import type { SqlQueries } from '../sql/sql-client.js';
import { GroupMatcher, type BurnRateTier, type SloConfig, type SloObjective } from './slo-config.js';
import {
  ASSET_LEVEL_SLIS,
  agentClocks,
  budgetRemaining,
  budgetTrend,
  burnRate,
  groupCounts,
  ratio,
  windowCounts,
  type AgentClock,
  type Counts,
  type TrendPoint,
} from './slo-queries.js';

/** What the API, the metrics and the console show of each objective. */

export interface BurnRateState {
  tier: string;
  severity: string;
  factor: number;
  longWindow: string;
  shortWindow: string;
  longRate: number;
  shortRate: number;
  /** Both windows burn at least `factor`: its alert is active (or becomes so at the next evaluation). */
  firing: boolean;
}

export interface SloSummary {
  name: string;
  sli: string;
  description: string;
  target: number;
  window: string;
  group: string;
  thresholdSeconds?: number;
  /** The indicator over the window; null without events. */
  value: number | null;
  good: number;
  total: number;
  /** 1 − (error rate ÷ (1 − target)): 1 untouched, 0 spent, negative overspent. */
  errorBudgetRemaining: number;
  burnRates: BurnRateState[];
  trend: TrendPoint[];
}

export interface SloBreakdownRow {
  agentId: string;
  asset?: string;
  value: number | null;
  good: number;
  total: number;
}

export interface SloDetail extends SloSummary {
  groups: Array<{ group: string; value: number | null; good: number; total: number }>;
  agents: SloBreakdownRow[];
  assets: SloBreakdownRow[];
  clocks: AgentClock[];
}

/** Counts per window length, computed once per evaluation for every objective and tier that asks. */
export class WindowCache {
  private readonly cache = new Map<string, Promise<Map<string, Counts>>>();

  constructor(
    private readonly q: SqlQueries,
    private readonly slo: SloConfig,
    private readonly now: number,
  ) {}

  agents(o: Pick<SloObjective, 'sli' | 'thresholdSeconds'>, windowMs: number): Promise<Map<string, Counts>> {
    const key = `${o.sli}/${o.thresholdSeconds}/${windowMs}`;
    let p = this.cache.get(key);
    if (!p) this.cache.set(key, (p = windowCounts(this.q, this.slo, { sli: o.sli, thresholdSeconds: o.thresholdSeconds }, windowMs, this.now, 'agent')));
    return p;
  }
}

export async function burnRates(cache: WindowCache, o: SloObjective, groups: GroupMatcher, tiers: readonly BurnRateTier[]): Promise<BurnRateState[]> {
  const out: BurnRateState[] = [];
  for (const t of tiers) {
    const longRate = burnRate(groupCounts(await cache.agents(o, t.longWindowMs), groups, o.group), o.target);
    const shortRate = burnRate(groupCounts(await cache.agents(o, t.shortWindowMs), groups, o.group), o.target);
    out.push({
      tier: t.name,
      severity: t.severity,
      factor: t.factor,
      longWindow: t.longWindow,
      shortWindow: t.shortWindow,
      longRate,
      shortRate,
      firing: longRate >= t.factor && shortRate >= t.factor && longRate > 0,
    });
  }
  return out;
}

export async function sloSummary(q: SqlQueries, slo: SloConfig, o: SloObjective, now: number, cache = new WindowCache(q, slo, now)): Promise<SloSummary> {
  const groups = new GroupMatcher(slo.groups);
  const c = groupCounts(await cache.agents(o, o.windowMs), groups, o.group);
  const days = Math.min(slo.trendDays, Math.max(1, Math.ceil(o.windowMs / 86_400_000)));
  return {
    name: o.name,
    sli: o.sli,
    description: o.description,
    target: o.target,
    window: o.window,
    group: o.group,
    ...(o.sli === 'delivery-latency' || o.sli === 'alert-latency' ? { thresholdSeconds: o.thresholdSeconds } : {}),
    value: ratio(c),
    good: c.good,
    total: c.total,
    errorBudgetRemaining: budgetRemaining(c, o.target),
    burnRates: await burnRates(cache, o, groups, slo.burnRateAlerts),
    trend: await budgetTrend(q, slo, o, groups, now, days),
  };
}

const BREAKDOWN_LIMIT = 200;

/** Worst first (lowest indicator), then by name; entries without events last. */
function worstFirst(rows: SloBreakdownRow[]): SloBreakdownRow[] {
  return rows
    .sort((a, b) => (a.value ?? 2) - (b.value ?? 2) || a.agentId.localeCompare(b.agentId) || (a.asset ?? '').localeCompare(b.asset ?? ''))
    .slice(0, BREAKDOWN_LIMIT);
}

export async function sloDetail(q: SqlQueries, slo: SloConfig, o: SloObjective, now: number): Promise<SloDetail> {
  const cache = new WindowCache(q, slo, now);
  const summary = await sloSummary(q, slo, o, now, cache);
  const groups = new GroupMatcher(slo.groups);
  const perAgent = await cache.agents(o, o.windowMs);
  const agents = [...perAgent]
    .filter(([agentId]) => groups.has(agentId, o.group))
    .map(([agentId, c]) => ({ agentId, value: ratio(c), good: c.good, total: c.total }));
  let assets: SloBreakdownRow[] = [];
  if (ASSET_LEVEL_SLIS.includes(o.sli)) {
    const perAsset = await windowCounts(q, slo, { sli: o.sli, thresholdSeconds: o.thresholdSeconds }, o.windowMs, now, 'asset');
    assets = [...perAsset]
      .map(([key, c]) => {
        const [agentId, asset] = key.split('\u0000') as [string, string];
        return { agentId, asset, value: ratio(c), good: c.good, total: c.total };
      })
      .filter((r) => groups.has(r.agentId, o.group) && r.asset !== '');
  }
  return {
    ...summary,
    groups: groups.names().map((g) => {
      const c = groupCounts(perAgent, groups, g);
      return { group: g, value: ratio(c), good: c.good, total: c.total };
    }),
    agents: worstFirst(agents),
    assets: worstFirst(assets),
    clocks: (await agentClocks(q, slo)).filter((c) => groups.has(c.agentId, o.group)),
  };
}
