import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Logger } from '../core/logger.js';
import { describeError } from '../core/errors.js';
import type { Component } from '../core/types.js';
import type { SparkplugStats } from '../sync/sparkplug/sparkplug-node.js';
import type { AgentView } from '../snapshot/agent-view.js';
import type { SourceCounters } from '../sources/interval-source.js';
import { CONTENT_TYPE, renderExposition, type MetricFamily, type Sample } from '../core/exposition.js';

/**
 * `/metrics` (Prometheus text format) and `/healthz` on a local port, with node:http. Every value is read at
 * scrape time from what the agent already keeps; nothing here is on the hot path. docs/observability.md lists
 * every metric and what healthy means.
 */

export interface MetricsConfig {
  enabled: boolean;
  host: string;
  port: number;
}

/** Event-loop delay is summarised over windows of this length. */
const LOOP_WINDOW_MS = 30_000;
/** Sampling period of the event-loop delay monitor, in ms; node records the whole period, so it is subtracted. */
const LOOP_RESOLUTION_MS = 10;
/** The delay monitor stops when /metrics and /healthz have not been read for this long (scrapers ask every 15–60 s). */
const LOOP_IDLE_MS = 5 * 60_000;
/** Unhealthy when the loop's 99th-percentile delay over the last window exceeds this, or one stall exceeds the next. */
const LOOP_P99_UNHEALTHY_S = 1;
const LOOP_MAX_UNHEALTHY_S = 10;

export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
  /** Seconds the summary covers. */
  windowSeconds: number;
}

export interface HealthReport {
  status: 'ok' | 'unhealthy';
  /** Why it is unhealthy; empty when ok. */
  reasons: string[];
  /** Worth knowing, not unhealthy: the broker is down (the agent buffers), a source is unavailable… */
  notes: string[];
  agentId: string;
  version: string;
  uptimeSeconds: number;
  broker: { state: string; connected: boolean; sinceSeconds: number; lastError: string | null };
  storage: { pending: number; lastCommitTs: number | null; lastWriteErrorTs: number | null; freeBytes: number };
  loop: LoopDelay;
  sources: Array<{ name: string; state: string }>;
}

/**
 * A summary of event-loop delay over the last completed window (or the current one, before the first ends).
 *
 * The histogram wakes the process every LOOP_RESOLUTION_MS: a hundred times a second, more CPU than the agent's
 * own work at a 5 s interval. So it runs only while someone reads /metrics or /healthz: the first request starts
 * it (that request sees an empty window), and it stops when nobody has asked for LOOP_IDLE_MS.
 */
export class LoopMonitor {
  private h: IntervalHistogram | null = null;
  private timer: NodeJS.Timeout | null = null;
  private last: LoopDelay | null = null;
  private windowStart = Date.now();
  private lastAsked = 0;

  private enable(): void {
    this.h = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.h.enable();
    this.windowStart = Date.now();
    this.last = null;
    this.timer = setInterval(() => {
      if (Date.now() - this.lastAsked > LOOP_IDLE_MS) return this.stop();
      this.last = this.summary();
      this.h?.reset();
      this.windowStart = Date.now();
    }, LOOP_WINDOW_MS);
    this.timer.unref();
  }

  /** Whether the histogram runs now (for tests). */
  get running(): boolean {
    return this.h !== null;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.h?.disable();
    this.h = null;
  }

  private summary(): LoopDelay {
    const h = this.h;
    const ok = h !== null && h.count > 0;
    const delay = (ns: number) => (ok ? Math.max(0, ns / 1e9 - LOOP_RESOLUTION_MS / 1000) : 0);
    return {
      p50: delay(h?.percentile(50) ?? 0),
      p99: delay(h?.percentile(99) ?? 0),
      max: delay(h?.max ?? 0),
      windowSeconds: h ? (Date.now() - this.windowStart) / 1000 : 0,
    };
  }

  /** The summary a reader gets; asking keeps the monitor running (or starts it). */
  current(): LoopDelay {
    this.lastAsked = Date.now();
    if (!this.h) this.enable();
    return this.last ?? this.summary();
  }
}

