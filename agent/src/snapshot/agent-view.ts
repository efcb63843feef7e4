/**
 * The read model of a running agent: what the metrics endpoint, /healthz, the live view and remote commands may
 * see and touch. `Agent` (pipeline/agent.ts) implements it; the readers import this file, never the agent, so
 * the composition root can import them without an import cycle. Each member is the narrow slice of its component
 * that some reader uses, so a stand-in for tests needs no more than that.
 */
import type { AgentConfig } from '../config/load-config.js';
import type { RiskRecord } from '../core/types.js';
import type { HealthMonitor } from '../health/health-monitor.js';
import type { AnomalyScorer } from '../scoring/anomaly/anomaly-scorer.js';
import type { DriftMonitor } from '../scoring/drift-monitor.js';
import type { ModelUpdater } from '../model-lifecycle/model-updater.js';
import type { RiskScorer } from '../scoring/risk-scorer.js';
import type { SourceCounters, SourceStats } from '../sources/interval-source.js';
import type { StreamName } from '../store/outbox.js';
import type { RecordStore } from '../store/record-store.js';
import type { StorageLimits } from '../store/storage-limits.js';
import type { MqttSync } from '../sync/mqtt-sync.js';
import type { SparkplugNode } from '../sync/sparkplug/sparkplug-node.js';

/** The agent's own counters for this run. */
export interface AgentStats {
  startedAt: number;
  bootSeq: number;
  collected: number;
  scoredRecords: number;
  storageErrors: number;
  /** Records dropped under the storage policy during this run, per stream (the database keeps the totals). */
  dropped: Record<StreamName, number>;
  /** Records that could not be committed at all (the disk stayed full even after the drop policy ran). */
  lost: number;
  /** Records waiting in memory for the disk to take them (alerts, events, risk; telemetry is counted lost instead). */
  held: number;
  /** When records were last committed, and when a commit last failed: what /healthz calls the database writable. */
  lastCommitTs: number | null;
  lastWriteErrorTs: number | null;
  lastRisk: Map<string, RiskRecord>;
}

export interface AgentView {
  readonly config: Readonly<AgentConfig>;
  readonly stats: AgentStats;
  readonly limits: StorageLimits;
  readonly store: Pick<RecordStore, 'counts' | 'usage' | 'pendingTotal' | 'unconfirmedTotal'>;
  readonly sync: Pick<MqttSync, 'stats' | 'progress' | 'notify'>;
  /** The Sparkplug B edge node, when `sparkplug.enabled` (docs/sparkplug.md). */
  readonly sparkplug?: Pick<SparkplugNode, 'stats'> | null;
  readonly sources: ReadonlyArray<{ readonly stats: SourceStats; readonly counters?: SourceCounters }>;
  readonly scorer: Pick<RiskScorer, 'stats' | 'latency'> | null;
  readonly drift: Pick<DriftMonitor, 'health'> | null;
  readonly anomaly: Pick<AnomalyScorer, 'stats'> | null;
  readonly models: Pick<ModelUpdater, 'shadowing' | 'install'> | null;
  readonly health: Pick<HealthMonitor, 'activeAlerts' | 'stats'>;
}
