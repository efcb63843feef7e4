import { parseWithUnit, withoutDefault, type SchemaNode } from '../../core/schema-node.js';
import type { CentralConfigSection } from '../central-config-section.js';

/**
 * The `slo` section of central's configuration file (docs/slo.md): fleet groups, objectives, the burn-rate alert
 * tiers and the settings the indicators are computed with.
 */

export const SLI_NAMES = ['freshness', 'completeness', 'delivery-latency', 'scoring-coverage', 'alert-latency'] as const;
export type SliName = (typeof SLI_NAMES)[number];

/** Upper bounds (seconds) of the latency histograms, fixed so that counters add up across buckets, agents and time. */
export const LATENCY_BUCKETS_S: readonly number[] = [1, 5, 10, 30, 60, 300, 900, 3600, 86400];

export interface SloGroup {
  name: string;
  /** Agent-id glob patterns (`*` any characters, `?` one). */
  agents: string[];
}

export interface SloObjective {
  name: string;
  sli: SliName;
  /** The share of good events aimed at, e.g. 0.995. */
  target: number;
  /** As written (`28d`) and in ms. */
  window: string;
  windowMs: number;
  /** A group's name, or `all` (the default). */
  group: string;
  /** Latency indicators: an event is good when it took at most this (one of LATENCY_BUCKETS_S). */
  thresholdSeconds: number;
  description: string;
}

export interface BurnRateTier {
  name: string;
  severity: 'info' | 'warning' | 'critical';
  /** Burn rate (error rate ÷ the objective's error budget) at or above which the tier fires. */
  factor: number;
  longWindow: string;
  longWindowMs: number;
  shortWindow: string;
  shortWindowMs: number;
}

export interface SloConfig {
  freshness: { maxAgeSeconds: number };
  /** A clock offset estimated below this is not applied (the estimate carries the network's least delay). */
  clockSkewToleranceSeconds: number;
  /** How often central evaluates the burn-rate alerts. */
  evaluateIntervalSeconds: number;
  /** Days of daily budget points in the trend (at most the objective's window). */
  trendDays: number;
  groups: SloGroup[];
  objectives: SloObjective[];
  burnRateAlerts: BurnRateTier[];
}

/** The Google SRE workbook's tiers (chapter 5, "Alerting on SLOs"): two pages and a ticket. */
export const DEFAULT_BURN_RATE_TIERS = [
  { name: 'page-fast', severity: 'critical', factor: 14.4, longWindow: '1h', shortWindow: '5m' },
  { name: 'page-slow', severity: 'critical', factor: 6, longWindow: '6h', shortWindow: '30m' },
  { name: 'ticket', severity: 'warning', factor: 1, longWindow: '3d', shortWindow: '6h' },
] as const;

const NAME_PATTERN = '^[a-z0-9][a-z0-9_.-]{0,62}$';
const duration = (description: string, dflt?: string): SchemaNode => ({
  type: 'string',
  description,
  ...(dflt ? { default: dflt } : {}),
  pattern: '^(\\d+(\\.\\d+)?(ms|s|m|h|d))+$',
});

const groupSchema: SchemaNode = withoutDefault({
  type: 'object',
  description: 'A fleet group: the agents whose id matches one of the patterns.',
  properties: {
    name: { type: 'string', description: 'The group name (lower case, digits, `_.-`).', pattern: NAME_PATTERN },
    agents: {
      type: 'array',
      description: 'Agent-id glob patterns (`*`, `?`).',
      items: { type: 'string', description: 'A pattern.', minLength: 1 },
      minItems: 1,
    },
  },
  required: ['name', 'agents'],
  additionalProperties: false,
});

const objectiveSchema: SchemaNode = {
  type: 'object',
  description: 'A service-level objective.',
  properties: {
    name: { type: 'string', description: 'Its name in the API, the alerts and the metrics.', pattern: NAME_PATTERN },
    sli: { type: 'string', description: 'The indicator.', enum: SLI_NAMES },
    target: { type: 'number', description: 'The share of good events aimed at, above 0 and below 1 (0.995).', minimum: 0, maximum: 1 },
    window: duration('The rolling window the target holds over (`28d`).', '28d'),
    group: { type: 'string', description: 'The fleet group it holds for (`all`: every agent).', default: 'all' },
    thresholdSeconds: {
      type: 'number',
      description: `Latency indicators: an event is good when it took at most this; one of ${LATENCY_BUCKETS_S.join(', ')}.`,
      default: 60,
    },
    description: { type: 'string', description: 'What it promises, for people.', default: '' },
  },
  required: ['name', 'sli', 'target'],
  additionalProperties: false,
};

const tierSchema: SchemaNode = {
  type: 'object',
  description: 'A burn-rate alert tier: fires when both windows burn at least `factor` times the budget rate.',
  properties: {
    name: { type: 'string', description: 'The tier name (in the alert key).', pattern: NAME_PATTERN },
    severity: { type: 'string', description: 'The alert severity.', enum: ['info', 'warning', 'critical'] },
    factor: { type: 'number', description: 'The burn rate at or above which it fires.', minimum: 0 },
    longWindow: duration('The long window (`1h`).'),
    shortWindow: duration('The short window that confirms the burn is still going on (`5m`).'),
  },
  required: ['name', 'severity', 'factor', 'longWindow', 'shortWindow'],
  additionalProperties: false,
};

