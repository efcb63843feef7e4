import type { Logger } from '../core/logger.js';
import type { AgentConfig } from '../config/load-config.js';
import { remoteCommandsDecision } from '../config/remote-commands.js';
import { describeError } from '../core/errors.js';
import type { RecordStore } from '../store/record-store.js';
import type { StorageLimits } from '../store/storage-limits.js';
import { RiskScorer } from '../scoring/risk-scorer.js';
import { ModelRegistry } from '../model-lifecycle/model-registry.js';
import { ModelUpdater } from '../model-lifecycle/model-updater.js';
import { DriftMonitor } from '../scoring/drift-monitor.js';
import { AnomalyScorer } from '../scoring/anomaly/anomaly-scorer.js';
import { MqttSync } from '../sync/mqtt-sync.js';
import { SparkplugNode } from '../sync/sparkplug/sparkplug-node.js';
import type { Source, SourceContext } from '../sources/plugin.js';
import { SOURCE_PLUGINS } from '../sources/registry.js';
import { DataQuality } from '../health/data-quality.js';
import { QualityStage } from '../health/quality-stage.js';
import { HealthMonitor } from '../health/health-monitor.js';
import { MetricsServer } from '../metrics/metrics-server.js';
import { riskFanOut, type Component, type HealthEvent, type Reading, type ReadingConsumer } from '../core/types.js';
import { CommandHandler } from '../commands/command-handler.js';
import { agentCommandHost } from '../commands/agent-commands.js';
import type { AgentStats, AgentView } from '../snapshot/agent-view.js';
import { StorageKeeper } from './storage-keeper.js';
import { StatusKeeper } from './status-keeper.js';
import { riskWriter } from './risk-writer.js';

export type { Source } from '../sources/plugin.js';

/**
 * What a reload hands from the stopped pipeline to the next one (pipeline/agent-runner.ts): the open outbox with
 * its storage lock, held records and timers, and this run's counters and boot number.
 */
export interface AgentCarry {
  readonly storage: StorageKeeper;
  readonly stats: AgentStats;
}

export interface AgentOptions {
  configFile?: string | null;
  /** The outbox and counters of the pipeline this one replaces (a reload): not opened again, no new boot number. */
  carry?: AgentCarry;
  /** The reload path that the `reload-config` command shares with SIGHUP; without it the command applies only live options. */
  reload?: () => unknown;
}

/**
 * The daemon's composition root: it builds the components from the configuration, wires each stage to its
 * consumers (ARCHITECTURE.md, the pipeline), starts them in order and stops them intake first, flush last.
 * It routes no record itself: sources hand readings to the quality stage, which hands telemetry to the storage
 * keeper and clean readings to scoring, anomaly detection and health; the scorers hand risk to the risk writer
 * and health. Each component starts in its own try/catch, so one that fails leaves the others running.
 */
export class Agent implements AgentView {
  readonly store: RecordStore;
  /** storage.maxBytes and minFreeBytes as this file system allows them (a floor it cannot meet is clamped). */
  readonly limits: StorageLimits;
  readonly scorer: RiskScorer | null;
  /** Safe model updates: follows the model registry, shadow-scores candidates, promotes or rolls back. */
  readonly models: ModelUpdater | null;
  readonly drift: DriftMonitor | null;
  /** Adaptive anomaly detection per asset (docs/anomaly-detection.md); its records take the same path as the models'. */
  readonly anomaly: AnomalyScorer | null;
  readonly sync: MqttSync;
  /** The Sparkplug B edge node (docs/sparkplug.md); null unless `sparkplug.enabled`. */
  readonly sparkplug: SparkplugNode | null;
  readonly sources: Source[] = [];
  readonly quality: DataQuality;
  readonly health: HealthMonitor;
  readonly stats: AgentStats;
  /** `/metrics` and `/healthz` on a local port (docs/observability.md). */
  readonly metrics: MetricsServer;
  /** Remote commands over MQTT (docs/commands.md); null when they are off (config/remote-commands.ts). */
  readonly commands: CommandHandler | null;
  /** The outbox writer: write batching, held records and storage housekeeping (pipeline/storage-keeper.ts). */
  private readonly storage: StorageKeeper;
  /** Model health, staleness and the retained status (pipeline/status-keeper.ts). */
  private readonly status: StatusKeeper;
  /** Where sources hand their readings: the quality stage. */
  private readonly intake: ReadingConsumer;
  private stopping = false;
  private stopped: Promise<void> | null = null;

