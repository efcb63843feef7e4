/**
 * The records that flow through the pipeline: sources → store → scoring → sync.
 * Every record is committed to SQLite before anything else sees it.
 */

/** One sample of one asset's signals, taken at one instant. Values are numbers in the unit the source documents. */
export interface Reading {
  /** Milliseconds since the Unix epoch, when the sample was taken. */
  ts: number;
  /** The source that produced it, e.g. `host`, `sim-mill`. */
  source: string;
  /** The asset the signals describe, e.g. the host name or `mill-1`. */
  asset: string;
  /** Signal name → value. Missing signals are absent, never zero. */
  metrics: Record<string, number>;
  /**
   * Signals whose value the source itself reports as uncertain (an OPC UA Uncertain status): stored flagged
   * (`uncertain`), never scored. Absent when the source vouches for every value.
   */
  uncertain?: readonly string[];
}

/** A failure-risk score for one asset from one model. */
export interface RiskRecord {
  ts: number;
  asset: string;
  model: string;
  modelVersion: string;
  /** What `score` means, from the model manifest (e.g. `probability`). */
  kind: 'probability' | 'rul' | 'anomaly';
  score: number;
  /** The manifest's operating threshold, where it has one. */
  threshold?: number;
  /**
   * RUL models with a calibrated interval in their manifest (`outputs.interval`): the true value lies in
   * [lower, upper] with probability `level` (e.g. 0.9). Contains `score`. Added within schemaVersion 1.
   */
  interval?: { level: number; lower: number; upper: number };
  /** `true` when the score crosses the threshold. */
  atRisk: boolean;
  /** The timestamp of the reading the score was computed from. */
  readingTs: number;
  /** Main drivers of the score, largest first. */
  drivers: Array<{ feature: string; value: number; contribution: number }>;
}

/** A pipeline component: constructed without side effects, `start()` returns fast, `stop()` flushes. */
export interface Component {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A source pushes readings to the sink it is given; it never throws into the agent. */
export type ReadingSink = (reading: Reading) => void;

/**
 * A discrete event a source observed (a GPU Xid, a BMC SEL entry, a kernel error), as opposed to a sampled value.
 * Health rules turn events into alerts.
 */
export interface HealthEvent {
  ts: number;
  source: string;
  asset: string;
  /** Dotted type, e.g. `gpu.xid`, `bmc.sel`. */
  type: string;
  /** A numeric code where the event has one (the Xid number). */
  code?: number;
  /** One line for people. */
  message: string;
  attributes: Record<string, string | number | boolean>;
  /**
   * Also record it on the `events` stream for the centre (a GPU's identity). Unset: it only feeds the agent's
   * health rules (an Xid becomes an alert, which is what reaches the centre).
   */
  publish?: boolean;
}

export type EventSink = (event: HealthEvent) => void;

/*
 * The seams between pipeline stages, in the spirit of the OpenTelemetry Collector's `ConsumeMetrics`: a stage
 * hands its output to the consumers it was given and never names them. Consumers take what they are handed
 * synchronously and must not throw into the stage that calls them; the composition root (pipeline/agent.ts)
 * decides who consumes what.
 */

/** Takes clean readings: the quality stage has already removed the values that failed a check. */
export interface ReadingConsumer {
  consumeReading(reading: Reading): void;
  /** A signal's values failed a quality check: forget what was learnt from it (windows, baselines). */
  forgetSignal?(asset: string, signal: string): void;
}

/** Takes the risk records a scorer produced (risk models and anomaly detection alike). */
export interface RiskConsumer {
  consumeRisk(records: readonly RiskRecord[]): void;
}

/** Takes the discrete events that sources observed. */
export interface EventConsumer {
  consumeEvent(event: HealthEvent): void;
}

/** One consumer that hands each batch of risk records to several, in order. */
export function riskFanOut(consumers: ReadonlyArray<RiskConsumer | null>): RiskConsumer {
  const all = consumers.filter((c): c is RiskConsumer => c !== null);
  return {
    consumeRisk: (records) => {
      for (const c of all) c.consumeRisk(records);
    },
  };
}
