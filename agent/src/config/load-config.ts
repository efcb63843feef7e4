import { readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { LineCounter, parseDocument, visit, type Alias, type Document } from 'yaml';
import { ForewarnError, describeError } from '../core/errors.js';
import { PACKAGE_ROOT } from '../core/package-root.js';
import { assessStorageLimits, storageDirProblem, type StorageLimitsAssessment } from '../store/storage-limits.js';
import { parseWithUnit, unitOf, type SchemaNode } from '../core/schema-node.js';
import { configSchema } from './schema.js';
import { formatSchemaError } from './schema-errors.js';
import { SOURCE_PLUGINS, type SourcesConfig } from '../sources/registry.js';

/** `quality`: the data-quality checks (health/data-quality.ts). */
export interface QualityConfig {
  enabled: boolean;
  /** A signal is stale when it has not arrived for this many of its usual intervals. */
  staleAfterIntervals: number;
  /** Identical consecutive values that make a varying signal flatlined (0 turns the check off). */
  flatlineSamples: number;
  /** A change larger than this many times the signal's usual change is a sudden step (0 turns it off). */
  stepFactor: number;
  /** Signals (glob patterns, `*` matches anything) that should vary and arrive steadily, besides model inputs: the flatline, step and stale checks apply to them. */
  analogSignals: string[];
}

/** `scoring.anomaly`: adaptive anomaly detection (scoring/anomaly/anomaly-scorer.ts). */
export interface AnomalyConfig {
  enabled: boolean;
  /** Asset names or patterns with `*`. */
  assets: string[];
  /** Signal names or patterns with `*` never modelled. */
  exclude: string[];
  falseAlarmRate: number;
  warmupSamples: number;
  halfLifeHours: number;
  /** Unflagged scores become a record at most this often (the interval's highest); 0: every one. */
  recordIntervalMs: number;
  persistIntervalMs: number;
  maxSignalsPerAsset: number;
}

/** Overrides of one alert's lifecycle (`alerts.rules.<id>`, `alerts.risk.models.<name>`). */
export interface AlertLifecycleOverride {
  forMs?: number;
  clearForMs?: number;
  /** Level rules: the value at which a raised alert clears. */
  clearValue?: number;
  /** Level rules: where a raised alert clears, as a share of the threshold. */
  hysteresis?: number;
  /** Models: the score at which a raised alert clears. */
  clearThreshold?: number;
}

/** `alerts`: the alert lifecycle (health/alert-lifecycle.ts, docs/alerts.md). */
export interface AlertsConfig {
  flapping: { maxChanges: number; windowMs: number };
  risk: { forMs: number; clearForMs: number; hysteresis: number; models: Record<string, Omit<AlertLifecycleOverride, 'clearValue' | 'hysteresis'>> };
  rules: Record<string, Omit<AlertLifecycleOverride, 'clearThreshold'>>;
}

export interface BindingConfig {
  model: string;
  assets: string[];
  signals?: Record<string, string>;
}

export interface AgentConfig {
  agent: { id: string; logLevel: string; view: 'auto' | 'on' | 'off' };
  storage: {
    dir: string;
    synchronous: 'full' | 'normal';
    commitDelayMs: number;
    ackCommitDelayMs: number;
    retentionHours: number;
    maxBytes: number;
    minFreeBytes: number;
    checkIntervalMs: number;
  };
  broker: {
    url: string;
    clientId: string;
    username: string;
    password: string;
    passwordFile: string;
    keepaliveSeconds: number;
    connectTimeoutMs: number;
    reconnectMinMs: number;
    reconnectMaxMs: number;
    batchMaxRecords: number;
    maxMessageBytes: number;
    compression: 'none' | 'gzip';
    retainCurrentRisk: boolean;
    compressMinBytes: number;
    flushIntervalMs: number;
    progressLogMs: number;
    maxInflight: number;
    /** When a record may leave the outbox: on the centre's confirmation or on the broker's PUBACK (docs/delivery.md). */
    ack: 'central' | 'broker';
    ackTimeoutMs: number;
    tls: { caFile: string; certFile: string; keyFile: string; rejectUnauthorized: boolean };
  };
  /** Each source plugin's section under its key (agent/src/sources/registry.ts). */
  sources: SourcesConfig;
  quality: QualityConfig;
  alerts: AlertsConfig;
  scoring: {
    enabled: boolean;
    modelsDir: string;
    threads: number;
    drift: { enabled: boolean; windowSize: number; minSamples: number; evaluateEvery: number; watchPsi: number; alertPsi: number; outsideShare: number };
    anomaly: AnomalyConfig;
    bindings: BindingConfig[];
    /** Safe model updates (docs/model-updates.md). */
    trustedKeys: string[];
    keepVersions: number;
    updateCheckIntervalMs: number;
    shadow: { samples: number; maxDisagreement: number; maxMeanAbsDiff: number; maxMeanAbsRulDiff: number };
  };
  /** Remote control over MQTT (docs/commands.md); `auto`: on when the agent is known to its broker (config/remote-commands.ts). */
  commands: { enabled: 'auto' | 'on' | 'off'; maxAgeSeconds: number; clockSkewSeconds: number; maxPayloadBytes: number; trustedKeys: string[] };
  /** `/metrics` and `/healthz` (docs/observability.md). */
  metrics: { enabled: boolean; host: string; port: number };
  /** The Sparkplug B edge node output (docs/sparkplug.md). */
  sparkplug: SparkplugConfig;
}

export interface SparkplugConfig {
  enabled: boolean;
  url: string;
  username: string;
  password: string;
  passwordFile: string;
  clientId: string;
  groupId: string;
  edgeNodeId: string;
  primaryHostId: string;
  units: Record<string, string>;
}

export interface LoadedConfig {
  config: Readonly<AgentConfig>;
  /** The file it came from, or null for embedded defaults. */
  file: string | null;
  /** Scalar options (`storage.minFreeBytes`) the file or the environment set; every other one is its default. */
  explicit: ReadonlySet<string>;
  /** Where each scalar option's value came from: `default`, the file's path, or the environment variable's name. */
  origins: ReadonlyMap<string, string>;
}

export const ENV_PREFIX = 'FOREWARN_';
/** `broker.tls.caFile` → `FOREWARN_BROKER_TLS_CA_FILE`. */
export function envName(configPath: string[]): string {
  return ENV_PREFIX + configPath.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

/** Every scalar option, depth first: the keys environment overrides and the docs are derived from. */
export function scalarOptions(node: SchemaNode = configSchema, at: string[] = []): Array<{ path: string[]; node: SchemaNode }> {
  if (node.type !== 'object' || !node.properties) return at.length ? [{ path: at, node }] : [];
  return Object.entries(node.properties).flatMap(([k, child]) => scalarOptions(child, [...at, k]));
}

function toAjvSchema(node: SchemaNode): object {
  // A default on the root means nothing to Ajv (strict mode says so); the sections carry their own.
  const { default: _rootDefault, ...root } = node;
  return root;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true });
ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });
const validate = ajv.compile(toAjvSchema(configSchema));

