import { gunzipSync } from 'node:zlib';
import { ForewarnError, describeError, type ErrorCode } from '../core/errors.js';
import { SCHEMA_VERSION, TOPIC_ROOT } from '../contract/topics.js';

/**
 * Turns an MQTT payload of the Forewarn contract into a checked object, or throws FW_ERR_SUBSCRIBER_PAYLOAD
 * with a message `topic: what is wrong`. Fields this version does not know are kept, never rejected:
 * the contract may add fields within v1.
 */

/** A payload that is not a valid contract message; counted, logged and acknowledged by the subscriber. */
export const PAYLOAD_ERROR: ErrorCode = 'FW_ERR_SUBSCRIBER_PAYLOAD';

/** The streams an agent publishes batches on, as `{root}/{agentId}/{stream}`. */
export const BATCH_STREAMS = ['alerts', 'risk', 'events', 'telemetry'] as const;

/** Decompressed size above which a gzip payload is refused, so a zip bomb cannot exhaust memory. */
export const MAX_DECODED_BYTES = 64 * 1024 * 1024;

export interface BatchRecord {
  seq: number;
  ts: number;
  [field: string]: unknown;
}

export interface DecodedBatch {
  agentId: string;
  stream: string;
  bootSeq: number;
  /** Replayed from the agent's backlog (committed while offline or before a restart). */
  historical: boolean;
  records: BatchRecord[];
}

export interface DecodedStatus {
  agentId: string;
  state: 'online' | 'offline';
  bootSeq: number;
  ts: number;
  payload: Record<string, unknown>;
}

/** What a `records-dropped` event says: those seqs of `stream` were dropped by the agent's storage policy. */
export interface DroppedRanges {
  stream: string;
  ranges: Array<[number, number]>;
  reason: string;
}

/** What a `records-unavailable` event says: the agent no longer holds those seqs of `stream`; they will never come. */
export type UnavailableRanges = DroppedRanges;

/** What a `storage-recovered` event says: the agent's streams count on from `firstSeq` in a fresh database. */
export interface StorageReset {
  firstSeq: number;
  setAside: string;
  /** `created`, `damaged` or `removed`; `unknown` when the agent did not say (older agents). */
  cause: string;
  /** Records the agent carried over from the earlier file under their old seqs (below firstSeq); 0 when not said. */
  carried: number;
  /** Per stream, the seqs of those carried records: still to come, so their gaps stay open. */
  carriedRanges: Map<string, Array<[number, number]>>;
}

export type TopicKind = { kind: 'batch'; agentId: string; stream: string } | { kind: 'status'; agentId: string } | { kind: 'other' };

/** Classifies a topic under `root`: a stream batch, an agent status, or anything else (e.g. risk/current/…). */
export function parseTopic(topic: string, root = TOPIC_ROOT): TopicKind {
  if (!topic.startsWith(`${root}/`)) return { kind: 'other' };
  const parts = topic.slice(root.length + 1).split('/');
  if (parts.length !== 2 || !parts[0]) return { kind: 'other' };
  const [agentId, leaf] = parts as [string, string];
  if (leaf === 'status') return { kind: 'status', agentId };
  if ((BATCH_STREAMS as readonly string[]).includes(leaf)) return { kind: 'batch', agentId, stream: leaf };
  return { kind: 'other' };
}

