import { ForewarnError } from '../../core/errors.js';
import type { SchemaNode } from '../../core/schema-node.js';
import { XID_CATALOG } from '../../sources/gpu/nvidia-smi-parsers.js';
import { MetricPatterns } from '../fleet/metric-patterns.js';

/**
 * The `gpuCost` section of central's configuration file (docs/gpu-cost.md, "Configuration"): what a GPU hour and a
 * kWh cost, which model each GPU is, the fleet groups, the bounds below which a GPU counts as idle, and the alert
 * limits. `parseGpuCostConfig` checks a section as read from YAML and answers a frozen config or throws a
 * `gpuCost.path: message` error (FW_ERR_CONFIG_INVALID) that names every bad option at once.
 *
 * Telemetry carries numbers only, so no GPU model name reaches central: `gpus` says which agents (and which of
 * their GPUs, by asset `gpu-<PCI bus id>`) hold which model, first match wins; a GPU no rule matches is model
 * `unknown` and priced at `unknownModelPricePerHour`.
 */

export interface GpuModelPrice {
  /** What one hour of this GPU costs (owned: amortisation; rented: the hourly rate), in `currency`. */
  pricePerHour: number;
}

export interface GpuAssignment {
  /** Agent id globs (`*` any run of characters, `?` one). */
  agents: readonly string[];
  /** Asset globs (`gpu-0000:18:00.0`); default every GPU of the agent. */
  assets: readonly string[];
  model: string;
}

export interface GpuGroup {
  name: string;
  agents: readonly string[];
}

export interface GpuCostConfig {
  currency: string;
  pricePerKwh: number;
  models: Readonly<Record<string, GpuModelPrice>>;
  unknownModelPricePerHour: number;
  gpus: readonly GpuAssignment[];
  groups: readonly GpuGroup[];
  idle: {
    /** A sample is idle when `gpu.utilization_pct` is below this … */
    utilizationPct: number;
    /** … and `gpu.memory.used_bytes` is below this share of `gpu.memory.total_bytes` (percent). */
    memoryPct: number;
  };
  /** Two samples of a GPU further apart than this are a gap: the interval is neither classified nor integrated. */
  maxGapMs: number;
  /** How long one fatal Xid makes the GPU unavailable (drain, reset, requeue), unless lost or reset-required say longer. */
  xidDowntimeMs: number;
  /** The Xid codes counted as failures that take the GPU out of service. */
  downtimeXids: readonly number[];
  alerts: {
    /** Raise `gpu-idle` when a GPU has been idle this long without a break. */
    idleForMs: number;
    downtime: {
      /** Raise `gpu-downtime-cost` for the GPUs whose downtime cost most over this window … */
      windowMs: number;
      /** … at most this many … */
      top: number;
      /** … and only those whose downtime cost at least this much in the window. */
      minCost: number;
    };
  };
}

/** Critical Xids of the catalogue (docs/alerts.md "Xid codes") but 154, which only reports a recovery action changing. */
export const DEFAULT_DOWNTIME_XIDS: readonly number[] = Object.entries(XID_CATALOG)
  .filter(([code, info]) => info.severity === 'critical' && Number(code) !== 154)
  .map(([code]) => Number(code))
  .sort((a, b) => a - b);

export const GPU_COST_DEFAULTS: GpuCostConfig = deepFreeze({
  currency: 'USD',
  pricePerKwh: 0,
  models: {},
  unknownModelPricePerHour: 0,
  gpus: [],
  groups: [],
  idle: { utilizationPct: 5, memoryPct: 5 },
  maxGapMs: 15 * 60_000,
  xidDowntimeMs: 10 * 60_000,
  downtimeXids: DEFAULT_DOWNTIME_XIDS,
  alerts: { idleForMs: 2 * 3_600_000, downtime: { windowMs: 7 * 86_400_000, top: 5, minCost: 0 } },
});

const num = (description: string, dflt: number, minimum = 0, maximum?: number): SchemaNode => ({
  type: 'number',
  description,
  default: dflt,
  minimum,
  ...(maximum === undefined ? {} : { maximum }),
});
const globs = (description: string): SchemaNode => ({ type: 'array', description, items: { type: 'string', description: 'a glob', minLength: 1 } });

