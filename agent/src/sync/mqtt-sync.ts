import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../logger.js';
import type { AgentConfig } from '../config/load-config.js';
import { describeError } from '../errors.js';
import { SCHEMA_VERSION, topics, type BatchPayload, type StatusPayload } from '../contract/topics.js';
import type { Component } from '../pipeline/types.js';
import type { RecordStore, StoredRecord, StreamName } from '../store/record-store.js';
import { backoffDelay } from './backoff.js';

export type BrokerState = 'connecting' | 'online' | 'offline' | 'stopped';

export interface SyncStats {
  state: BrokerState;
  /** When the connection was made, or when the current outage began. */
  since: number;
  /** Records acknowledged by the broker during this run. */
  sent: number;
  /** Publishes the broker refused (PUBACK reason ≥ 0x80); the records stay in the outbox. */
  rejected: number;
  reconnects: number;
  lastError: string | null;
  inflight: number;
  window: number;
}

export interface StatusInfo {
  bootSeq: number;
  agentVersion: string;
  models: () => StatusPayload['models'];
  sources: () => NonNullable<StatusPayload['sources']>;
}

/** How long `stop()` keeps draining the outbox before it says goodbye. */
const STOP_DRAIN_MS = 2000;

/**
 * Drains the SQLite outbox to the broker over MQTT 5 with QoS 1. A record is marked sent only when its
 * PUBACK arrives; anything in flight when a connection drops is sent again on the next one.
 * Reconnects with exponential backoff and jitter, and never gives up.
 */
export class MqttSync implements Component {
  readonly name = 'sync';
  readonly stats: SyncStats = { state: 'connecting', since: Date.now(), sent: 0, rejected: 0, reconnects: 0, lastError: null, inflight: 0, window: 0 };
  private client: MqttClient | null = null;
  /** Bumped per connection, so callbacks from a dead connection are ignored. */
  private generation = 0;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private cursors = new Map<StreamName, number>();
  private draining = false;
  private stopping = false;
  private offlineLogged = false;
  private readonly idle: Array<() => void> = [];
  private readonly b: AgentConfig['broker'];

  constructor(
    private readonly config: AgentConfig,
    private readonly store: RecordStore,
    private readonly info: StatusInfo,
    private readonly log: Logger,
  ) {
    this.b = config.broker;
  }

  private get agentId(): string {
    return this.config.agent.id;
  }

  async start(): Promise<void> {
    this.connect();
    this.flushTimer = setInterval(() => this.drain(), this.b.flushIntervalMs);
  }

  /** Publishes the retained online status again (a source changed state); a no-op while offline. */
  publishStatus(): void {
    const client = this.client;
    if (!client || this.stats.state !== 'online') return;
    const gen = this.generation;
    client.publish(topics.status(this.agentId), JSON.stringify(this.status('online')), { qos: 1, retain: true }, (err) => {
      if (err && gen === this.generation) this.log.warn({ err: describeError(err) }, 'online status not accepted by the broker');
    });
  }

  /** Asks for a drain now, e.g. when an alert was committed. */
  notify(): void {
    this.drain();
  }

  private status(state: 'online' | 'offline', reason?: StatusPayload['reason']): StatusPayload {
    const payload: StatusPayload = {
      schemaVersion: SCHEMA_VERSION,
      agentId: this.agentId,
      state,
      ts: Date.now(),
      bootSeq: this.info.bootSeq,
      agentVersion: this.info.agentVersion,
    };
    if (reason) payload.reason = reason;
    if (state === 'online') {
      payload.models = this.info.models();
      payload.sources = this.info.sources();
    }
    return payload;
  }

  private options(): IClientOptions {
    const tls = this.b.tls;
    const opts: IClientOptions = {
      protocolVersion: 5,
      clientId: this.b.clientId,
      clean: true,
      keepalive: this.b.keepaliveSeconds,
      connectTimeout: this.b.connectTimeoutMs,
      // We reconnect ourselves, with backoff and jitter.
      reconnectPeriod: 0,
      will: {
        topic: topics.status(this.agentId),
        payload: Buffer.from(JSON.stringify(this.status('offline', 'connection-lost'))),
        qos: 1,
        retain: true,
      },
      rejectUnauthorized: tls.rejectUnauthorized,
    };
    if (this.b.username) opts.username = this.b.username;
    if (this.b.password) opts.password = this.b.password;
    if (tls.caFile) opts.ca = readFileSync(tls.caFile);
    if (tls.certFile) opts.cert = readFileSync(tls.certFile);
    if (tls.keyFile) opts.key = readFileSync(tls.keyFile);
    return opts;
  }