function coerce(raw: string, node: SchemaNode, key: string, name: string): unknown {
  switch (node.type) {
    case 'integer':
    case 'number': {
      const unit = unitOf(key, node);
      if (unit && raw.trim() !== '') {
        try {
          return parseWithUnit(raw, unit);
        } catch (err) {
          throw new Error(`${describeError(err)} (from ${name})`);
        }
      }
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw new Error(`must be a number (from ${name})`);
      return n;
    }
    case 'boolean':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      throw new Error(`must be true or false (from ${name})`);
    case 'array':
      try {
        return JSON.parse(raw);
      } catch {
        throw new Error(`must be a JSON array (from ${name})`);
      }
    case 'object':
      // Maps keyed by name (`alerts.rules`): JSON, as arrays are.
      try {
        return JSON.parse(raw);
      } catch {
        throw new Error(`must be a JSON object (from ${name})`);
      }
    default:
      return normalizeScalar(raw, key, node);
  }
}

const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A value as a person writes it, in the form the schema takes: a size or duration with a unit (`1GiB`, `30s`) in
 * the option's own unit, and `true`/`false` for an option whose values are `auto`/`on`/`off` (YAML habits).
 * Throws a message without the path.
 */
function normalizeScalar(value: unknown, key: string, node: SchemaNode): unknown {
  const unit = unitOf(key, node);
  if (unit) return parseWithUnit(value, unit);
  if (node.type === 'string' && node.enum?.includes('on') && node.enum.includes('off')) {
    if (value === true || value === 'true') return 'on';
    if (value === false || value === 'false') return 'off';
  }
  return value;
}

