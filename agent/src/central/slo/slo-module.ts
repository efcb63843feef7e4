import type { CentralModuleFactory } from '../central-module.js';
import { defaultSloConfig } from './slo-config.js';
import { SloEvaluator } from './slo-evaluator.js';
import { sloMetrics } from './slo-metrics.js';
import { SloProjection } from './slo-projection.js';
import { sloRoutes } from './slo-routes.js';

/**
 * Fleet SLOs (docs/slo.md): the counters kept in the ingest transaction, `GET /api/v1/slo[/:name]`, the SLO
 * families of `/metrics`, and the burn-rate alerts with the pruning of old counters.
 */
export const sloModule: CentralModuleFactory = (options, log) => {
  const slo = options.config?.slo ?? defaultSloConfig();
  return {
    projections: [new SloProjection({ maxAgeSeconds: slo.freshness.maxAgeSeconds, clockSkewToleranceSeconds: slo.clockSkewToleranceSeconds })],
    routes: () => sloRoutes(slo),
    metrics: () => [(q, now) => sloMetrics(q, slo, now)],
    components: (store) => [new SloEvaluator(store.sql, log, slo, { workerId: options.clientId })],
  };
};