const seconds = (ms: number) => ms / 1000;
const gauge = (name: string, help: string, samples: Sample[]): MetricFamily => ({ name, help, type: 'gauge', samples });
const counter = (name: string, help: string, samples: Sample[]): MetricFamily => ({ name, help, type: 'counter', samples });
const one = (value: number, labels?: Record<string, string>): Sample[] => [labels ? { labels, value } : { value }];

const BROKER_STATES = ['connecting', 'online', 'offline', 'stopped'] as const;
const SOURCE_STATES = ['idle', 'running', 'failing', 'unavailable', 'stopped'] as const;
const DRIFT_STATES = ['warming', 'ok', 'watch', 'drift'] as const;

function sparkplugFamilies(s: SparkplugStats | undefined): MetricFamily[] {
  if (!s) return [];
  return [
    gauge(
      'forewarn_sparkplug_connected',
      '1 while the Sparkplug edge node is born (NBIRTH published on a live session), else 0.',
      one(s.state === 'online' ? 1 : 0),
    ),
    gauge('forewarn_sparkplug_bdseq', 'The bdSeq of the current Sparkplug session (its NDEATH Will and NBIRTH).', one(s.bdSeq)),
    counter('forewarn_sparkplug_births_total', 'NBIRTH messages published during this run.', one(s.births)),
    counter('forewarn_sparkplug_messages_total', 'Sparkplug messages published during this run (births, data, deaths).', one(s.messages)),
    counter('forewarn_sparkplug_historical_messages_total', 'DDATA messages of buffered records sent with is_historical during this run.', one(s.historical)),
    counter('forewarn_sparkplug_rejected_total', 'NCMD and primary host STATE messages ignored as malformed (FW_ERR_SPARKPLUG_MESSAGE).', one(s.rejected)),
  ];
}

/** Every metric family, read from the agent now. */
/** A source's counters as [name, value] pairs; a nested map (Modbus exceptions by code) becomes `name.key`. */
function protocolCounters(counters: SourceCounters | undefined): Array<[string, number]> {
  if (!counters) return [];
  return Object.entries(counters).flatMap(([k, v]): Array<[string, number]> =>
    typeof v === 'number' ? [[k, v]] : Object.entries(v).map(([sub, n]): [string, number] => [`${k}.${sub}`, n]),
  );
}

