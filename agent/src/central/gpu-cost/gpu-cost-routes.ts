import { ApiError, badParam, Params } from '../api/api-params.js';
import { RouteFile, type ApiRoute } from '../api/api-route.js';
import { tableExists } from '../fleet/retention.js';
import type { GpuCostConfig } from './gpu-cost-config.js';
import { DAY_MS, downtimeByGpu, gpuCostReport, idleGpus, isoDay, REPORT_BY, reportCsv } from './gpu-cost-report.js';

/**
 * The GPU cost API (role viewer):
 *
 * - `GET /api/v1/gpu-cost?from&to&by&format`: the cost report (gpu-cost-report.ts) for [from, to) (ms or ISO
 *   times; default the last 7 days up to the next hour), grouped `by` host (default), group, model or gpu; with
 *   `format=csv` the same rows as a CSV download.
 * - `GET /api/v1/gpu-cost/now`: the GPUs idle now (longest first) and the GPUs whose downtime cost most over the
 *   downtime alert's window, with the prices the figures use.
 */

/** At most a year per report: 366 days of a 4,000-GPU fleet is 1.5 million GPU-day rows. */
const MAX_WINDOW_MS = 366 * DAY_MS;

export function gpuCostRoutes(config: GpuCostConfig): ApiRoute[] {
  return [
    {
      method: 'GET',
      pattern: '/gpu-cost',
      role: 'viewer',
      async handle(ctx) {
        const p = new Params(ctx.query, ['from', 'to', 'by', 'format']);
        const now = ctx.now();
        const to = p.time('to', now);
        const from = p.time('from', to - 7 * DAY_MS);
        if (to <= from) throw badParam('to', `must be after from (${new Date(from).toISOString()})`);
        if (to - from > MAX_WINDOW_MS) throw badParam('from', 'the window is longer than 366 days');
        const by = p.oneOf('by', REPORT_BY, 'host');
        const format = p.oneOf('format', ['json', 'csv'] as const, 'json');
        if (!(await tableExists(ctx.sql, 'gpu_cost_hourly')))
          throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', 'gpu-cost: this store has no GPU cost tables yet');
        const report = await gpuCostReport(ctx.sql, config, { from, to, by });
        if (format === 'csv')
          return new RouteFile('text/csv; charset=utf-8', reportCsv(report), `gpu-cost-${by}-${isoDay(report.from)}-${isoDay(report.to - 1)}.csv`);
        return report;
      },
    },
    {
      method: 'GET',
      pattern: '/gpu-cost/now',
      role: 'viewer',
      async handle(ctx) {
        new Params(ctx.query, []);
        const now = ctx.now();
        if (!(await tableExists(ctx.sql, 'gpu_cost_state'))) throw new ApiError(404, 'FW_ERR_API_NOT_FOUND', 'gpu-cost: this store has no GPU cost tables yet');
        const window = config.alerts.downtime.windowMs;
        return {
          now,
          currency: config.currency,
          idleForMs: config.alerts.idleForMs,
          idle: await idleGpus(ctx.sql, config, now),
          downtimeWindowMs: window,
          downtime: (await downtimeByGpu(ctx.sql, config, now - window, now + 1)).slice(0, config.alerts.downtime.top),
        };
      },
    },
  ];
}
