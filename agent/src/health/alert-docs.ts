import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGE_ROOT } from '../core/package-root.js';
import { HEALTH_RULES, type HealthRule } from './health-rules.js';
import { ANOMALY_RULE, DRIFT_RULE, QUALITY_RULE, RISK_RULE } from './health-monitor.js';
import { BUILT_IN_LIFECYCLES } from './alert-lifecycle.js';
import { ALERTS_SCHEMA } from '../config/alerts-schema.js';
import { XID_CATALOG } from '../contract/nvidia-xid-catalog.js';

/** Renders docs/alerts.md from the rule catalogue; `npm run docs:alerts` rewrites it and a test keeps it current. */

function condition(rule: HealthRule): string {
  // Markdown tables split on `|`, even inside code spans, so alternations are escaped.
  const metric = (re: RegExp) => `\`${re.source.replace(/^\^/, '').replace(/\$$/, '').replace(/\\\./g, '.').replace(/\|/g, '\\|')}\``;
  switch (rule.kind) {
    case 'level':
      return `${metric(rule.metric)} ${rule.op} ${rule.against ? `\`${rule.against('')}\`` : rule.value}; clears ${rule.hysteresis ? 'past its hysteresis (lifecycle)' : 'when it no longer holds'}`;
    case 'growth':
      return `${metric(rule.metric)} grew since the previous sample; clears after ${rule.quietMs / 3_600_000} h without growth`;
    case 'event':
      return `a \`${rule.type}\` event${rule.codes ? ` with code ${rule.codes.join(', ')}` : ''}; clears after ${rule.quietMs / 3_600_000} h without a recurrence`;
  }
}

/** A duration as a person would say it. */
function duration(ms: number): string {
  if (ms === 0) return '0';
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}

/** A rule's lifecycle defaults: `for`, and how it clears (after a clear duration, or after a quiet period). */
function lifecycle(rule: { id: string; forMs?: number; clearForMs?: number; quietMs?: number; hysteresis?: number; op?: string }): string {
  const builtIn = BUILT_IN_LIFECYCLES[rule.id];
  const forMs = rule.forMs ?? builtIn?.forMs ?? 0;
  const quiet = rule.quietMs ?? builtIn?.quietMs;
  const clear = quiet !== undefined ? `quiet ${duration(quiet)}` : `clear for ${duration(rule.clearForMs ?? builtIn?.clearForMs ?? 0)}`;
  const past = rule.hysteresis ? ` ${rule.op === '<' ? 'above' : 'below'} threshold × (1 ${rule.op === '<' ? '+' : '−'} ${rule.hysteresis})` : '';
  return `for ${duration(forMs)}; ${clear}${past}`;
}

/** A default of the `alerts` section of the configuration schema. */
function alertsDefault(...at: string[]): number {
  let node = ALERTS_SCHEMA;
  for (const k of at) node = node.properties![k]!;
  return node.default as number;
}