export function collectMetrics(agent: AgentView, version: string, loop: LoopDelay, now = Date.now()): MetricFamily[] {
  const counts = agent.store.counts();
  const usage = agent.store.usage();
  const sync = agent.sync.stats;
  const families: MetricFamily[] = [
    gauge('forewarn_build_info', 'Always 1; the agent version and id as labels.', one(1, { version, agent_id: agent.config.agent.id })),
    gauge('forewarn_start_time_seconds', 'When this agent run started, in seconds since the Unix epoch.', one(seconds(agent.stats.startedAt))),
    gauge('forewarn_boot_sequence', 'Boot sequence number of this run (grows by one per start of the agent on this database).', one(agent.stats.bootSeq)),
    // The outbox: what is buffered, sent and dropped, per stream (the database's own counters).
    gauge(
      'forewarn_outbox_pending_records',
      'Records committed and not yet acknowledged (by the centre with broker.ack central, else by the broker), per stream.',
      counts.map((c) => ({ labels: { stream: c.stream }, value: c.pending })),
    ),
    gauge(
      'forewarn_outbox_unconfirmed_records',
      "Of the pending records, those the broker took that wait for the centre's confirmation (broker.ack central).",
      one(agent.store.unconfirmedTotal()),
    ),
    gauge(
      'forewarn_outbox_oldest_pending_age_seconds',
      'Age of the oldest record not yet acknowledged, per stream (0 when nothing is pending): how far the centre lags behind.',
      counts.map((c) => ({ labels: { stream: c.stream }, value: c.oldestPendingTs === null ? 0 : Math.max(0, seconds(now - c.oldestPendingTs)) })),
    ),
    counter(
      'forewarn_records_sent_total',
      'Records acknowledged (by the centre with broker.ack central, else by the broker) since the database was created, per stream.',
      counts.map((c) => ({ labels: { stream: c.stream }, value: c.sentTotal })),
    ),
    counter(
      'forewarn_records_resent_total',
      'Records sent again during this run because the centre reported them missing or never confirmed them.',
      one(sync.resent),
    ),
    counter(
      'forewarn_records_unavailable_total',
      'Seqs the centre asked for during this run that the agent no longer held (announced as records-unavailable).',
      one(sync.unavailable),
    ),
    gauge(
      'forewarn_central_ack_age_seconds',
      "Seconds since the centre's last end-to-end acknowledgement arrived (absent before the first): alert when it grows while the broker is connected.",
      sync.centralAckTs === null ? [] : one(Math.max(0, seconds(now - sync.centralAckTs))),
    ),
    counter(
      'forewarn_records_dropped_total',
      'Unsent records dropped under the storage policy since the database was created, per stream.',
      counts.map((c) => ({ labels: { stream: c.stream }, value: c.droppedTotal })),
    ),
    counter('forewarn_readings_collected_total', 'Readings received from all sources during this run.', one(agent.stats.collected)),
    counter(
      'forewarn_records_lost_total',
      'Records that could not be committed at all (the disk stayed full after the drop policy ran) during this run.',
      one(agent.stats.lost),
    ),
    counter('forewarn_storage_write_errors_total', 'Failed database commits during this run.', one(agent.stats.storageErrors)),
    // Storage.
    gauge('forewarn_storage_used_bytes', 'Bytes of the database in use (file minus its free pages).', one(usage.usedBytes)),
    gauge('forewarn_storage_file_bytes', 'Size of the database file.', one(usage.fileBytes)),
    gauge('forewarn_storage_wal_bytes', 'Size of the database write-ahead log.', one(usage.walBytes)),
    gauge('forewarn_storage_reclaimable_bytes', 'Free pages in the database file that can go back to the file system.', one(usage.reclaimableBytes)),
    gauge('forewarn_storage_filesystem_free_bytes', 'Free space for unprivileged users on the file system of storage.dir.', one(usage.freeBytes)),
    gauge(
      'forewarn_storage_limit_bytes',
      'The limits in force: `max` is storage.maxBytes (0: no quota), `min_free` is storage.minFreeBytes (clamped when the file system cannot meet it).',
      [
        { labels: { limit: 'max' }, value: agent.limits.maxBytes },
        { labels: { limit: 'min_free' }, value: agent.limits.minFreeBytes },
      ],
    ),
    // The Sparkplug edge node, only when it is on (docs/sparkplug.md).
    ...sparkplugFamilies(agent.sparkplug?.stats),
    // The broker connection and what went over it.
    gauge('forewarn_broker_connected', '1 while connected to the broker, else 0.', one(sync.state === 'online' ? 1 : 0)),
    gauge(
      'forewarn_broker_state',
      'The broker connection state: 1 for the current state, 0 for the others.',
      BROKER_STATES.map((s) => ({ labels: { state: s }, value: sync.state === s ? 1 : 0 })),
    ),
    gauge(
      'forewarn_broker_state_since_seconds',
      'When the connection was made, or the current outage began, in seconds since the Unix epoch.',
      one(seconds(sync.since)),
    ),
    counter('forewarn_broker_reconnects_total', 'Reconnection attempts during this run.', one(sync.reconnects)),
    gauge('forewarn_mqtt_inflight_messages', 'Published messages waiting for their PUBACK.', one(sync.inflight)),
    counter('forewarn_mqtt_published_messages_total', 'MQTT messages the broker acknowledged during this run.', one(sync.messagesSent)),
    counter(
      'forewarn_mqtt_published_bytes_total',
      'Payload bytes (after compression) of the messages the broker acknowledged during this run.',
      one(sync.bytesSent),
    ),
    counter('forewarn_mqtt_published_records_total', 'Records in the messages the broker acknowledged during this run.', one(sync.sent)),
    counter(
      'forewarn_mqtt_publish_rejections_total',
      'Publishes the broker refused, by PUBACK reason code (e.g. 0x87 not authorized); the records stay queued.',
      Object.entries(sync.rejectedByReason).map(([reason, value]) => ({ labels: { reason }, value })),
    ),
    // Sources.
    gauge(
      'forewarn_source_state',
      "Each source's state: 1 for the current state, 0 for the others.",
      agent.sources.flatMap(({ stats }) => SOURCE_STATES.map((s) => ({ labels: { source: stats.name, state: s }, value: stats.state === s ? 1 : 0 }))),
    ),
    counter(
      'forewarn_source_samples_total',
      'Samples taken per source during this run.',
      agent.sources.map(({ stats }) => ({ labels: { source: stats.name }, value: stats.samples })),
    ),
    counter(
      'forewarn_source_errors_total',
      'Failed samples per source during this run.',
      agent.sources.map(({ stats }) => ({ labels: { source: stats.name }, value: stats.errors })),
    ),
    counter(
      'forewarn_source_protocol_events_total',
      "Protocol counters of the sources that keep them (Modbus, OPC UA), per source and counter, this run: requests, timeouts, reconnects, values by status… (each source's README lists its counters).",
      agent.sources.flatMap(({ stats, counters }) =>
        protocolCounters(counters).map(([counter, value]) => ({ labels: { source: stats.name, counter }, value })),
      ),
    ),
    gauge(
      'forewarn_source_last_sample_seconds',
      'When each source last produced a sample, in seconds since the Unix epoch (absent before its first).',
      agent.sources.flatMap(({ stats }) => (stats.lastSampleTs === null ? [] : [{ labels: { source: stats.name }, value: seconds(stats.lastSampleTs) }])),
    ),
  ];
  // Scoring.
  const scorer = agent.scorer;
  if (scorer) {
    families.push(
      gauge(
        'forewarn_model_info',
        "Always 1: which model version scores which asset (the binding's asset name or pattern).",
        scorer.stats.models.flatMap((m) => m.assets.map((asset) => ({ labels: { model: m.name, version: m.version, asset }, value: 1 }))),
      ),
      {
        name: 'forewarn_scoring_batch_duration_seconds',
        help: 'Time to score one batch of readings with every bound model.',
        type: 'histogram',
        samples: [scorer.latency.snapshot()],
      },
      counter('forewarn_scored_records_total', 'Risk records produced by the models during this run.', one(scorer.stats.scored)),
      counter(
        'forewarn_scoring_skipped_total',
        'Readings not scored, by reason: `missing_input` (a model input absent), `invalid_input` (an input out of range).',
        [
          { labels: { reason: 'missing_input' }, value: scorer.stats.skippedMissing },
          { labels: { reason: 'invalid_input' }, value: scorer.stats.skippedInvalid },
        ],
      ),
      counter('forewarn_scoring_errors_total', 'Model load and inference failures during this run.', one(scorer.stats.errors)),
    );
  }
  if (agent.drift) {
    const health = agent.drift.health();
    families.push(
      gauge(
        'forewarn_model_drift_state',
        "Each model's input drift per asset: 1 for the current state (warming, ok, watch, drift), 0 for the others.",
        health.flatMap((h) =>
          DRIFT_STATES.map((s) => ({ labels: { model: h.model, version: h.version, asset: h.asset, state: s }, value: h.state === s ? 1 : 0 })),
        ),
      ),
      // The figures the state is judged on (docs/drift.md), not the raw PSI, which slow inputs inflate whatever happens.
      gauge(
        'forewarn_model_drift_psi',
        "Largest PSI beyond chance over the model's inputs judged by PSI, per asset: what scoring.drift.watchPsi and alertPsi are compared with.",
        health.map((h) => ({ labels: { model: h.model, version: h.version, asset: h.asset }, value: h.driftPsi ?? h.psiMax })),
      ),
      gauge(
        'forewarn_model_drift_outside_share',
        "Largest share of an input's window beyond the training data's support, per asset: what scoring.drift.outsideShare is compared with.",
        health.map((h) => ({ labels: { model: h.model, version: h.version, asset: h.asset }, value: h.outsideMax ?? 0 })),
      ),
    );
  }
  // Alerts and their lifecycle (docs/alerts.md).
  const alerts = agent.health.stats;
  families.push(
    gauge('forewarn_alerts_active', 'Alerts raised and not cleared.', one(agent.health.activeAlerts().length)),
    gauge('forewarn_alerts_pending', "Alert conditions that hold but have not held their rule's `for` yet.", one(alerts.pending)),
    gauge(
      'forewarn_alerts_flapping',
      'Raised alerts marked flapping: held raised until they have been clear for a whole flapping window.',
      one(alerts.flapping),
    ),
    counter('forewarn_alert_changes_total', 'Alert records produced during this run, by state (raised, cleared).', [
      { labels: { state: 'raised' }, value: alerts.raised },
      { labels: { state: 'cleared' }, value: alerts.cleared },
    ]),
    counter('forewarn_alerts_flapped_total', 'Times an alert was marked flapping during this run.', one(alerts.flapped)),
  );
  if (agent.anomaly) {
    const a = agent.anomaly.stats;
    families.push(
      gauge('forewarn_anomaly_assets', 'Assets with an anomaly baseline, by state (warming, scoring, idle).', [
        { labels: { state: 'warming' }, value: a.warming },
        { labels: { state: 'scoring' }, value: a.scoring },
        { labels: { state: 'idle' }, value: a.idle },
      ]),
      counter('forewarn_anomaly_scored_total', 'Readings scored against a learned baseline.', one(a.scored)),
      counter('forewarn_anomaly_recorded_total', 'Scores that became a risk record (scoring.anomaly.recordIntervalMs).', one(a.recorded)),
      counter('forewarn_anomalies_total', 'Readings flagged as anomalous.', one(a.anomalies)),
    );
  }
  // The process.
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  families.push(
    gauge('process_resident_memory_bytes', 'Resident memory size.', one(mem.rss)),
    gauge('nodejs_heap_size_used_bytes', 'V8 heap in use.', one(mem.heapUsed)),
    counter('process_cpu_seconds_total', 'User and system CPU time spent.', one((cpu.user + cpu.system) / 1e6)),
    gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch, in seconds.', one(Math.round(Date.now() / 1000 - process.uptime()))),
    gauge('forewarn_event_loop_delay_seconds', 'Event-loop delay over the last 30 s window: `p50`, `p99` and `max`.', [
      { labels: { stat: 'p50' }, value: loop.p50 },
      { labels: { stat: 'p99' }, value: loop.p99 },
      { labels: { stat: 'max' }, value: loop.max },
    ]),
  );
  return families;
}