/** normalizeScalar over a whole configuration (list entries too); a value it cannot read is one `path: message` problem. */
function normalizeValues(value: unknown, node: SchemaNode, at: string[], problems: string[]): void {
  if (node.type === 'array' && node.items && Array.isArray(value)) {
    value.forEach((entry, i) => normalizeValues(entry, node.items!, [...at, String(i)], problems));
    return;
  }
  if (node.type !== 'object' || !node.properties || !isMapping(value)) return;
  for (const [key, child] of Object.entries(node.properties)) {
    if (value[key] === undefined) continue;
    if (child.type === 'object' || child.type === 'array') normalizeValues(value[key], child, [...at, key], problems);
    else {
      try {
        value[key] = normalizeScalar(value[key], key, child);
      } catch (err) {
        problems.push(`${[...at, key].join('.')}: ${describeError(err)}`);
      }
    }
  }
}

function setPath(target: Record<string, unknown>, segments: string[], value: unknown): void {
  let cur = target;
  for (const s of segments.slice(0, -1)) {
    const next = cur[s];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[s] = {};
    cur = cur[s] as Record<string, unknown>;
  }
  cur[segments[segments.length - 1]!] = value;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

function readSecretFile(file: string, option: string): string {
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new ForewarnError('FW_ERR_SECRET_READ', `${option}: cannot read ${file}: ${describeError(err)}`);
  }
}

/** Turns a host name into a valid agent id. */
export function defaultAgentId(host = hostname()): string {
  const id = host
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 64);
  return id || 'forewarn-agent';
}

/**
 * Alias expansions allowed while turning the YAML into values (the `yaml` package's own guard, made explicit):
 * a configuration needs a handful; a "billion laughs" file needs millions.
 */
const MAX_ALIAS_COUNT = 100;

/** ` at line L, column C` of an alias that names no anchor before it, for the message of an unresolved alias. */
function unresolvedAliasAt(doc: Document, lines: LineCounter): string {
  let found: Alias | undefined;
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) !== undefined) return undefined;
      found = node;
      return visit.BREAK;
    },
  });
  if (!found?.range) return '';
  const { line, col } = lines.linePos(found.range[0]);
  return ` at line ${line}, column ${col}`;
}

/** A deep copy of plain YAML values in which no object appears twice (structuredClone would keep the sharing). */
function unshare(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(unshare);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unshare(x)]));
  return v;
}

function parseYaml(yamlText: string, source: string): unknown {
  const lines = new LineCounter();
  const doc = parseDocument(yamlText, { prettyErrors: true, lineCounter: lines });
  if (doc.errors.length) {
    throw new ForewarnError('FW_ERR_CONFIG_READ', `${source}: not valid YAML`, {
      details: doc.errors.map((e) => `${source}: ${e.message.split('\n')[0]}`),
    });
  }
  try {
    // An alias is the same object as its anchor in toJS(): copied, so that defaults filled into one section
    // (`sources.gpu: *off`) never leak into the others that share the anchor.
    return unshare(doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {});
  } catch (err) {
    // An alias bomb or an alias without its anchor: a YAML error like any other, not a crash.
    const message = describeError(err);
    const where = /Unresolved alias/.test(message)
      ? unresolvedAliasAt(doc, lines)
      : /Excessive alias count/.test(message)
        ? ` (more than ${MAX_ALIAS_COUNT} alias expansions)`
        : '';
    throw new ForewarnError('FW_ERR_CONFIG_READ', `${source}: not valid YAML`, { details: [`${source}: ${message}${where}`], cause: err });
  }
}

/** Which scalar options `data` (the file, or the file with the environment applied; before defaults) sets. */
function explicitOptions(data: Record<string, unknown>): Set<string> {
  const out = new Set<string>();
  for (const { path: p } of scalarOptions()) {
    let cur: unknown = data;
    for (const s of p) cur = typeof cur === 'object' && cur !== null && !Array.isArray(cur) ? (cur as Record<string, unknown>)[s] : undefined;
    if (cur !== undefined) out.add(p.join('.'));
  }
  return out;
}

