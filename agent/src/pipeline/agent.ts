import type { Logger } from '../core/logger.js';
import type { AgentConfig } from '../config/load-config.js';
import { describeError } from '../core/errors.js';
import { RecordStore, isStorageFull } from '../store/record-store.js';
import { StorageLock } from '../store/storage-lock.js';
import { SeqEpoch } from '../store/seq-epoch.js';
import { SpaceReserve } from '../store/space-reserve.js';
import { assessStorageLimits, type StorageLimits } from '../store/storage-limits.js';
import type { DropReason, NewRecord, StreamName } from '../store/outbox.js';
import { RiskScorer } from '../scoring/risk-scorer.js';
import { ModelRegistry } from '../model-lifecycle/model-registry.js';
import { ModelUpdater } from '../model-lifecycle/model-updater.js';
import { DriftMonitor, MODEL_HEALTH_META_KEY, type ModelHealth, type ModelHealthState } from '../scoring/drift-monitor.js';
import { AnomalyScorer } from '../scoring/anomaly/anomaly-scorer.js';
import { MqttSync } from '../sync/mqtt-sync.js';
import type { Source, SourceContext } from '../sources/plugin.js';
import { SOURCE_PLUGINS } from '../sources/registry.js';
import { DataQuality } from '../health/data-quality.js';
import { HealthMonitor } from '../health/health-monitor.js';
import { MetricsServer } from '../metrics/metrics-server.js';
import type { Component, HealthEvent, Reading, RiskRecord } from '../core/types.js';
import { CommandHandler } from '../commands/command-handler.js';
import { agentCommandHost } from '../commands/agent-commands.js';
import type { AgentStats, AgentView } from '../snapshot/agent-view.js';

/** SQLITE_FULL, or a write the OS refused for lack of space (ENOSPC, SQLITE_IOERR on some file systems). */
function isNoSpace(err: unknown): boolean {
  if (isStorageFull(err)) return true;
  const text = `${(err as { code?: unknown })?.code ?? ''} ${describeError(err)} ${(err as { cause?: { code?: unknown } })?.cause?.code ?? ''}`;
  return /SQLITE_FULL|ENOSPC|disk is full|SQLITE_IOERR_(WRITE|SHMSIZE|FSYNC)/.test(text);
}

export type { Source } from '../sources/plugin.js';

/** How often signals are checked for staleness. */
const STALE_CHECK_MS = 5_000;
/** How often acknowledged records past their retention are purged, and how much at a time. */
const PURGE_INTERVAL_MS = 60_000;
const PURGE_BATCH = 2_000;
const PURGE_MAX_BATCHES = 500;
/** A full-disk episode ends after this long without a refused write (and with room for the reserve again). */
const FULL_EPISODE_QUIET_MS = 10_000;
/** Records other than telemetry kept in memory while the disk refuses them; beyond this the oldest are lost (counted). */
const MAX_HELD = 10_000;

/**
 * The daemon: sources → store → scoring → sync. Each component starts in its own try/catch, so one that fails
 * leaves the others running; `stop()` stops intake first, then flushes scoring, the outbox and the database.
 */
export class Agent implements AgentView {
  readonly store: RecordStore;
  readonly scorer: RiskScorer | null;
  /** Safe model updates: follows the model registry, shadow-scores candidates, promotes or rolls back. */
  readonly models: ModelUpdater | null;
  readonly drift: DriftMonitor | null;
  /** Adaptive anomaly detection per asset (docs/anomaly-detection.md); its records take the same path as the models'. */
  readonly anomaly: AnomalyScorer | null;
  readonly sync: MqttSync;
  readonly sources: Source[] = [];
  readonly quality: DataQuality;
  readonly health: HealthMonitor;
  readonly stats: AgentStats;
  /** `/metrics` and `/healthz` on a local port (docs/observability.md). */
  readonly metrics: MetricsServer;
  /** Remote commands over MQTT (docs/commands.md); null when `commands.enabled` is false. */
  readonly commands: CommandHandler | null;
  private purgeTimer: NodeJS.Timeout | null = null;
  private quotaTimer: NodeJS.Timeout | null = null;
  private readonly lock: StorageLock;
  private staleTimer: NodeJS.Timeout | null = null;
  private stopped: Promise<void> | null = null;
  private lastStorageError = 0;
  private lastLimitError = 0;
  /** Since when the file system has been refusing writes for lack of space (one episode); null while it takes them. */
  private fullSince: number | null = null;
  private lastRefusal = 0;
  private readonly reserve: SpaceReserve;
  /** storage.maxBytes and minFreeBytes as this file system allows them (a floor it cannot meet is clamped). */
  readonly limits: StorageLimits;
  /** Records a full disk refused, other than telemetry: committed first once it takes writes again. */
  private readonly held: NewRecord[] = [];
  private readonly writeQueue: NewRecord[] = [];
  private writeScheduled = false;
  private lastSourceStates = '';
  private savedModelHealth = '';

