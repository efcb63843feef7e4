import { hostname } from 'node:os';
import type { Logger } from '../../core/logger.js';
import type { Component } from '../../core/types.js';
import { FleetAlertEvaluator } from '../alerts/fleet-evaluator.js';
import { LeaderLease } from '../leader-lease.js';
import { LeaderLoop } from '../alerts/leader-loop.js';
import type { SqlClient } from '../sql/sql-client.js';
import { sloBurnRules } from './slo-alerts.js';
import type { SloConfig } from './slo-config.js';
import { DAY_MS, MINUTE_RETENTION_MS } from './slo-projection.js';

/**
 * The SLO work that must run once across central workers, on the holder of the `central-slo` lease: the
 * burn-rate rules every `evaluateIntervalSeconds` (through the fleet evaluator: same alert book, same lifecycle),
 * and every 10 minutes the pruning of counters past their retention.
 */

export interface SloEvaluatorOptions {
  workerId?: string;
  now?: () => number;
  /** Pruning period. Default 10 min. */
  pruneIntervalMs?: number;
}

/** How long hourly counters are kept: the longest objective window (at least 28 days) and its trend, plus a day. */
export function hourRetentionMs(slo: SloConfig): number {
  const longest = Math.max(28 * DAY_MS, ...slo.objectives.map((o) => o.windowMs), ...slo.burnRateAlerts.map((t) => t.longWindowMs));
  return longest + slo.trendDays * DAY_MS + DAY_MS;
}

export class SloEvaluator implements Component {
  readonly name = 'slo';
  readonly alerts: FleetAlertEvaluator;
  readonly lease: LeaderLease;
  private readonly prune: LeaderLoop;
  private readonly now: () => number;

  constructor(
    private readonly sql: SqlClient,
    log: Logger,
    private readonly slo: SloConfig,
    options: SloEvaluatorOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    const intervalMs = slo.evaluateIntervalSeconds * 1000;
    this.lease = new LeaderLease(sql, {
      name: 'central-slo',
      holder: options.workerId ?? `${hostname()}:${process.pid}`,
      ttlMs: Math.max(30_000, 3 * intervalMs),
      ...(options.now ? { now: options.now } : {}),
    });
    const child = log.child({ component: this.name });
    this.alerts = new FleetAlertEvaluator(sql, child, this.lease, { intervalMs, rules: sloBurnRules(slo), now: this.now });
    this.prune = new LeaderLoop(
      'slo counter pruning',
      options.pruneIntervalMs ?? 10 * 60_000,
      this.lease,
      child,
      () => this.pruneOnce(),
      'FW_ERR_ALERT_EVALUATION',
    );
  }

  async start(): Promise<void> {
    await this.alerts.start();
    this.prune.start();
  }

  async stop(): Promise<void> {
    await this.prune.stop();
    await this.alerts.stop();
  }

  /** One burn-rate evaluation now, if this worker leads (tests, and the timer). */
  evaluateOnce(): Promise<boolean> {
    return this.alerts.evaluateOnce();
  }

  /** Deletes per-minute counters older than 7 h and hourly ones past `hourRetentionMs`. */
  async pruneOnce(): Promise<void> {
    const now = this.now();
    await this.sql.run('DELETE FROM slo_minute WHERE bucket < ?', [now - MINUTE_RETENTION_MS]);
    await this.sql.run('DELETE FROM slo_hour WHERE bucket < ?', [now - hourRetentionMs(this.slo)]);
  }
}
