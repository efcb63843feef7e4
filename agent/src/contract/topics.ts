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
  /** A remote command to the agent (docs/commands.md); the agent subscribes to `commands(agentId)`. */
  command: (agentId: string, command: string) => `${TOPIC_ROOT}/${agentId}/cmd/${command}`,
  commands: (agentId: string) => `${TOPIC_ROOT}/${agentId}/cmd/+`,
  /** Where `forewarn command send` asks for replies: inside the agent's subtree, which the fleet ACL lets it write. */
  commandReply: (agentId: string, requestId: string) => `${TOPIC_ROOT}/${agentId}/reply/${requestId}`,
  /**
   * The centre's end-to-end acknowledgement to one agent (retained, QoS 1, written by the central subscriber after
   * its commit): per stream, what it holds and which seqs it misses. The agent subscribes to it (docs/delivery.md).
   */
  ack: (agentId: string) => `${TOPIC_ROOT}/${agentId}/ack`,
};

/** A remote command as it arrives on `commands(agentId)`: the MQTT 5 message, not yet verified or parsed. */
export interface IncomingCommand {
  topic: string;
  payload: Buffer;
  responseTopic?: string;
  correlationData?: Buffer;
  /** MQTT 5 user property `requester`, when the centre sets one. */
  requester?: string;
}

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
  models?: Array<{
    name: string;
    version: string;
    assets: string[];
    /** Per asset the model scores: whether its inputs still look like its training data. */
    health?: Array<{
      asset: string;
      state: 'warming' | 'ok' | 'watch' | 'drift';
      samples: number;
      /** The largest raw PSI, slow inputs included: not what the state is judged on (docs/drift.md). */
      psiMax: number;
      /** The figures the state is judged on: PSI beyond chance (vs watchPsi/alertPsi), share outside the training support (vs outsideShare). */
      driftPsi?: number;
      outsideMax?: number;
      top: Array<{ feature: string; psi: number }>;
      ts: number;
    }>;
  }>;
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

/**
 * An `events` record: the agent started a fresh database, and every stream of it counts from `firstSeq`. Seqs below
 * it belong to an earlier file (or none existed): a subscriber closes its gaps below `firstSeq` as reset, not missing.
 * `cause`: `created` (no database found: first start, or the data directory was wiped), `damaged` (unusable at
 * start, set aside), `removed` (deleted or replaced while the agent ran). `carried`: unsent records the agent still
 * held from the earlier file and moved into the new one under their old seqs (below `firstSeq`); they still arrive.
 */
export interface StorageRecoveredEvent {
  ts: number;
  type: 'storage-recovered';
  cause?: 'created' | 'damaged' | 'removed';
  reason: string;
  /** Where the damaged file went; empty when there was none to set aside. */
  setAside: string;
  /** Every stream of the fresh database starts at this seq; lower seqs belonged to the file set aside. */
  firstSeq: number;
  carried?: number;
  /**
   * Per stream, the seqs of the carried records (below `firstSeq`): still on their way, so a subscriber keeps
   * those gaps open (and asks for them) instead of closing them with the rest of the earlier file.
   */
  carriedRanges?: Partial<Record<'alerts' | 'risk' | 'events' | 'telemetry', Array<[number, number]>>>;
}

/**
 * An `events` record: the centre asked for seqs the agent no longer holds (purged after their acknowledgement,
 * or from before this database). They will never come; a subscriber closes those gaps as unavailable.
 */
export interface RecordsUnavailableEvent {
  ts: number;
  type: 'records-unavailable';
  stream: 'alerts' | 'risk' | 'events' | 'telemetry';
  ranges: Array<[number, number]>;
  reason: 'purged' | 'before-this-database';
}

/** Per stream, what the centre has committed for one agent. */
export interface AckStreamState {
  /** Every seq up to this one is committed at the centre, or explained (dropped, reset, unavailable). */
  through: number;
  /** The highest seq the centre has committed. */
  highest: number;
  /** Open gaps above `through`, oldest first, at most ACK_MAX_RANGES: the agent resends what it holds of them. */
  missing?: Array<[number, number]>;
}

/** Payload of `topics.ack(agentId)`: retained, so an agent reads the centre's watermark as soon as it subscribes. */
export interface AckPayload {
  schemaVersion: typeof SCHEMA_VERSION;
  agentId: string;
  /** When the centre wrote it (its clock). */
  ts: number;
  streams: Partial<Record<'alerts' | 'risk' | 'events' | 'telemetry', AckStreamState>>;
}

/** At most this many missing ranges per stream in one ack message. */
export const ACK_MAX_RANGES = 32;

/** How a candidate model compared with the current one while shadow-scoring (docs/model-updates.md). */
export interface ShadowSummary {
  /** Readings the current model scored while the candidate was shadowed. */
  samples: number;
  /** Of those, scored by both: the pairs the differences are measured on. */
  compared: number;
  /** Readings where the two disagreed on `atRisk`, or the candidate gave no score. */
  disagreements: number;
  disagreementRate: number;
  /** Mean and largest |candidate score − current score| over the compared pairs (cycles for RUL models). */
  meanAbsDiff: number;
  maxAbsDiff: number;
  /** Readings the current model scored and the candidate did not (an input it lacks or rejects). */
  candidateMissing: number;
}

/** An `events` record: a verified model version was installed and waits to be shadow-scored beside the current one. */
export interface ModelCandidateEvent {
  ts: number;
  type: 'model-candidate';
  model: string;
  version: string;
  /** The version scoring now (installed or shipped); null when none. */
  currentVersion: string | null;
  keyId: string;
  shadowSamples: number;
}

/** An `events` record: a model version became the one that scores. */
export interface ModelPromotedEvent {
  ts: number;
  type: 'model-promoted';
  model: string;
  version: string;
  previousVersion: string | null;
  reason: string;
  shadow?: ShadowSummary;
}

/** An `events` record: a candidate was discarded, or the current version was replaced by the one before it. */
export interface ModelRollbackEvent {
  ts: number;
  type: 'model-rollback';
  model: string;
  /** The version rolled back (no longer installed). */
  version: string;
  /** The version scoring afterwards; null when none is left. */
  restoredVersion: string | null;
  /** `load`: it failed to load; `shadow`: it disagreed or failed while shadowed; `operator`: `forewarn model rollback`; `superseded`: a newer candidate replaced it. */
  stage: 'load' | 'shadow' | 'operator' | 'superseded';
  reason: string;
  shadow?: ShadowSummary;
}

/** An `events` record: a model bundle was refused (unsigned, tampered, malformed, or failed its checks). Nothing was installed. */
export interface ModelRejectedEvent {
  ts: number;
  type: 'model-rejected';
  /** The bundle file name as given to the installer. */
  bundle: string;
  /** What the bundle claims to be; unverified when `code` is FW_ERR_MODEL_BUNDLE or FW_ERR_MODEL_UNTRUSTED. */
  model?: string;
  version?: string;
  code: string;
  reason: string;
}

export type ModelLifecycleEvent = ModelCandidateEvent | ModelPromotedEvent | ModelRollbackEvent | ModelRejectedEvent;
