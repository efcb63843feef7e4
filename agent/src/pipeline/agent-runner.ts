/**
 * Runs the daemon's pipeline and reloads it in-process (SIGHUP, or the signed `reload-config` command; both take
 * this one path). A reload validates the file with the same loader and environment overrides as `run`; a bad
 * file changes nothing. A good one replaces the pipeline: the running one stops as on SIGTERM (intake first, the
 * queued records committed, the sync draining what it can) but keeps the outbox open, and a new one starts from
 * the new configuration with the same outbox, counters and boot number. Nothing committed is touched, and the
 * new sync goes on from the outbox where the old one stopped. Storage options need a process restart
 * (RESTART_ONLY): they are kept as they are, and named in the log and the reply.
 */
import type { Logger } from '../core/logger.js';
import { loadConfig, type AgentConfig, type LoadedConfig } from '../config/load-config.js';
import { assertAlertConfig } from '../health/alert-lifecycle.js';
import { ForewarnError, describeError, isForewarnError } from '../core/errors.js';
import { changedOptions } from '../commands/agent-commands.js';
import { Agent } from './agent.js';

/** Options that a reload cannot apply: the outbox stays open across it, and the live view belongs to the terminal. */
const RESTART_ONLY = [/^storage\./, /^agent\.view$/];
/** Options applied without restarting the pipeline. */
const LIVE_ONLY = new Set(['agent.logLevel']);

export const isRestartOnly = (option: string): boolean => RESTART_ONLY.some((re) => re.test(option));

export type ReloadTrigger = 'SIGHUP' | 'command';

export interface ReloadResult {
  file: string;
  /** Options that changed and now apply. */
  applied: string[];
  /** Options that changed in the file but keep their running value until the agent restarts. */
  restartNeeded: string[];
  /** Whether the pipeline is being replaced (false when only live options or nothing changed). */
  pipelineRestart: boolean;
}

export interface AgentRunnerHooks {
  /** Before the running pipeline stops for a reload (systemd RELOADING=1). */
  onReloading?: () => void;
  /** The new pipeline runs (the live view follows it; systemd READY=1). */
  onReloaded?: (agent: Agent) => void;
  /** The environment the configuration is read with (FOREWARN_* overrides): the same as at start. */
  env?: NodeJS.ProcessEnv;
}

export class AgentRunner {
  private current: Agent;
  private config: Readonly<AgentConfig>;
  private readonly file: string | null;
  /** The reloads in progress, one after the other. */
  private restarting: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(
    loaded: LoadedConfig,
    private readonly log: Logger,
    private readonly version: string,
    private readonly hooks: AgentRunnerHooks = {},
  ) {
    this.file = loaded.file;
    this.config = loaded.config;
    this.current = this.build(loaded.config);
  }

  /** The pipeline running now (a reload replaces it). */
  get agent(): Agent {
    return this.current;
  }

  start(): Promise<void> {
    return this.current.start();
  }

  /**
   * Reads and validates the file now and, when it is good, applies it: live options at once, a replaced pipeline
   * shortly after (so a command's reply leaves on the connection before it closes). Throws FW_ERR_CONFIG_INVALID or
   * FW_ERR_CONFIG_READ for a bad file (the running configuration stays), which `reloadOnSignal` logs.
   */
  reload(trigger: ReloadTrigger): ReloadResult {
    if (!this.file)
      throw new ForewarnError('FW_ERR_COMMAND_FAILED', 'the agent runs without a configuration file (embedded defaults); there is nothing to reload');
    if (this.stopping) throw new ForewarnError('FW_ERR_COMMAND_FAILED', 'the agent is stopping; nothing was reloaded');
    const next = loadConfig(this.file, this.hooks.env ?? process.env).config;
    // The alert rules it names, checked against the catalogue as at start.
    assertAlertConfig(next.alerts, this.file);
    const changed = changedOptions(this.config, next);
    const restartNeeded = changed.filter(isRestartOnly);
    const applied = changed.filter((o) => !isRestartOnly(o));
    // What cannot change keeps its running value; everything else comes from the file.
    const effective = deepFreeze({ ...structuredClone(next), storage: this.config.storage, agent: { ...next.agent, view: this.config.agent.view } });
    const pipelineRestart = applied.some((o) => !LIVE_ONLY.has(o));
    this.config = effective;
    // A remote set-log-level lasts until the file is reloaded: the file's level applies again.
    this.log.level = effective.agent.logLevel;
    const result: ReloadResult = { file: this.file, applied, restartNeeded, pipelineRestart };
    this.log.info(
      { file: this.file, trigger, applied, restartNeeded, pipelineRestart },
      applied.length ? 'configuration reloaded' : 'configuration reloaded; nothing changed',
    );
    if (restartNeeded.length)
      this.log.warn({ options: restartNeeded }, `${restartNeeded.join(', ')}: cannot change while the agent runs; the running values stay until it restarts`);
    if (pipelineRestart) this.restarting = this.restarting.then(() => this.replacePipeline(effective));
    return result;
  }

  /** SIGHUP: a reload whose failure is logged (`path: message` lines) and changes nothing. */
  reloadOnSignal(): void {
    try {
      this.reload('SIGHUP');
    } catch (err) {
      const code = isForewarnError(err) ? err.code : undefined;
      const problems = isForewarnError(err) ? [...err.details] : [];
      this.log.error(
        { trigger: 'SIGHUP', file: this.file, code, problems: problems.length ? problems : undefined },
        `configuration not reloaded, the running one stays: ${problems.length ? problems.join('; ') : describeError(err)}`,
      );
    }
  }

  /** Waits for a reload in progress, then stops the pipeline for good and closes the outbox. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.restarting;
    await this.current.stop();
  }

  private async replacePipeline(config: Readonly<AgentConfig>): Promise<void> {
    if (this.stopping) return;
    // Let the microtasks of the request that asked for it (a command's reply) run before the connection closes.
    await new Promise((resolve) => setImmediate(resolve));
    this.hooks.onReloading?.();
    const previous = this.current;
    const carry = await previous.stopForReload();
    try {
      this.current = this.build(config, carry);
    } catch (err) {
      // The file passed validation but the pipeline cannot be built from it (a model or TLS file unreadable):
      // the previous configuration runs again, on the same outbox.
      this.log.error(
        { err: describeError(err), code: isForewarnError(err) ? err.code : undefined },
        'the reloaded configuration cannot run; running the previous one again',
      );
      this.config = previous.config;
      this.current = this.build(previous.config, carry);
    }
    await this.current.start();
    this.log.info({ sources: this.current.sources.length }, 'pipeline restarted with the reloaded configuration');
    this.hooks.onReloaded?.(this.current);
  }

  private build(config: Readonly<AgentConfig>, carry?: Awaited<ReturnType<Agent['stopForReload']>>): Agent {
    return new Agent(config, this.log, this.version, { configFile: this.file, carry, reload: () => this.reload('command') });
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