/** The section's schema, for the configuration loader's registry and its generated docs. */
export const GPU_COST_SCHEMA: SchemaNode = {
  type: 'object',
  description: 'GPU cost: prices, GPU models, fleet groups, idle bounds and alert limits (docs/gpu-cost.md)',
  additionalProperties: false,
  default: {},
  properties: {
    currency: { type: 'string', description: 'The currency of every price, as printed in reports', default: 'USD', minLength: 1 },
    pricePerKwh: num('Energy price per kWh', 0),
    models: {
      type: 'object',
      description: 'Price per GPU model: { NAME: { pricePerHour } }',
      default: {},
      additionalProperties: {
        type: 'object',
        description: 'One GPU model',
        additionalProperties: false,
        required: ['pricePerHour'],
        properties: { pricePerHour: num('What one hour of this GPU costs', 0) },
      },
    },
    unknownModelPricePerHour: num('Price per hour of a GPU that no `gpus` rule names', 0),
    gpus: {
      type: 'array',
      description: 'Which GPUs are which model (first match wins): [{ agents: [GLOB], assets?: [GLOB], model }]',
      default: [],
      items: {
        type: 'object',
        description: 'One assignment',
        additionalProperties: false,
        required: ['agents', 'model'],
        properties: {
          agents: globs('Agent ids'),
          assets: globs('GPU assets (gpu-<bus id>); default all'),
          model: { type: 'string', description: 'A key of `models`' },
        },
      },
    },
    groups: {
      type: 'array',
      description: 'Fleet groups by agent glob (first match wins; others are `ungrouped`): [{ name, agents: [GLOB] }]',
      default: [],
      items: {
        type: 'object',
        description: 'One group',
        additionalProperties: false,
        required: ['name', 'agents'],
        properties: { name: { type: 'string', description: 'Group name', minLength: 1 }, agents: globs('Agent ids') },
      },
    },
    idle: {
      type: 'object',
      description: 'A sample is idle when both readings are below these bounds',
      additionalProperties: false,
      default: {},
      properties: { utilizationPct: num('GPU utilisation, percent', 5, 0, 100), memoryPct: num('Memory used, percent of total', 5, 0, 100) },
    },
    maxGapMinutes: num('Samples of a GPU further apart are a gap (not classified, not integrated), minutes', 15, 0.001),
    xidDowntimeMinutes: num('Downtime one fatal Xid costs at least, minutes', 10),
    downtimeXids: {
      type: 'array',
      description: 'Xid codes that take a GPU out of service',
      default: DEFAULT_DOWNTIME_XIDS,
      items: { type: 'integer', description: 'An Xid code', minimum: 1 },
    },
    alerts: {
      type: 'object',
      description: 'GPU cost alerts',
      additionalProperties: false,
      default: {},
      properties: {
        idleForHours: num('Raise gpu-idle after a GPU is idle this many hours', 2, 0.001),
        downtime: {
          type: 'object',
          description: 'gpu-downtime-cost: the GPUs whose failures cost most',
          additionalProperties: false,
          default: {},
          properties: {
            windowHours: num('Over this many hours', 168, 1),
            top: { type: 'integer', description: 'At most this many GPUs', default: 5, minimum: 1, maximum: 1000 },
            minCost: num('Only GPUs whose downtime cost at least this', 0),
          },
        },
      },
    },
  },
};

