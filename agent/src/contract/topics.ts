/**
 * MQTT contract v1: topic names and payload shapes. docs/mqtt.md and docs/asyncapi.yaml describe the same
 * contract for subscribers; tests validate what the agent publishes against the AsyncAPI schemas.
 */

export const CONTRACT_VERSION = 1;
export const SCHEMA_VERSION = 1;
export const TOPIC_ROOT = 'forewarn/v1';

export const topics = {
  status: (agentId: string) => `${TOPIC_ROOT}/${agentId}/status`,
  stream: (agentId: string, stream: string) => `${TOPIC_ROOT}/${agentId}/${stream}`,
  riskCurrent: (agentId: string, asset: string, model: string) => `${TOPIC_ROOT}/${agentId}/risk/current/${asset}/${model}`,
};

/**
 * MQTT 5 content type of a batch. Decoders should also sniff the payload, since bridges may drop properties:
 * gzip starts with the bytes 1f 8b, JSON with `{`.
 */
export const CONTENT_TYPE = { json: 'application/json', gzip: 'application/gzip' } as const;

export interface StatusPayload {
  schemaVersion: typeof SCHEMA_VERSION;
  agentId: string;
  state: 'online' | 'offline';
  ts: number;
  bootSeq: number;
  /** Why the agent went offline: `shutdown` when it said goodbye, `connection-lost` when the broker sent the Will. */
  reason?: 'shutdown' | 'connection-lost';
  agentVersion: string;
  models?: Array<{ name: string; version: string; assets: string[] }>;
  /** Each source and its state when the status was published: `unavailable` means its tool or device is absent. */
  sources?: Array<{ name: string; state: string; samples: number; errors: number }>;
}

export interface BatchPayload<R> {
  schemaVersion: typeof SCHEMA_VERSION;
  agentId: string;
  stream: string;
  bootSeq: number;
  /** Present and true when every record in the batch was committed before the current connection: replayed backlog. */
  historical?: true;
  records: Array<R & { seq: number }>;
}

/** An `events` record telling subscribers which seqs of a stream were dropped under the storage policy. */
export interface RecordsDroppedEvent {
  ts: number;
  type: 'records-dropped';
  stream: 'alerts' | 'risk' | 'events' | 'telemetry';
  count: number;
  ranges: Array<[number, number]>;
  reason: 'quota' | 'free-space' | 'disk-full';
}

/** An `events` record: the database found at start was unusable, set aside, and a fresh one started. */
export interface StorageRecoveredEvent {
  ts: number;
  type: 'storage-recovered';
  reason: string;
  setAside: string;
  /** Every stream of the fresh database starts at this seq; lower seqs belonged to the file set aside. */
  firstSeq: number;
}
