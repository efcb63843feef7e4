import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { CONTENT_TYPE, TOPIC_ROOT, type AckPayload } from '../contract/topics.js';
import { ForewarnError, describeError, isForewarnError, type ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Component } from '../core/types.js';
import { backoffDelay } from '../core/backoff.js';
import { BATCH_STREAMS, PAYLOAD_ERROR, decodeBatch, decodeStatus, parseTopic } from './decode-batch.js';
import { CentralStore, type IngestResult } from './central-store.js';

/**
 * The reference central subscriber: consumes the agents' MQTT contract into SQLite, at least once end to end.
 *
 * Ack after commit: MQTT.js v5 handles an incoming QoS 1 PUBLISH as customHandleAcks → emit 'message' →
 * `client.handleMessage(packet, cb)` → PUBACK is written only when `cb` is called without an error
 * (node_modules/mqtt/build/lib/handlers/publish.js). So this class never listens to 'message': it replaces
 * `handleMessage`, commits the message to SQLite synchronously (better-sqlite3), then calls `cb()`. If the
 * commit fails it calls `cb(err)`, which sends no PUBACK, and drops the connection, so the broker redelivers
 * the message from the persistent session when we reconnect. MQTT.js handles one packet at a time and waits
 * for `cb`, so messages are also committed in the order they arrived.
 *
 * End-to-end acknowledgement: after committing an agent's batches it publishes, retained with QoS 1, on
 * `{root}/{agentId}/ack` what the database holds of that agent (`SubscriberStore.ackFor`): per stream the seq
 * up to which everything is received or explained, and the gaps it still misses. The agent keeps its records
 * until that watermark passes them and resends what the ack lists as missing (docs/delivery.md), so records the
 * broker acknowledged but delivered to nobody (mosquitto 2.0.11 forgets `$share` subscriptions on a restart) are
 * not lost. Acks are throttled per agent (`ackIntervalMs`), always followed by one for the last commit.
 */

export const DEFAULT_GROUP = 'forewarn-ingest';
/** A refused subscription (SUBACK reason ≥ 0x80): e.g. the broker's ACL or no shared-subscription support. */
export const SUBSCRIBE_ERROR: ErrorCode = 'FW_ERR_SUBSCRIBER_SUBSCRIBE';
/** The broker refused an acknowledgement publish (PUBACK reason ≥ 0x80): usually the ACL. */
export const ACK_ERROR: ErrorCode = 'FW_ERR_SUBSCRIBER_ACK';
/** A record came under a stored (agent, stream, seq) with different content. */
export const CONFLICT_ERROR: ErrorCode = 'FW_ERR_SEQ_CONFLICT';
/**
 * Default for `ackIntervalMs` (`--ack-interval`). An ack wakes the agent that reads it, costs the centre a query
 * and the broker a retained write: at 500 ms, an agent reporting every second got one per reading, a wake-up as
 * large as the reading's own (docs/benchmarks.md). The agent keeps acknowledged rows for its retention anyway
 * (24 h), so a later ack holds nothing up; only the repair of gaps the ack lists waits up to this long.
 */
export const DEFAULT_ACK_INTERVAL_MS = 5000;

export interface ReferenceSubscriberOptions {
  url: string;
  /** Must be stable across restarts (the broker keeps the session under it) and unique per running instance. */
  clientId: string;
  /**
   * The store: an open one (shared with the API and alerting of `forewarn central`), or a URL that the worker opens
   * at start and closes at stop (`sqlite:PATH`, a bare SQLite path, or `postgres://…`).
   */
  store: CentralStore | string;
  log: Logger;
  /** Shared-subscription group: members split the batches between them. Default `forewarn-ingest`. */
  group?: string;
  topicRoot?: string;
  username?: string;
  password?: string;
  passwordFile?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  rejectUnauthorized?: boolean;
  /** How long the broker keeps queueing for us while we are away. Default one day. */
  sessionExpirySeconds?: number;
  keepaliveSeconds?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** For reconnect jitter; tests pass a seeded one. */
  random?: () => number;
  /**
   * Publish the end-to-end acknowledgement `{root}/{agentId}/ack` (retained, QoS 1) after committing an agent's
   * batches. Default true. The subscriber's user needs write access to `{root}/+/ack`.
   */
  ack?: boolean;
  /** At most one ack per agent this often; a trailing one always follows the last commit. Default 500 ms. */
  ackIntervalMs?: number;
}