export const SLO_SCHEMA: SchemaNode = {
  type: 'object',
  description: 'Service-level indicators and objectives of the fleet (docs/slo.md).',
  additionalProperties: false,
  default: {},
  properties: {
    freshness: {
      type: 'object',
      description: 'The freshness indicator.',
      additionalProperties: false,
      default: {},
      properties: {
        maxAgeSeconds: {
          type: 'number',
          description: "A minute is fresh when the asset's newest reading at central is younger than this.",
          default: 300,
          minimum: 1,
        },
      },
    },
    clockSkewToleranceSeconds: { type: 'number', description: 'Agent clock offsets estimated below this are not corrected.', default: 2, minimum: 0 },
    evaluateIntervalSeconds: { type: 'number', description: 'How often burn rates are evaluated.', default: 60, minimum: 1 },
    trendDays: { type: 'integer', description: 'Daily points in the budget trend.', default: 28, minimum: 1, maximum: 90 },
    groups: { type: 'array', description: 'Fleet groups by agent-id pattern (`all` always exists).', default: [], items: groupSchema },
    objectives: { type: 'array', description: 'The objectives.', default: [], items: objectiveSchema },
    burnRateAlerts: {
      type: 'array',
      description: 'Multi-window, multi-burn-rate alert tiers (default: 14.4× over 1h and 5m, 6× over 6h and 30m, 1× over 3d and 6h).',
      default: DEFAULT_BURN_RATE_TIERS.map((t) => ({ ...t })),
      items: tierSchema,
    },
  },
};

/** Longest window the per-minute counters serve; longer ones are read from the hourly counters. */
export const MINUTE_WINDOW_MAX_MS = 6 * 3_600_000;

function ms(raw: string): number {
  return parseWithUnit(raw, 'ms') as number;
}

/** Checks what the schema cannot: references, durations, thresholds. Returns `path: message` problems. */
function checkSlo(raw: Record<string, unknown>): string[] {
  const s = raw as unknown as SloConfig;
  const problems: string[] = [];
  const groups = new Set<string>(['all']);
  s.groups.forEach((g, i) => {
    if (groups.has(g.name)) problems.push(`slo.groups.${i}.name: "${g.name}" is ${g.name === 'all' ? 'built in' : 'defined twice'}`);
    groups.add(g.name);
  });
  const names = new Set<string>();
  s.objectives.forEach((o, i) => {
    const at = `slo.objectives.${i}`;
    if (names.has(o.name)) problems.push(`${at}.name: "${o.name}" is defined twice`);
    names.add(o.name);
    if (!(o.target > 0 && o.target < 1)) problems.push(`${at}.target: must be above 0 and below 1 (e.g. 0.995)`);
    if (!groups.has(o.group)) problems.push(`${at}.group: no group "${o.group}" (groups: ${[...groups].join(', ')})`);
    if (!LATENCY_BUCKETS_S.includes(o.thresholdSeconds))
      problems.push(`${at}.thresholdSeconds: must be one of the histogram bounds ${LATENCY_BUCKETS_S.join(', ')}`);
    o.windowMs = ms(o.window);
    if (o.windowMs < 3_600_000 || o.windowMs > 90 * 86_400_000) problems.push(`${at}.window: must be between 1h and 90d`);
  });
  const tiers = new Set<string>();
  s.burnRateAlerts.forEach((t, i) => {
    const at = `slo.burnRateAlerts.${i}`;
    if (tiers.has(t.name)) problems.push(`${at}.name: "${t.name}" is defined twice`);
    tiers.add(t.name);
    t.longWindowMs = ms(t.longWindow);
    t.shortWindowMs = ms(t.shortWindow);
    if (t.shortWindowMs >= t.longWindowMs) problems.push(`${at}.shortWindow: must be shorter than longWindow`);
    for (const k of ['longWindow', 'shortWindow'] as const) {
      const v = k === 'longWindow' ? t.longWindowMs : t.shortWindowMs;
      if (v < 60_000 || v > 30 * 86_400_000) problems.push(`${at}.${k}: must be between 1m and 30d`);
    }
  });
  return problems;
}

export const SLO_CONFIG_SECTION: CentralConfigSection = { key: 'slo', schema: SLO_SCHEMA, check: checkSlo };

/** The section with nothing configured (no objectives, the default tiers). */
export function defaultSloConfig(): SloConfig {
  return {
    freshness: { maxAgeSeconds: 300 },
    clockSkewToleranceSeconds: 2,
    evaluateIntervalSeconds: 60,
    trendDays: 28,
    groups: [],
    objectives: [],
    burnRateAlerts: DEFAULT_BURN_RATE_TIERS.map((t) => ({ ...t, longWindowMs: ms(t.longWindow), shortWindowMs: ms(t.shortWindow) })),
  };
}

/** Agent-id glob → RegExp (`*` any characters, `?` one; everything else literal). */
export function globRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
}

/** The groups an agent belongs to: `all` and each group with a matching pattern. */
export class GroupMatcher {
  private readonly groups: Array<{ name: string; res: RegExp[] }>;
  private readonly cache = new Map<string, string[]>();

  constructor(groups: readonly SloGroup[]) {
    this.groups = groups.map((g) => ({ name: g.name, res: g.agents.map(globRegExp) }));
  }

  names(): string[] {
    return ['all', ...this.groups.map((g) => g.name)];
  }

  of(agentId: string): string[] {
    let out = this.cache.get(agentId);
    if (!out) {
      out = ['all', ...this.groups.filter((g) => g.res.some((r) => r.test(agentId))).map((g) => g.name)];
      this.cache.set(agentId, out);
    }
    return out;
  }

  has(agentId: string, group: string): boolean {
    return this.of(agentId).includes(group);
  }
}
