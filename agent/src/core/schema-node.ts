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
