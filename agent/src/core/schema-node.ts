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
