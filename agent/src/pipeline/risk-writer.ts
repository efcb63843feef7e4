/**
 * The store's side of the risk seam: risk records from the scorers are committed (batched by the storage
 * keeper) and counted in the agent's stats, with the latest record per asset and model for the read side.
 */
import type { RiskConsumer } from '../core/types.js';
import type { RecordConsumer } from '../store/record-consumer.js';
import type { AgentStats } from '../snapshot/agent-view.js';

export function riskWriter(records: RecordConsumer, stats: Pick<AgentStats, 'scoredRecords' | 'lastRisk'>): RiskConsumer {
  return {
    consumeRisk: (risk) => {
      records.consumeRecords(risk.map((r) => ({ stream: 'risk' as const, ts: r.ts, asset: r.asset, payload: { ...r } })));
      stats.scoredRecords += risk.length;
      for (const r of risk) stats.lastRisk.set(`${r.asset}/${r.model}`, r);
    },
  };
}
