import { readFileSync } from 'node:fs';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Logger } from '../../core/logger.js';
import type { AgentConfig } from '../../config/load-config.js';
import type { Component } from '../../core/types.js';
import { ForewarnError, describeError } from '../../core/errors.js';
import { backoffDelay } from '../../core/backoff.js';
import type { OutboxRecord, StreamName } from '../../store/outbox.js';
import type { RecordStore } from '../../store/record-store.js';
import { DataType, loadSparkplugCodec, type SparkplugCodec, type SparkplugMetric, type SparkplugPayload } from './sparkplug-codec.js';
import { deviceId, recordMetrics, sparkplugTopics as T, type MessageType, type MetricUpdate } from './sparkplug-metrics.js';
import { everyOnGrid, type GridInterval } from '../../core/grid.js';

/**
 * The Sparkplug B 3.0 edge node (docs/sparkplug.md): one Sparkplug device per asset, fed from the SQLite outbox at
 * its own position (RecordStore.holdFor), over its own MQTT connection whose Will is the NDEATH.
 *
 * Session: each CONNECT carries the next bdSeq (0–255, saved in the outbox's meta table so it goes on across
 * restarts) in its Will; once connected (and, with a primary host, once its STATE says online) the node publishes
 * NBIRTH (seq 0, the same bdSeq), then a DBIRTH per known device, then data: DDATA with aliases and only the metrics
 * that changed (report by exception). A device meets a metric it has not declared → a new DBIRTH for it first.
 * Records committed before the session came up go with `is_historical` and complete. An NCMD `Node Control/Rebirth`
 * = true, or the primary host coming back, births everything again.
 *
 * Position: QoS 0 messages have no acknowledgement, so the node fences: after publishing it sends an UNSUBSCRIBE and
 * takes the UNSUBACK as proof the broker has read everything before it (one connection, in order); only then does
 * its position in the outbox move on. A connection lost before the fence goes back to the last fenced position and
 * those records go again, as history.
 */

const SPARKPLUG_STREAMS: readonly StreamName[] = ['alerts', 'risk', 'telemetry'];
const OUTPUT = 'sparkplug';
const BDSEQ_META = 'sparkplug.bdSeq';
/** Records read per stream and pass: bounds one drain's work so the event loop stays responsive. */
const READ_BATCH = 200;
/** The position is saved at most this often (and at stop): a crash only sends the records since again, as history. */
const SAVE_EVERY_MS = 2000;
/** Looks for records even without a commit notice (none is lost if a notice was). */
const POLL_MS = 5000;

export interface SparkplugStats {
  state: 'stopped' | 'connecting' | 'waiting-for-host' | 'online' | 'offline';
  bdSeq: number;
  births: number;
  /** NBIRTHs asked for by an NCMD or the primary host's return. */
  rebirths: number;
  messages: number;
  historical: number;
  /** NCMD and STATE messages that could not be read (FW_ERR_SPARKPLUG_MESSAGE). */
  rejected: number;
  lastError: string | null;
}

type SparkplugStore = Pick<RecordStore, 'holdFor' | 'releaseHold' | 'saveOutputCursors' | 'recordsAfter' | 'getMeta' | 'setMeta' | 'nextSeq'>;

interface Device {
  /** Metric name → its latest value, alias, type and unit: what a DBIRTH declares. */
  metrics: Map<string, MetricUpdate & { alias: number }>;
  born: boolean;
}

export class SparkplugNode implements Component {
  readonly name = 'sparkplug';
  readonly stats: SparkplugStats = { state: 'stopped', bdSeq: -1, births: 0, rebirths: 0, messages: 0, historical: 0, rejected: 0, lastError: null };
  private codec: SparkplugCodec | null = null;
  private mqtt: typeof import('mqtt') | null = null;
  private client: MqttClient | null = null;
  private generation = 0;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private pollTimer: GridInterval | null = null;
  private saveTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private born = false;
  private seq = 0;
  private nextAlias = 1;
  private readonly devices = new Map<string, Device>();
  /** Read up to here on this connection (published); `fenced`: the broker has read it; `saved`: in the outbox's meta. */
  private read = new Map<StreamName, number>();
  private fenced = new Map<StreamName, number>();
  private saved = new Map<StreamName, number>();
  /** Records at or below these seqs were committed before the current session's birth: historical. */
  private liveFrom = new Map<StreamName, number>();
  private draining = false;
  /** Fences waiting for their UNSUBACK: failed when the session ends. */
  private readonly fences = new Set<(err: Error) => void>();
  private again = false;
  /** The primary host's latest STATE timestamp ([tck-id-message-flow-edge-node-birth-publish-phid-wait-timestamp]). */
  private hostStateTs = -1;
  private hostOnline = false;
  private readonly s: AgentConfig['sparkplug'];