/** Checks `raw` (the section as read from YAML; undefined: all defaults). Throws FW_ERR_CONFIG_INVALID listing every problem. */
export function parseGpuCostConfig(raw: unknown, at = 'gpuCost'): GpuCostConfig {
  const problems: string[] = [];
  const bad = (path: string, message: string) => problems.push(`${path}: ${message}`);
  const section = raw === undefined || raw === null ? {} : raw;
  if (!isObject(section)) throw invalid([`${at}: must be a mapping, got ${kind(section)}`]);
  closed(section, at, GPU_COST_SCHEMA, bad);

  const number = (obj: Record<string, unknown>, key: string, path: string, dflt: number, min: number, max = Infinity): number => {
    const v = obj[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) return (bad(`${path}.${key}`, `must be a number, got ${kind(v)}`), dflt);
    if (v < min || v > max) return (bad(`${path}.${key}`, `must be from ${min} to ${max === Infinity ? '∞' : max}, got ${v}`), dflt);
    return v;
  };
  const globList = (obj: Record<string, unknown>, key: string, path: string, required: boolean): string[] => {
    const v = obj[key];
    if (v === undefined) return (required && bad(`${path}.${key}`, 'required'), required ? [] : ['*']);
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list) || !list.length || list.some((g) => typeof g !== 'string' || !g))
      return (bad(`${path}.${key}`, 'must be a glob or a non-empty list of globs'), []);
    return list as string[];
  };

  const currency = section.currency === undefined ? GPU_COST_DEFAULTS.currency : section.currency;
  if (typeof currency !== 'string' || !currency) bad(`${at}.currency`, 'must be a non-empty string');

  const models: Record<string, GpuModelPrice> = {};
  if (section.models !== undefined) {
    if (!isObject(section.models)) bad(`${at}.models`, `must be a mapping of model name to { pricePerHour }, got ${kind(section.models)}`);
    else
      for (const [name, m] of Object.entries(section.models)) {
        const p = `${at}.models.${name}`;
        if (!isObject(m)) {
          bad(p, `must be { pricePerHour }, got ${kind(m)}`);
          continue;
        }
        closed(m, p, GPU_COST_SCHEMA.properties!.models!.additionalProperties as SchemaNode, bad);
        if (m.pricePerHour === undefined) bad(`${p}.pricePerHour`, 'required');
        models[name] = { pricePerHour: number(m, 'pricePerHour', p, 0, 0) };
      }
  }

  const gpus: GpuAssignment[] = [];
  list(section.gpus, `${at}.gpus`, bad).forEach((g, i) => {
    const p = `${at}.gpus[${i}]`;
    if (!isObject(g)) return bad(p, `must be { agents, assets?, model }, got ${kind(g)}`);
    closed(g, p, GPU_COST_SCHEMA.properties!.gpus!.items!, bad);
    const model = g.model;
    if (typeof model !== 'string' || !model) bad(`${p}.model`, 'required: a model name');
    else if (!(model in models)) bad(`${p}.model`, `"${model}" has no price in ${at}.models (known: ${Object.keys(models).join(', ') || 'none'})`);
    gpus.push({ agents: globList(g, 'agents', p, true), assets: globList(g, 'assets', p, false), model: typeof model === 'string' ? model : '' });
  });

  const groups: GpuGroup[] = [];
  const names = new Set<string>();
  list(section.groups, `${at}.groups`, bad).forEach((g, i) => {
    const p = `${at}.groups[${i}]`;
    if (!isObject(g)) return bad(p, `must be { name, agents }, got ${kind(g)}`);
    closed(g, p, GPU_COST_SCHEMA.properties!.groups!.items!, bad);
    const name = g.name;
    if (typeof name !== 'string' || !name) bad(`${p}.name`, 'required: a group name');
    else if (names.has(name)) bad(`${p}.name`, `"${name}" is defined twice`);
    else if (name === UNGROUPED) bad(`${p}.name`, `"${UNGROUPED}" is reserved for agents no group matches`);
    if (typeof name === 'string') names.add(name);
    groups.push({ name: typeof name === 'string' ? name : '', agents: globList(g, 'agents', p, true) });
  });

  const idleRaw = section.idle === undefined ? {} : section.idle;
  if (!isObject(idleRaw)) bad(`${at}.idle`, `must be a mapping, got ${kind(idleRaw)}`);
  const idleObj = isObject(idleRaw) ? idleRaw : {};
  if (isObject(idleRaw)) closed(idleRaw, `${at}.idle`, GPU_COST_SCHEMA.properties!.idle!, bad);

  const downtimeXids = section.downtimeXids === undefined ? DEFAULT_DOWNTIME_XIDS : section.downtimeXids;
  if (!Array.isArray(downtimeXids) || downtimeXids.some((c) => !Number.isSafeInteger(c) || (c as number) < 1))
    bad(`${at}.downtimeXids`, 'must be a list of Xid codes (positive integers)');

  const alertsRaw = section.alerts === undefined ? {} : section.alerts;
  if (!isObject(alertsRaw)) bad(`${at}.alerts`, `must be a mapping, got ${kind(alertsRaw)}`);
  const alertsObj = isObject(alertsRaw) ? alertsRaw : {};
  if (isObject(alertsRaw)) closed(alertsRaw, `${at}.alerts`, GPU_COST_SCHEMA.properties!.alerts!, bad);
  const downRaw = alertsObj.downtime === undefined ? {} : alertsObj.downtime;
  if (!isObject(downRaw)) bad(`${at}.alerts.downtime`, `must be a mapping, got ${kind(downRaw)}`);
  const downObj = isObject(downRaw) ? downRaw : {};
  if (isObject(downRaw)) closed(downRaw, `${at}.alerts.downtime`, GPU_COST_SCHEMA.properties!.alerts!.properties!.downtime!, bad);
  const top = number(downObj, 'top', `${at}.alerts.downtime`, GPU_COST_DEFAULTS.alerts.downtime.top, 1, 1000);
  if (!Number.isInteger(top)) bad(`${at}.alerts.downtime.top`, `must be an integer, got ${top}`);

  const config: GpuCostConfig = {
    currency: typeof currency === 'string' ? currency : GPU_COST_DEFAULTS.currency,
    pricePerKwh: number(section, 'pricePerKwh', at, 0, 0),
    models,
    unknownModelPricePerHour: number(section, 'unknownModelPricePerHour', at, 0, 0),
    gpus,
    groups,
    idle: {
      utilizationPct: number(idleObj, 'utilizationPct', `${at}.idle`, GPU_COST_DEFAULTS.idle.utilizationPct, 0, 100),
      memoryPct: number(idleObj, 'memoryPct', `${at}.idle`, GPU_COST_DEFAULTS.idle.memoryPct, 0, 100),
    },
    maxGapMs: Math.round(number(section, 'maxGapMinutes', at, 15, 0.001) * MINUTE_MS),
    xidDowntimeMs: Math.round(number(section, 'xidDowntimeMinutes', at, 10, 0) * MINUTE_MS),
    downtimeXids: Array.isArray(downtimeXids) ? [...new Set(downtimeXids as number[])].sort((a, b) => a - b) : DEFAULT_DOWNTIME_XIDS,
    alerts: {
      idleForMs: Math.round(number(alertsObj, 'idleForHours', `${at}.alerts`, 2, 0.001) * HOUR_MS),
      downtime: {
        windowMs: Math.round(number(downObj, 'windowHours', `${at}.alerts.downtime`, 168, 1) * HOUR_MS),
        top,
        minCost: number(downObj, 'minCost', `${at}.alerts.downtime`, 0, 0),
      },
    },
  };
  if (problems.length) throw invalid(problems);
  return deepFreeze(config);
}

