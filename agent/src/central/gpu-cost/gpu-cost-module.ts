import { hostname } from 'node:os';
import type { Logger } from '../../core/logger.js';
import { FleetAlertEvaluator } from '../alerts/fleet-evaluator.js';
import type { CentralModule } from '../central-module.js';
import { LeaderLease } from '../leader-lease.js';
import type { GpuCostConfig } from './gpu-cost-config.js';
import { GpuCostProjection } from './gpu-cost-projection.js';
import { gpuCostRoutes } from './gpu-cost-routes.js';
import { gpuCostRules } from './gpu-cost-rules.js';

/**
 * GPU cost as a module of central: the projection (kept in the ingest transaction), the API routes, and an
 * evaluator of the GPU cost alerts on its own lease (one worker of several evaluates; the alert book's router,
 * on the alerting lease, routes what it writes).
 */

export interface GpuCostModuleOptions {
  config: GpuCostConfig;
  log: Logger;
  workerId?: string;
  /** How often the GPU cost alerts are evaluated. Default 60 s: idle and downtime change over hours. */
  evaluateIntervalMs?: number;
  now?: () => number;
}

export function gpuCostModule(o: GpuCostModuleOptions): CentralModule {
  return {
    projections: [new GpuCostProjection(o.config)],
    routes: () => gpuCostRoutes(o.config),
    components: (store) => {
      const intervalMs = o.evaluateIntervalMs ?? 60_000;
      const lease = new LeaderLease(store.sql, {
        name: 'gpu-cost-alerts',
        holder: o.workerId ?? `${hostname()}:${process.pid}`,
        ttlMs: Math.max(30_000, 3 * intervalMs),
        ...(o.now ? { now: o.now } : {}),
      });
      return [
        new FleetAlertEvaluator(store.sql, o.log.child({ component: 'gpu-cost' }), lease, {
          rules: gpuCostRules(o.config),
          intervalMs,
          ...(o.now ? { now: o.now } : {}),
        }),
      ];
    },
  };
}
