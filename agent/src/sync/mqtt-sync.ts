import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import mqtt, { ReasonCodes, type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../logger.js';
import type { AgentConfig } from '../config/load-config.js';
import { describeError } from '../errors.js';
import { CONTENT_TYPE, SCHEMA_VERSION, topics, type StatusPayload } from '../contract/topics.js';
import type { Component } from '../pipeline/types.js';
import type { RecordStore } from '../store/record-store.js';
import type { OutboxBatch, OutboxRecord, StreamName } from '../store/outbox.js';
import { backoffDelay } from './backoff.js';
import { DrainProgress } from './drain-progress.js';
import type { IncomingCommand } from '../commands/command-handler.js';

export type BrokerState = 'connecting' | 'online' | 'offline' | 'stopped';

export interface SyncStats {
  state: BrokerState;
  /** When the connection was made, or when the current outage began. */
  since: number;
  /** Records acknowledged by the broker during this run. */
  sent: number;
  /** Publishes the broker refused (PUBACK reason ≥ 0x80); the records stay in the outbox and are retried. */
  rejected: number;
  /** Refused publishes by reason code, e.g. { '0x87': 3 }. */
  rejectedByReason: Record<string, number>;
  /** Bytes of payload published (after compression) and records in them, for wire efficiency. */
  bytesSent: number;
  messagesSent: number;
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

/** A connection that lasted this long counts as stable: the backoff resets. */
const STABLE_MS = 10_000;
/** Room left in a message for the batch envelope around the records. */
const ENVELOPE_BYTES = 256;

/** How long `stop()` keeps draining the outbox before it says goodbye. */
const STOP_DRAIN_MS = 2000;

/**
 * Drains the SQLite outbox to the broker over MQTT 5 with QoS 1. A record is marked sent only when its
 * PUBACK arrives; anything in flight when a connection drops is sent again on the next one.
 * Reconnects with exponential backoff and jitter, and never gives up.
 */
export class MqttSync implements Component {
  readonly name = 'sync';
  readonly stats: SyncStats = {
    state: 'connecting',
    since: Date.now(),
    sent: 0,
    rejected: 0,
    rejectedByReason: {},
    bytesSent: 0,
    messagesSent: 0,
    reconnects: 0,
    lastError: null,
    inflight: 0,
    window: 0,
  };
  readonly progress: DrainProgress;
  private client: MqttClient | null = null;
  /** Bumped per connection, so callbacks from a dead connection are ignored. */
  private generation = 0;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private cursors = new Map<StreamName, number>();
  /** Per stream, the first id committed after this connection came up: lower ids are replayed backlog. */
  private liveFrom = new Map<StreamName, number>();
  /** Streams held back after the broker refused one of their publishes, until the given time. */
  private readonly paused = new Map<StreamName, { until: number; attempt: number }>();
  private maxBytes = 0;
  private stableTimer: NodeJS.Timeout | null = null;
  private refusalLogged = '';
  private takenOverLoggedAt = 0;
  /** This connection: when it came up, and whether the broker or the socket said anything before it closed. */
  private connectedAt = 0;
  private explained = false;
  /** Connections in a row the broker closed soon after accepting them, without a word. */
  private silentDrops = 0;
  private draining = false;
  private stopping = false;
  private offlineLogged = false;
  private readonly idle: Array<() => void> = [];
  /** Remote commands (docs/commands.md): the filter subscribed on every connect and who handles what arrives. */
  private commands: { filter: string; handle: (m: IncomingCommand) => void } | null = null;
  private readonly b: AgentConfig['broker'];

  constructor(
    private readonly config: AgentConfig,
    private readonly store: RecordStore,
    private readonly info: StatusInfo,
    private readonly log: Logger,
  ) {
    this.b = config.broker;
    this.progress = new DrainProgress(store, config.broker.progressLogMs, log);
  }

  private get agentId(): string {
    return this.config.agent.id;
  }

  async start(): Promise<void> {
    this.connect();
    this.flushTimer = setInterval(() => {
      this.drain();
      this.progress.tick(this.stats.state === 'online');
    }, this.b.flushIntervalMs);
  }

  /**
   * Per stream, the highest id handed out on the current (or, while offline, the last) connection: those rows may
   * be at the broker already, their PUBACK in flight or lost with the link, so the drop policy leaves them alone.
   */
  inflightCursors(): ReadonlyMap<StreamName, number> {
    return this.cursors;
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

  /** Subscribes (QoS 1) to `filter` on every connect and hands each message on it to `handle`. Call before start(). */
  onCommands(filter: string, handle: (m: IncomingCommand) => void): void {
    this.commands = { filter, handle };
  }

  /** Publishes a command reply (QoS 1) with the request's correlation data; dropped, and logged, while offline. */
  reply(topic: string, payload: unknown, correlationData?: Buffer): void {
    const client = this.client;
    if (!client || this.stats.state !== 'online') {
      this.log.warn({ topic }, 'offline: a command reply was not sent');
      return;
    }
    const properties: IClientPublishOptions['properties'] = { contentType: CONTENT_TYPE.json, payloadFormatIndicator: true };
    if (correlationData) properties.correlationData = correlationData;
    client.publish(topic, JSON.stringify(payload), { qos: 1, properties }, (err) => {
      if (err) this.log.warn({ err: describeError(err), topic }, 'command reply not accepted by the broker');
    });
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
      // Room for the envelope and the topic under the broker's Maximum Packet Size, when it sets one.
      const packetMax = connack.properties?.maximumPacketSize;
      this.maxBytes = packetMax ? Math.max(512, Math.min(this.b.maxMessageBytes, packetMax - 1024)) : this.b.maxMessageBytes;
      this.maxBytes -= ENVELOPE_BYTES;
      this.stats.inflight = 0;
      this.cursors = new Map();
      this.liveFrom = new Map([...this.store.maxIds()].map(([s, id]) => [s, id + 1]));
      this.paused.clear();
      this.refusalLogged = '';
      this.connectedAt = Date.now();
      this.explained = false;
      // The backoff resets only once a connection has held: a broker that accepts and then drops us at once
      // (a duplicate client id, an ACL kick) must not be hammered.
      if (this.stableTimer) clearTimeout(this.stableTimer);
      this.stableTimer = setTimeout(() => {
        this.attempt = 0;
        this.silentDrops = 0;
      }, STABLE_MS);
      this.stableTimer.unref();
      if (this.offlineLogged) {
        this.log.info({ url: this.b.url, buffered: this.pendingCount() }, 'broker reachable again; sending the buffered records');
      } else {
        this.log.info({ url: this.b.url, clientId: this.b.clientId, window: this.stats.window }, 'connected to the broker');
      }
      this.offlineLogged = false;
      this.setState('online');
      this.publishStatus();
      this.subscribeCommands(client, gen);
      this.drain();
    });
    client.on('error', (err) => {
      if (gen !== this.generation) return;
      this.explained = true;
      this.stats.lastError = describeError(err);
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'number' && code >= 0x80) {
        // A CONNACK refusal: bad credentials, not authorised, banned… Said once per distinct reason and outage.
        const reason = reasonName(code);
        if (this.refusalLogged !== reason) {
          this.refusalLogged = reason;
          this.log.error(
            { code: 'FW_ERR_BROKER_REFUSED', reasonCode: hex(code), reason, url: this.b.url, clientId: this.b.clientId, username: this.b.username || undefined },
            `broker refused the connection: ${reason}; retrying with backoff`,
          );
        }
      }
    });
    client.on('disconnect', (packet) => {
      if (gen !== this.generation) return;
      this.explained = true;
      const code = packet.reasonCode ?? 0;
      this.stats.lastError = `broker sent DISCONNECT: ${reasonName(code)} (${hex(code)})${packet.properties?.reasonString ? `: ${packet.properties.reasonString}` : ''}`;
      if (code === 0x8e) {
        this.reportTakenOver('the broker said: session taken over (0x8e)');
      } else {
        this.log.warn({ reasonCode: hex(code), reason: reasonName(code), clientId: this.b.clientId }, 'broker closed the connection');
      }
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
      // mosquitto closes a taken-over session without a DISCONNECT: a connection dropped soon after it came
      // up, again and again, with no error on our side, is another client using our id.
      if (wasOnline && !this.explained && Date.now() - this.connectedAt < STABLE_MS) {
        if (++this.silentDrops >= 2) this.reportTakenOver(`the broker closed ${this.silentDrops} connections in a row right after accepting them, without a reason`);
      }
      this.setState('offline');
      if (this.stableTimer) clearTimeout(this.stableTimer);
      if (wasOnline) {
        this.log.warn({ url: this.b.url, err: this.stats.lastError ?? undefined }, 'lost the broker connection; buffering locally');
        this.offlineLogged = true;
      } else if (!this.offlineLogged && !this.refusalLogged) {
        // Said once per outage, not on every retry.
        this.log.warn({ url: this.b.url, err: this.stats.lastError ?? undefined }, 'broker unreachable; buffering locally and retrying with backoff');
        this.offlineLogged = true;
      }
      this.scheduleReconnect();
    });
  }

  private subscribeCommands(client: MqttClient, gen: number): void {
    const commands = this.commands;
    if (!commands) return;
    client.on('message', (topic, payload, packet) => {
      if (gen !== this.generation) return;
      const p = packet.properties;
      const requester = p?.userProperties?.requester;
      commands.handle({
        topic,
        payload,
        ...(p?.responseTopic !== undefined ? { responseTopic: p.responseTopic } : {}),
        ...(p?.correlationData !== undefined ? { correlationData: p.correlationData } : {}),
        ...(requester !== undefined ? { requester: Array.isArray(requester) ? String(requester[0]) : String(requester) } : {}),
      });
    });
    client.subscribe(commands.filter, { qos: 1 }, (err, granted) => {
      if (gen !== this.generation) return;
      const code = granted?.[0]?.qos;
      if (err || (typeof code === 'number' && code >= 0x80)) {
        this.log.error(
          { code: 'FW_ERR_BROKER_REFUSED', filter: commands.filter, reasonCode: typeof code === 'number' ? hex(code) : undefined, err: err ? describeError(err) : undefined },
          'the broker refused the command subscription; remote commands will not arrive (check its ACL: pattern read forewarn/v1/%u/cmd/#)',
        );
      } else {
        this.log.debug({ filter: commands.filter }, 'subscribed to remote commands');
      }
    });
  }

  /** Another client holds our client id. Both would reconnect and kick each other forever: back off and say why. */
  private reportTakenOver(evidence: string): void {
    this.stats.lastError = `client id ${this.b.clientId} taken over by another client (${evidence})`;
    this.attempt = Math.max(this.attempt, 3);
    if (Date.now() - this.takenOverLoggedAt < 60_000) return;
    this.takenOverLoggedAt = Date.now();
    this.log.error(
      { code: 'FW_ERR_BROKER_CLIENT_ID_TAKEN', clientId: this.b.clientId, url: this.b.url, evidence },
      'another client connected with this client id and the broker dropped us; give each agent its own agent.id or broker.clientId',
    );
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
    return this.store.pendingTotal();
  }

  /** Publishes batches until the in-flight window is full or the outbox is empty. */
  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      const now = Date.now();
      for (const [stream, p] of this.paused) if (p.until <= now) this.paused.delete(stream);
      while (this.client && this.stats.state === 'online' && this.stats.inflight < this.stats.window) {
        const batch = this.store.nextBatch({
          maxRecords: this.b.batchMaxRecords,
          maxBytes: this.maxBytes,
          cursors: this.cursors,
          liveFrom: this.liveFrom,
          skip: new Set(this.paused.keys()),
        });
        if (!batch) break;
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

  /** The batch as published: the stored JSON of each record is spliced in, never parsed again on the hot path. */
  private encode(batch: OutboxBatch): { payload: Buffer; options: IClientPublishOptions } {
    const head = `{"schemaVersion":${SCHEMA_VERSION},"agentId":${JSON.stringify(this.agentId)},"stream":"${batch.stream}","bootSeq":${this.info.bootSeq}${batch.historical ? ',"historical":true' : ''},"records":[`;
    const body = batch.records.map((r) => (r.json.length > 2 ? `{"seq":${r.seq},${r.json.slice(1)}` : `{"seq":${r.seq}}`)).join(',');
    const json = Buffer.from(`${head}${body}]}`);
    if (this.b.compression === 'gzip' && json.length >= this.b.compressMinBytes) {
      return { payload: gzipSync(json, { level: 6 }), options: { qos: 1, properties: { contentType: CONTENT_TYPE.gzip, payloadFormatIndicator: false } } };
    }
    return { payload: json, options: { qos: 1, properties: { contentType: CONTENT_TYPE.json, payloadFormatIndicator: true } } };
  }

  private publishBatch(client: MqttClient, batch: OutboxBatch): void {
    const gen = this.generation;
    const { stream, records } = batch;
    const first = records[0]!;
    const last = records[records.length - 1]!;
    this.cursors.set(stream, last.id);
    const { payload, options } = this.encode(batch);
    this.stats.inflight++;
    client.publish(topics.stream(this.agentId, stream), payload, options, (err) => {
      if (gen !== this.generation) return; // that connection is gone; the rows are resent on the next one
      this.stats.inflight--;
      const code = (err as { code?: unknown } | undefined)?.code;
      if (err && typeof code === 'number' && code >= 0x80) {
        this.onRejected(stream, first, records.length, code);
      } else if (err) {
        // Not an answer from the broker (the connection is failing); the next connection sends these again.
        this.stats.lastError = describeError(err);
      } else {
        this.store.markSent(stream, records.map((r) => r.id));
        this.stats.sent += records.length;
        this.stats.messagesSent++;
        this.stats.bytesSent += payload.length;
        this.progress.acknowledged(records.length, payload.length);
        if (stream === 'risk') this.publishCurrentRisk(client, records);
      }
      this.drain();
    });
  }

  /**
   * A PUBACK with reason code ≥ 0x80: the broker did not take the records. They stay in the outbox, the stream
   * is held back with backoff and retried from the refused batch, so order within it holds.
   */
  private onRejected(stream: StreamName, first: OutboxRecord, count: number, code: number): void {
    const reason = reasonName(code);
    this.stats.rejected++;
    this.stats.rejectedByReason[hex(code)] = (this.stats.rejectedByReason[hex(code)] ?? 0) + 1;
    this.stats.lastError = `broker refused a publish on ${stream}: ${reason} (${hex(code)})`;
    const cursor = this.cursors.get(stream) ?? 0;
    if (cursor >= first.id) this.cursors.set(stream, first.id - 1);
    if (code === 0x95 && this.maxBytes > 512) {
      // Packet too large: the broker's limit is lower than it said; halve ours and retry at once.
      this.maxBytes = Math.max(512, Math.floor(this.maxBytes / 2));
      this.log.warn({ stream, maxMessageBytes: this.maxBytes }, 'broker refused a message as too large; sending smaller ones');
      return;
    }
    const prev = this.paused.get(stream);
    const attempt = (prev?.attempt ?? 0) + 1;
    this.paused.set(stream, { until: Date.now() + backoffDelay(attempt, this.b.reconnectMinMs, this.b.reconnectMaxMs), attempt });
    if (!prev) {
      this.log.error(
        { code: 'FW_ERR_BROKER_PUBLISH', stream, topic: topics.stream(this.agentId, stream), reasonCode: hex(code), reason, records: count, seq: first.seq },
        code === 0x87
          ? `broker denied the publish (not authorized): check its ACL lets this agent write ${topics.stream(this.agentId, '#')}; the records stay buffered`
          : `broker refused a publish: ${reason}; the records stay buffered and are retried`,
      );
    }
  }

  /** Retained latest risk per asset and model, for dashboards that join late. */
  private publishCurrentRisk(client: MqttClient, records: OutboxRecord[]): void {
    const newest = new Map<string, { asset: string; seq: number; payload: Record<string, unknown> }>();
    for (const r of records) {
      const payload = JSON.parse(r.json) as Record<string, unknown>;
      newest.set(`${r.asset}\u0000${String(payload.model)}`, { asset: r.asset, seq: r.seq, payload });
    }
    for (const r of newest.values()) {
      const body = { schemaVersion: SCHEMA_VERSION, agentId: this.agentId, record: { seq: r.seq, ...r.payload } };
      client.publish(topics.riskCurrent(this.agentId, r.asset, String(r.payload.model)), JSON.stringify(body), { qos: 1, retain: true });
    }
  }

  async stop(): Promise<void> {
    if (this.stableTimer) clearTimeout(this.stableTimer);
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

function hex(code: number): string {
  return `0x${code.toString(16).padStart(2, '0')}`;
}

function reasonName(code: number): string {
  return (ReasonCodes as Record<number, string>)[code] || `reason code ${hex(code)}`;
}