/**
 * Healthy means the agent does its job on this host: it runs, its event loop is responsive, and its last write
 * to the database succeeded. A broker that is down is not unhealthy (the agent buffers), nor is an unavailable
 * source; both are in `notes`.
 */
export function checkHealth(agent: AgentView, version: string, loop: LoopDelay, now = Date.now()): HealthReport {
  const reasons: string[] = [];
  const notes: string[] = [];
  const { stats } = agent;
  if (loop.p99 > LOOP_P99_UNHEALTHY_S)
    reasons.push(`event loop delay p99 ${loop.p99.toFixed(2)} s over the last ${Math.round(loop.windowSeconds)} s (limit ${LOOP_P99_UNHEALTHY_S} s)`);
  if (loop.max > LOOP_MAX_UNHEALTHY_S)
    reasons.push(`event loop stalled for ${loop.max.toFixed(1)} s in the last ${Math.round(loop.windowSeconds)} s (limit ${LOOP_MAX_UNHEALTHY_S} s)`);
  if (stats.lastWriteErrorTs !== null && (stats.lastCommitTs === null || stats.lastWriteErrorTs > stats.lastCommitTs)) {
    reasons.push(
      `the last database write failed (${new Date(stats.lastWriteErrorTs).toISOString()}); ${stats.lost} records lost this run — see FW_ERR_STORAGE_WRITE in the log`,
    );
  }
  let pending = 0;
  let freeBytes = 0;
  try {
    pending = agent.store.pendingTotal();
    freeBytes = agent.store.usage().freeBytes;
    if (agent.config.storage.minFreeBytes && freeBytes < agent.config.storage.minFreeBytes) {
      notes.push(`free space ${freeBytes} B is below storage.minFreeBytes (${agent.config.storage.minFreeBytes} B): unsent records are dropped by policy`);
    }
  } catch (err) {
    reasons.push(`the database cannot be read: ${describeError(err)}`);
  }
  const sync = agent.sync.stats;
  if (sync.state !== 'online')
    notes.push(`broker ${sync.state}${sync.lastError ? ` (${sync.lastError})` : ''}: records are buffered locally and sent when it is back`);
  for (const { stats: s } of agent.sources) {
    if (s.state === 'failing' || s.state === 'unavailable') notes.push(`source ${s.name} is ${s.state}${s.lastError ? `: ${s.lastError}` : ''}`);
  }
  for (const h of agent.drift?.health() ?? [])
    if (h.state === 'drift')
      notes.push(
        `model ${h.model}@${h.version} on ${h.asset}: inputs drifted (PSI beyond chance ${(h.driftPsi ?? h.psiMax).toFixed(2)}, outside the training range ${((h.outsideMax ?? 0) * 100).toFixed(0)}%)`,
      );
  return {
    status: reasons.length ? 'unhealthy' : 'ok',
    reasons,
    notes,
    agentId: agent.config.agent.id,
    version,
    uptimeSeconds: Math.round(seconds(now - stats.startedAt)),
    broker: { state: sync.state, connected: sync.state === 'online', sinceSeconds: Math.round(seconds(now - sync.since)), lastError: sync.lastError },
    storage: { pending, lastCommitTs: stats.lastCommitTs, lastWriteErrorTs: stats.lastWriteErrorTs, freeBytes },
    loop,
    sources: agent.sources.map(({ stats: s }) => ({ name: s.name, state: s.state })),
  };
}