  constructor(
    readonly config: Readonly<AgentConfig>,
    private readonly log: Logger,
    agentVersion: string,
    options: AgentOptions = {},
  ) {
    this.stats = options.carry?.stats ?? {
      startedAt: Date.now(),
      bootSeq: 0,
      collected: 0,
      scoredRecords: 0,
      storageErrors: 0,
      dropped: { alerts: 0, risk: 0, events: 0, telemetry: 0 },
      lost: 0,
      held: 0,
      lastCommitTs: null,
      lastWriteErrorTs: null,
      lastRisk: new Map(),
    };
    const storage = options.carry?.storage ?? new StorageKeeper(config.storage, log, this.stats);
    this.storage = storage;
    this.store = storage.store;
    this.limits = storage.limits;
    if (!options.carry) this.stats.bootSeq = storage.firstBootSeq();

    this.health = new HealthMonitor(this.store, () => this.sync.notify(), log.child({ component: 'health' }), undefined, undefined, config.alerts);
    // The risk seam: what the scorers produce is committed and counted, then health evaluates the thresholds.
    const risk = riskFanOut([riskWriter(storage, this.stats), this.health]);
    this.drift =
      config.scoring.enabled && config.scoring.drift.enabled ? new DriftMonitor(config.scoring.drift, (h, previous) => this.status.onDrift(h, previous)) : null;
    const registry = ModelRegistry.forConfig(config);
    this.scorer = config.scoring.enabled
      ? new RiskScorer({ ...config.scoring, modelDirs: (name) => registry.modelDirs(name) }, risk, log.child({ component: 'scoring' }), this.drift ?? undefined)
      : null;
    this.anomaly =
      config.scoring.enabled && config.scoring.anomaly.enabled
        ? new AnomalyScorer(config.scoring.anomaly, this.store, risk, log.child({ component: 'anomaly' }))
        : null;
    // The reading seam: telemetry to the store, clean readings to scoring, anomaly detection and health.
    this.quality = new DataQuality(config.quality);
    const quality = new QualityStage(this.quality, {
      telemetry: storage,
      readings: [this.scorer, this.anomaly, this.health].filter((c): c is NonNullable<typeof c> => c !== null),
      issues: this.health,
    });
    this.intake = quality;
    this.sync = new MqttSync(
      config,
      this.store,
      {
        bootSeq: this.stats.bootSeq,
        agentVersion,
        models: () => (this.scorer?.stats.models ?? []).map((m) => ({ ...m, health: this.status.modelHealth(m.name) })),
        sources: () => this.sources.map(({ stats }) => ({ name: stats.name, state: stats.state, samples: stats.samples, errors: stats.errors })),
      },
      log.child({ component: 'sync' }),
    );
    this.sync.onUnavailable((payloads) =>
      storage.consumeRecords(payloads.map((p) => ({ stream: 'events' as const, ts: Number(p.ts), asset: '', payload: p }))),
    );
    this.sparkplug = config.sparkplug.enabled ? new SparkplugNode(config, this.store, log.child({ component: 'sparkplug' }), agentVersion) : null;
    // Both outputs hear of each commit; the storage keeper knows only the sync.
    const sync = this.sync;
    const sparkplug = this.sparkplug;
    storage.attach({
      sync: sparkplug
        ? {
            inflightCursors: () => sync.inflightCursors(),
            noteDropped: (stream, ranges) => sync.noteDropped(stream, ranges),
            storeReplaced: () => sync.storeReplaced(),
            notify: () => {
              sync.notify();
              sparkplug.notify();
            },
          }
        : sync,
      onHousekeeping: () => this.health.retryUnsaved(),
      // The work whose records the next commit waits for: samples in flight, readings still being scored.
      busy: () => this.sources.some((s) => s.sampling === true) || this.scorer?.scoring === true,
    });
    this.status = new StatusKeeper(
      {
        drift: this.drift,
        store: this.store,
        records: storage,
        sync: this.sync,
        sources: this.sources,
        onModelHealth: (h) => this.health.onDrift(h),
        checkStale: () => quality.checkStale(),
      },
      log,
    );
    this.models = this.scorer
      ? new ModelUpdater(
          {
            registry,
            scorer: this.scorer,
            bindings: config.scoring.bindings,
            shadow: config.scoring.shadow,
            pollIntervalMs: config.scoring.updateCheckIntervalMs,
            threads: config.scoring.threads,
            trustedKeys: config.scoring.trustedKeys,
            // Lifecycle events are rare: committed at once, so the journal only moves on once they are durable.
            publish: (evts) => {
              this.store.append(evts.map((e) => ({ stream: 'events' as const, ts: e.ts, asset: '', payload: { ...e } })));
              this.sync.notify();
            },
            onModelsChanged: () => this.sync.publishStatus(),
          },
          log.child({ component: 'model-updates' }),
        )
      : null;
    const remote = remoteCommandsDecision(config);
    log.info({ enabled: remote.enabled, reason: remote.reason }, `remote commands ${remote.enabled ? 'on' : 'off'}: ${remote.reason}`);
    if (remote.enabled) {
      const state = { logLevel: String(log.level), trustedKeys: config.commands.trustedKeys };
      this.commands = new CommandHandler(
        { ...config.commands, agentId: config.agent.id, trustedKeys: () => state.trustedKeys },
        agentCommandHost(this, log, state, options.configFile ?? null, agentVersion, undefined, options.reload),
        log.child({ component: 'commands' }),
        {
          reply: (topic, payload, correlationData) => this.sync.reply(topic, payload, correlationData),
          // Committed at once, like model lifecycle events: the record of a command must not wait for a batch.
          event: (e) => {
            this.store.append([{ stream: 'events', ts: e.ts, asset: '', payload: { ...e } }]);
            this.sync.notify();
          },
        },
      );
      const commands = this.commands;
      this.sync.onCommands(commands.filter, (m) => void commands.handle(m));
    } else {
      this.commands = null;
    }
    // Sources hand readings and events to the intake; nothing reaches the pipeline once stopping began.
    const context: SourceContext = {
      sink: (r: Reading) => this.onReading(r),
      events: (e: HealthEvent) => this.onEvent(e),
      log: log.child({ component: 'source' }),
      agentId: config.agent.id,
    };
    for (const plugin of SOURCE_PLUGINS) this.sources.push(...plugin.create(config.sources[plugin.key], context));
    this.metrics = new MetricsServer(config.metrics, this, agentVersion, log.child({ component: 'metrics' }));
  }

