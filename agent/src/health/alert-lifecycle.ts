/**
 * The alert lifecycle, as Prometheus and Alertmanager users know it: a condition must hold `forMs` before its alert
 * is raised (pending until then), a raised alert clears only once its clear condition — past a clear threshold
 * short of the raise threshold (hysteresis) — has held `clearForMs`, and an alert that changes state more than
 * `flapping.maxChanges` times within `flapping.windowMs` is marked flapping and held raised until it has been clear
 * for a whole window. This file resolves each alert's settings from the configuration and the rule catalogue, and
 * checks the configuration against the catalogue; health-monitor.ts runs the lifecycle.
 */
import type { AlertsConfig } from '../config/load-config.js';
import { ForewarnError } from '../core/errors.js';
import { HEALTH_RULES, type HealthRule } from './health-rules.js';

/** One alert's lifecycle settings. */
export interface Lifecycle {
  forMs: number;
  /** For rules that clear by value: how long the clear condition must hold. */
  clearForMs: number;
  /** For rules that clear after a quiet period (growth, event, anomaly): the period. */
  quietMs?: number;
  /** For level rules compared with `>` or `<`: where a raised alert clears, as a share of the threshold (0: at it). */
  hysteresis?: number;
}

/** One model threshold's lifecycle: the score at which a raised alert clears, besides the durations. */
export interface RiskLifecycle extends Lifecycle {
  clearThreshold: number;
}

/** Rules outside the hardware catalogue that the configuration may tune under `alerts.rules`, with their defaults. */
export const BUILT_IN_LIFECYCLES: Readonly<Record<string, { forMs: number; clearForMs?: number; quietMs?: number }>> = {
  anomaly: { forMs: 0, quietMs: 10 * 60_000 },
  'model.drift': { forMs: 0, clearForMs: 0 },
  'quality.range': { forMs: 0, clearForMs: 0 },
  'quality.step': { forMs: 0, clearForMs: 0 },
  'quality.flatline': { forMs: 0, clearForMs: 0 },
  'quality.stale': { forMs: 0, clearForMs: 0 },
};

/** No delay, no hysteresis, no flapping detection: what a monitor built without a configuration does (tests, tools). */
export const IMMEDIATE: AlertsConfig = {
  flapping: { maxChanges: 0, windowMs: 3_600_000 },
  risk: { forMs: 0, clearForMs: 0, hysteresis: 0, models: {} },
  rules: {},
};

/** Settings of one rule: the configuration's overrides over the rule's own defaults. */
export function ruleLifecycle(
  config: AlertsConfig,
  rule: { id: string; forMs?: number; clearForMs?: number; quietMs?: number; hysteresis?: number },
  immediate: boolean,
): Lifecycle {
  const o = config.rules[rule.id] ?? {};
  const quiet = rule.quietMs ?? BUILT_IN_LIFECYCLES[rule.id]?.quietMs;
  const builtIn = BUILT_IN_LIFECYCLES[rule.id];
  const base = immediate ? { forMs: 0, clearForMs: 0 } : { forMs: rule.forMs ?? builtIn?.forMs ?? 0, clearForMs: rule.clearForMs ?? builtIn?.clearForMs ?? 0 };
  const hysteresis = o.hysteresis ?? (immediate ? 0 : (rule.hysteresis ?? 0));
  return {
    forMs: o.forMs ?? base.forMs,
    clearForMs: quiet === undefined ? (o.clearForMs ?? base.clearForMs) : 0,
    ...(quiet !== undefined ? { quietMs: o.clearForMs ?? quiet } : {}),
    ...(hysteresis > 0 ? { hysteresis } : {}),
  };
}

/**
 * Settings of one model's threshold alert. Higher scores are worse for probabilities (and anomaly scores), lower
 * ones for remaining useful life: the clear threshold lies below the raise threshold for the former, above it for
 * the latter. A configured clear threshold on the wrong side is refused (`problem`) and the default used instead.
 */
