import type { FleetFinding, FleetRule } from '../alerts/fleet-rules.js';
import { GroupMatcher, type BurnRateTier, type SloConfig } from './slo-config.js';
import { burnRates, WindowCache } from './slo-status.js';

/**
 * Multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on SLOs"): one fleet rule per tier,
 * `slo-burn-<tier>`, whose finding per objective holds while both its windows burn the error budget at least
 * `factor` times as fast as the objective allows. The fleet evaluator raises and resolves them in the alert
 * book like every fleet alert (key `fleet/slo-burn-<tier>/<objective>`), so they reach Alertmanager the same way.
 * The alerts are fleet-wide: no agent, the objective as their subject.
 */

export const SLO_RULE_PREFIX = 'slo-burn-';

export function sloBurnRules(slo: SloConfig): FleetRule[] {
  const groups = new GroupMatcher(slo.groups);
  // The evaluator runs the rules in order in one transaction: the first tier starts a pass, whose windows the
  // other tiers share.
  let windows: WindowCache | null = null;
  return slo.burnRateAlerts.map((tier: BurnRateTier, index): FleetRule => ({
    name: `${SLO_RULE_PREFIX}${tier.name}`,
    severity: tier.severity,
    summary: `An objective burns its error budget at least ${tier.factor}× as fast as it may, over ${tier.longWindow} and over ${tier.shortWindow}.`,
    evidence: 'slo, sli, group, target, burnRateLong, burnRateShort, longWindow, shortWindow, factor',
    remedy:
      'Open the SLO page of the console (/slo) for the agents and assets that spend the budget, then the agent or asset alerts behind them; docs/slo.md says what each indicator counts.',
    async evaluate(q, now) {
      if (index === 0 || !windows) windows = new WindowCache(q, slo, now);
      const out: FleetFinding[] = [];
      for (const o of slo.objectives) {
        const [state] = await burnRates(windows, o, groups, [tier]);
        if (!state?.firing) continue;
        out.push({
          subject: o.name,
          agentId: '',
          asset: null,
          title: `SLO ${o.name} burns its error budget ${state.longRate.toFixed(1)}× over ${tier.longWindow} and ${state.shortRate.toFixed(1)}× over ${tier.shortWindow}`,
          value: Number(state.longRate.toFixed(4)),
          evidence: {
            slo: o.name,
            sli: o.sli,
            group: o.group,
            target: o.target,
            burnRateLong: Number(state.longRate.toFixed(4)),
            burnRateShort: Number(state.shortRate.toFixed(4)),
            longWindow: tier.longWindow,
            shortWindow: tier.shortWindow,
            factor: tier.factor,
          },
        });
      }
      return out;
    },
  }));
}
