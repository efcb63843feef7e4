/**
 * The source plugin contract. A source is one folder under agent/src/sources/ with a `plugin.ts` that exports one
 * `SourcePlugin`, and one line in registry.ts. Everything else reads the registry and names no source:
 * - the configuration schema puts each plugin's `schema` under `sources.<key>` (defaults and descriptions there,
 *   so docs/configuration.md documents it), and `AgentConfig['sources']` is typed from the plugins;
 * - the agent calls `create` with the plugin's piece of the configuration and starts and stops what it returns
 *   (the `Component` lifecycle: constructed without side effects, `start()` returns fast, `stop()` flushes);
 * - `forewarn doctor` shows what `probe` finds (what is there, what is missing, and the fix).
 */
import type { Logger } from '../core/logger.js';
import type { SchemaNode } from '../core/schema-node.js';
import type { Component, EventSink, ReadingSink } from '../core/types.js';
import type { SourceCounters, SourceStats } from './interval-source.js';

/** What the agent needs of every source: the lifecycle and the counters the view and status show. */
export type Source = Component & {
  readonly stats: SourceStats;
  readonly counters?: SourceCounters;
  /** A sample in flight whose readings are still to come (polled sources): the store waits for them to commit. */
  readonly sampling?: boolean;
};

/** What a plugin's sources are given to work with. */
export interface SourceContext {
  /** Where readings go. A source never throws into the agent. */
  readonly sink: ReadingSink;
  /** Where discrete events go (a GPU Xid, a BMC SEL entry); health rules turn them into alerts. */
  readonly events: EventSink;
  readonly log: Logger;
  /** `agent.id`: the asset of host-wide readings (memory controllers, PCIe devices, the BMC). */
  readonly agentId: string;
}

export type ProbeStatus = 'ok' | 'warn' | 'fail';

/** One line of `forewarn doctor`: named `sources.<key>…`, with what to do about a warn or fail. */
export interface ProbeCheck {
  name: string;
  status: ProbeStatus;
  message: string;
  fix?: string;
}

export interface SourcePlugin<K extends string = string, C = unknown> {
  /** The key under `sources` in the configuration, e.g. `gpu` for `sources.gpu`. */
  readonly key: K;
  /** Its piece of the configuration schema: every option with a default and a description. */
  readonly schema: SchemaNode;
  /**
   * Fills defaults that depend on the rest of the configuration, once it is valid (e.g. an empty asset, a folder
   * under the storage directory), and checks what the schema cannot: throws FW_ERR_CONFIG_INVALID with
   * `path: message` details.
   */
  resolve?(config: C, agent: { id: string; storageDir: string }): void;
  /** The sources this configuration asks for (none when disabled). No side effects: `start()` does the work. */
  create(config: C, context: SourceContext): Source[];
  /** For `forewarn doctor`: what this host offers the source. Reads only; never throws. Nothing when disabled. */
  probe?(config: C): Promise<ProbeCheck[]>;
}

/** Declares a plugin, keeping its key and configuration type for the registry's types. */
export function defineSource<K extends string, C>(plugin: SourcePlugin<K, C>): SourcePlugin<K, C> {
  return plugin;
}

export const probeOk = (name: string, message: string): ProbeCheck => ({ name, status: 'ok', message });
export const probeWarn = (name: string, message: string, fix: string): ProbeCheck => ({ name, status: 'warn', message, fix });
export const probeFail = (name: string, message: string, fix: string): ProbeCheck => ({ name, status: 'fail', message, fix });
