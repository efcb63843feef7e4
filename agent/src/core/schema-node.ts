/**
 * One node of Forewarn's configuration schema: a JSON-Schema subset plus the `secret` extension. The type lives
 * here, not next to the schema, so that components declare their own schema pieces without importing the
 * configuration (which imports them).
 */
export interface SchemaNode {
  type: 'object' | 'string' | 'integer' | 'number' | 'boolean' | 'array';
  description: string;
  default?: unknown;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  required?: string[];
  items?: SchemaNode;
  enum?: readonly (string | number | boolean)[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  pattern?: string;
  format?: string;
  minItems?: number;
  /** Forewarn extension: never logged; `<name>File` and FOREWARN_… variables can supply it. */
  secret?: boolean;
}

/** Durations in ms: timers longer than 2^31-1 ms fire at once in Node (TimeoutOverflowWarning), so stay well under. */
export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
/** A limit on one tool run or one connection attempt. */
export const TIMEOUT_MAX_MS = 10 * 60_000;

/** An object section of the schema: closed, with its own options' defaults (an empty object by default). */
/** An integer option with its default and bounds, for the config schemas of the core and of the plugins. */
export const schemaInteger = (description: string, dflt: number, minimum: number, maximum?: number): SchemaNode => ({
  type: 'integer',
  description,
  default: dflt,
  minimum,
  ...(maximum === undefined ? {} : { maximum }),
});

export const schemaObject = (description: string, properties: Record<string, SchemaNode>): SchemaNode => ({
  type: 'object',
  description,
  properties,
  additionalProperties: false,
  default: {},
});

/** An object schema as an array item: the item itself has no default, only its options do. */
export function withoutDefault(node: SchemaNode): SchemaNode {
  const { default: _unused, ...rest } = node;
  return rest;
}

/**
 * The unit of a numeric option, from its name: `…Bytes` is a size in bytes, `…Ms`, `…Seconds`, `…Hours` a
 * duration in that unit. Such an option also takes a string with a unit (`1GiB`, `512MB`, `30s`, `5m`, `1h30m`);
 * a plain number stays in the option's own unit. The name is the one rule, so a new option gets units by its name.
 */
export type OptionUnit = 'bytes' | 'ms' | 'seconds' | 'hours';

export function unitOf(key: string, node: Pick<SchemaNode, 'type'>): OptionUnit | undefined {
  if (node.type !== 'integer' && node.type !== 'number') return undefined;
  if (/[a-z]Bytes$/.test(key)) return 'bytes';
  if (/[a-z]Ms$/.test(key)) return 'ms';
  if (/[a-z]Seconds$/.test(key)) return 'seconds';
  if (/[a-z]Hours$/.test(key)) return 'hours';
  return undefined;
}

/** Decimal (SI, as disks are sold) and binary (as memory and `ls -h` count) multiples; letter case is not significant. */
const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  pb: 1e15,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  pib: 2 ** 50,
};
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const UNIT_MS: Record<Exclude<OptionUnit, 'bytes'>, number> = { ms: 1, seconds: 1000, hours: 3_600_000 };

/** What an option with a unit accepts, for messages and the generated docs. */
export function unitHint(unit: OptionUnit): string {
  return unit === 'bytes'
    ? 'a size: bytes, or a number with B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. `512MiB`'
    : `a duration: ${unit === 'ms' ? 'milliseconds' : unit}, or numbers with ms, s, m, h, d, e.g. \`30s\`, \`5m\`, \`1h30m\``;
}

/**
 * `raw` in the option's unit. A number is returned as it is; a numeric string without a unit is that number; a
 * string with units is converted (`1GiB` → 1073741824 for bytes, `5m` → 300000 for ms). Throws a message without
 * the option's path, which the caller adds.
 */
export function parseWithUnit(raw: unknown, unit: OptionUnit): unknown {
  if (typeof raw !== 'string') return raw;
  const text = raw.trim();
  if (/^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i.test(text)) return Number(text);
  if (unit === 'bytes') {
    const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(text);
    const factor = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
    if (!m || factor === undefined) throw new Error(`${JSON.stringify(raw)} is not ${unitHint(unit)}`);
    return Math.round(Number(m[1]) * factor);
  }
  // One or more number-unit pairs, largest first as people write them: `1h30m`, `1m 30s`.
  // Lower case only, as Prometheus and Go write them (`M` would read as months to some).
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)(?![a-z])\s*/g)];
  if (!parts.length || parts.map((p) => p[0]).join('') !== text) throw new Error(`${JSON.stringify(raw)} is not ${unitHint(unit)}`);
  const ms = parts.reduce((sum, p) => sum + Number(p[1]) * DURATION_MS[p[2]!.toLowerCase()]!, 0);
  // Round away float noise (0.1h in ms), keep real fractions (500ms in seconds).
  return Number((ms / UNIT_MS[unit]).toPrecision(12));
}