  constructor(
    readonly config: Readonly<AgentConfig>,
    private readonly log: Logger,
    agentVersion: string,
    options: { configFile?: string | null } = {},
  ) {
    this.lock = new StorageLock(config.storage.dir);
    this.lock.acquire();
    this.reserve = new SpaceReserve(config.storage.dir);
    const open = () => new RecordStore({ dir: config.storage.dir, synchronous: config.storage.synchronous, epoch: new SeqEpoch(config.storage.dir) });
    try {
      try {
        this.store = open();
      } catch (err) {
        // A disk full to the last block: SQLite cannot even create its -shm file. The reserve makes that room.
        if (!isNoSpace(err) || !this.reserve.release()) throw err;
        log.error({ code: 'FW_ERR_STORAGE_FULL', dir: config.storage.dir }, 'the file system is full; released the reserve file to start');
        this.fullSince = Date.now();
        this.store = open();
      }
    } catch (err) {
      this.lock.release();
      throw err;
    }
    // `config check` and `doctor` refuse an explicit floor this file system cannot meet; a running agent (the
    // file system may have changed since) clamps it and says so, rather than dropping everything it holds.
    const assessed = assessStorageLimits(config.storage.dir, { maxBytes: config.storage.maxBytes, minFreeBytes: config.storage.minFreeBytes }, { maxBytes: false, minFreeBytes: false });
    this.limits = assessed.effective;
    for (const p of assessed.problems) log.warn({ option: p.path, effective: this.limits }, `${p.path}: ${p.message}`);
    if (this.store.recovered) {
      log.error(
        { code: 'FW_ERR_STORAGE_CORRUPT', db: this.store.file, setAside: this.store.recovered.setAside, reason: this.store.recovered.reason },
        'the database could not be used; it was set aside and a fresh one started (its unsent records are in the set-aside file)',
      );
    }
    this.stats = {
      startedAt: Date.now(),
      bootSeq: this.firstBootSeq(),
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
    this.drift =
      config.scoring.enabled && config.scoring.drift.enabled ? new DriftMonitor(config.scoring.drift, (h, previous) => this.onDrift(h, previous)) : null;
    const registry = ModelRegistry.forConfig(config);
    this.scorer = config.scoring.enabled
      ? new RiskScorer({ ...config.scoring, modelDirs: (name) => registry.modelDirs(name) }, (records) => this.onRisk(records), log.child({ component: 'scoring' }), this.drift ?? undefined)
      : null;
    this.anomaly =
      config.scoring.enabled && config.scoring.anomaly.enabled
        ? new AnomalyScorer(config.scoring.anomaly, this.store, (records) => this.onRisk(records), log.child({ component: 'anomaly' }))
        : null;
    this.quality = new DataQuality(config.quality);
    this.health = new HealthMonitor(this.store, () => this.sync.notify(), log.child({ component: 'health' }));
    this.sync = new MqttSync(
      config,
      this.store,
      {
        bootSeq: this.stats.bootSeq,
        agentVersion,
        models: () => (this.scorer?.stats.models ?? []).map((m) => ({ ...m, health: this.modelHealth(m.name) })),
        sources: () => this.sources.map(({ stats }) => ({ name: stats.name, state: stats.state, samples: stats.samples, errors: stats.errors })),
      },
      log.child({ component: 'sync' }),
    );
    this.sync.onUnavailable((payloads) => this.commit(payloads.map((p) => ({ stream: 'events' as const, ts: Number(p.ts), asset: '', payload: p }))));
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
    if (config.commands.enabled) {
      const state = { logLevel: String(log.level), trustedKeys: config.commands.trustedKeys };
      this.commands = new CommandHandler(
        { ...config.commands, agentId: config.agent.id, trustedKeys: () => state.trustedKeys },
        agentCommandHost(this, log, state, options.configFile ?? null, agentVersion),
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
    const context: SourceContext = {
      sink: (r: Reading) => this.onReading(r),
      events: (e: HealthEvent) => this.onEvent(e),
      log: log.child({ component: 'source' }),
      agentId: config.agent.id,
    };
    for (const plugin of SOURCE_PLUGINS) this.sources.push(...plugin.create(config.sources[plugin.key], context));
    this.metrics = new MetricsServer(config.metrics, this, agentVersion, log.child({ component: 'metrics' }));
  }

  async start(): Promise<void> {
    this.log.info(
      { agentId: this.config.agent.id, bootSeq: this.stats.bootSeq, db: this.store.file, broker: this.config.broker.url },
      'agent starting',
    );
    for (const c of [this.metrics, this.health, this.scorer, this.anomaly, this.models, this.sync, ...this.sources]) {
      if (!c) continue;
      try {
        await c.start();
      } catch (err) {
        this.log.error({ component: c.name, err: describeError(err) }, 'component failed to start; the others carry on');
      }
    }
    if (this.scorer) this.quality.addAnalogSignals(this.scorer.analogInputSignals());
    this.purgeTimer = setInterval(() => this.purge(), PURGE_INTERVAL_MS);
    this.purgeTimer.unref();
    this.housekeeping();
    this.quotaTimer = setInterval(() => this.housekeeping(), this.config.storage.checkIntervalMs);
    this.quotaTimer.unref();
    this.staleTimer = setInterval(() => {
      this.onQuality(this.quality.checkStale());
      this.republishIfSourcesChanged();
      this.saveModelHealth();
    }, STALE_CHECK_MS);
    this.staleTimer.unref();
  }

  /**
   * The boot number of this run. A disk full at start must not stop the agent (it would collect nothing, alerts
   * included, for as long as it stays full): make room by the drop policy and, failing that, count on from the clock.
   */
  private firstBootSeq(): number {
    try {
      return this.store.nextBootSeq();
    } catch (err) {
      if (isNoSpace(err) && this.enforceStorageLimits('disk-full')) {
        try {
          return this.store.nextBootSeq();
        } catch {
          // still full: below
        }
      }
      const boot = Math.floor(Date.now() / 1000);
      this.log.error({ err: describeError(err), code: 'FW_ERR_STORAGE_WRITE', bootSeq: boot }, 'cannot record the boot number; using the clock for this run');
      return boot;
    }
  }

  /**
   * Runs every storage.checkIntervalMs: the database file still ours, the limits kept, writes the disk refused
   * retried, and the reserve file back once there is room.
   */
  private housekeeping(): void {
    const why = this.store.replacedOnDisk();
    if (why) this.replaceStore(why);
    this.enforceStorageLimits();
    if (this.held.length && !this.writeScheduled) this.flushWrites();
    this.health.retryUnsaved();
    // The episode ends once the file system has room for the reserve again and no write was refused for a while.
    if (this.fullSince && Date.now() - this.lastRefusal >= FULL_EPISODE_QUIET_MS && this.reserve.restore()) {
      this.log.info({ fullForSeconds: Math.round((Date.now() - this.fullSince) / 1000), lost: this.stats.lost }, 'the disk takes writes again');
      this.fullSince = null;
    } else if (!this.fullSince) {
      this.reserve.restore();
    }
  }

  /** The database was deleted or replaced under us: carry what is unacknowledged into a fresh file and say so. */
  private replaceStore(reason: string): void {
    try {
      const r = this.store.replaceFile(reason);
      this.sync.storeReplaced();
      this.log.error(
        { code: 'FW_ERR_STORAGE_REPLACED', db: this.store.file, reason, firstSeq: r.firstSeq, carried: r.carried, setAside: r.setAside || undefined },
        `${reason}; a fresh database was started with the ${r.carried} unacknowledged records carried over`,
      );
    } catch (err) {
      this.log.error({ err: describeError(err), code: 'FW_ERR_STORAGE_REPLACED', db: this.store.file }, `${reason}, and a fresh database could not be started; will retry`);
    }
  }

  /** The retained status says which sources run and which are unavailable; it follows their changes. */
  private republishIfSourcesChanged(): void {
    const states = this.sources.map((s) => `${s.stats.name}=${s.stats.state}`).join(',');
    if (states === this.lastSourceStates) return;
    this.lastSourceStates = states;
    this.sync.publishStatus();
  }

  private onQuality(issues: ReturnType<DataQuality['checkStale']>): void {
    if (!issues.length) return;
    for (const q of issues) {
      if (!q.failing) continue;
      this.scorer?.forget(q.asset, q.signal);
      this.anomaly?.forget(q.asset, q.signal);
    }
    this.health.onQuality(issues);
  }

  onEvent(e: HealthEvent): void {
    if (this.stopped) return;
    this.health.onEvent(e);
  }

  /**
   * Queues records for the next write: everything produced in one tick (a GPU source's eight readings, a batch
   * of scores) is committed in one transaction, one fsync instead of one each.
   */
  private commit(items: readonly NewRecord[]): void {
    this.writeQueue.push(...items);
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    setImmediate(() => this.flushWrites());
  }

  private flushWrites(): void {
    this.writeScheduled = false;
    if (!this.writeQueue.length && !this.held.length) return;
    // What a full disk refused earlier goes first, in the order it was produced.
    const items = [...this.held.splice(0), ...this.writeQueue.splice(0)];
    try {
      this.store.append(items);
      this.committed();
    } catch (err) {
      // A full disk: release the reserve, make room by the drop policy, and try once more.
      if (isStorageFull(err)) {
        this.diskFull();
        if (this.enforceStorageLimits('disk-full')) {
          try {
            this.store.append(items);
            this.committed();
            return;
          } catch (again) {
            err = again;
          }
        }
      }
      this.stats.storageErrors++;
      this.stats.lastWriteErrorTs = Date.now();
      // Telemetry is the one stream whose next reading replaces the last: it is counted lost. Alerts, risk and
      // events wait in memory (bounded) for the disk to take them.
      const keep = items.filter((i) => i.stream !== 'telemetry');
      const overflow = Math.max(0, keep.length - MAX_HELD);
      this.held.push(...keep.slice(overflow));
      this.stats.lost += items.length - keep.length + overflow;
      this.stats.held = this.held.length;
      // A full or failing disk is logged once per episode and then at most once a minute, not per record.
      if (Date.now() - this.lastStorageError > 60_000) {
        this.lastStorageError = Date.now();
        this.log.error(
          { err: describeError(err), code: 'FW_ERR_STORAGE_WRITE', failures: this.stats.storageErrors, lost: this.stats.lost, held: this.held.length },
          'cannot commit records: telemetry is lost (counted), alerts, risk and events are held in memory and retried',
        );
      }
    }
  }

  private committed(): void {
    this.stats.lastCommitTs = Date.now();
    this.stats.held = this.held.length;
  }

  /** The first refusal of an episode: said once, and the reserve file goes so the drop policy has room to work. */
  private diskFull(): void {
    this.lastRefusal = Date.now();
    if (this.fullSince) return;
    this.fullSince = Date.now();
    const released = this.reserve.release();
    this.log.error(
      { code: 'FW_ERR_STORAGE_FULL', db: this.store.file, reserveReleased: released },
      'the file system holding the database is full: dropping by policy to make room; collection goes on and resumes fully when space returns',
    );
  }

  /**
   * Keeps the database within its quota and the file system above its free-space floor, by the documented drop
   * policy (store/outbox.ts DROP_ORDER). Returns whether anything was freed.
   */
  private enforceStorageLimits(reason?: DropReason): boolean {
    const limits = this.limits;
    try {
      // Before the sync exists (a full disk at start) nothing is in flight.
      const reports = this.store.enforceQuota(limits, this.sync?.inflightCursors() ?? new Map(), reason);
      for (const r of reports) {
        this.stats.dropped[r.stream] += r.count;
        this.sync?.noteDropped(r.stream, r.ranges);
        this.log.warn(
          { code: 'FW_ERR_STORAGE_DROPPED', stream: r.stream, count: r.count, reason: r.reason, fromSeq: r.ranges[0]?.[0], toSeq: r.ranges[r.ranges.length - 1]?.[1], ...limits },
          'storage limit reached; dropped the oldest unsent records by policy',
        );
      }
      if (reports.length) this.sync?.notify();
      // Space freed by purges and drops goes back to the file system a little at a time, when it is needed.
      const u = this.store.usage();
      if (u.reclaimableBytes > 0 && (u.freeBytes < limits.minFreeBytes * 2 || u.reclaimableBytes > u.fileBytes / 2)) this.store.vacuumStep();
      return reports.length > 0 || reason === 'disk-full';
    } catch (err) {
      if (isNoSpace(err)) this.diskFull();
      // Once a minute at most: on a full disk every write would otherwise add a line.
      if (Date.now() - this.lastLimitError > 60_000) {
        this.lastLimitError = Date.now();
        this.log.warn({ err: describeError(err) }, 'storage limit check failed; retrying');
      }
      return false;
    }
  }

  private onReading(r: Reading): void {
    if (this.stopped) return;
    this.stats.collected++;
    const { clean, flags, issues } = this.quality.check(r);
    const flagged = Object.keys(flags).length > 0;
    // Telemetry keeps every value as read, with the failed ones flagged; scoring and rules see only good ones.
    this.commit([{ stream: 'telemetry', ts: r.ts, asset: r.asset, payload: { ts: r.ts, source: r.source, asset: r.asset, metrics: r.metrics, ...(flagged ? { quality: flags } : {}) } }]);
    if (flagged) {
      for (const signal of Object.keys(flags)) {
        this.scorer?.forget(r.asset, signal);
        this.anomaly?.forget(r.asset, signal);
      }
    }
    this.onQuality(issues);
    this.scorer?.accept(clean);
    this.anomaly?.accept(clean);
    this.health.onReading(clean);
  }

  /** A model on an asset changed health state: alert on drift, tell the centre, and republish the status. */
  private onDrift(h: ModelHealth, previous: ModelHealthState): void {
    if (this.stopped) return;
    this.health.onDrift(h);
    if (h.state !== 'warming') {
      this.commit([{ stream: 'events', ts: h.ts, asset: h.asset, payload: { type: 'model-health', previous, ...h } }]);
      const line = { model: h.model, version: h.version, asset: h.asset, state: h.state, previous, psiMax: h.psiMax, top: h.top };
      if (h.state === 'drift') this.log.warn(line, 'model inputs drifted from its training data');
      else this.log.info(line, 'model health changed');
    }
    this.saveModelHealth();
    this.sync.publishStatus();
  }

  private modelHealth(model: string): Array<Omit<ModelHealth, 'model' | 'version'>> {
    return (this.drift?.health() ?? []).filter((h) => h.model === model).map(({ model: _m, version: _v, ...rest }) => rest);
  }

  /** For `forewarn status`, which reads the database: the latest PSI per model and asset. */
  private saveModelHealth(): void {
    if (!this.drift || this.stopped) return;
    const health = JSON.stringify(this.drift.health());
    // A write (and an fsync) only when something changed: the stale timer calls this every few seconds.
    if (health === this.savedModelHealth) return;
    try {
      this.store.setMeta(MODEL_HEALTH_META_KEY, health);
      this.savedModelHealth = health;
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'could not save model health');
    }
  }

  private onRisk(records: RiskRecord[]): void {
    this.commit(records.map((r) => ({ stream: 'risk' as const, ts: r.ts, asset: r.asset, payload: { ...r } })));
    this.stats.scoredRecords += records.length;
    for (const r of records) this.stats.lastRisk.set(`${r.asset}/${r.model}`, r);
    this.health.onRisk(records);
  }

  /** Deletes acknowledged records past retention in small batches, yielding between them so intake never waits long. */
  private purge(batches = 0, removed = 0): void {
    if (this.stopped) return;
    try {
      const n = this.store.purgeSent(Date.now() - this.config.storage.retentionHours * 3_600_000, PURGE_BATCH);
      removed += n;
      if (n === PURGE_BATCH && batches < PURGE_MAX_BATCHES) {
        setImmediate(() => this.purge(batches + 1, removed));
        return;
      }
      if (removed) this.log.debug({ removed }, 'purged acknowledged records past retention');
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'purge failed');
    }
  }

  /** Idempotent. Stops intake, scores what is queued, drains what it can, says offline, closes the database. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      if (this.purgeTimer) clearInterval(this.purgeTimer);
      if (this.quotaTimer) clearInterval(this.quotaTimer);
      if (this.staleTimer) clearInterval(this.staleTimer);
      await this.metrics.stop().catch((err) => this.log.warn({ err: describeError(err) }, 'metrics stop failed'));
      for (const s of this.sources) await s.stop().catch((err) => this.log.warn({ err: describeError(err) }, 'source stop failed'));
      await this.models?.stop().catch((err) => this.log.warn({ err: describeError(err) }, 'model updates stop failed'));
      await this.scorer?.stop().catch((err) => this.log.warn({ err: describeError(err) }, 'scoring stop failed'));
      await this.anomaly?.stop().catch((err) => this.log.warn({ err: describeError(err) }, 'anomaly detection stop failed'));
      await this.health.stop();
      this.flushWrites();
      await this.sync.stop().catch((err) => this.log.warn({ err: describeError(err) }, 'sync stop failed'));
      this.store.close();
      this.lock.release();
      this.log.info({ collected: this.stats.collected, scored: this.stats.scoredRecords, sent: this.sync.stats.sent }, 'agent stopped');
    })();
    return this.stopped;
  }
}