/**
 * What the host must offer for this configuration, checked at load so that `config check`, `doctor` and the agent
 * all refuse it before anything starts: a storage.dir SQLite can work in, trusted key files that exist.
 */
function hostProblems(cfg: AgentConfig): string[] {
  const problems: string[] = [];
  const dir = storageDirProblem(path.resolve(cfg.storage.dir));
  if (dir) problems.push(`storage.dir: ${dir}`);
  for (const option of ['scoring', 'commands'] as const) {
    cfg[option].trustedKeys.forEach((entry, i) => {
      try {
        statSync(path.resolve(entry));
      } catch (err) {
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        // A key the operator listed but that is not there would silently trust nobody (or fewer keys than meant).
        problems.push(`${option}.trustedKeys[${i}]: ${missing ? `${entry} does not exist` : `cannot read ${entry}: ${describeError(err)}`}`);
      }
    });
  }
  return problems;
}

/**
 * Builds the effective config from a YAML text, environment variables and defaults.
 * Throws ForewarnError FW_ERR_CONFIG_INVALID with `details` as `path: message` lines.
 */
export function buildConfig(yamlText: string | null, env: NodeJS.ProcessEnv = process.env, source = '(embedded defaults)'): AgentConfig {
  return buildConfigDetailed(yamlText, env, source).config;
}

/** buildConfig, which options the file or the environment set, and where each value came from (`LoadedConfig`). */
export function buildConfigDetailed(
  yamlText: string | null,
  env: NodeJS.ProcessEnv = process.env,
  source = '(embedded defaults)',
): { config: AgentConfig; explicit: Set<string>; origins: Map<string, string> } {
  const data = yamlText === null ? {} : parseYaml(yamlText, source);
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ForewarnError('FW_ERR_CONFIG_INVALID', `${source}: invalid configuration`, {
      details: ['(root): must be a mapping of options'],
    });
  }
  const config = data as Record<string, unknown>;
  const problems: string[] = [];
  const fromFile = explicitOptions(config);
  const fromEnv = new Map<string, string>();
  for (const { path: p, node } of scalarOptions()) {
    const name = envName(p);
    const raw = env[name];
    if (raw === undefined) continue;
    fromEnv.set(p.join('.'), name);
    try {
      setPath(config, p, coerce(raw, node, p[p.length - 1]!, name));
    } catch (err) {
      problems.push(`${p.join('.')}: ${describeError(err)}`);
    }
  }
  const explicit = explicitOptions(config);
  const origins = new Map(scalarOptions().map(({ path: p }) => [p.join('.'), fromEnv.get(p.join('.')) ?? (fromFile.has(p.join('.')) ? source : 'default')]));
  normalizeValues(config, configSchema, [], problems);
  if (!validate(config)) {
    const pathOf = (line: string) => line.slice(0, line.indexOf(': '));
    const named = new Set(problems.map(pathOf));
    for (const line of (validate.errors ?? []).map((e) => formatSchemaError(e, configSchema))) {
      // One problem per option: a value that could not be read is not also "must be integer".
      if (named.has(pathOf(line))) continue;
      // A value from the environment says so: the file alone may be fine.
      const name = fromEnv.get(pathOf(line));
      problems.push(name ? `${line} (from ${name})` : line);
    }
  }
  const cfg = config as unknown as AgentConfig;
  if (!problems.length) {
    if (cfg.broker.password && cfg.broker.passwordFile) {
      problems.push('broker.passwordFile: give either broker.password or broker.passwordFile, not both');
    }
    if (cfg.scoring.drift.alertPsi < cfg.scoring.drift.watchPsi) {
      problems.push('scoring.drift.alertPsi: must be at least scoring.drift.watchPsi');
    }
    if (cfg.scoring.drift.minSamples > cfg.scoring.drift.windowSize) {
      problems.push('scoring.drift.minSamples: must be at most scoring.drift.windowSize');
    }
    if (cfg.broker.reconnectMaxMs < cfg.broker.reconnectMinMs) {
      problems.push('broker.reconnectMaxMs: must be at least broker.reconnectMinMs');
    }
    if ((cfg.broker.tls.certFile === '') !== (cfg.broker.tls.keyFile === '')) {
      problems.push('broker.tls.keyFile: a client certificate needs both certFile and keyFile');
    }
    if (cfg.sparkplug.password && cfg.sparkplug.passwordFile) {
      problems.push('sparkplug.passwordFile: give either sparkplug.password or sparkplug.passwordFile, not both');
    }
    if (!cfg.sparkplug.url && (cfg.sparkplug.username || cfg.sparkplug.password || cfg.sparkplug.passwordFile)) {
      problems.push("sparkplug.username: credentials need sparkplug.url; with an empty url the broker's are used");
    }
    problems.push(...hostProblems(cfg));
  }
  if (problems.length) {
    throw new ForewarnError('FW_ERR_CONFIG_INVALID', `${source}: invalid configuration`, { details: [...new Set(problems)] });
  }
  if (cfg.broker.passwordFile) cfg.broker.password = readSecretFile(cfg.broker.passwordFile, 'broker.passwordFile');
  if (!cfg.agent.id) cfg.agent.id = defaultAgentId();
  if (!cfg.broker.clientId) cfg.broker.clientId = `forewarn-${cfg.agent.id}`;
  if (cfg.sparkplug.passwordFile) cfg.sparkplug.password = readSecretFile(cfg.sparkplug.passwordFile, 'sparkplug.passwordFile');
  if (!cfg.sparkplug.edgeNodeId) cfg.sparkplug.edgeNodeId = cfg.agent.id;
  if (!cfg.sparkplug.clientId) cfg.sparkplug.clientId = `forewarn-spb-${cfg.agent.id}`;
  cfg.storage.dir = path.resolve(cfg.storage.dir);
  for (const plugin of SOURCE_PLUGINS) plugin.resolve?.(cfg.sources[plugin.key], { id: cfg.agent.id, storageDir: cfg.storage.dir });
  if (!cfg.scoring.modelsDir) cfg.scoring.modelsDir = path.join(PACKAGE_ROOT, 'models');
  cfg.scoring.modelsDir = path.resolve(cfg.scoring.modelsDir);
  return { config: cfg, explicit, origins };
}

