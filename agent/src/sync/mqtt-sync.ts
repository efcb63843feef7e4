import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import mqtt, { ReasonCodes, type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../core/logger.js';
import type { AgentConfig } from '../config/load-config.js';
import { describeError } from '../core/errors.js';
import { CONTENT_TYPE, SCHEMA_VERSION, topics, type IncomingCommand, type StatusPayload } from '../contract/topics.js';
import { STREAMS } from '../store/outbox.js';
import { RECORD_OVERHEAD } from '../store/record-store.js';
import { mergeRanges, seqRanges, subtractRanges, type SeqRange } from '../core/seq-ranges.js';
import { parseAck } from './central-ack.js';
import type { Component } from '../core/types.js';
import type { RecordStore } from '../store/record-store.js';
import type { OutboxBatch, OutboxRecord, StreamName } from '../store/outbox.js';
import { backoffDelay } from '../core/backoff.js';
import { DrainProgress } from './drain-progress.js';
import { everyOnGrid, type GridInterval } from '../core/grid.js';

/** MQTT.js's keepalive interval, on the grid. */
const GRID_KEEPALIVE_TIMER = {
  set: (fn: () => void, ms: number) => everyOnGrid(fn, ms),
  clear: (t: GridInterval) => t.clear(),
} as unknown as NonNullable<IClientOptions['timerVariant']>;

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
  /** `central`: rows leave on the centre's confirmation; `broker`: on the PUBACK (docs/delivery.md). */
  ack: 'central' | 'broker';
  /** Records the centre confirmed during this run (central mode). */
  confirmed: number;
  /** Records sent again because the centre reported them missing or never confirmed them. */
  resent: number;
  /** Seqs the centre asked for that this agent no longer holds (announced as `records-unavailable`). */
  unavailable: number;
  /** When the last acknowledgement from the centre arrived; null before the first. */
  centralAckTs: number | null;
  /** Acknowledgement messages that did not follow the contract (ignored). */
  malformedAcks: number;
}

