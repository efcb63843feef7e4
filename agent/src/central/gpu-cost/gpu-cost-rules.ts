import type { FleetRule } from '../alerts/fleet-rules.js';
import type { GpuCostConfig } from './gpu-cost-config.js';
import { downtimeByGpu, idleGpus } from './gpu-cost-report.js';

/**
 * Fleet alerts about GPU cost, evaluated like the other fleet rules (fleet-evaluator.ts: raised once when the
 * condition appears, refreshed while it holds, resolved once when it goes away; routed to Alertmanager and webhooks
 * from the alert book). docs/gpu-cost.md ("Alerts") describes them.
 */

const money = (v: number, currency: string) => `${v.toFixed(2)} ${currency}`;
const hours = (v: number) => `${v.toFixed(1)} h`;

export function gpuCostRules(config: GpuCostConfig): FleetRule[] {
  const gpuIdle: FleetRule = {
    name: 'gpu-idle',
    severity: 'warning',
    summary:
      'A GPU has been idle (utilisation and memory use below `gpuCost.idle`) without a break for longer than `gpuCost.alerts.idleForMs`, and still reports. Resolves when it does work again or stops reporting.',
    evidence: 'idleSince (ISO time), idleHours, model, group, idleCost, currency',
    remedy: 'Give the GPU work or release it (scale the node group down, return the reservation); idle hours cost what busy hours do.',
    async evaluate(q, now) {
      return (await idleGpus(q, config, now, config.alerts.idleForMs)).map((g) => ({
        subject: `${g.agentId}/${g.asset}`,
        agentId: g.agentId,
        asset: g.asset,
        title: `GPU ${g.asset} on ${g.agentId} idle for ${hours(g.idleHours)} (${money(g.idleCost, config.currency)})`,
        value: g.idleHours,
        evidence: {
          idleSince: new Date(g.idleSince).toISOString(),
          idleHours: Math.round(g.idleHours * 1000) / 1000,
          model: g.model,
          group: g.group,
          idleCost: Math.round(g.idleCost * 100) / 100,
          currency: config.currency,
        },
      }));
    },
  };

  const gpuDowntimeCost: FleetRule = {
    name: 'gpu-downtime-cost',
    severity: 'warning',
    summary:
      "The GPUs whose failure signals (lost, memory row-remap failure, reset required, fatal Xids) cost the most downtime over `gpuCost.alerts.downtime.windowMs`: at most `top` of them, each above `minCost`. Resolves when the GPU leaves that list (its downtime ages out of the window or others' cost more).",
    evidence: 'downHours, lostHours, memoryHours, resetHours, xidHours, xids, downtimeCost, currency, windowHours, rank',
    remedy:
      "Look at the GPU's alerts (Xid codes, remapped rows, reset required): a GPU that keeps failing costs more in downtime than its replacement; drain it and open an RMA.",
    async evaluate(q, now) {
      const d = config.alerts.downtime;
      const ranked = (await downtimeByGpu(q, config, now - d.windowMs, now + 1))
        .filter((g) => g.downtimeCost > 0 && g.downtimeCost >= d.minCost)
        .slice(0, d.top);
      return ranked.map((g, i) => ({
        subject: `${g.agentId}/${g.asset}`,
        agentId: g.agentId,
        asset: g.asset,
        title: `GPU ${g.asset} on ${g.agentId}: ${hours(g.downHours)} down in ${Math.round(d.windowMs / 3_600_000)} h (${money(g.downtimeCost, config.currency)})`,
        value: g.downtimeCost,
        evidence: {
          downHours: Math.round(g.downHours * 1000) / 1000,
          lostHours: Math.round(g.downHoursByCause.lost * 1000) / 1000,
          memoryHours: Math.round(g.downHoursByCause.memory * 1000) / 1000,
          resetHours: Math.round(g.downHoursByCause.reset * 1000) / 1000,
          xidHours: Math.round(g.downHoursByCause.xid * 1000) / 1000,
          xids: g.xids,
          model: g.model,
          downtimeCost: Math.round(g.downtimeCost * 100) / 100,
          currency: config.currency,
          windowHours: Math.round(d.windowMs / 3_600_000),
          rank: i + 1,
        },
      }));
    },
  };
  return [gpuIdle, gpuDowntimeCost];
}
