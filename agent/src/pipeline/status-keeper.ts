/**
 * Keeps what the agent tells about itself current: a model's health changes (drift) become an alert, an
 * `events` record, a log line, the saved model health that `forewarn status` reads, and a new retained status;
 * every few seconds, signals that stopped arriving are checked, the status follows the sources' state changes,
 * and the model health is saved when it changed.
 */
import type { Logger } from '../core/logger.js';
import { describeError } from '../core/errors.js';
import type { Component } from '../core/types.js';
import type { RecordConsumer } from '../store/record-consumer.js';
import type { RecordStore } from '../store/record-store.js';
import { MODEL_HEALTH_META_KEY, type DriftMonitor, type ModelHealth, type ModelHealthState } from '../scoring/drift-monitor.js';
import type { MqttSync } from '../sync/mqtt-sync.js';
import type { SourceStats } from '../sources/interval-source.js';
import { everyOnGrid, type GridInterval } from '../core/grid.js';

/** Where the broker connection's state is saved for `forewarn status` (written when it changes). */
export const BROKER_STATE_META_KEY = 'broker_state';

/** How often signals are checked for staleness. */
export const STALE_CHECK_MS = 5_000;

export interface StatusKeeperParts {
  drift: Pick<DriftMonitor, 'health'> | null;
  store: Pick<RecordStore, 'setMeta'>;
  records: RecordConsumer;
  sync: Pick<MqttSync, 'publishStatus'> & { readonly stats: Pick<MqttSync['stats'], 'state' | 'since' | 'lastError'> };
  sources: ReadonlyArray<{ readonly stats: Pick<SourceStats, 'name' | 'state'> }>;
  /** Told of every model health change (health raises and clears drift alerts). */
  onModelHealth: (h: ModelHealth) => void;
  /** Run every STALE_CHECK_MS (the quality stage's stale check). */
  checkStale: () => void;
}

export class StatusKeeper implements Component {
  readonly name = 'status';
  private timer: GridInterval | null = null;
  private stopped = false;
  private lastSourceStates = '';
  private savedModelHealth = '';
  private savedBrokerState = '';

  constructor(
    private readonly parts: StatusKeeperParts,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.timer = everyOnGrid(() => {
      this.parts.checkStale();
      this.republishIfSourcesChanged();
      this.saveModelHealth();
      this.saveBrokerState();
    }, STALE_CHECK_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.clear();
  }

  /** A model on an asset changed health state: alert on drift, tell the centre, and republish the status. */
  onDrift(h: ModelHealth, previous: ModelHealthState): void {
    if (this.stopped) return;
    this.parts.onModelHealth(h);
    if (h.state !== 'warming') {
      this.parts.records.consumeRecords([{ stream: 'events', ts: h.ts, asset: h.asset, payload: { type: 'model-health', previous, ...h } }]);
      const line = { model: h.model, version: h.version, asset: h.asset, state: h.state, previous, driftPsi: h.driftPsi, outsideMax: h.outsideMax, top: h.top };
      if (h.state === 'drift') this.log.warn(line, 'model inputs drifted from its training data');
      else this.log.info(line, 'model health changed');
    }
    this.saveModelHealth();
    this.parts.sync.publishStatus();
  }

  /** A model's health per asset, for the retained status. */
  modelHealth(model: string): Array<Omit<ModelHealth, 'model' | 'version'>> {
    return (this.parts.drift?.health() ?? []).filter((h) => h.model === model).map(({ model: _m, version: _v, ...rest }) => rest);
  }

  /** The retained status says which sources run and which are unavailable; it follows their changes. */
  private republishIfSourcesChanged(): void {
    const states = this.parts.sources.map((s) => `${s.stats.name}=${s.stats.state}`).join(',');
    if (states === this.lastSourceStates) return;
    this.lastSourceStates = states;
    this.parts.sync.publishStatus();
  }

  /** For `forewarn status`: whether the agent has the broker, and since when. A write only when it changed. */
  private saveBrokerState(): void {
    if (this.stopped) return;
    const { state, since, lastError } = this.parts.sync.stats;
    const key = `${state}@${since}`;
    if (key === this.savedBrokerState) return;
    try {
      this.parts.store.setMeta(BROKER_STATE_META_KEY, JSON.stringify({ state, since, lastError: state === 'online' ? null : lastError }));
      this.savedBrokerState = key;
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'could not save the broker state');
    }
  }

  /** For `forewarn status`, which reads the database: the latest PSI per model and asset. */
  private saveModelHealth(): void {
    if (!this.parts.drift || this.stopped) return;
    const health = JSON.stringify(this.parts.drift.health());
    // A write (and an fsync) only when something changed: the stale timer calls this every few seconds.
    if (health === this.savedModelHealth) return;
    try {
      this.parts.store.setMeta(MODEL_HEALTH_META_KEY, health);
      this.savedModelHealth = health;
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'could not save model health');
    }
  }
}