  constructor(
    private readonly config: Pick<AgentConfig, 'sparkplug' | 'broker'>,
    private readonly store: SparkplugStore,
    private readonly log: Logger,
    private readonly agentVersion: string,
  ) {
    this.s = config.sparkplug;
  }

  async start(): Promise<void> {
    this.stopping = false;
    // The heavy parts load only when the output is on.
    this.codec = await loadSparkplugCodec();
    this.mqtt = await import('mqtt');
    this.fenced = this.store.holdFor(OUTPUT, SPARKPLUG_STREAMS);
    this.saved = new Map(this.fenced);
    this.read = new Map(this.fenced);
    this.pollTimer = everyOnGrid(() => this.notify(), POLL_MS).unref();
    this.log.info(
      { url: this.url(), group: this.s.groupId, edgeNode: this.s.edgeNodeId, primaryHost: this.s.primaryHostId || null },
      'Sparkplug B edge node starting',
    );
    this.connect();
  }

  /** New records were committed: publish them when a session is up. */
  notify(): void {
    if (!this.born || this.stopping) return;
    void this.drain();
  }

  /** Publishes what is left, DDEATH per device and NDEATH, disconnects, saves its position. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of [this.reconnectTimer, this.saveTimer]) if (t) clearTimeout(t);
    this.pollTimer?.clear();
    const client = this.client;
    if (client?.connected && this.born) {
      try {
        await this.drain(true);
        await this.fence(client, this.generation);
        for (const [id, d] of this.devices)
          if (d.born)
            this.publish(client, T.device(this.s.groupId, 'DDEATH', this.s.edgeNodeId, id), { timestamp: Date.now(), seq: this.nextSeq(), metrics: [] });
        // [tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath]: NDEATH first, then DISCONNECT.
        await client.publishAsync(this.topic('NDEATH'), Buffer.from(this.deathPayload()), { qos: 1, retain: false });
      } catch (err) {
        this.log.warn({ err: describeError(err) }, 'Sparkplug: could not say goodbye; the broker sends the NDEATH (our Will)');
      }
    }
    this.born = false;
    this.generation++;
    await client?.endAsync().catch(() => undefined);
    this.client = null;
    this.saveNow();
    this.store.releaseHold(OUTPUT);
    this.stats.state = 'stopped';
  }

  private url(): string {
    return this.s.url || this.config.broker.url;
  }

  private topic(type: MessageType): string {
    return T.node(this.s.groupId, type, this.s.edgeNodeId);
  }

  private options(will: Buffer): IClientOptions {
    const b = this.config.broker;
    const own = this.s.url !== '';
    const opts: IClientOptions = {
      protocolVersion: 5,
      clientId: this.s.clientId,
      // Sparkplug 3.0: Clean Start and no session ([tck-id-principles-persistence-clean-session-50]).
      clean: true,
      properties: { sessionExpiryInterval: 0 },
      keepalive: b.keepaliveSeconds,
      connectTimeout: b.connectTimeoutMs,
      // Every CONNECT needs a Will with the next bdSeq: we reconnect ourselves.
      reconnectPeriod: 0,
      will: { topic: this.topic('NDEATH'), payload: will, qos: 1, retain: false },
      rejectUnauthorized: b.tls.rejectUnauthorized,
      log: () => undefined,
      // No 6 MiB cache of 65,536 two-byte Buffers (as the sync's client, sync/mqtt-sync.ts).
      writeCache: false,
    };
    const username = own ? this.s.username : b.username;
    const password = own ? this.s.password : b.password;
    if (username) opts.username = username;
    if (password) opts.password = password;
    if (b.tls.caFile) opts.ca = readFileSync(b.tls.caFile);
    if (b.tls.certFile && !own) opts.cert = readFileSync(b.tls.certFile);
    if (b.tls.keyFile && !own) opts.key = readFileSync(b.tls.keyFile);
    return opts;
  }

  /** NDEATH: only the bdSeq, no seq ([tck-id-topics-ndeath-payload], [tck-id-topics-ndeath-seq]). */
  private deathPayload(): Uint8Array {
    const now = Date.now();
    return this.codec!.encode({ timestamp: now, metrics: [{ name: 'bdSeq', timestamp: now, datatype: DataType.Int64, value: this.stats.bdSeq }] });
  }