/** Loads `file` (or FOREWARN_CONFIG, or embedded defaults when neither is given). */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const chosen = file ?? env.FOREWARN_CONFIG ?? null;
  let text: string | null = null;
  if (chosen) {
    try {
      text = readFileSync(chosen, 'utf8');
    } catch (err) {
      throw new ForewarnError('FW_ERR_CONFIG_READ', `${chosen}: cannot read: ${describeError(err)}`);
    }
  }
  const { config, explicit, origins } = buildConfigDetailed(text, env, chosen ?? '(embedded defaults)');
  return { config: deepFreeze(config), file: chosen, explicit, origins };
}

/**
 * The storage limits judged against the file system under storage.dir (store/storage-limits.ts): `error`s refuse
 * the configuration in `config check` and fail `doctor`; a default floor too large for the disk is `clamped`.
 */
export function assessConfigStorage(loaded: Pick<LoadedConfig, 'config' | 'explicit'>, options: { fsBytes?: number | null } = {}): StorageLimitsAssessment {
  const { storage } = loaded.config;
  return assessStorageLimits(
    storage.dir,
    { maxBytes: storage.maxBytes, minFreeBytes: storage.minFreeBytes },
    { maxBytes: loaded.explicit.has('storage.maxBytes'), minFreeBytes: loaded.explicit.has('storage.minFreeBytes') },
    options,
  );
}

/** The config with secret values replaced, for logs and `config check`. */
export function redactConfig(cfg: AgentConfig): AgentConfig {
  const copy = structuredClone(cfg) as AgentConfig;
  for (const { path: p, node } of scalarOptions()) {
    if (!node.secret) continue;
    let cur: Record<string, unknown> = copy as unknown as Record<string, unknown>;
    for (const s of p.slice(0, -1)) cur = cur[s] as Record<string, unknown>;
    const key = p[p.length - 1]!;
    if (cur[key]) cur[key] = '[redacted]';
  }
  return copy;
}