  /**
   * Started in this order, each in its own try/catch; then the timers (`storage`, `status`). The read side
   * first (so /healthz answers while models load), the sync once the models are known (its first status lists
   * them), the sources last.
   */
  private startOrder(): Component[] {
    const all: Array<Component | null> = [this.metrics, this.health, this.scorer, this.anomaly, this.models, this.sync, this.sparkplug, ...this.sources];
    return all.filter((c): c is Component => c !== null);
  }

  /**
   * Stopped in this order after the timers: the read side and intake first, then what scores and alerts (a
   * null message: a failure fails `stop()`); the last write, the sync (so it drains what it can) and the
   * database follow in `stop()`.
   */
  private stopOrder(): Array<{ component: Component; failed: string | null }> {
    return [
      { component: this.metrics, failed: 'metrics stop failed' },
      ...this.sources.map((component) => ({ component, failed: 'source stop failed' })),
      ...(this.models ? [{ component: this.models, failed: 'model updates stop failed' }] : []),
      ...(this.scorer ? [{ component: this.scorer, failed: 'scoring stop failed' }] : []),
      ...(this.anomaly ? [{ component: this.anomaly, failed: 'anomaly detection stop failed' }] : []),
      { component: this.health, failed: null },
    ];
  }

  async start(): Promise<void> {
    this.log.info({ agentId: this.config.agent.id, bootSeq: this.stats.bootSeq, db: this.store.file, broker: this.config.broker.url }, 'agent starting');
    for (const c of this.startOrder()) {
      try {
        await c.start();
      } catch (err) {
        this.log.error({ component: c.name, err: describeError(err) }, 'component failed to start; the others carry on');
      }
    }
    if (this.scorer) this.quality.addAnalogSignals(this.scorer.analogInputSignals());
    await this.storage.start();
    await this.status.start();
  }

  private onReading(r: Reading): void {
    if (this.stopping) return;
    this.stats.collected++;
    this.intake.consumeReading(r);
  }

  onEvent(e: HealthEvent): void {
    if (this.stopping) return;
    if (e.publish) {
      const { publish: _, ...payload } = e;
      this.storage.consumeRecords([{ stream: 'events', ts: e.ts, asset: e.asset, payload }]);
    }
    this.health.consumeEvent(e);
  }

  /** Idempotent. Stops intake, scores what is queued, drains what it can, says offline, closes the database. */
  stop(): Promise<void> {
    return this.shutdown(false);
  }

  /**
   * A reload: the same stop, except that the outbox stays open (its lock, its held records) and is handed with
   * the counters to the next pipeline. Everything committed stays committed; what was queued is committed first.
   */
  async stopForReload(): Promise<AgentCarry> {
    await this.shutdown(true);
    return { storage: this.storage, stats: this.stats };
  }

  private shutdown(keepStore: boolean): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      await this.storage.stop();
      await this.status.stop();
      for (const { component, failed } of this.stopOrder()) {
        if (failed === null) await component.stop();
        else await component.stop().catch((err) => this.log.warn({ err: describeError(err) }, failed));
      }
      this.storage.flush();
      await this.sparkplug?.stop().catch((err) => this.log.warn({ err: describeError(err) }, 'Sparkplug stop failed'));
      await this.sync.stop().catch((err) => this.log.warn({ err: describeError(err) }, 'sync stop failed'));
      if (keepStore) return;
      this.storage.close();
      this.log.info({ collected: this.stats.collected, scored: this.stats.scoredRecords, sent: this.sync.stats.sent }, 'agent stopped');
    })();
    return this.stopped;
  }
}
