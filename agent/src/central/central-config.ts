import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { parseDocument } from 'yaml';
import { formatSchemaError } from '../config/schema-errors.js';
import { ForewarnError, describeError } from '../core/errors.js';
import type { SchemaNode } from '../core/schema-node.js';
import type { CentralConfigSection } from './central-config-section.js';
import { GPU_COST_CONFIG_SECTION } from './gpu-cost/gpu-cost-config.js';
import { SLO_CONFIG_SECTION, type SloConfig } from './slo/slo-config.js';

/**
 * Central's configuration file (`forewarn central --config FILE`, YAML): what is too structured for flags, in
 * sections that modules contribute. The command-line flags stay as they are; the file adds to them. Errors read
 * `path: message` (FW_ERR_CONFIG_INVALID), an unreadable or malformed file is FW_ERR_CONFIG_READ; both exit 2.
 */

/** Every section, one line each. */
export const CENTRAL_CONFIG_SECTIONS: readonly CentralConfigSection[] = [SLO_CONFIG_SECTION, GPU_COST_CONFIG_SECTION];

/** The file's content with every default filled in. A module reads its section by its key. */
export interface CentralConfig {
  slo: SloConfig;
  /** As the schema filled it in; gpu-cost/gpu-cost-config.ts `parseGpuCostConfig` turns it into its config. */
  gpuCost: Record<string, unknown>;
  [section: string]: unknown;
}

export function centralConfigSchema(sections: readonly CentralConfigSection[] = CENTRAL_CONFIG_SECTIONS): SchemaNode {
  return {
    type: 'object',
    description: "Central's configuration file.",
    additionalProperties: false,
    properties: Object.fromEntries(sections.map((s) => [s.key, s.schema])),
  };
}

const compiled = new WeakMap<readonly CentralConfigSection[], ReturnType<Ajv['compile']>>();

function validator(sections: readonly CentralConfigSection[]): ReturnType<Ajv['compile']> {
  let v = compiled.get(sections);
  if (!v) {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true });
    ajv.addKeyword({ keyword: 'secret', schemaType: 'boolean' });
    v = ajv.compile(centralConfigSchema(sections));
    compiled.set(sections, v);
  }
  return v;
}

/** Builds the configuration from YAML text (null: no file, every default). `source` names it in messages. */
export function buildCentralConfig(yamlText: string | null, source = '(defaults)', sections = CENTRAL_CONFIG_SECTIONS): CentralConfig {
  let data: unknown = {};
  if (yamlText !== null) {
    const doc = parseDocument(yamlText, { prettyErrors: true });
    if (doc.errors.length)
      throw new ForewarnError('FW_ERR_CONFIG_READ', `${source}: not valid YAML`, { details: doc.errors.map((e) => `${source}: ${e.message.split('\n')[0]}`) });
    try {
      data = doc.toJS({ maxAliasCount: 100 }) ?? {};
    } catch (err) {
      throw new ForewarnError('FW_ERR_CONFIG_READ', `${source}: not valid YAML`, { details: [`${source}: ${describeError(err)}`], cause: err });
    }
  }
  const invalid = (details: string[]) =>
    new ForewarnError('FW_ERR_CONFIG_INVALID', `${source}: invalid configuration:\n  ${details.join('\n  ')}`, { details });
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw invalid(['(root): must be a mapping of sections']);
  const config = data as Record<string, unknown>;
  // Ajv fills defaults only into objects that exist: every section starts as an empty mapping.
  for (const s of sections) config[s.key] ??= {};
  const validate = validator(sections);
  if (!validate(config)) throw invalid([...new Set((validate.errors ?? []).map((e) => formatSchemaError(e, centralConfigSchema(sections))))]);
  const problems = sections.flatMap((s) => s.check?.(config[s.key] as Record<string, unknown>) ?? []);
  if (problems.length) throw invalid(problems);
  return config as CentralConfig;
}

/** Reads and builds the file; FW_ERR_CONFIG_READ when it cannot be read. */
export function loadCentralConfig(file: string, sections = CENTRAL_CONFIG_SECTIONS): CentralConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ForewarnError('FW_ERR_CONFIG_READ', `--config ${file}: cannot read it: ${describeError(err)}`, { cause: err });
  }
  return buildCentralConfig(text, file, sections);
}
