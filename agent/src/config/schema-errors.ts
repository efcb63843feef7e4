import type { ErrorObject } from 'ajv';
import type { SchemaNode } from '../core/schema-node.js';

/**
 * One Ajv error as `path: message`, the form every configuration error takes (the agent's file and central's):
 * dotted paths, `(root)` for the top, unknown and missing options named, a pattern explained by the option's
 * description (or as a duration) instead of the bare regular expression.
 */
export function formatSchemaError(e: ErrorObject, root: SchemaNode): string {
  const base = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const at = (segments: string[]) => (segments.length ? segments.join('.') : '(root)');
  switch (e.keyword) {
    case 'additionalProperties':
      return `${at([...base, String((e.params as { additionalProperty: string }).additionalProperty)])}: unknown option`;
    case 'required':
      return `${at([...base, String((e.params as { missingProperty: string }).missingProperty)])}: is required`;
    case 'enum':
      return `${at(base)}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'pattern': {
      const pattern = (e.params as { pattern: string }).pattern;
      if (pattern.includes('(ms|s|m|h|d)')) return `${at(base)}: must be a duration such as 30m, 6h or 28d`;
      // The description's first sentence (a `.` inside `scoring.modelsDir` does not end it).
      return `${at(base)}: ${nodeAt(root, base)?.description.split(/\.(?:\s|$)/)[0] ?? 'invalid value'} (must match ${pattern})`;
    }
    default:
      return `${at(base)}: ${e.message ?? 'is invalid'}`;
  }
}

function nodeAt(root: SchemaNode, segments: string[]): SchemaNode | undefined {
  let node: SchemaNode | undefined = root;
  for (const s of segments) {
    if (!node) return undefined;
    if (node.type === 'array') node = node.items;
    else node = node.properties?.[s];
  }
  return node;
}