  /** The next bdSeq, saved before the CONNECT that carries it ([tck-id-topics-nbirth-bdseq-increment]). */
  private nextBdSeq(): number {
    const last = Number(this.store.getMeta(BDSEQ_META) ?? '-1');
    const next = Number.isInteger(last) && last >= 0 && last < 255 ? last + 1 : 0;
    try {
      this.store.setMeta(BDSEQ_META, String(next));
    } catch (err) {
      // A full disk: the session goes on; after a restart a host may see this bdSeq twice, never a wrong pairing.
      this.log.warn({ err: describeError(err) }, 'Sparkplug: cannot save bdSeq');
    }
    return next;
  }

  private connect(): void {
    if (this.stopping) return;
    const gen = ++this.generation;
    this.stats.bdSeq = this.nextBdSeq();
    this.stats.state = 'connecting';
    let client: MqttClient;
    try {
      client = this.mqtt!.connect(this.url(), this.options(Buffer.from(this.deathPayload())));
    } catch (err) {
      this.stats.lastError = describeError(err);
      this.log.error({ err: this.stats.lastError, code: 'FW_ERR_BROKER_CONNECT' }, 'Sparkplug: cannot create the MQTT client; will retry');
      this.scheduleReconnect();
      return;
    }
    this.client = client;
    client.on('connect', () => {
      if (gen !== this.generation) return;
      this.attempt = 0;
      this.stats.lastError = null;
      this.log.info({ bdSeq: this.stats.bdSeq }, 'Sparkplug: connected');
      const subs: Record<string, { qos: 1 }> = { [this.topic('NCMD')]: { qos: 1 } };
      if (this.s.primaryHostId) subs[T.state(this.s.primaryHostId)] = { qos: 1 };
      // [tck-id-message-flow-edge-node-ncmd-subscribe]: NCMD with QoS 1, before the birth.
      client.subscribe(subs, (err) => {
        if (gen !== this.generation || err) return;
        if (!this.s.primaryHostId) this.birth(client, gen);
        else if (!this.born) this.stats.state = 'waiting-for-host';
      });
    });
    client.on('message', (topic, payload) => {
      if (gen !== this.generation) return;
      if (topic === this.topic('NCMD')) this.onCommand(client, gen, payload);
      else if (this.s.primaryHostId && topic === T.state(this.s.primaryHostId)) this.onHostState(client, gen, payload);
    });
    client.on('error', (err) => {
      if (gen !== this.generation) return;
      const msg = describeError(err);
      if (msg !== this.stats.lastError) this.log.warn({ err: msg, code: 'FW_ERR_BROKER_CONNECT' }, 'Sparkplug: connection error');
      this.stats.lastError = msg;
    });
    client.on('close', () => {
      if (gen !== this.generation) return;
      this.sessionLost();
      this.scheduleReconnect();
    });
  }

  /** What was published and not fenced may never have reached the broker: it goes again on the next session. */
  private sessionLost(): void {
    for (const fail of [...this.fences]) fail(new Error('session lost'));
    this.born = false;
    this.read = new Map(this.fenced);
    for (const d of this.devices.values()) d.born = false;
    if (!this.stopping) this.stats.state = 'offline';
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.reconnectTimer) return;
    const old = this.client;
    this.client = null;
    old?.end(true);
    const b = this.config.broker;
    const delay = backoffDelay(this.attempt++, b.reconnectMinMs, b.reconnectMaxMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
    this.reconnectTimer.unref();
  }

  private nextSeq(): number {
    const s = this.seq;
    this.seq = (this.seq + 1) % 256;
    return s;
  }

  private publish(client: MqttClient, topic: string, payload: SparkplugPayload): void {
    // QoS 0, retain false for every node message but NDEATH ([tck-id-topics-nbirth-mqtt], [tck-id-topics-ddata-mqtt], …).
    client.publish(topic, Buffer.from(this.codec!.encode(payload)), { qos: 0, retain: false });
    this.stats.messages++;
  }

