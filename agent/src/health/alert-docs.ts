import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGE_ROOT } from '../core/package-root.js';
import { HEALTH_RULES, type HealthRule } from './health-rules.js';
import { ANOMALY_RULE, DRIFT_RULE, QUALITY_RULE, RISK_RULE } from './health-monitor.js';
import { XID_CATALOG } from '../sources/gpu/nvidia-smi-parsers.js';

/** Renders docs/alerts.md from the rule catalogue; `npm run docs:alerts` rewrites it and a test keeps it current. */

function condition(rule: HealthRule): string {
  // Markdown tables split on `|`, even inside code spans, so alternations are escaped.
  const metric = (re: RegExp) => `\`${re.source.replace(/^\^/, '').replace(/\$$/, '').replace(/\\\./g, '.').replace(/\|/g, '\\|')}\``;
  switch (rule.kind) {
    case 'level':
      return `${metric(rule.metric)} ${rule.op} ${rule.against ? `\`${rule.against('')}\`` : rule.value}; clears when it no longer holds`;
    case 'growth':
      return `${metric(rule.metric)} grew since the previous sample; clears after ${rule.quietMs / 3_600_000} h without growth`;
    case 'event':
      return `a \`${rule.type}\` event${rule.codes ? ` with code ${rule.codes.join(', ')}` : ''}; clears after ${rule.quietMs / 3_600_000} h without a recurrence`;
  }
}

export function renderAlertDocs(): string {
  const lines = [
    '# Alerts',
    '',
    '<!-- Generated from agent/src/health/ by `npm run docs:alerts`. Do not edit by hand. -->',
    '',
    'Alerts are published on `forewarn/v1/{agentId}/alerts` ([contract](mqtt.md)). Each has an `alertId`',
    '(`rule/asset[/subject]`): it is raised once while its condition holds and cleared once when the condition',
    'stops, so a subscriber can pair the two records. Active alerts survive a restart of the agent.',
    '',
    '## Health rules (no model needed)',
    '',
    '| rule | severity | raised when | remedy |',
    '|---|---|---|---|',
    ...HEALTH_RULES.map((r) => `| \`${r.id}\` — ${r.title} | ${r.severity} | ${condition(r)} | ${r.remedy} |`),
    '',
    'For `gpu.xid`, the severity, title and remedy come from the Xid code (the subject): see [Xid codes](#xid-codes).',
    '',
    '## Model thresholds',
    '',
    '| rule | severity | raised when | remedy |',
    '|---|---|---|---|',
    `| \`${RISK_RULE.id}\` — ${RISK_RULE.title} | ${RISK_RULE.severity} | a risk score crosses its model's operating threshold (subject: the model); clears when a later score is below it | ${RISK_RULE.remedy} |`,
    `| \`${ANOMALY_RULE.id}\` — ${ANOMALY_RULE.title} | ${ANOMALY_RULE.severity} | a record of kind \`anomaly\` is flagged (its score above the calibrated threshold, see [anomaly-detection.md](anomaly-detection.md)); clears after ${ANOMALY_RULE.quietMs / 60_000} min without a flagged reading | ${ANOMALY_RULE.remedy} |`,
    `| \`${DRIFT_RULE.id}\` — ${DRIFT_RULE.title} | ${DRIFT_RULE.severity} | a model's inputs on an asset reach \`scoring.drift.alertPsi\` (PSI against the manifest's training distributions; subject: the model); clears when every input is back under \`scoring.drift.watchPsi\` | ${DRIFT_RULE.remedy} |`,
    '',
    '## Data quality',
    '',
    '| rule | severity | raised when | remedy |',
    '|---|---|---|---|',
    `| \`${QUALITY_RULE.id}.range\` | ${QUALITY_RULE.severity} | a value is outside its physical range (subject: the signal) | ${QUALITY_RULE.remedy} |`,
    `| \`${QUALITY_RULE.id}.step\` | ${QUALITY_RULE.severity} | a steady signal jumps by more than \`quality.stepFactor\` times its usual change | ${QUALITY_RULE.remedy} |`,
    `| \`${QUALITY_RULE.id}.flatline\` | ${QUALITY_RULE.severity} | a varying signal repeats the same value \`quality.flatlineSamples\` times | ${QUALITY_RULE.remedy} |`,
    `| \`${QUALITY_RULE.id}.stale\` | ${QUALITY_RULE.severity} | a steady signal has not arrived for \`quality.staleAfterIntervals\` of its usual intervals | ${QUALITY_RULE.remedy} |`,
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
