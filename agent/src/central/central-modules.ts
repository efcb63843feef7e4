import { AlertBook } from './alerts/alert-book.js';
import { createCentralAlerting } from './alerts/central-alerting.js';
import type { CentralModuleFactory } from './central-module.js';

/**
 * What `forewarn central` runs besides ingest, in start order. A module is a factory of projections (kept in the
 * ingest transaction) and components; the command names none of them itself.
 */
export const CENTRAL_MODULES: readonly CentralModuleFactory[] = [
  // Alerts: the agents' alerts and central's own fleet alerts in one book, routed to Alertmanager and webhooks.
  // Always on: with no receiver configured the book still feeds the API and the console.
  (options, log) => ({
    projections: [new AlertBook(log)],
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
];