  /** NBIRTH, then a DBIRTH per known device, then the records since the last fenced position. */
  private birth(client: MqttClient, gen: number): void {
    if (gen !== this.generation || this.stopping) return;
    const now = Date.now();
    this.seq = 0;
    const metrics: SparkplugMetric[] = [
      { name: 'bdSeq', timestamp: now, datatype: DataType.Int64, value: this.stats.bdSeq },
      // [tck-id-operational-behavior-data-commands-rebirth-name]: Boolean false, and no alias.
      { name: 'Node Control/Rebirth', timestamp: now, datatype: DataType.Boolean, value: false },
      { name: 'Properties/Agent version', timestamp: now, datatype: DataType.String, value: this.agentVersion },
    ];
    this.publish(client, this.topic('NBIRTH'), { timestamp: now, seq: this.nextSeq(), metrics });
    this.stats.births++;
    this.born = true;
    this.stats.state = 'online';
    this.read = new Map(this.fenced);
    this.liveFrom = new Map(SPARKPLUG_STREAMS.map((s) => [s, this.store.nextSeq(s) - 1]));
    for (const [id, d] of this.devices) this.deviceBirth(client, id, d, now);
    void this.drain();
  }

  private deviceBirth(client: MqttClient, id: string, d: Device, now: number): void {
    const metrics: SparkplugMetric[] = [...d.metrics.values()].map((m) => ({
      name: m.name,
      alias: m.alias,
      timestamp: m.ts,
      datatype: m.datatype,
      value: m.value,
      ...(m.unit ? { properties: { engUnit: m.unit } } : {}),
    }));
    this.publish(client, T.device(this.s.groupId, 'DBIRTH', this.s.edgeNodeId, id), { timestamp: now, seq: this.nextSeq(), metrics });
    d.born = true;
  }

  /** Publishes records past the read position, oldest first across the three streams, then fences. */
  private async drain(final = false): Promise<void> {
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = true;
    try {
      do {
        this.again = false;
        const client = this.client;
        const gen = this.generation;
        if (!client || !this.born) return;
        let rows: OutboxRecord[] = [];
        try {
          for (const s of SPARKPLUG_STREAMS) rows.push(...this.store.recordsAfter(s, this.read.get(s) ?? 0, READ_BATCH));
        } catch (err) {
          this.stats.lastError = describeError(err);
          this.log.warn({ err: this.stats.lastError }, 'Sparkplug: cannot read the outbox; will retry');
          return;
        }
        if (!rows.length) return;
        // Ids follow commit order across streams (a reading, then the risk scored from it). A stream that filled its
        // batch may have older rows than another stream's last: stop where the fullest batch ends.
        let upTo = Number.MAX_SAFE_INTEGER;
        for (const s of SPARKPLUG_STREAMS) {
          const mine = rows.filter((r) => r.stream === s);
          if (mine.length >= READ_BATCH) upTo = Math.min(upTo, mine[mine.length - 1]!.id);
        }
        const full = upTo < Number.MAX_SAFE_INTEGER;
        rows = rows.filter((r) => r.id <= upTo).sort((a, b) => a.id - b.id);
        for (const r of rows) this.publishRecord(client, r);
        const reached = new Map(this.read);
        const fenced = await this.fence(client, gen).then(
          () => true,
          () => false,
        );
        if (!fenced || gen !== this.generation) return;
        for (const [s, seq] of reached) if (seq > (this.fenced.get(s) ?? 0)) this.fenced.set(s, seq);
        this.scheduleSave();
        if (full) this.again = true;
      } while (this.again && (!this.stopping || final));
    } finally {
      this.draining = false;
    }
  }

  private publishRecord(client: MqttClient, r: OutboxRecord): void {
    this.read.set(r.stream, Math.max(this.read.get(r.stream) ?? 0, r.seq));
    const updates = recordMetrics(r, this.s.units);
    if (!updates.length) return;
    const id = deviceId(r.asset);
    let d = this.devices.get(id);
    if (!d) {
      d = { metrics: new Map(), born: false };
      this.devices.set(id, d);
    }
    const historical = r.seq <= (this.liveFrom.get(r.stream) ?? 0);
    const changed: Array<MetricUpdate & { alias: number }> = [];
    let undeclared = !d.born;
    for (const u of updates) {
      const known = d.metrics.get(u.name);
      if (!known) undeclared = true;
      // Report by exception for live values; history goes complete (a historian wants every sample).
      if (known && !historical && known.value === u.value) continue;
      const m = { ...u, alias: known?.alias ?? this.nextAlias++ };
      changed.push(m);
      // A replayed record older than what the node already holds does not roll the current value back.
      if (!known || u.ts >= known.ts) d.metrics.set(u.name, m);
    }
    const now = Date.now();
    if (undeclared) {
      // [tck-id-topics-dbirth-metric-reqs]: a birth declares every metric; the record's values are in it.
      this.deviceBirth(client, id, d, now);
      return;
    }
    if (!changed.length) return;
    const metrics: SparkplugMetric[] = changed.map((m) => ({
      alias: m.alias,
      timestamp: m.ts,
      value: m.value,
      datatype: m.datatype,
      ...(historical ? { isHistorical: true } : {}),
    }));
    if (historical) this.stats.historical++;
    this.publish(client, T.device(this.s.groupId, 'DDATA', this.s.edgeNodeId, id), { timestamp: now, seq: this.nextSeq(), metrics });
  }

