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
  records: Array<R & { seq: number }>;
}
