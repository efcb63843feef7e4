import type { SchemaNode } from '../core/schema-node.js';

/**
 * A section of central's configuration file (`forewarn central --config FILE`), contributed by the module that
 * reads it: its key, its schema (defaults, bounds, descriptions) and the checks a schema cannot express.
 * central-config.ts lists the sections.
 */
export interface CentralConfigSection {
  /** The top-level key in the file, e.g. `slo`. */
  key: string;
  schema: SchemaNode;
  /**
   * Checks after the schema's (references between entries, durations, bounds that depend on each other) on the
   * section with its defaults filled in; may complete it (e.g. parsed durations). Returns `path: message` lines.
   */
  check?(section: Record<string, unknown>): string[];
}
