/**
 * The source registry: every source plugin, in the order the configuration documents them and the agent starts
 * them. Adding a source: one folder under agent/src/sources/ with its plugin.ts and README.md, and one line here.
 */
import { schemaObject, type SchemaNode } from '../core/schema-node.js';
import type { SourcePlugin } from './plugin.js';
import { hostPlugin } from './host/plugin.js';
import { simulatorPlugin } from './simulator/plugin.js';
import { modbusPlugin } from './modbus/plugin.js';
import { nodeStreamPlugin } from './node-stream/plugin.js';
import { gpuPlugin } from './gpu/plugin.js';
import { smartPlugin } from './smart/plugin.js';
import { edacPlugin } from './edac/plugin.js';
import { pcieAerPlugin } from './pcie-aer/plugin.js';
import { ipmiPlugin } from './ipmi/plugin.js';
import { opcuaPlugin } from './opcua/plugin.js';

const PLUGINS = [
  hostPlugin,
  simulatorPlugin,
  modbusPlugin,
  nodeStreamPlugin,
  gpuPlugin,
  smartPlugin,
  edacPlugin,
  pcieAerPlugin,
  ipmiPlugin,
  opcuaPlugin,
] as const;

type RegisteredPlugin = (typeof PLUGINS)[number];

/** `AgentConfig['sources']`: each plugin's configuration under its key. */
export type SourcesConfig = { [P in RegisteredPlugin as P['key']]: P extends SourcePlugin<string, infer C> ? C : never };

/**
 * The plugins as the agent, the configuration and `doctor` iterate them: each takes the piece of `SourcesConfig`
 * under its own key (the registry's types keep the two matched).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each plugin takes its own piece; see SourcesConfig
export const SOURCE_PLUGINS: ReadonlyArray<SourcePlugin<keyof SourcesConfig, any>> = PLUGINS;

/** The `sources` section of the configuration schema. */
export const SOURCES_SCHEMA: SchemaNode = schemaObject('Telemetry sources', Object.fromEntries(PLUGINS.map((p) => [p.key, p.schema])));