export type SubscriberState = 'idle' | 'connecting' | 'online' | 'offline' | 'stopped';

export interface SubscriberStats {
  state: SubscriberState;
  /** Publishes committed (or counted as malformed) and acknowledged. */
  messages: number;
  /** Records stored for the first time. */
  records: number;
  duplicates: number;
  outOfOrder: number;
  /** New records that filled a gap an ack had asked for. */
  repaired: number;
  /** New records below a reset's first seq, carried over from the agent's earlier database. */
  carried: number;
  /** Records under a stored seq with different content (the first is kept). */
  conflicts: number;
  malformed: number;
  statuses: number;
  /** Messages left unacknowledged because the database write failed; the broker redelivers them. */
  writeFailures: number;
  reconnects: number;
  /** Acks the broker accepted. */
  acksPublished: number;
  /** Acks the broker refused (PUBACK reason ≥ 0x80). */
  acksRefused: number;
  lastError: string | null;
}

export interface SubscriberEvents {
  connected: [info: { sessionPresent: boolean }];
  /** Every SUBACK of this connection arrived; `refused` lists the filters the broker turned down. */
  subscribed: [info: { refused: string[] }];
  disconnected: [];
  batch: [info: { topic: string; agentId: string; stream: string; records: number; result: IngestResult }];
  status: [info: { topic: string; agentId: string; state: string; bootSeq: number }];
  malformed: [info: { topic: string; error: string }];
  /** The broker accepted an ack (its PUBACK arrived). */
  ack: [info: { topic: string; agentId: string; payload: AckPayload }];
}

/** How many distinct topics get their own warning for a malformed payload; later ones are only counted. */
const MAX_WARNED_TOPICS = 1000;
const STOP_GRACE_MS = 2000;
/** A conflict is logged at most this often per agent and stream; the rest are counted. */
const CONFLICT_LOG_INTERVAL_MS = 60_000;

/** Per agent: whether an ack is due, its throttle, and the publish in flight. */
interface AckState {
  /** Something was committed since the last ack was computed (or that ack was lost with its connection). */
  due: boolean;
  timer: NodeJS.Timeout | null;
  lastSentAt: number;
  inflight: { settled: Promise<void>; settle: () => void } | null;
}

function readFile(file: string, option: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ForewarnError('FW_ERR_SECRET_READ', `${option}: cannot read ${file}: ${describeError(err)}`, { cause: err });
  }
}

export class ReferenceSubscriber extends EventEmitter<SubscriberEvents> implements Component {
  readonly name = 'subscriber';
  readonly stats: SubscriberStats = {
    state: 'idle',
    messages: 0,
    records: 0,
    duplicates: 0,
    outOfOrder: 0,
    repaired: 0,
    carried: 0,
    conflicts: 0,
    malformed: 0,
    statuses: 0,
    writeFailures: 0,
    reconnects: 0,
    acksPublished: 0,
    acksRefused: 0,
    lastError: null,
  };
  private opened: CentralStore | null = null;
  readonly group: string;
  readonly root: string;
  private readonly log: Logger;
  private readonly password: string | undefined;
  private client: MqttClient | null = null;
  /** Bumped per connection, so callbacks from a dead connection are ignored. */
  private generation = 0;
  private attempt = 0;
  private everConnected = false;
  private outageLogged = false;
  /** The broker answered CONNECT with a failure reason code (bad credentials, not authorized). */
  private refused = false;
  private stopping = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private readonly warnedTopics = new Set<string>();
  private readonly ackEnabled: boolean;
  private readonly ackIntervalMs: number;
  private readonly acks = new Map<string, AckState>();
  /** A refused ack was logged; cleared when an ack is accepted again. */
  private ackRefusalLogged = false;
  private readonly conflictLog = new Map<string, { at: number; suppressed: number }>();
  /** The commit in progress, awaited by stop(). */
  private ingesting: Promise<void> = Promise.resolve();
  /** The last commit failed: reconnect only once the store answers again, and keep the backoff growing meanwhile. */
  private storeFailing = false;