export function renderAlertDocs(): string {
  const riskFor = alertsDefault('risk', 'forMs');
  const riskClearFor = alertsDefault('risk', 'clearForMs');
  const hysteresis = alertsDefault('risk', 'hysteresis');
  const maxChanges = alertsDefault('flapping', 'maxChanges');
  const windowMs = alertsDefault('flapping', 'windowMs');
  const lines = [
    '# Alerts',
    '',
    '<!-- Generated from agent/src/health/ by `npm run docs:alerts`. Do not edit by hand. -->',
    '',
    'Alerts are published on `forewarn/v1/{agentId}/alerts` ([contract](mqtt.md)). Each has an `alertId`',
    '(`rule/asset[/subject]`): it is raised once when its condition has held long enough and cleared once when its',
    'clear condition has, so a subscriber can pair the two records. Raised alerts survive a restart of the agent.',
    '',
    '## Lifecycle',
    '',
    'Each alert goes through the states Prometheus and Alertmanager users know, set per rule and per model threshold',
    'in the `alerts` section of the configuration ([configuration](configuration.md#alerts)):',
    '',
    "- **pending**: the condition holds, but not yet for the rule's `forMs` (Prometheus' `for`). Nothing is",
    '  published; `forewarn_alerts_pending` counts them. A condition that stops holding, or is not seen for 5 minutes,',
    '  starts over. Pending conditions live in memory: after a restart their `forMs` starts again.',
    '- **raised**: the `raised` record carries the `value` that raised it and, where `forMs` delayed it,',
    '  `pendingSinceTs`, when the condition began to hold. While it holds, nothing more is published.',
    '- **clearing**: a raised alert clears once its clear condition has held `clearForMs`. The clear condition can lie',
    '  short of the raise condition (hysteresis): a model alert clears below threshold × (1 − `alerts.risk.hysteresis`),',
    '  or for remaining-useful-life models above threshold × (1 + hysteresis), or at `alerts.risk.models.<name>.clearThreshold`;',
    '  a level rule clears at `alerts.rules.<id>.clearValue` where one is set, or short of its threshold by the share',
    '  `alerts.rules.<id>.hysteresis` (rules compared with a per-asset threshold, such as the ISO 10816-3 zone boundaries,',
    '  have a default one: see the table). A value between the two thresholds',
    '  neither raises nor clears, and starts the clear duration over. Growth, event and anomaly rules clear after a quiet',
    '  period without a recurrence instead (their `clearForMs` sets it).',
    '- **cleared**: the `cleared` record carries the values when it cleared (`evidence`, and `value`: the value that',
    '  cleared it), not those it was raised with.',
    `- **flapping**: an alert that changes state (raised or cleared) more than \`alerts.flapping.maxChanges\` (${maxChanges}) times`,
    `  within \`alerts.flapping.windowMs\` (${duration(windowMs)}) is marked flapping on the change beyond the limit: a raise is`,
    '  published with `flapping: true`; a clear is held back. A flapping alert stays raised until its clear condition',
    '  has held for a whole window; its `cleared` record says `flapping: true`. `forewarn_alerts_flapping` counts them, and',
    '  the log says when one starts. The flapping state is saved with the alert and survives a restart.',
    '',
    `Model thresholds default to \`forMs\` ${duration(riskFor)}, \`clearForMs\` ${duration(riskClearFor)} and a hysteresis of ${hysteresis}.`,
    'On the default demo (the simulated milling machine, one machining process a second) that means three processes',
    '(four when the readings come a little early) in a row at risk before an alert, and a minute with every process',
    'below threshold × 0.75 before it',
    'clears: over 2.5 hours of the demo (seed 1) three risk alerts instead of more than a hundred raise/clear pairs,',
    'each raised while the machine kept failing (test/agent/health/default-demo-alerts.test.ts). A lone process at risk',
    'is still in the `risk` stream and in `forewarn status`. Hardware rules whose condition is an instant fact (an',
    'uncorrectable error, a failed remap, an Xid, a fatal AER) raise at once by default; their defaults are in the tables.',
    '',
    '## Health rules (no model needed)',
    '',
    '| rule | severity | raised when | lifecycle defaults | remedy |',
    '|---|---|---|---|---|',
    ...HEALTH_RULES.map((r) => `| \`${r.id}\` — ${r.title} | ${r.severity} | ${condition(r)} | ${lifecycle(r)} | ${r.remedy} |`),
    '',
    'For `gpu.xid`, the severity, title and remedy come from the Xid code (the subject): see [Xid codes](#xid-codes).',
    'The `vibration.iso10816.*` rules compare each acceleration channel (the subject, `axis` in the evidence) with the zone',
    "boundaries of its asset's machine group and foundation, in mm/s ([vibration.md](vibration.md)); the evidence carries the",
    'velocity (`value`), the boundary (`threshold`) and where the alert clears (`clearThreshold`).',
    '',
    '## Model thresholds',
    '',
    '| rule | severity | raised when | lifecycle defaults | remedy |',
    '|---|---|---|---|---|',
    `| \`${RISK_RULE.id}\` — ${RISK_RULE.title} | ${RISK_RULE.severity} | a risk score crosses its model's operating threshold (subject: the model); clears when later scores are past the clear threshold | for ${duration(riskFor)}; clear for ${duration(riskClearFor)} past threshold × (1 ∓ ${hysteresis}) (\`alerts.risk\`) | ${RISK_RULE.remedy} |`,
    `| \`${ANOMALY_RULE.id}\` — ${ANOMALY_RULE.title} | ${ANOMALY_RULE.severity} | a record of kind \`anomaly\` is flagged (its score above the calibrated threshold, see [anomaly-detection.md](anomaly-detection.md)); clears after a quiet period without a flagged reading | ${lifecycle(ANOMALY_RULE)} | ${ANOMALY_RULE.remedy} |`,
    `| \`${DRIFT_RULE.id}\` — ${DRIFT_RULE.title} | ${DRIFT_RULE.severity} | a model's inputs on an asset enter the \`drift\` state ([drift.md](drift.md); subject: the model); clears when they leave it (every input back under the watch level: drift has its own hysteresis) | ${lifecycle(DRIFT_RULE)} | ${DRIFT_RULE.remedy} |`,
    '',
    '## Data quality',
    '',
    '| rule | severity | raised when | lifecycle defaults | remedy |',
    '|---|---|---|---|---|',
    `| \`${QUALITY_RULE.id}.range\` | ${QUALITY_RULE.severity} | a value is outside its physical range (subject: the signal) | ${lifecycle({ id: 'quality.range' })} | ${QUALITY_RULE.remedy} |`,
    `| \`${QUALITY_RULE.id}.step\` | ${QUALITY_RULE.severity} | a steady signal jumps by more than \`quality.stepFactor\` times its usual change | ${lifecycle({ id: 'quality.step' })} | ${QUALITY_RULE.remedy} |`,
    `| \`${QUALITY_RULE.id}.flatline\` | ${QUALITY_RULE.severity} | a varying signal repeats the same value \`quality.flatlineSamples\` times | ${lifecycle({ id: 'quality.flatline' })} | ${QUALITY_RULE.remedy} |`,
    `| \`${QUALITY_RULE.id}.stale\` | ${QUALITY_RULE.severity} | a steady signal has not arrived for \`quality.staleAfterIntervals\` of its usual intervals | ${lifecycle({ id: 'quality.stale' })} | ${QUALITY_RULE.remedy} |`,
    '',
    'Each clears when the signal passes the check again.',
    '',
    '## Xid codes',
    '',
    'Read from the kernel log (`NVRM: Xid (PCI:…): N, …`) by the GPU source, counted per GPU as `gpu.xid.<code>.count`,',
    'and raised as `gpu.xid` alerts with this severity and action. Codes not listed are raised as warnings.',
    '',
    '| Xid | name | severity | meaning | action |',
    '|---|---|---|---|---|',
    ...Object.entries(XID_CATALOG).map(
      ([code, x]) => `| ${code} | ${x.name} | ${x.severity} | ${x.meaning.replace(/\|/g, '\\|')} | ${x.action.replace(/\|/g, '\\|')} |`,
    ),
    '',
  ];
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const target = path.join(PACKAGE_ROOT, 'docs', 'alerts.md');
  writeFileSync(target, renderAlertDocs());
  process.stdout.write(`wrote ${target}\n`);
}
