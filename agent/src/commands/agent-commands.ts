import type { Logger } from '../core/logger.js';
import { loadConfig, redactConfig, type AgentConfig } from '../config/load-config.js';
import { ForewarnError, describeError } from '../core/errors.js';
import type { AgentView } from '../snapshot/agent-view.js';
import type { CommandHost } from './command-handler.js';

/** Largest `diagnostics` reply, in bytes of JSON: what does not fit is cut, recent errors first. */
export const DIAGNOSTICS_MAX_BYTES = 256 * 1024;

/** Options that `reload-config` applies to the running agent; every other change needs a restart. */
const LIVE_OPTIONS = new Set(['agent.logLevel', 'commands.trustedKeys']);

export interface AgentCommandState {
  /** The log level now (changed by set-log-level or reload-config). */
  logLevel: string;
  /** commands.trustedKeys now (changed by reload-config). */
  trustedKeys: readonly string[];
}

/** Paths of the scalar (and array) options that differ between two configurations. */
export function changedOptions(a: unknown, b: unknown, at: string[] = []): string[] {
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].sort().flatMap((k) => changedOptions((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], [...at, k]));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [at.join('.')];
}

/** The commands' view of a running agent (docs/commands.md). */
export function agentCommandHost(
  agent: AgentView,
  root: Logger,
  state: AgentCommandState,
  configFile: string | null,
  agentVersion: string,
  recentLog: () => ReadonlyArray<Record<string, unknown>> = () => [],
  /** The daemon's reload path (pipeline/agent-runner.ts), shared with SIGHUP; without it only live options apply. */
  reload?: () => unknown,
): CommandHost {
  let config: Readonly<AgentConfig> = agent.config;
  const status = () => {
    const health = agent.drift?.health() ?? [];
    return {
      agentId: agent.config.agent.id,
      agentVersion,
      bootSeq: agent.stats.bootSeq,
      startedAt: agent.stats.startedAt,
      logLevel: state.logLevel,
      broker: {
        state: agent.sync.stats.state,
        since: agent.sync.stats.since,
        sent: agent.sync.stats.sent,
        rejected: agent.sync.stats.rejected,
        reconnects: agent.sync.stats.reconnects,
        inflight: agent.sync.stats.inflight,
        lastError: agent.sync.stats.lastError,
      },
      drain: { pending: agent.store.pendingTotal(), rate: agent.sync.progress.rate() },
      streams: agent.store.counts(),
      collected: agent.stats.collected,
      scored: agent.stats.scoredRecords,
      dropped: agent.stats.dropped,
      lost: agent.stats.lost,
      storageErrors: agent.stats.storageErrors,
      models: (agent.scorer?.stats.models ?? []).map((m) => ({
        ...m,
        health: health.filter((h) => h.model === m.name).map(({ model: _m, version: _v, ...rest }) => rest),
      })),
      shadowing: agent.models?.shadowing() ?? [],
      sources: agent.sources.map(({ stats }) => ({
        name: stats.name,
        state: stats.state,
        samples: stats.samples,
        errors: stats.errors,
        lastError: stats.lastError,
      })),
    };
  };
  return {
    status,
    flush: () => {
      agent.sync.notify();
      return { pending: agent.store.pendingTotal(), broker: agent.sync.stats.state, inflight: agent.sync.stats.inflight };
    },
    setLogLevel: (level) => {
      const previous = state.logLevel;
      // Said before the change, so it is seen whether the level goes up or down.
      root.info({ level, previous }, 'log level changed by a remote command');
      root.level = level;
      state.logLevel = level;
      return { level, previous };
    },
    reloadConfig: () => {
      if (reload) return reload();
      if (!configFile)
        throw new ForewarnError('FW_ERR_COMMAND_FAILED', 'the agent runs without a configuration file (embedded defaults); there is nothing to reload');
      // Invalid files throw FW_ERR_CONFIG_INVALID / FW_ERR_CONFIG_READ: replied with that code, nothing changes.
      const next = loadConfig(configFile).config;
      const changed = changedOptions(redactConfig(config as AgentConfig), redactConfig(next as AgentConfig));
      const applied = changed.filter((p) => LIVE_OPTIONS.has(p));
      const restartNeeded = changed.filter((p) => !LIVE_OPTIONS.has(p));
      if (next.agent.logLevel !== state.logLevel) {
        root.level = next.agent.logLevel;
        state.logLevel = next.agent.logLevel;
        if (!applied.includes('agent.logLevel')) applied.push('agent.logLevel');
      }
      state.trustedKeys = next.commands.trustedKeys;
      config = next;
      root.info({ file: configFile, applied, restartNeeded }, 'configuration reloaded by a remote command');
      return { file: configFile, applied, restartNeeded };
    },
    diagnostics: (recentErrors) => {
      const bundle = {
        agentId: agent.config.agent.id,
        ts: Date.now(),
        versions: { agent: agentVersion, node: process.versions.node, modules: process.versions.modules, platform: process.platform, arch: process.arch },
        process: { pid: process.pid, uptimeS: Math.round(process.uptime()), rssBytes: process.memoryUsage().rss },
        config: redactConfig(config as AgentConfig),
        configFile,
        stats: status(),
        storage: safe(() => agent.store.usage()),
        recentErrors: [...recentErrors, ...recentLog()].slice(-50),
      };
      return bounded(bundle);
    },
    installModel: async (bundle, options) => {
      if (!agent.models)
        throw new ForewarnError('FW_ERR_COMMAND_FAILED', 'scoring is disabled on this agent (scoring.enabled: false): no model can be installed');
      const r = await agent.models.install(bundle, options);
      return {
        model: r.model,
        version: r.version,
        keyId: r.keyId,
        outcome: r.outcome,
        currentVersion: r.currentVersion,
        superseded: r.superseded,
        unchanged: r.unchanged,
        golden: r.golden,
      };
    },
  };
}

function safe<T>(f: () => T): T | { error: string } {
  try {
    return f();
  } catch (err) {
    return { error: describeError(err) };
  }
}

/** Cuts the bundle under DIAGNOSTICS_MAX_BYTES: recent errors first, then the per-stream detail, then the config. */
function bounded<T extends { recentErrors: unknown[]; stats: { streams?: unknown }; config?: unknown }>(b: T): T & { truncated?: boolean } {
  const size = () => Buffer.byteLength(JSON.stringify(b));
  if (size() <= DIAGNOSTICS_MAX_BYTES) return b;
  const out = b as T & { truncated?: boolean };
  out.truncated = true;
  while (out.recentErrors.length && size() > DIAGNOSTICS_MAX_BYTES) out.recentErrors.shift();
  if (size() > DIAGNOSTICS_MAX_BYTES) delete out.stats.streams;
  if (size() > DIAGNOSTICS_MAX_BYTES) delete out.config;
  return out;
}