  constructor(private readonly options: ReferenceSubscriberOptions) {
    super();
    this.log = options.log;
    this.group = options.group ?? DEFAULT_GROUP;
    this.root = options.topicRoot ?? TOPIC_ROOT;
    if (!this.group || /[/+#]/.test(this.group)) {
      throw new ForewarnError('FW_ERR_USAGE', `group "${this.group}" must be non-empty without '/', '+' or '#'`);
    }
    if (!URL.canParse(options.url) || !/^(mqtts?|tcp|ssl|wss?):$/.test(new URL(options.url).protocol)) {
      throw new ForewarnError('FW_ERR_USAGE', `url "${options.url}" is not an MQTT URL (mqtt://host:1883, mqtts://host:8883, ws://, wss://)`);
    }
    if (options.password !== undefined && options.passwordFile) {
      throw new ForewarnError('FW_ERR_USAGE', 'give either password or passwordFile, not both');
    }
    this.password = options.passwordFile
      ? readFile(options.passwordFile, 'passwordFile')
          .toString('utf8')
          .replace(/\r?\n$/, '')
      : options.password;
    this.tlsOptions(); // fail now, not at the first connect, if a TLS file cannot be read
    this.ackEnabled = options.ack ?? true;
    this.ackIntervalMs = options.ackIntervalMs ?? DEFAULT_ACK_INTERVAL_MS;
    if (!Number.isFinite(this.ackIntervalMs) || this.ackIntervalMs < 0) {
      throw new ForewarnError('FW_ERR_USAGE', `ackIntervalMs must be a number of milliseconds >= 0 (got ${String(options.ackIntervalMs)})`);
    }
    if (typeof options.store !== 'string') this.opened = options.store;
  }

  /** The store, once started (or from the start when an open one was given). */
  get store(): CentralStore {
    if (!this.opened) throw new Error('the ingest worker has not opened its store yet: await start() first');
    return this.opened;
  }

  /** The filters we subscribe to: batches shared within the group, statuses to every member. */
  get filters(): string[] {
    return [...BATCH_STREAMS.map((s) => `$share/${this.group}/${this.root}/+/${s}`), `${this.root}/+/status`];
  }

  /** Returns at once; connects in the background and reconnects forever with backoff and jitter. */
  async start(): Promise<void> {
    if (this.stopping) throw new Error('a stopped subscriber cannot be started again; create a new one');
    // The store first: no message is taken (and acknowledged) before there is somewhere to commit it.
    if (!this.opened) this.opened = await CentralStore.open({ url: this.options.store as string });
    this.connect();
  }

  /** Stops taking messages (what is unacknowledged is redelivered to the next session) and closes the database. */
  async stop(): Promise<void> {
    if (this.stats.state === 'stopped') return;
    this.stopping = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    // No message is taken any more (onPublish refuses them): acknowledge what was committed before leaving.
    await this.flushAcks(STOP_GRACE_MS);
    for (const st of this.acks.values()) if (st.timer) clearTimeout(st.timer);
    this.generation++;
    const client = this.client;
    this.client = null;
    if (client) {
      // A graceful DISCONNECT keeps the session (its expiry was set at CONNECT); a dead broker must not hold us.
      await new Promise<void>((resolve) => {
        const guard = setTimeout(() => {
          client.stream?.destroy();
          resolve();
        }, STOP_GRACE_MS);
        client.end(false, {}, () => {
          clearTimeout(guard);
          resolve();
        });
      });
      client.removeAllListeners();
      client.on('error', () => undefined);
    }
    // Wait for the commit in progress (MQTT.js hands us one message at a time), then close what we opened.
    await this.ingesting;
    if (typeof this.options.store === 'string') await this.opened?.close();
    this.stats.state = 'stopped';
  }

  private tlsOptions(): Pick<IClientOptions, 'ca' | 'cert' | 'key'> {
    const o = this.options;
    return {
      ...(o.caFile ? { ca: readFile(o.caFile, 'caFile') } : {}),
      ...(o.certFile ? { cert: readFile(o.certFile, 'certFile') } : {}),
      ...(o.keyFile ? { key: readFile(o.keyFile, 'keyFile') } : {}),
    };
  }

  private clientOptions(): IClientOptions {
    const o = this.options;
    return {
      protocolVersion: 5,
      clientId: o.clientId,
      // A persistent session: the broker queues QoS 1 messages while we are away and redelivers unacknowledged ones.
      clean: false,
      properties: { sessionExpiryInterval: o.sessionExpirySeconds ?? 86_400 },
      keepalive: o.keepaliveSeconds ?? 30,
      connectTimeout: 30_000,
      // We reconnect ourselves, with backoff and jitter, and subscribe on every connect.
      reconnectPeriod: 0,
      resubscribe: false,
      // So handleMessage is replaced before the first packet can arrive.
      manualConnect: true,
      rejectUnauthorized: o.rejectUnauthorized ?? true,
      ...(o.username ? { username: o.username } : {}),
      ...(this.password !== undefined ? { password: this.password } : {}),
      // Re-read at every connect, so rotated certificates are picked up.
      ...this.tlsOptions(),
    };
  }

  private connect(): void {
    if (this.stopping) return;
    const gen = ++this.generation;
    this.stats.state = 'connecting';
    let client: MqttClient;
    try {
      client = mqtt.connect(this.options.url, this.clientOptions());
    } catch (err) {
      this.stats.lastError = describeError(err);
      this.log.error(
        { err: this.stats.lastError, code: isForewarnError(err) ? err.code : 'FW_ERR_BROKER_CONNECT' },
        'cannot create the MQTT client; will retry',
      );
      this.scheduleReconnect();
      return;
    }
    this.client = client;
    client.handleMessage = (packet, done) => this.onPublish(gen, client, packet, done);
    client.on('connect', (connack) => {
      if (gen !== this.generation) return;
      // A store that failed keeps the backoff growing until a message commits again.
      if (!this.storeFailing) this.attempt = 0;
      this.refused = false;
      this.stats.state = 'online';
      if (this.everConnected && !connack.sessionPresent) {
        this.log.warn(
          { clientId: this.options.clientId },
          'the broker had no session for us (restarted without persistence, or the session expired): messages published while we were away may be lost',
        );
      }
      this.log.info(
        { url: this.options.url, clientId: this.options.clientId, group: this.group, sessionPresent: connack.sessionPresent },
        'subscriber connected',
      );
      this.everConnected = true;
      this.outageLogged = false;
      this.subscribe(client, gen);
      // Acks computed for a connection that died never reached the broker: send them again.
      for (const [agentId, st] of this.acks) if (st.due) this.scheduleAck(agentId, st);
      this.emit('connected', { sessionPresent: connack.sessionPresent });
    });
    client.on('error', (err) => {
      if (gen !== this.generation) return;
      this.stats.lastError = describeError(err);
      const reason = (err as { code?: unknown }).code;
      if (this.stats.state === 'connecting' && typeof reason === 'number' && reason >= 0x80) this.refused = true;
    });
    client.on('disconnect', (packet) => {
      if (gen !== this.generation) return;
      const takenOver = packet.reasonCode === 0x8e;
      // Two instances sharing a client id would take the session from each other every second: back off longer.
      if (takenOver) this.attempt = Math.max(this.attempt, 5);
      this.stats.lastError = `broker sent DISCONNECT, reason code ${packet.reasonCode ?? 0}`;
      this.log.warn(
        { reasonCode: packet.reasonCode, clientId: this.options.clientId, ...(takenOver ? { code: 'FW_ERR_BROKER_CLIENT_ID_TAKEN' } : {}) },
        takenOver ? 'another client connected with our client id; give every subscriber instance its own --client-id' : 'broker closed the connection',
      );
    });
    client.on('close', () => {
      if (gen !== this.generation) return;
      this.generation++;
      client.removeAllListeners();
      client.on('error', () => undefined);
      // Later, not now: MQTT.js may still be handling packets that arrived before the close (a PUBACK of one of
      // our acks), and those crash on a client whose stores end() has already closed.
      setImmediate(() => client.end(true));
      this.client = null;
      this.ackLost();
      if (this.stopping) return;
      if (this.stats.state === 'online') this.emit('disconnected');
      this.stats.state = 'offline';
      if (this.storeFailing) {
        // We cut the connection ourselves so the broker keeps the messages: the store's error was logged already.
      } else if (!this.outageLogged) {
        // Once per outage, not on every retry.
        const code: ErrorCode = this.refused ? 'FW_ERR_BROKER_REFUSED' : 'FW_ERR_BROKER_CONNECT';
        this.log.warn({ url: this.options.url, err: this.stats.lastError ?? undefined, code }, 'broker connection lost or refused; retrying with backoff');
        this.outageLogged = true;
      }
      this.scheduleReconnect();
    });
    client.connect();
  }

  private subscribe(client: MqttClient, gen: number): void {
    const refused: string[] = [];
    let pending = this.filters.length;
    for (const filter of this.filters) {
      client.subscribe(filter, { qos: 1 }, (err) => {
        if (gen !== this.generation) return;
        if (err) {
          refused.push(filter);
          this.stats.lastError = describeError(err);
          this.log.error(
            { filter, err: this.stats.lastError, code: SUBSCRIBE_ERROR },
            'the broker refused a subscription (ACL? shared subscriptions disabled?)',
          );
        }
        if (--pending === 0) this.emit('subscribed', { refused });
      });
    }
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.reconnectTimer) return;
    const delay = backoffDelay(this.attempt++, this.options.reconnectMinMs ?? 1000, this.options.reconnectMaxMs ?? 60_000, this.options.random);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.stats.reconnects++;
      if (!this.storeFailing || !this.opened) return this.connect();
      // Taking messages again makes sense only once the store answers: until then the broker keeps them queued.
      this.opened.sql.get('SELECT 1 AS ok').then(
        () => this.connect(),
        () => this.scheduleReconnect(),
      );
    }, delay);
  }

  /**
   * Commit, then acknowledge: `done()` sends the PUBACK, `done(err)` withholds it. MQTT.js hands over the next
   * message only once `done` is called, so messages are committed one at a time, in the order they arrived.
   */
  private onPublish(gen: number, client: MqttClient, packet: IPublishPacket, done: (err?: Error) => void): void {
    if (gen !== this.generation || this.stopping) {
      done(new Error('subscriber stopping; left unacknowledged for redelivery'));
      return;
    }
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const work = this.ingest(packet.topic, payload, packet.properties?.contentType).then(
      () => {
        this.stats.messages++;
        if (this.storeFailing) this.log.info({ store: this.store.location }, 'the store takes writes again; ingest resumes');
        this.storeFailing = false;
        done();
      },
      (err: unknown) => {
        this.stats.writeFailures++;
        this.stats.lastError = describeError(err);
        if (!this.storeFailing) {
          this.log.error(
            { topic: packet.topic, store: this.store.location, err: this.stats.lastError, code: isForewarnError(err) ? err.code : 'FW_ERR_STORAGE_WRITE' },
            'cannot commit a message; not acknowledging it: ingest pauses until the store takes writes again, and the broker redelivers it',
          );
        }
        this.storeFailing = true;
        done(err instanceof Error ? err : new Error(String(err)));
        // Without a reconnect the broker would not resend it, and its in-flight window would stay occupied. The
        // socket is cut rather than client.end(true): MQTT.js may still be handling a PUBACK of ours, which
        // crashes on a client that end() has already torn down.
        if (gen === this.generation) client.stream?.destroy();
      },
    );
    this.ingesting = work;
  }

  /** Decodes and commits one message; rejects only when the store write fails. */
  private async ingest(topic: string, payload: Buffer, contentType: string | undefined): Promise<void> {
    const where = parseTopic(topic, this.root);
    try {
      if (where.kind === 'batch') {
        const batch = decodeBatch(payload, topic, contentType, this.root);
        const result = await this.store.ingestBatch(batch);
        this.stats.records += result.inserted;
        this.stats.duplicates += result.duplicates;
        this.stats.outOfOrder += result.outOfOrder;
        this.stats.repaired += result.repaired;
        this.stats.carried += result.carried;
        this.stats.conflicts += result.conflicts;
        if (result.conflicts) this.logConflicts(batch.agentId, batch.stream, result.conflicts, result.conflictSeqs);
        // Committed: now, and only now, the agent may be told.
        this.ackDue(batch.agentId);
        this.emit('batch', { topic, agentId: batch.agentId, stream: batch.stream, records: batch.records.length, result });
      } else if (where.kind === 'status') {
        const status = decodeStatus(payload, topic, contentType, this.root);
        if (!status) return; // a retained status being cleared
        await this.store.recordStatus(status);
        this.stats.statuses++;
        this.emit('status', { topic, agentId: status.agentId, state: status.state, bootSeq: status.bootSeq });
      } else {
        this.log.debug({ topic }, 'ignoring a message on a topic we do not store');
      }
    } catch (err) {
      if (!isForewarnError(err, PAYLOAD_ERROR)) throw err;
      await this.malformed(topic, err.message);
    }
  }

  /**
   * Two versions of one record: the agent reused a seq (a database restored from a backup, two agents under one
   * id). The first is kept and the other stored in `conflicts`; logged at most once a minute per stream.
   */
  private logConflicts(agentId: string, stream: string, count: number, seqs: number[]): void {
    const key = `${agentId}\u0000${stream}`;
    const now = Date.now();
    const last = this.conflictLog.get(key);
    if (last && now - last.at < CONFLICT_LOG_INTERVAL_MS) {
      last.suppressed += count;
      return;
    }
    this.conflictLog.set(key, { at: now, suppressed: 0 });
    this.log.error(
      { code: CONFLICT_ERROR, agentId, stream, conflicts: count, seqs: seqs.slice(0, 10), notLoggedSinceLast: last?.suppressed ?? 0 },
      'records arrived under seqs already stored with different content: kept the first, stored the others in the conflicts table (an agent database restored from a backup? two agents with one id?)',
    );
  }

  private ackState(agentId: string): AckState {
    let st = this.acks.get(agentId);
    if (!st) this.acks.set(agentId, (st = { due: false, timer: null, lastSentAt: 0, inflight: null }));
    return st;
  }

  /** Something of `agentId` was committed: an ack follows, throttled to one per `ackIntervalMs`. */
  private ackDue(agentId: string): void {
    if (!this.ackEnabled) return;
    const st = this.ackState(agentId);
    st.due = true;
    this.scheduleAck(agentId, st);
  }

  private scheduleAck(agentId: string, st: AckState): void {
    if (st.timer || this.stopping) return;
    const delay = Math.max(0, st.lastSentAt + this.ackIntervalMs - Date.now());
    st.timer = setTimeout(() => {
      st.timer = null;
      this.sendAck(agentId, st);
    }, delay);
  }

  /** Computes the agent's ack from the store and publishes it; without a connection it stays due. */
  private sendAck(agentId: string, st: AckState): void {
    const client = this.client;
    if (!st.due || !client || this.stats.state !== 'online') return;
    const gen = this.generation;
    const now = Date.now();
    st.due = false;
    st.lastSentAt = now;
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    const inflight = { settled, settle };
    st.inflight = inflight;
    this.store.ackFor(agentId, now).then(
      (payload) => {
        // The connection died while the ack was computed: ackLost() made it due again for the next one.
        if (gen !== this.generation || st.inflight !== inflight) return settle();
        this.publishAck(client, gen, agentId, st, inflight, payload, now);
      },
      (err: unknown) => {
        if (st.inflight === inflight) st.inflight = null;
        settle();
        st.due = true;
        this.stats.lastError = describeError(err);
        this.log.error(
          { agentId, err: this.stats.lastError, code: isForewarnError(err) ? err.code : 'FW_ERR_STORAGE_WRITE' },
          'cannot compute the acknowledgement for an agent; will retry',
        );
        this.scheduleAck(agentId, st);
      },
    );
  }

  private publishAck(
    client: MqttClient,
    gen: number,
    agentId: string,
    st: AckState,
    inflight: NonNullable<AckState['inflight']>,
    payload: AckPayload,
    now: number,
  ): void {
    const settle = inflight.settle;
    const topic = `${this.root}/${agentId}/ack`;
    client.publish(topic, JSON.stringify(payload), { qos: 1, retain: true, properties: { contentType: CONTENT_TYPE.json } }, (err) => {
      if (st.inflight === inflight) st.inflight = null;
      settle();
      if (gen !== this.generation) return; // that connection is gone; ackLost() made it due again
      const reasonCode = (err as { code?: unknown } | undefined)?.code;
      if (!err) {
        this.stats.acksPublished++;
        if (this.ackRefusalLogged) this.log.info({ topic }, 'the broker accepts acknowledgements again');
        this.ackRefusalLogged = false;
        this.emit('ack', { topic, agentId, payload });
      } else if (typeof reasonCode === 'number' && reasonCode >= 0x80) {
        this.stats.acksRefused++;
        this.stats.lastError = describeError(err);
        // It never reached the agent: what it listed was not requested.
        // Should that fail, only the repaired/late split of later records suffers.
        this.store.forgetRequests(agentId, now).catch(() => undefined);
        if (!this.ackRefusalLogged) {
          this.ackRefusalLogged = true;
          const hint = `topic write ${this.root}/+/ack`;
          this.log.error(
            { code: ACK_ERROR, topic, reasonCode: `0x${reasonCode.toString(16)}`, err: this.stats.lastError, acl: hint, username: this.options.username },
            `the broker refused an acknowledgement to an agent; agents keep their records until acknowledged, so let this subscriber's user write the ack topics (mosquitto ACL: "${hint}"); further refusals are only counted`,
          );
        }
      } else {
        // Not sent (the client is closing): send it again on the next connection.
        st.due = true;
      }
    });
  }

  /** The connection closed: acks in flight may not have reached the broker, so they are due again. */
  private ackLost(): void {
    for (const st of this.acks.values()) {
      if (!st.inflight) continue;
      st.due = true;
      st.inflight.settle();
      st.inflight = null;
    }
  }

  /** On stop: publishes every ack still due at once (no throttle) and waits up to `timeoutMs` for the PUBACKs. */
  private async flushAcks(timeoutMs: number): Promise<void> {
    if (!this.ackEnabled || !this.client || this.stats.state !== 'online') return;
    for (const [agentId, st] of this.acks) {
      if (st.timer) clearTimeout(st.timer);
      st.timer = null;
      if (st.due) this.sendAck(agentId, st);
    }
    const waits = [...this.acks.values()].flatMap((st) => (st.inflight ? [st.inflight.settled] : []));
    if (!waits.length) return;
    let guard: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(waits), new Promise<void>((resolve) => (guard = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(guard);
  }

  private async malformed(topic: string, error: string): Promise<void> {
    await this.store.recordMalformed(topic, error);
    this.stats.malformed++;
    if (!this.warnedTopics.has(topic) && this.warnedTopics.size < MAX_WARNED_TOPICS) {
      this.warnedTopics.add(topic);
      this.log.warn({ topic, err: error, code: PAYLOAD_ERROR }, 'malformed message counted and acknowledged; further ones on this topic are only counted');
    } else {
      this.log.debug({ topic, err: error, code: PAYLOAD_ERROR }, 'malformed message');
    }
    this.emit('malformed', { topic, error });
  }
}