/** A range of one stream to send again, from the rows the outbox still holds. */
interface Resend {
  stream: StreamName;
  from: number;
  to: number;
  /** The centre asked for it (answer what is not held with `records-unavailable`), or it is an unconfirmed tail (pending rows only). */
  kind: 'missing' | 'tail';
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
    ack: 'central',
    confirmed: 0,
    resent: 0,
    unavailable: 0,
    centralAckTs: null,
    malformedAcks: 0,
  };
  readonly progress: DrainProgress;
  private client: MqttClient | null = null;
  /** Bumped per connection, so callbacks from a dead connection are ignored. */
  private generation = 0;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  /** When the next connection attempt is due, while one is scheduled: logged, so an operator knows when data resumes. */
  private nextTryAt: number | null = null;
  private flushTimer: GridInterval | null = null;
  private cursors = new Map<StreamName, number>();
  /** Per stream, the first seq committed after this connection came up: lower seqs are replayed backlog. */
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
  /** Per stream, the highest watermark the centre reported, and when its `highest` last moved. */
  private readonly central = new Map<StreamName, { through: number; highest: number; movedAt: number }>();
  private readonly resends: Resend[] = [];
  /** When each missing range (stream:from) was last answered, so a repeated ack does not resend it again at once. */
  private readonly answered = new Map<string, number>();
  /** Per stream: when the unconfirmed tail was last sent again, and the wait before the next time (doubles while it brings nothing). */
  private readonly tail = new Map<StreamName, { at: number; waitMs: number }>();
  /** Seqs dropped by the storage policy during this run: announced already, so never also reported unavailable. */
  private readonly droppedHere = new Map<StreamName, Array<[number, number]>>();
  private noCentralLogged = false;
  private ackErrorLogged = false;
  private storageErrorLoggedAt = 0;
  /** Called with `records-unavailable` notices to commit (the agent owns the write path). */
  private commitEvents: (payloads: Array<Record<string, unknown>>) => void = () => undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly store: RecordStore,
    private readonly info: StatusInfo,
    private readonly log: Logger,
  ) {
    this.b = config.broker;
    this.stats.ack = config.broker.ack;
    this.progress = new DrainProgress(store, config.broker.progressLogMs, log);
  }

  /** Where `records-unavailable` notices go to be committed: the agent's write path. Call before start(). */
  onUnavailable(commit: (payloads: Array<Record<string, unknown>>) => void): void {
    this.commitEvents = commit;
  }

  /** The storage policy dropped these seqs (announced in the same transaction); they are not also "unavailable". */
  noteDropped(stream: StreamName, ranges: ReadonlyArray<[number, number]>): void {
    this.droppedHere.set(stream, mergeRanges([...(this.droppedHere.get(stream) ?? []), ...ranges]).slice(-1024));
  }

  /**
   * The database file was replaced under us (store.replaceFile): what this connection handed out and had acknowledged
   * belongs to the old file. Drop the connection; the next one starts from the new file's state.
   */
  storeReplaced(): void {
    this.resends.length = 0;
    const client = this.client;
    if (client) {
      this.generation++;
      this.stats.inflight = 0;
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.end(true);
      this.client = null;
      this.setState('offline');
      this.scheduleReconnect();
    }
    this.cursors = new Map();
  }

  private get agentId(): string {
    return this.config.agent.id;
  }

  async start(): Promise<void> {
    this.connect();
    this.flushTimer = everyOnGrid(() => {
      this.checkTail();
      this.drain();
      try {
        this.progress.tick(this.stats.state === 'online', Date.now(), this.nextTryAt);
      } catch (err) {
        this.storageError(err, 'cannot record the drain progress');
      }
    }, this.b.flushIntervalMs);
  }

  /**
   * Per stream, the highest seq handed out on the current (or, while offline, the last) connection: those rows may
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
      // MQTT.js traces every packet through `debug`, its arguments built each time even when tracing is off:
      // 8 % of the agent's steady CPU. Its trace is for debugging MQTT.js, not the agent; our own log says what matters.
      log: () => undefined,
      // mqtt-packet's default pre-builds a Buffer for every 16-bit number (65,536 of them, 6 MiB of heap for as
      // long as the process runs) to save a 2-byte allocation per packet id and topic length.
      writeCache: false,
      // The keepalive check on the process's grid (core/grid.ts, with housekeeping), and not re-armed for every
      // packet: by default MQTT.js clears its interval timer and creates another for each packet it sends or
      // takes. A ping then goes every keepalive even while PUBACKs come in: 2 bytes each way per 30 s.
      reschedulePings: false,
      timerVariant: GRID_KEEPALIVE_TIMER,
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
      // With central acknowledgement, rows the broker took on an earlier connection wait for the centre; they go
      // again only when it reports them missing or never confirms them (checkTail), not on every reconnect.
      try {
        this.cursors = this.b.ack === 'central' ? this.store.publishedCursors() : new Map();
      } catch (err) {
        this.storageError(err, 'cannot read the outbox');
        this.cursors = new Map();
      }
      this.resends.length = 0;
      this.answered.clear();
      this.liveFrom = new Map([...this.store.lastSeqs()].map(([s, seq]) => [s, seq + 1]));
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
      this.progress.connected();
      this.setState('online');
      this.publishStatus();
      this.subscribeInbound(client, gen);
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
            {
              code: 'FW_ERR_BROKER_REFUSED',
              reasonCode: hex(code),
              reason,
              url: this.b.url,
              clientId: this.b.clientId,
              username: this.b.username || undefined,
            },
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
        if (++this.silentDrops >= 2)
          this.reportTakenOver(`the broker closed ${this.silentDrops} connections in a row right after accepting them, without a reason`);
      }
      this.setState('offline');
      if (this.stableTimer) clearTimeout(this.stableTimer);
      this.scheduleReconnect();
      const next = { nextTryAt: this.nextTryAt ? new Date(this.nextTryAt).toISOString() : undefined, retryMaxMs: this.b.reconnectMaxMs };
      if (wasOnline) {
        this.log.warn({ url: this.b.url, err: this.stats.lastError ?? undefined, ...next }, 'lost the broker connection; buffering locally');
        this.offlineLogged = true;
      } else if (!this.offlineLogged && !this.refusalLogged) {
        // Said once per outage, not on every retry; DrainProgress sums the outage up every few minutes.
        this.log.warn({ url: this.b.url, err: this.stats.lastError ?? undefined, ...next }, 'broker unreachable; buffering locally and retrying with backoff');
        this.offlineLogged = true;
      }
    });
  }

  /** The centre's acknowledgements and, when enabled, remote commands: both subscribed on every connection. */
  private subscribeInbound(client: MqttClient, gen: number): void {
    const ackTopic = topics.ack(this.agentId);
    const commands = this.commands;
    client.on('message', (topic, payload, packet) => {
      if (gen !== this.generation) return;
      if (topic === ackTopic) {
        this.onAck(payload);
        return;
      }
      if (!commands) return;
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
    // QoS 0: each acknowledgement supersedes the last and the retained one comes with every (re)subscription, so a
    // lost one costs nothing; at QoS 1 each would cost a PUBACK back (about 8 % of the agent's CPU at 1 s, measured).
    client.subscribe(ackTopic, { qos: 0 }, (err, granted) => {
      if (gen !== this.generation) return;
      const code = granted?.[0]?.qos;
      if (err || (typeof code === 'number' && code >= 0x80)) {
        this.log.error(
          {
            code: 'FW_ERR_BROKER_REFUSED',
            filter: ackTopic,
            reasonCode: typeof code === 'number' ? hex(code) : undefined,
            err: err ? describeError(err) : undefined,
          },
          this.b.ack === 'central'
            ? "the broker refused the subscription to the centre's acknowledgements: records stay buffered until it is allowed (ACL: pattern read forewarn/v1/%u/ack)"
            : "the broker refused the subscription to the centre's acknowledgements: gap repair is off (ACL: pattern read forewarn/v1/%u/ack)",
        );
      }
    });
    if (!commands) return;
    client.subscribe(commands.filter, { qos: 1 }, (err, granted) => {
      if (gen !== this.generation) return;
      const code = granted?.[0]?.qos;
      if (err || (typeof code === 'number' && code >= 0x80)) {
        this.log.error(
          {
            code: 'FW_ERR_BROKER_REFUSED',
            filter: commands.filter,
            reasonCode: typeof code === 'number' ? hex(code) : undefined,
            err: err ? describeError(err) : undefined,
          },
          'the broker refused the command subscription; remote commands will not arrive (check its ACL: pattern read forewarn/v1/%u/cmd/#)',
        );
      } else {
        this.log.debug({ filter: commands.filter }, 'subscribed to remote commands');
      }
    });
  }

  /**
   * The centre's acknowledgement: in central mode the rows it confirmed may go; in both modes the seqs it reports
   * missing are sent again from what the outbox still holds, and those it no longer holds are announced as
   * unavailable, so the centre stops waiting for them.
   */
  private onAck(payload: Buffer): void {
    const ack = parseAck(payload, this.agentId);
    if (typeof ack === 'string') {
      if (!payload.length) return;
      this.stats.malformedAcks++;
      if (!this.ackErrorLogged) {
        this.ackErrorLogged = true;
        this.log.warn(
          { code: 'FW_ERR_ACK_MALFORMED', topic: topics.ack(this.agentId), reason: ack },
          'ignored an acknowledgement from the centre that does not follow the contract',
        );
      }
      return;
    }
    const now = Date.now();
    this.stats.centralAckTs = now;
    const watermarks = new Map<StreamName, number>();
    for (const [stream, st] of ack.streams) {
      const prev = this.central.get(stream);
      // Several central instances may answer; a watermark never goes back.
      const through = Math.max(prev?.through ?? 0, st.through);
      const highest = Math.max(prev?.highest ?? 0, st.highest);
      this.central.set(stream, { through, highest, movedAt: !prev || highest > prev.highest ? now : prev.movedAt });
      // Every time, not only when `through` moved: rows the broker took after the centre already had them (a resend
      // whose mark was lost to a full disk) are released by the next acknowledgement.
      if (this.b.ack === 'central' && through > 0) watermarks.set(stream, through);
      for (const [from, to] of st.missing) this.requestResend({ stream, from, to, kind: 'missing' }, now);
    }
    if (watermarks.size) {
      try {
        this.stats.confirmed += this.store.confirmAll(watermarks, now);
      } catch (err) {
        this.storageError(err, 'cannot mark records confirmed by the centre; they stay buffered');
      }
    }
    this.drain();
  }

  /** Queues a range to send again, unless the same one was answered within the ack timeout. */
  private requestResend(r: Resend, now: number): void {
    const key = `${r.stream}:${r.from}:${r.kind}`;
    if (now - (this.answered.get(key) ?? 0) < this.b.ackTimeoutMs) return;
    this.answered.set(key, now);
    if (this.answered.size > 4096) this.answered.delete(this.answered.keys().next().value!);
    this.resends.push(r);
  }

  /**
   * Central mode: rows the broker took more than ackTimeoutMs ago, above everything the centre has, while the
   * centre's highest seq of that stream has not moved for as long, were lost between the broker and the centre (a
   * broker restart that forgot the centre's shared subscription, a central database restored from a backup): send
   * them again. Only once the centre has answered at all, and with a doubling wait while it brings nothing, so a
   * setup without a central subscriber is never flooded.
   */
  private checkTail(now = Date.now()): void {
    if (this.b.ack !== 'central' || this.stats.state !== 'online' || this.stats.centralAckTs === null) {
      if (this.b.ack === 'central' && this.stats.state === 'online' && this.stats.centralAckTs === null) this.warnNoCentral(now);
      return;
    }
    for (const stream of STREAMS) {
      const c = this.central.get(stream);
      const highest = c?.highest ?? 0;
      const t = this.tail.get(stream) ?? { at: 0, waitMs: this.b.ackTimeoutMs };
      if (c && c.movedAt > t.at) t.waitMs = this.b.ackTimeoutMs; // the centre moved on since: back to the normal wait
      this.tail.set(stream, t);
      if (now - t.at < t.waitMs || (c && now - c.movedAt < this.b.ackTimeoutMs)) continue;
      let range: { lo: number; hi: number } | null;
      try {
        range = this.store.unconfirmedAbove(stream, highest, now - this.b.ackTimeoutMs);
      } catch (err) {
        this.storageError(err, 'cannot read the outbox');
        return;
      }
      if (!range) continue;
      t.at = now;
      t.waitMs = Math.min(t.waitMs * 2, 600_000);
      this.log.info(
        { stream, fromSeq: range.lo, toSeq: range.hi, centralHighest: highest },
        'the centre has not confirmed records the broker took; sending them again',
      );
      this.resends.push({ stream, from: range.lo, to: range.hi, kind: 'tail' });
    }
  }

  /** Central mode with no answer from any centre after a minute online: said once, with what to do. */
  private warnNoCentral(now: number): void {
    if (this.noCentralLogged || now - this.connectedAt < 60_000) return;
    this.noCentralLogged = true;
    this.log.warn(
      { topic: topics.ack(this.agentId) },
      "no acknowledgement from a central subscriber yet: records the broker took stay buffered (up to the storage quota) until one confirms them; run `forewarn subscribe`, or set broker.ack: broker to release records on the broker's acknowledgement",
    );
  }

  /** A failing database in a timer or callback: logged once a minute, never thrown out of the event loop. */
  private storageError(err: unknown, what: string): void {
    this.stats.lastError = describeError(err);
    if (Date.now() - this.storageErrorLoggedAt < 60_000) return;
    this.storageErrorLoggedAt = Date.now();
    this.log.error({ err: this.stats.lastError, code: 'FW_ERR_STORAGE_WRITE' }, what);
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
    this.nextTryAt = Date.now() + delay;
    this.log.debug({ delay, attempt: this.attempt, nextTryAt: new Date(this.nextTryAt).toISOString() }, 'reconnecting');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.nextTryAt = null;
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
        // Ranges the centre reported missing go before anything new.
        const again = this.nextResend();
        if (again) {
          this.publishBatch(this.client, again, true);
          continue;
        }
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
      this.storageError(err, 'outbox read failed');
    } finally {
      this.draining = false;
    }
    if (this.stats.inflight === 0) this.idle.splice(0).forEach((f) => f());
  }

  /**
   * The next batch of a queued resend, or null when none is left. Seqs of a `missing` range that the outbox no
   * longer holds are announced as `records-unavailable` (except those this run dropped and announced already).
   */
  private nextResend(): OutboxBatch | null {
    while (this.resends.length) {
      const r = this.resends[0]!;
      const rows = this.store.heldRecords(r.stream, r.from, r.to, this.b.batchMaxRecords, r.kind === 'tail');
      const records: OutboxRecord[] = [];
      let bytes = 0;
      for (const row of rows) {
        const size = row.json.length + RECORD_OVERHEAD;
        if (records.length && bytes + size > this.maxBytes) break;
        bytes += size;
        records.push(row);
      }
      // Where this batch's share of the range ends: the last record sent, unless everything held in the range is in it.
      const cut = records.length < rows.length || rows.length === this.b.batchMaxRecords;
      const upTo = cut ? records[records.length - 1]!.seq : r.to;
      if (r.kind === 'missing')
        this.announceUnavailable(
          r.stream,
          r.from,
          upTo,
          records.map((x) => x.seq),
        );
      if (upTo >= r.to) this.resends.shift();
      else r.from = upTo + 1;
      if (records.length) {
        this.stats.resent += records.length;
        return { stream: r.stream, historical: true, records, bytes };
      }
    }
    return null;
  }

  /** The seqs of [from, to] not in `held` and not dropped by this run: committed as one `records-unavailable` notice per reason. */
  private announceUnavailable(stream: StreamName, from: number, to: number, held: number[]): void {
    // Ranges can be wide (a subscriber that joined late asks from seq 1): work on ranges, never on every number.
    const known = mergeRanges([...seqRanges([...held].sort((a, b) => a - b)), ...(this.droppedHere.get(stream) ?? [])]);
    const firstSeq = this.store.firstSeq;
    const byReason = new Map<'purged' | 'before-this-database', SeqRange[]>();
    const add = (reason: 'purged' | 'before-this-database', a: number, b: number) => {
      if (a <= b) byReason.set(reason, [...(byReason.get(reason) ?? []), [a, b]]);
    };
    for (const [a, b] of subtractRanges(from, to, known)) {
      add('before-this-database', a, Math.min(b, firstSeq - 1));
      add('purged', Math.max(a, firstSeq), b);
    }
    if (!byReason.size) return;
    const ts = Date.now();
    const notices = [...byReason].map(([reason, ranges]) => ({ ts, type: 'records-unavailable', stream, ranges, reason }));
    for (const n of notices) this.stats.unavailable += n.ranges.reduce((k, [a, b]) => k + b - a + 1, 0);
    this.log.info(
      { stream, notices: notices.map((n) => ({ reason: n.reason, ranges: n.ranges.slice(0, 4) })) },
      'the centre asked for records this agent no longer holds; announced as unavailable',
    );
    this.commitEvents(notices);
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

  private publishBatch(client: MqttClient, batch: OutboxBatch, resend = false): void {
    const gen = this.generation;
    const { stream, records } = batch;
    const first = records[0]!;
    const last = records[records.length - 1]!;
    // A resend is outside the stream's cursor: new records go on from where they were.
    if (!resend) this.cursors.set(stream, last.seq);
    const { payload, options } = this.encode(batch);
    this.stats.inflight++;
    client.publish(topics.stream(this.agentId, stream), payload, options, (err) => {
      if (gen !== this.generation) return; // that connection is gone; the rows are resent on the next one
      this.stats.inflight--;
      const code = (err as { code?: unknown } | undefined)?.code;
      if (err && typeof code === 'number' && code >= 0x80) {
        if (!resend) this.onRejected(stream, first, records.length, code);
      } else if (err) {
        // Not an answer from the broker (the connection is failing); the next connection sends these again.
        this.stats.lastError = describeError(err);
      } else {
        try {
          // Central mode: the broker has them; they stay until the centre confirms them (onAck).
          if (this.b.ack === 'central')
            this.store.markPublished(
              stream,
              records.map((r) => r.seq),
            );
          else
            this.store.markSent(
              stream,
              records.map((r) => r.seq),
            );
        } catch (err) {
          // A full disk: the rows stay unmarked and go again on the next connection; the centre deduplicates.
          this.storageError(err, 'cannot mark records acknowledged by the broker; they will be sent again');
        }
        this.stats.sent += records.length;
        this.stats.messagesSent++;
        this.stats.bytesSent += payload.length;
        this.progress.acknowledged(records.length, payload.length);
        if (stream === 'risk' && this.b.retainCurrentRisk) this.publishCurrentRisk(client, records);
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
    if (cursor >= first.seq) this.cursors.set(stream, first.seq - 1);
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
    this.flushTimer?.clear();
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