export function riskLifecycle(config: AlertsConfig, model: string, kind: string, threshold: number): RiskLifecycle & { problem?: string } {
  const r = config.risk;
  const o = r.models[model] ?? {};
  const lowIsBad = kind === 'rul';
  const fallback = lowIsBad ? threshold * (1 + r.hysteresis) : threshold * (1 - r.hysteresis);
  let clearThreshold = fallback;
  let problem: string | undefined;
  if (o.clearThreshold !== undefined) {
    if (lowIsBad ? o.clearThreshold >= threshold : o.clearThreshold <= threshold) clearThreshold = o.clearThreshold;
    else
      problem = `alerts.risk.models.${model}.clearThreshold: must be ${lowIsBad ? 'at or above' : 'at or below'} the model's threshold ${threshold} (${lowIsBad ? 'remaining useful life: low is bad' : 'high is bad'}); using ${round(fallback)}`;
  }
  return { forMs: o.forMs ?? r.forMs, clearForMs: o.clearForMs ?? r.clearForMs, clearThreshold: round(clearThreshold), ...(problem ? { problem } : {}) };
}

/**
 * What the configuration's `alerts` section gets wrong that the schema cannot tell: rule ids that name no rule, and
 * clear values on the wrong side of their rule's threshold (or on rules that have no threshold to be short of).
 * `path: message` lines, as the configuration's other errors.
 */
export function alertConfigProblems(config: AlertsConfig, rules: readonly HealthRule[] = HEALTH_RULES): string[] {
  const problems: string[] = [];
  const byId = new Map(rules.map((r) => [r.id, r]));
  for (const [id, o] of Object.entries(config.rules)) {
    const at = `alerts.rules.${id}`;
    const rule = byId.get(id);
    if (!rule && !(id in BUILT_IN_LIFECYCLES)) {
      problems.push(`${at}: unknown rule (docs/alerts.md lists the rules; model thresholds are tuned under alerts.risk)`);
      continue;
    }
    if (o.hysteresis !== undefined && (!rule || rule.kind !== 'level' || (rule.op !== '>' && rule.op !== '<')))
      problems.push(`${at}.hysteresis: this rule has no threshold to clear short of (only level rules compared with > or < take a hysteresis)`);
    if (o.clearValue === undefined) continue;
    if (!rule || rule.kind !== 'level' || rule.against || (rule.op !== '>' && rule.op !== '<')) {
      problems.push(`${at}.clearValue: this rule has no threshold to clear short of (only level rules compared with > or < take a clearValue)`);
      continue;
    }
    if (rule.op === '>' ? o.clearValue > rule.value : o.clearValue < rule.value)
      problems.push(
        `${at}.clearValue: must be ${rule.op === '>' ? 'at most' : 'at least'} the rule's threshold ${rule.value} (it raises when the value is ${rule.op} ${rule.value})`,
      );
  }
  return problems;
}

/** Throws FW_ERR_CONFIG_INVALID, one `path: message` detail per problem, as loading the configuration does. */
export function assertAlertConfig(config: AlertsConfig, source: string, rules: readonly HealthRule[] = HEALTH_RULES): void {
  const problems = alertConfigProblems(config, rules);
  if (problems.length) throw new ForewarnError('FW_ERR_CONFIG_INVALID', `${source}: invalid configuration`, { details: problems });
}

/**
 * Where a level rule's raised alert clears: the configured `clearValue`, else the threshold short by the hysteresis
 * share (for `>` below it, for `<` above it), else undefined (it clears as soon as it no longer raises).
 */
export function levelClearValue(rule: { op: string }, threshold: number, clearValue: number | undefined, hysteresis: number | undefined): number | undefined {
  if (clearValue !== undefined) return clearValue;
  if (!hysteresis || (rule.op !== '>' && rule.op !== '<')) return undefined;
  return round(rule.op === '>' ? threshold * (1 - hysteresis) : threshold * (1 + hysteresis));
}

/** Whether a level rule's value lets a raised alert clear: past the clear value where one is set, else simply no longer raising. */
export function levelCleared(rule: { op: string }, value: number, clearValue: number | undefined): boolean {
  if (clearValue === undefined) return true;
  return rule.op === '>' ? value <= clearValue : rule.op === '<' ? value >= clearValue : true;
}

const round = (x: number) => Number(x.toPrecision(6));
