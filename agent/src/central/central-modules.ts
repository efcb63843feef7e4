import { AlertBook } from './alerts/alert-book.js';
import { createCentralAlerting } from './alerts/central-alerting.js';
import { assetHealthRoutes } from './api/asset-health-routes.js';
import { createCentralApi } from './api/central-api.js';
import type { CentralModuleFactory } from './central-module.js';
import { FleetProjection } from './fleet/fleet-projection.js';
import { createRetention } from './fleet/retention.js';
import { GPU_COST_DEFAULTS } from './gpu-cost/gpu-cost-config.js';
import { gpuCostModule } from './gpu-cost/gpu-cost-module.js';
import { workflowRoutes } from './workflow/workflow-routes.js';

/**
 * What `forewarn central` runs besides ingest, in start order. A module is a factory of projections (kept in the
 * ingest transaction) and components; the command names none of them itself.
 */
export const CENTRAL_MODULES: readonly CentralModuleFactory[] = [
  // The fleet read model (latest risk, hourly rollups), retention of old records and rollups, and the asset
  // page's health (quality flags, drift, drivers: GET /api/v1/assets/:agent/:asset/health).
  (options, log) => ({
    projections: [new FleetProjection({ rollupMetrics: options.rollupMetrics })],
    routes: () => assetHealthRoutes(),
    components: (store) => [createRetention({ sql: store.sql, log, days: options.retainDays })],
  }),
  // Alerts: the agents' alerts and central's own fleet alerts in one book, routed to Alertmanager and webhooks,
  // and the alert workflow (actions, failure modes, audit log: POST /api/v1/alerts/actions, …) whose silences and
  // resolutions the router carries out. Always on: with no receiver configured the book still feeds the API and
  // the console.
  (options, log) => ({
    projections: [new AlertBook(log)],
    routes: () => workflowRoutes(),
    components: (store) =>
      createCentralAlerting({
        sql: store.sql,
        log,
        ...(options.alertmanagers.length ? { alertmanager: { urls: options.alertmanagers } } : {}),
        webhooks: options.webhooks,
        consoleUrl: options.consoleUrl,
        fleetRules: { agentOfflineMs: options.agentOfflineMs, assetSilentMs: options.assetSilentMs, versionSkewMs: options.versionSkewMs },
        workerId: options.clientId,
      }).components,
  }),
  // GPU cost: busy, idle and down hours and energy per GPU (a projection), the cost report's routes and the GPU
  // cost alerts (docs/gpu-cost.md). Prices come from the gpuCost section of central's configuration file.
  (options, log) => gpuCostModule({ config: GPU_COST_DEFAULTS, log, workerId: options.clientId }),
  // The HTTP server: the JSON API (/api/v1/…) with every module's routes, the console's pages, sessions and live
  // events. Last, so that it mounts the routes of all modules above; --no-api turns it off.
  (options, log) =>
    options.api
      ? {
          components: (store, { routes }) => [
            createCentralApi({
              sql: store.sql,
              log,
              host: options.api!.host,
              port: options.api!.port,
              routes,
              ...(options.tls ? { tls: options.tls } : {}),
              session: { idleMs: options.sessionIdleMs, absoluteMs: options.sessionMaxMs },
              origins: [options.consoleUrl],
            }),
          ],
        }
      : null,
];
