import type { ErrorCode } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Component } from '../../core/types.js';
import type { LeaderLease } from '../leader-lease.js';
import type { SqlClient } from '../sql/sql-client.js';
import { migrateAlertBook, writeAlert } from './alert-book.js';
import { DEFAULT_FLEET_LIMITS, FLEET_RULES, type FleetRule, type FleetRuleLimits } from './fleet-rules.js';
import { LeaderLoop } from './leader-loop.js';

/**
 * Evaluates the fleet rules every `intervalMs` on the worker holding the alerting lease, and keeps their alerts in
 * `central_alerts` (origin `fleet`, key `fleet/<rule>/<subject>`): a condition that appears raises its alert once,
 * one that goes away resolves it once, one that persists only refreshes its evidence.
 */

export const FLEET_EVALUATION_ERROR: ErrorCode = 'FW_ERR_ALERT_EVALUATION';

export interface FleetEvaluatorOptions {
  limits?: Partial<FleetRuleLimits>;
  /** How often the rules run. Default 15 s. */
  intervalMs?: number;
  rules?: readonly FleetRule[];
  now?: () => number;
}

export interface FleetEvaluatorStats {
  evaluations: number;
  raised: number;
  resolved: number;
  /** Fleet alerts active after the last evaluation. */
  active: number;
}

export class FleetAlertEvaluator implements Component {
  readonly name = 'fleet-alerts';
  readonly stats: FleetEvaluatorStats = { evaluations: 0, raised: 0, resolved: 0, active: 0 };
  readonly limits: FleetRuleLimits;
  private readonly rules: readonly FleetRule[];
  private readonly now: () => number;
  private readonly loop: LeaderLoop;
  private migrated = false;

  constructor(
    private readonly sql: SqlClient,
    log: Logger,
    lease: LeaderLease,
    options: FleetEvaluatorOptions = {},
  ) {
    this.limits = { ...DEFAULT_FLEET_LIMITS, ...options.limits };
    this.rules = options.rules ?? FLEET_RULES;
    this.now = options.now ?? Date.now;
    this.loop = new LeaderLoop(
      'fleet alert evaluation',
      options.intervalMs ?? 15_000,
      lease,
      log.child({ component: this.name }),
      () => this.evaluate(),
      FLEET_EVALUATION_ERROR,
    );
  }

  async start(): Promise<void> {
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }

  /** One evaluation now, if this worker leads; false otherwise. */
  evaluateOnce(): Promise<boolean> {
    return this.loop.runOnce();
  }

  private async evaluate(): Promise<void> {
    if (!this.migrated) {
      await migrateAlertBook(this.sql);
      this.migrated = true;
    }
    const now = this.now();
    const counts = await this.sql.tx(
      async (q) => {
        let raised = 0;
        let resolved = 0;
        let active = 0;
        for (const rule of this.rules) {
          const findings = await rule.evaluate(q, now, this.limits);
          const open = new Map(
            (
              await q.all<{
                alert_key: string;
                raised_ts: number;
                title: string;
                remedy: string;
                severity: string;
                agent_id: string;
                asset: string | null;
                subject: string | null;
                evidence: string;
              }>(
                "SELECT alert_key, raised_ts, title, remedy, severity, agent_id, asset, subject, evidence FROM central_alerts WHERE origin = 'fleet' AND rule = ? AND state = 'active'",
                [rule.name],
              )
            ).map((r) => [r.alert_key, r]),
          );
          for (const f of findings) {
            const key = `fleet/${rule.name}/${f.subject}`;
            const was = open.get(key);
            open.delete(key);
            if (!was) raised++;
            active++;
            await writeAlert(q, {
              key,
              origin: 'fleet',
              agentId: f.agentId,
              asset: f.asset,
              subject: f.subject,
              rule: rule.name,
              severity: rule.severity,
              title: f.title,
              state: 'active',
              raisedTs: was?.raised_ts ?? now,
              resolvedTs: null,
              updatedTs: now,
              value: f.value,
              evidence: f.evidence,
              remedy: rule.remedy,
            });
          }
          // Active before, not found now: the condition went away.
          for (const [key, was] of open) {
            resolved++;
            await writeAlert(q, {
              key,
              origin: 'fleet',
              agentId: was.agent_id,
              asset: was.asset,
              subject: was.subject,
              rule: rule.name,
              severity: was.severity,
              title: was.title,
              state: 'resolved',
              raisedTs: was.raised_ts,
              resolvedTs: now,
              updatedTs: now,
              value: null,
              evidence: JSON.parse(was.evidence) as Record<string, unknown>,
              remedy: was.remedy,
            });
          }
        }
        return { raised, resolved, active };
      },
      { lockKey: 'central-alerts:fleet' },
    );
    this.stats.evaluations++;
    this.stats.raised += counts.raised;
    this.stats.resolved += counts.resolved;
    this.stats.active = counts.active;
  }
}