  private connect(): void {
    if (this.stopping) return;
    const gen = ++this.generation;
    this.setState('connecting');
    let client: MqttClient;
    try {
      client = mqtt.connect(this.b.url, this.options());
    } catch (err) {
      this.stats.lastError = describeError(err);
      this.log.error({ err: this.stats.lastError, code: 'FW_ERR_BROKER_CONNECT' }, 'cannot create the MQTT client; will retry');
      this.scheduleReconnect();
      return;
    }
    this.client = client;
    client.on('connect', (connack) => {
      if (gen !== this.generation) return;
      const receiveMaximum = connack.properties?.receiveMaximum ?? 65535;
      this.stats.window = Math.max(1, Math.min(this.b.maxInflight, receiveMaximum));
      this.stats.inflight = 0;
      this.cursors = new Map();
      this.attempt = 0;
      if (this.offlineLogged) {
        this.log.info({ url: this.b.url, buffered: this.pendingCount() }, 'broker reachable again; sending the buffered records');
      } else {
        this.log.info({ url: this.b.url, clientId: this.b.clientId, window: this.stats.window }, 'connected to the broker');
      }
      this.offlineLogged = false;
      this.setState('online');
      this.publishStatus();
      this.drain();
    });
    client.on('error', (err) => {
      if (gen !== this.generation) return;
      this.stats.lastError = describeError(err);
    });
    client.on('disconnect', (packet) => {
      if (gen !== this.generation) return;
      // The broker told us why it is closing the connection, e.g. a session taken over by a duplicate client id.
      this.stats.lastError = `broker sent DISCONNECT, reason code ${packet.reasonCode ?? 0}${packet.properties?.reasonString ? `: ${packet.properties.reasonString}` : ''}`;
      this.log.warn({ reasonCode: packet.reasonCode, clientId: this.b.clientId }, 'broker closed the connection');
    });
    client.on('close', () => {
      if (gen !== this.generation) return;
      this.generation++;
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.end(true);
      this.client = null;
      if (this.stopping) return;
      const wasOnline = this.stats.state === 'online';
      this.setState('offline');
      if (wasOnline) {
        this.log.warn({ url: this.b.url, err: this.stats.lastError ?? undefined }, 'lost the broker connection; buffering locally');
        this.offlineLogged = true;
      } else if (!this.offlineLogged) {
        // Said once per outage, not on every retry.
        this.log.warn({ url: this.b.url, err: this.stats.lastError ?? undefined }, 'broker unreachable; buffering locally and retrying with backoff');
        this.offlineLogged = true;
      }
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.reconnectTimer) return;
    const delay = backoffDelay(this.attempt++, this.b.reconnectMinMs, this.b.reconnectMaxMs);
    this.log.debug({ delay, attempt: this.attempt }, 'reconnecting');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.stats.reconnects++;
      this.connect();
    }, delay);
  }

  private setState(state: BrokerState): void {
    // `since` marks the start of the current outage or connection, not of each retry.
    if ((this.stats.state === 'online') !== (state === 'online')) this.stats.since = Date.now();
    this.stats.state = state;
  }

  private pendingCount(): number {
    return this.store.counts().reduce((n, c) => n + c.pending, 0);
  }

  /** Publishes batches until the in-flight window is full or the outbox is empty. */
  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.client && this.stats.state === 'online' && this.stats.inflight < this.stats.window) {
        const batch = this.store.nextBatch(this.b.batchMaxRecords, this.cursors);
        if (!batch.length) break;
        this.publishBatch(this.client, batch);
      }
    } catch (err) {
      this.stats.lastError = describeError(err);
      this.log.error({ err: this.stats.lastError }, 'outbox read failed');
    } finally {
      this.draining = false;
    }
    if (this.stats.inflight === 0) this.idle.splice(0).forEach((f) => f());
  }

  private publishBatch(client: MqttClient, batch: StoredRecord[]): void {
    const gen = this.generation;
    const stream = batch[0]!.stream;
    this.cursors.set(stream, batch[batch.length - 1]!.id);
    const payload: BatchPayload<Record<string, unknown>> = {
      schemaVersion: SCHEMA_VERSION,
      agentId: this.agentId,
      stream,
      bootSeq: this.info.bootSeq,
      records: batch.map((r) => ({ seq: r.seq, ...r.payload })),
    };
    this.stats.inflight++;
    client.publish(topics.stream(this.agentId, stream), JSON.stringify(payload), { qos: 1 }, (err) => {
      if (gen !== this.generation) return; // that connection is gone; the rows are resent on the next one
      this.stats.inflight--;
      if (err) {
        this.stats.rejected++;
        this.stats.lastError = describeError(err);
        this.log.warn({ stream, records: batch.length, err: this.stats.lastError, code: 'FW_ERR_BROKER_PUBLISH' }, 'broker rejected a publish; the records stay buffered');
      } else {
        this.store.markSent(stream, batch.map((r) => r.id));
        this.stats.sent += batch.length;
        if (stream === 'risk') this.publishCurrentRisk(client, batch);
      }
      this.drain();
    });
  }

  /** Retained latest risk per asset and model, for dashboards that join late. */
  private publishCurrentRisk(client: MqttClient, batch: StoredRecord[]): void {
    const newest = new Map<string, StoredRecord>();
    for (const r of batch) newest.set(`${r.asset}\u0000${String(r.payload.model)}`, r);
    for (const r of newest.values()) {
      const body = { schemaVersion: SCHEMA_VERSION, agentId: this.agentId, record: { seq: r.seq, ...r.payload } };
      client.publish(topics.riskCurrent(this.agentId, r.asset, String(r.payload.model)), JSON.stringify(body), { qos: 1, retain: true });
    }
  }

  async stop(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = null;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const client = this.client;
    if (client && this.stats.state === 'online') {
      // Last chance to send what is buffered; whatever is left stays in SQLite for the next start.
      this.drain();
      await Promise.race([
        new Promise<void>((resolve) => (this.stats.inflight === 0 ? resolve() : this.idle.push(resolve))),
        new Promise((resolve) => setTimeout(resolve, STOP_DRAIN_MS)),
      ]);
      this.stopping = true;
      await new Promise<void>((resolve) => {
        client.publish(topics.status(this.agentId), JSON.stringify(this.status('offline', 'shutdown')), { qos: 1, retain: true }, () => resolve());
        setTimeout(resolve, 1000);
      });
      this.generation++;
      await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    } else {
      this.stopping = true;
      this.generation++;
      client?.end(true);
    }
    this.client = null;
    this.setState('stopped');
  }
}