  /**
   * Resolves once the broker has read everything this client sent before (an UNSUBSCRIBE's UNSUBACK, in order).
   * Rejected when the session ends first: a drain waiting on a dead link must not hold up the next session's (MQTT.js
   * fails pending callbacks when a client is ended; this does not depend on it).
   */
  private fence(client: MqttClient, gen: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        this.fences.delete(fail);
        reject(err);
      };
      this.fences.add(fail);
      client.unsubscribe(`${this.topic('NCMD')}/fence`, (err) => {
        this.fences.delete(fail);
        if (err || gen !== this.generation) reject(err ?? new Error('session ended'));
        else resolve();
      });
    });
  }

  private scheduleSave(): void {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      this.saveNow();
    }, SAVE_EVERY_MS);
    this.saveTimer.unref();
  }

  private saveNow(): void {
    const moved = new Map([...this.fenced].filter(([s, seq]) => seq !== this.saved.get(s)));
    if (!moved.size) return;
    try {
      this.store.saveOutputCursors(OUTPUT, moved);
      for (const [s, seq] of moved) this.saved.set(s, seq);
    } catch (err) {
      // A full disk: kept in memory, saved with the next try; a crash before that only repeats history.
      this.log.warn({ err: describeError(err) }, 'Sparkplug: cannot save the output position');
    }
  }

  private reject(what: string, err: unknown): void {
    this.stats.rejected++;
    const e = new ForewarnError('FW_ERR_SPARKPLUG_MESSAGE', `${what}: ${describeError(err)}`);
    this.log.warn({ code: e.code, err: e.message }, 'Sparkplug: message ignored');
  }

  /** NCMD: `Node Control/Rebirth` = true births everything again ([tck-id-operational-behavior-data-commands-rebirth-action-2]). */
  private onCommand(client: MqttClient, gen: number, payload: Buffer): void {
    let metrics;
    try {
      metrics = this.codec!.decode(payload).metrics;
    } catch (err) {
      this.reject('NCMD', err);
      return;
    }
    if (metrics.some((m) => m.name === 'Node Control/Rebirth' && m.value === true)) {
      if (this.s.primaryHostId && !this.hostOnline) return;
      this.log.info({}, 'Sparkplug: rebirth requested');
      this.stats.rebirths++;
      this.birth(client, gen);
    }
  }

  /** The primary host's STATE (Sparkplug 3.0 JSON `{online, timestamp}`). */
  private onHostState(client: MqttClient, gen: number, payload: Buffer): void {
    let online: boolean;
    let ts: number;
    try {
      const p = JSON.parse(payload.toString('utf8')) as { online?: unknown; timestamp?: unknown };
      if (typeof p.online !== 'boolean' || typeof p.timestamp !== 'number') throw new Error('expected {"online": boolean, "timestamp": number}');
      online = p.online;
      ts = p.timestamp;
    } catch (err) {
      this.reject(`STATE of ${this.s.primaryHostId}`, err);
      return;
    }
    // An older STATE than the latest one is stale (a retained message overtaken, a replay): ignored.
    if (ts < this.hostStateTs) return;
    this.hostStateTs = ts;
    this.hostOnline = online;
    if (online && !this.born) {
      this.birth(client, gen);
    } else if (!online && this.born) {
      // [tck-id-message-flow-edge-node-birth-publish-phid-offline]: NDEATH, disconnect, start over (and birth
      // again once the host says online: [tck-id-operational-behavior-edge-node-birth-sequence-wait]).
      this.log.info({ host: this.s.primaryHostId }, 'Sparkplug: primary host offline; NDEATH and reconnect');
      this.stats.rebirths++;
      client.publish(this.topic('NDEATH'), Buffer.from(this.deathPayload()), { qos: 1, retain: false }, () => {
        if (gen !== this.generation) return;
        this.generation++;
        this.sessionLost();
        client.end(false, () => this.scheduleReconnect());
      });
    }
  }
}
