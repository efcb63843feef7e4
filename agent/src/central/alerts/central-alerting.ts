import { hostname } from 'node:os';
import type { Logger } from '../../core/logger.js';
import { LeaderLease } from '../leader-lease.js';
import type { SqlClient } from '../sql/sql-client.js';
import { AlertBook } from './alert-book.js';
import { AlertRouter, type AlertmanagerOptions, type WebhookOptions } from './alert-router.js';
import { FleetAlertEvaluator } from './fleet-evaluator.js';
import type { FleetRuleLimits } from './fleet-rules.js';

/**
 * Alerts that reach people: the alert book (a projection of the agents' alerts), the fleet alert evaluator and
 * the router, sharing one lease so that of several central workers on one store exactly one evaluates and
 * routes. The ingest applies `projection` in its transactions; the command starts and stops `components`.
 */

export interface CentralAlertingOptions {
  sql: SqlClient;
  log: Logger;
  /** Alertmanager URLs (an HA pair: all are posted to) and the resend interval (default 60 s). */
  alertmanager?: AlertmanagerOptions;
  /** Generic webhooks (`format: 'slack'` for a Slack incoming webhook). */
  webhooks?: readonly WebhookOptions[];
  /** The console's base URL, for links in notifications. */
  consoleUrl?: string;
  /** Fleet rule limits (defaults: agent offline 10 min, asset silent 30 min, version skew 24 h). */
  fleetRules?: Partial<FleetRuleLimits>;
  /** How often the fleet rules run. Default 15 s. */
  evaluateIntervalMs?: number;
  /** How often the book is checked for changes to route. Default 2 s. */
  routeIntervalMs?: number;
  /** This worker's id for the lease. Default `hostname:pid`. */
  workerId?: string;
  /** The lease's time to live. Default 30 s, and at least 3 of the longer interval. */
  leaseTtlMs?: number;
  now?: () => number;
}

export interface CentralAlerting {
  /** Add to the ingest's projections. */
  projection: AlertBook;
  /** Start after the ingest, stop before the store closes: the evaluator, then the router. */
  components: [FleetAlertEvaluator, AlertRouter];
  evaluator: FleetAlertEvaluator;
  router: AlertRouter;
  lease: LeaderLease;
}

export function createCentralAlerting(o: CentralAlertingOptions): CentralAlerting {
  const evaluateIntervalMs = o.evaluateIntervalMs ?? 15_000;
  const routeIntervalMs = o.routeIntervalMs ?? 2_000;
  const lease = new LeaderLease(o.sql, {
    name: 'central-alerts',
    holder: o.workerId ?? `${hostname()}:${process.pid}`,
    ttlMs: Math.max(o.leaseTtlMs ?? 30_000, 3 * Math.max(evaluateIntervalMs, routeIntervalMs)),
    ...(o.now ? { now: o.now } : {}),
  });
  const log = o.log.child({ worker: lease.holder });
  const evaluator = new FleetAlertEvaluator(o.sql, log, lease, {
    intervalMs: evaluateIntervalMs,
    ...(o.fleetRules ? { limits: o.fleetRules } : {}),
    ...(o.now ? { now: o.now } : {}),
  });
  const router = new AlertRouter(o.sql, log, lease, {
    intervalMs: routeIntervalMs,
    ...(o.alertmanager ? { alertmanager: o.alertmanager } : {}),
    ...(o.webhooks ? { webhooks: o.webhooks } : {}),
    ...(o.consoleUrl ? { consoleUrl: o.consoleUrl } : {}),
    ...(o.now ? { now: o.now } : {}),
  });
  const components: [FleetAlertEvaluator, AlertRouter] = [evaluator, router];
  return { projection: new AlertBook(o.log), components, evaluator, router, lease };
}
