/**
 * What the agent asks of its outbox. SQLite (record-store.ts) implements it; test/agent/store/outbox-contract.ts
 * is the suite every implementation must pass, as MQTT.js does for its stores (test/agent/store/
 * record-store-central.test.ts covers the end-to-end acknowledgement and the fresh-file paths).
 *
 * The promises: a record committed by `append` has a per-stream `seq` that is persistent, contiguous and never
 * reused; it stays pending until it is acknowledged: `markSent` on the broker's PUBACK (broker.ack: broker), or
 * `markPublished` on the PUBACK and then `confirm` once the centre's watermark passes it (broker.ack: central);
 * pending records come out of `nextBatch` in priority order between streams and in seq order within each; a record
 * leaves without being acknowledged only through `enforceQuota`, which counts it and says so in an `events` record
 * committed in the same transaction, and never drops alerts nor those announcements.
 */

/** Streams in drain order: a lower number goes first after an outage. */
export const STREAM_PRIORITY = { alerts: 0, risk: 1, events: 2, telemetry: 3 } as const;
export type StreamName = keyof typeof STREAM_PRIORITY;
export const STREAMS = Object.keys(STREAM_PRIORITY) as StreamName[];
export const STREAMS_BY_PRIORITY = [...STREAMS].sort((a, b) => STREAM_PRIORITY[a] - STREAM_PRIORITY[b]);

/**
 * What goes first when space runs out: the oldest telemetry, then risk, then events. Alerts are never dropped,
 * nor are the events that announce drops and fresh databases: the policy must not discard what describes it.
 */
export const DROP_ORDER: readonly StreamName[] = ['telemetry', 'risk', 'events'];

export interface NewRecord {
  stream: StreamName;
  ts: number;
  asset: string;
  payload: Record<string, unknown>;
}

export interface OutboxRecord {
  /** Commit order across streams (the Sparkplug node publishes in it); within a stream, the seq orders. */
  id: number;
  stream: StreamName;
  seq: number;
  ts: number;
  asset: string;
  /** The record as published, as JSON text, without `seq`: batches are built without parsing it again. */
  json: string;
}

export interface OutboxBatch {
  stream: StreamName;
  /** Every record in the batch was committed before the current connection came up (replayed backlog). */
  historical: boolean;
  records: OutboxRecord[];
  /** The records' JSON lengths plus what numbering and separating them adds, as counted against `maxBytes`. */
  bytes: number;
}

export interface BatchRequest {
  maxRecords: number;
  /** Stop before the records would pass this many bytes as published; a single larger record still goes alone. */
  maxBytes: number;
  /** Per stream, the last seq already handed out on this connection: those are in flight. */
  cursors?: ReadonlyMap<StreamName, number>;
  /** Per stream, the first seq committed after this connection came up; lower seqs are historical. */
  liveFrom?: ReadonlyMap<StreamName, number>;
  /** Streams paused for now (e.g. after the broker refused a publish); others go on. */
  skip?: ReadonlySet<StreamName>;
}

export interface StreamCounts {
  stream: StreamName;
  /** Committed and not yet acknowledged by the broker. */
  pending: number;
  /** Acknowledged since the database was created. */
  sentTotal: number;
  /** Dropped unsent under the storage policy since the database was created. */
  droppedTotal: number;
  /** The first seq this database assigns: 1, or a clock value when it replaced a damaged one. */
  firstSeq: number;
  /** Highest sequence number assigned (firstSeq - 1 before the first). */
  lastSeq: number;
  oldestPendingTs: number | null;
  lastSentTs: number | null;
}

export type DropReason = 'quota' | 'free-space' | 'disk-full';

export interface DropReport {
  stream: StreamName;
  count: number;
  /** Dropped seqs as inclusive [from, to] ranges. */
  ranges: Array<[number, number]>;
  reason: DropReason;
}

export interface StorageLimits {
  /** Most bytes the database's live pages may take; 0 = no quota. */
  maxBytes: number;
  /** Least free space to leave on the file system; 0 = no floor. */
  minFreeBytes: number;
}

export interface StorageUsage {
  /** Pages in use (the file minus its free list). */
  usedBytes: number;
  fileBytes: number;
  walBytes: number;
  /** Free pages SQLite can hand back to the file system with an incremental vacuum. */
  reclaimableBytes: number;
  /** Free space on the file system for unprivileged users. */
  freeBytes: number;
}

export interface Outbox {
  append(items: readonly NewRecord[]): number[];
  nextBatch(request: BatchRequest): OutboxBatch | null;
  /** The broker took these rows (by seq; broker acknowledgement): they are acknowledged. */
  markSent(stream: StreamName, seqs: readonly number[], now?: number): number;
  /** The broker took these rows (by seq); they stay pending until `confirm` (central acknowledgement). */
  markPublished(stream: StreamName, seqs: readonly number[], now?: number): number;
  /** The centre holds every seq of `stream` up to `through`: published rows up to it are acknowledged. */
  confirm(stream: StreamName, through: number, now?: number): number;
  /** Rows still held for seqs in [from, to] (acknowledged ones too, unless `onlyPending`), in seq order: for resends. */
  heldRecords(stream: StreamName, from: number, to: number, limit: number, onlyPending?: boolean): OutboxRecord[];
  counts(): StreamCounts[];
  /** Highest seq assigned per stream: the boundary between backlog and live records when a connection comes up. */
  lastSeqs(): Map<StreamName, number>;
  purgeSent(beforeTs: number, maxRows?: number): number;
  usage(): StorageUsage;
  /**
   * Brings usage within `limits`: acknowledged rows first, then unacknowledged ones in DROP_ORDER, oldest first
   * (never alerts, never announcements), never the ones in flight (`inflight`: per stream, the highest seq handed out on the current connection).
   */
  enforceQuota(limits: StorageLimits, inflight?: ReadonlyMap<StreamName, number>, reason?: DropReason): DropReport[];
  close(): void;
}