export const UNGROUPED = 'ungrouped';
const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
export const UNKNOWN_MODEL = 'unknown';

/** Which group, model and hourly price a GPU has under a config; answers cached per (agent, asset). */
export class GpuCatalog {
  private readonly groups: Array<{ name: string; match: MetricPatterns }>;
  private readonly gpus: Array<{ agents: MetricPatterns; assets: MetricPatterns; model: string }>;
  private readonly cache = new Map<string, { group: string; model: string; pricePerHour: number }>();

  constructor(readonly config: GpuCostConfig) {
    this.groups = config.groups.map((g) => ({ name: g.name, match: new MetricPatterns(g.agents) }));
    this.gpus = config.gpus.map((g) => ({ agents: new MetricPatterns(g.agents), assets: new MetricPatterns(g.assets), model: g.model }));
  }

  of(agentId: string, asset: string): { group: string; model: string; pricePerHour: number } {
    const key = `${agentId}\u0000${asset}`;
    let hit = this.cache.get(key);
    if (!hit) {
      const group = this.groups.find((g) => g.match.matches(agentId))?.name ?? UNGROUPED;
      const model = this.gpus.find((g) => g.agents.matches(agentId) && g.assets.matches(asset))?.model ?? UNKNOWN_MODEL;
      const pricePerHour = this.config.models[model]?.pricePerHour ?? this.config.unknownModelPricePerHour;
      hit = { group, model, pricePerHour };
      if (this.cache.size < 100_000) this.cache.set(key, hit);
    }
    return hit;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kind(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : `${typeof v} ${JSON.stringify(v)}`;
}

function list(v: unknown, path: string, bad: (p: string, m: string) => void): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) return (bad(path, `must be a list, got ${kind(v)}`), []);
  return v;
}

/** Unknown keys are errors (a misspelt option must not silently fall back to its default). */
function closed(obj: Record<string, unknown>, path: string, schema: SchemaNode, bad: (p: string, m: string) => void): void {
  const known = Object.keys(schema.properties ?? {});
  for (const key of Object.keys(obj)) if (!known.includes(key)) bad(`${path}.${key}`, `unknown option (known: ${known.join(', ')})`);
}

function invalid(problems: string[]): ForewarnError {
  return new ForewarnError('FW_ERR_CONFIG_INVALID', problems.join('\n'));
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/**
 * The section as central's configuration file registers it (`{ key, schema, check }`): the schema gives the
 * structure, defaults and bounds; `check` runs the same parser as everything else, for the rules a schema cannot
 * express (a GPU assigned a model without a price, a group defined twice).
 */
export const GPU_COST_CONFIG_SECTION = {
  key: 'gpuCost',
  schema: GPU_COST_SCHEMA,
  check(section: Record<string, unknown>): string[] {
    try {
      parseGpuCostConfig(section);
      return [];
    } catch (err) {
      return err instanceof ForewarnError ? err.message.split('\n') : [String(err)];
    }
  },
};
