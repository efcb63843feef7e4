import type { ApiRoute } from '../api/api-route.js';
import { ApiError } from '../api/api-params.js';
import type { SloConfig } from './slo-config.js';
import { sloDetail, sloSummary } from './slo-status.js';

/**
 * `GET /api/v1/slo` (viewer): every objective with its indicator over its window, the error budget left, the
 * burn rate of each alert tier and the budget's daily trend. `GET /api/v1/slo/:name` (viewer): one objective
 * with its breakdown per group, per agent and per asset (worst first, at most 200 each) and the agents' clock
 * offsets (estimated and applied).
 */
export function sloRoutes(slo: SloConfig): ApiRoute[] {
  return [
    {
      method: 'GET',
      pattern: '/slo',
      role: 'viewer',
      async handle(ctx) {
        const now = ctx.now();
        const objectives = [];
        for (const o of slo.objectives) objectives.push(await sloSummary(ctx.sql, slo, o, now));
        return {
          now,
          maxAgeSeconds: slo.freshness.maxAgeSeconds,
          groups: ['all', ...slo.groups.map((g) => g.name)],
          burnRateAlerts: slo.burnRateAlerts.map(({ name, severity, factor, longWindow, shortWindow }) => ({
            name,
            severity,
            factor,
            longWindow,
            shortWindow,
          })),
          objectives,
        };
      },
    },
    {
      method: 'GET',
      pattern: '/slo/:name',
      role: 'viewer',
      async handle(ctx) {
        const o = slo.objectives.find((x) => x.name === ctx.params.name);
        if (!o)
          throw new ApiError(
            404,
            'FW_ERR_API_NOT_FOUND',
            `slo: no objective "${ctx.params.name}" (configured: ${slo.objectives.map((x) => x.name).join(', ') || 'none'})`,
          );
        return { now: ctx.now(), ...(await sloDetail(ctx.sql, slo, o, ctx.now())) };
      },
    },
  ];
}