export class MetricsServer implements Component {
  readonly name = 'metrics';
  private server: http.Server | null = null;
  private readonly loop = new LoopMonitor();
  /** The port it listens on, once it does (the chosen one when configured with 0). */
  port: number | null = null;

  constructor(
    private readonly config: Readonly<MetricsConfig>,
    private readonly agent: AgentView,
    private readonly version: string,
    private readonly log: Logger,
  ) {}

  start(): Promise<void> {
    if (!this.config.enabled || this.server) return Promise.resolve();
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 5_000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    this.server = server;
    return new Promise<void>((resolve) => {
      const onError = (err: NodeJS.ErrnoException) => {
        this.server = null;
        this.log.warn(
          { err: describeError(err), host: this.config.host, port: this.config.port },
          'cannot serve /metrics and /healthz (set metrics.port, or metrics.enabled: false); the agent carries on without them',
        );
        resolve();
      };
      server.once('error', onError);
      server.listen(this.config.port, this.config.host, () => {
        server.off('error', onError);
        server.on('error', (err) => this.log.warn({ err: describeError(err) }, 'metrics server error'));
        this.port = (server.address() as AddressInfo).port;
        this.log.info(
          {
            host: this.config.host,
            port: this.port,
            url: `http://${this.config.host.includes(':') ? `[${this.config.host}]` : this.config.host}:${this.port}/metrics`,
          },
          'serving /metrics and /healthz',
        );
        resolve();
      });
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    try {
      if (url === '/metrics') {
        const body = renderExposition(collectMetrics(this.agent, this.version, this.loop.current()));
        res.writeHead(200, { 'content-type': CONTENT_TYPE, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body);
      } else if (url === '/healthz') {
        const report = checkHealth(this.agent, this.version, this.loop.current());
        res
          .writeHead(report.status === 'ok' ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' })
          .end(req.method === 'HEAD' ? undefined : `${JSON.stringify(report)}\n`);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
      }
    } catch (err) {
      this.log.warn({ err: describeError(err), url }, 'metrics request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`error: ${describeError(err)}\n`);
    }
  }

  async stop(): Promise<void> {
    this.loop.stop();
    const server = this.server;
    this.server = null;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}