function fail(topic: string, message: string, cause?: unknown): never {
  throw new ForewarnError(PAYLOAD_ERROR, `${topic}: ${message}`, cause === undefined ? undefined : { cause });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses JSON or gzip-compressed JSON. The gzip magic bytes are trusted over `contentType`, which bridges may
 * strip; no JSON text can begin with byte 0x1f, so sniffing is unambiguous.
 */
export function decodeJson(payload: Buffer, topic: string, contentType?: string): unknown {
  const gzipped = payload.length >= 2 && payload[0] === 0x1f && payload[1] === 0x8b;
  if (!gzipped && contentType === 'application/gzip') fail(topic, 'contentType is application/gzip but the payload is not gzip');
  let bytes = payload;
  if (gzipped) {
    try {
      bytes = gunzipSync(payload, { maxOutputLength: MAX_DECODED_BYTES });
    } catch (err) {
      const tooLarge = (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
      fail(topic, tooLarge ? `gzip payload expands beyond ${MAX_DECODED_BYTES} bytes` : `invalid gzip: ${describeError(err)}`, err);
    }
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch (err) {
    fail(topic, 'payload is not valid UTF-8', err);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    fail(topic, `payload is not valid JSON: ${describeError(err)}`, err);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isPositiveInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1;
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
/** Milliseconds since the epoch: finite and within 2^53, so every store can hold it (PostgreSQL BIGINT). */
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER;
const show = (v: unknown): string => JSON.stringify(v)?.slice(0, 40) ?? String(v);

function checkEnvelope(topic: string, body: unknown, agentId: string): Record<string, unknown> {
  if (!isObject(body)) fail(topic, 'payload is not a JSON object');
  if (body.schemaVersion !== SCHEMA_VERSION) fail(topic, `schemaVersion ${show(body.schemaVersion)} is not supported (expected ${SCHEMA_VERSION})`);
  if (body.agentId !== agentId) fail(topic, `agentId ${show(body.agentId)} does not match the topic's agent id "${agentId}"`);
  if (!isCount(body.bootSeq)) fail(topic, `bootSeq must be a non-negative integer (got ${show(body.bootSeq)})`);
  return body;
}

/** Checks a batch published on `{root}/{agentId}/{stream}`. */
export function decodeBatch(payload: Buffer, topic: string, contentType?: string, root = TOPIC_ROOT): DecodedBatch {
  const where = parseTopic(topic, root);
  if (where.kind !== 'batch') fail(topic, 'not a batch topic');
  const body = checkEnvelope(topic, decodeJson(payload, topic, contentType), where.agentId);
  if (body.stream !== where.stream) fail(topic, `stream ${show(body.stream)} does not match the topic's stream "${where.stream}"`);
  if (body.historical !== undefined && typeof body.historical !== 'boolean') fail(topic, `historical must be a boolean (got ${show(body.historical)})`);
  if (!Array.isArray(body.records)) fail(topic, 'records must be an array');
  const records = body.records as unknown[];
  records.forEach((r, i) => {
    if (!isObject(r)) fail(topic, `records[${i}] is not an object`);
    if (!isPositiveInt(r.seq)) fail(topic, `records[${i}].seq must be a positive integer (got ${show(r.seq)})`);
    if (!isTime(r.ts)) fail(topic, `records[${i}].ts must be a number (got ${show(r.ts)})`);
    if (where.stream === 'events' && r.type === 'records-dropped') parseDropped(r, `${topic}: records[${i}]`);
    if (where.stream === 'events' && r.type === 'records-unavailable') parseUnavailable(r, `${topic}: records[${i}]`);
  });
  return {
    agentId: where.agentId,
    stream: where.stream,
    bootSeq: body.bootSeq as number,
    historical: body.historical === true,
    records: records as BatchRecord[],
  };
}

/** Checks the `stream` and `ranges` of a records-dropped or records-unavailable event. */
function parseRanges(record: Record<string, unknown>, type: string, where: string): DroppedRanges {
  const bad = (what: string): never => {
    throw new ForewarnError(PAYLOAD_ERROR, `${where}: ${type} ${what}`);
  };
  if (typeof record.stream !== 'string' || !record.stream) bad(`stream must be a stream name (got ${show(record.stream)})`);
  if (!Array.isArray(record.ranges) || record.ranges.length === 0) bad('ranges must be a non-empty array of [from, to]');
  const ranges = (record.ranges as unknown[]).map((r, i): [number, number] => {
    if (!Array.isArray(r) || r.length !== 2 || !isPositiveInt(r[0]) || !isPositiveInt(r[1]) || r[0] > r[1]) {
      return bad(`ranges[${i}] must be [from, to] with 1 <= from <= to (got ${show(r)})`);
    }
    return [r[0], r[1]];
  });
  return { stream: record.stream as string, ranges, reason: typeof record.reason === 'string' ? record.reason : 'unknown' };
}

/**
 * Reads a `records-dropped` event; `undefined` for any other record. Throws when the event is malformed,
 * because a wrong range would hide real losses.
 */
export function parseDropped(record: Record<string, unknown>, where = 'records-dropped event'): DroppedRanges | undefined {
  if (record.type !== 'records-dropped') return undefined;
  return parseRanges(record, 'records-dropped', where);
}

/**
 * Reads a `records-unavailable` event (the centre asked for seqs the agent no longer holds); `undefined` for any
 * other record. Throws when the event is malformed, because a wrong range would hide real losses.
 */
export function parseUnavailable(record: Record<string, unknown>, where = 'records-unavailable event'): UnavailableRanges | undefined {
  if (record.type !== 'records-unavailable') return undefined;
  return parseRanges(record, 'records-unavailable', where);
}

/** What a `storage-recovered` event says; `undefined` for any other record, or one without a usable `firstSeq`. */
export function parseStorageRecovered(record: Record<string, unknown>): StorageReset | undefined {
  if (record.type !== 'storage-recovered' || !isPositiveInt(record.firstSeq)) return undefined;
  return {
    firstSeq: record.firstSeq,
    setAside: typeof record.setAside === 'string' ? record.setAside : '',
    cause: typeof record.cause === 'string' && record.cause ? record.cause : 'unknown',
    carried: isCount(record.carried) ? record.carried : 0,
    carriedRanges: parseCarriedRanges(record.carriedRanges, record.firstSeq),
  };
}

/** `carriedRanges` as far as it is well-formed: [from, to] pairs below `firstSeq`; anything else is left out. */
function parseCarriedRanges(v: unknown, firstSeq: number): Map<string, Array<[number, number]>> {
  const out = new Map<string, Array<[number, number]>>();
  if (!v || typeof v !== 'object' || Array.isArray(v)) return out;
  for (const [stream, ranges] of Object.entries(v as Record<string, unknown>)) {
    if (!(BATCH_STREAMS as readonly string[]).includes(stream) || !Array.isArray(ranges)) continue;
    const ok = ranges.filter(
      (r): r is [number, number] => Array.isArray(r) && r.length === 2 && isPositiveInt(r[0]) && isPositiveInt(r[1]) && r[0] <= r[1] && r[1] < firstSeq,
    );
    if (ok.length) out.set(stream, ok);
  }
  return out;
}

/**
 * Checks a retained status on `{root}/{agentId}/status`. Returns `null` for an empty payload: that is a
 * retained message being cleared, not a malformed one.
 */
export function decodeStatus(payload: Buffer, topic: string, contentType?: string, root = TOPIC_ROOT): DecodedStatus | null {
  const where = parseTopic(topic, root);
  if (where.kind !== 'status') fail(topic, 'not a status topic');
  if (payload.length === 0) return null;
  const body = checkEnvelope(topic, decodeJson(payload, topic, contentType), where.agentId);
  if (body.state !== 'online' && body.state !== 'offline') fail(topic, `state must be "online" or "offline" (got ${show(body.state)})`);
  if (!isTime(body.ts)) fail(topic, `ts must be a number (got ${show(body.ts)})`);
  return { agentId: where.agentId, state: body.state, bootSeq: body.bootSeq as number, ts: body.ts, payload: body };
}
