/**
 * The measuring subscriber of the side-by-side benchmark: one MQTT 5 client on the broker that both sides publish
 * to, so the broker delivers for real. Per publisher (an agent id, or collectd) it counts what arrived in the
 * current window: messages, payload bytes, the bytes of the records themselves, readings and values, and how long
 * each reading took from its timestamp to this subscriber. Over the whole run it counts records that arrived twice
 * (a seq seen again on the same stream) and records published again on a retained `risk/current/…` topic.
 *
 * Agent batches are read with the repository's own decoder (agent/src/subscriber/decode-batch.ts); collectd's
 * `mqtt` plugin publishes one value list per message as text, `<time>:<value>[:<value>…]`, time in epoch seconds.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { TOPIC_ROOT } from '../../../agent/src/contract/topics.js';
import { decodeBatch, parseTopic } from '../../../agent/src/central/decode-batch.js';

/** What one publisher delivered in one window. */
export interface WindowCounts {
  messages: number;
  /** MQTT payload bytes of the messages (batches or collectd value lists). */
  payloadBytes: number;
  /** Bytes of the records themselves: each record's JSON (agent), each message's payload (collectd). */
  recordBytes: number;
  /** Records of every stream (agent); value lists (collectd). */
  records: number;
  /** Readings: telemetry records (agent); value lists (collectd). */
  readings: number;
  /** Numeric values in those readings: telemetry metrics (agent); values of the value lists (collectd). */
  values: number;
  /** Receive time − reading time of each live reading, ms. */
  latenciesMs: number[];
  /**
   * When each live reading arrived here, epoch ms: where in the interval the publisher works (phaseWithin). Not the
   * reading's own timestamp, which for the simulated machine is its simulated time.
   */
  arrivedAtMs: number[];
  /** Telemetry records that came in a batch marked historical (replayed backlog): not in latenciesMs. */
  historicalReadings: number;
  /** Messages on a retained `risk/current/…` topic: records published a second time. */
  currentViewMessages: number;
}

/** Over the whole run, per publisher. */
export interface RunCounts {
  firstReadingAt?: number;
  /** Records whose (stream, seq) had already arrived. */
  duplicateRecords: number;
  /** Per stream, the distinct seqs received. */
  seqs: Map<string, Set<number>>;
  currentViewMessages: number;
  undecodable: number;
}

const emptyWindow = (): WindowCounts => ({
  messages: 0,
  payloadBytes: 0,
  recordBytes: 0,
  records: 0,
  readings: 0,
  values: 0,
  latenciesMs: [],
  arrivedAtMs: [],
  historicalReadings: 0,
  currentViewMessages: 0,
});

export const COLLECTD_PREFIX = 'collectd';

/** `<time>:<v1>[:<v2>…]` → the reading time in ms and the number of values; undefined when it is not that. */
export function parseCollectdPayload(text: string): { tsMs: number; values: number } | undefined {
  const parts = text.trim().split(':');
  const t = Number(parts[0]);
  if (parts.length < 2 || !Number.isFinite(t)) return undefined;
  return { tsMs: t * 1000, values: parts.length - 1 };
}

/**
 * Where in the interval a publisher works: the circular mean of its readings' arrival times modulo the interval, in ms
 * from the start of the interval (epoch-aligned), and how far they spread around it (the mean distance from it, ms).
 * Circular, so that readings either side of an interval boundary average to the boundary, not to its middle.
 */
export function phaseWithin(tsMs: readonly number[], intervalMs: number): { phaseMs: number; spreadMs: number } | undefined {
  if (!tsMs.length) return undefined;
  const angle = (t: number) => (((t % intervalMs) + intervalMs) % intervalMs) * ((2 * Math.PI) / intervalMs);
  let x = 0;
  let y = 0;
  for (const t of tsMs) {
    x += Math.cos(angle(t));
    y += Math.sin(angle(t));
  }
  const mean = Math.atan2(y, x);
  const phaseMs = ((((mean / (2 * Math.PI)) * intervalMs) % intervalMs) + intervalMs) % intervalMs;
  const distance = (t: number) => {
    const d = Math.abs((((t - phaseMs) % intervalMs) + intervalMs) % intervalMs);
    return Math.min(d, intervalMs - d);
  };
  return { phaseMs, spreadMs: tsMs.reduce((sum, t) => sum + distance(t), 0) / tsMs.length };
}

export interface Probe {
  /** Window counts of one publisher since the last take, then starts its next window. */
  take(publisher: string): WindowCounts;
  run(publisher: string): RunCounts;
  /** Resolves at the first reading (telemetry record, or collectd value list) from the publisher. */
  firstReading(publisher: string, timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

export async function startProbe(url: string): Promise<Probe> {
  const windows = new Map<string, WindowCounts>();
  const runs = new Map<string, RunCounts>();
  const waiters = new Map<string, Array<(t: number) => void>>();
  const win = (p: string) => windows.get(p) ?? windows.set(p, emptyWindow()).get(p)!;
  const run = (p: string) => runs.get(p) ?? runs.set(p, { duplicateRecords: 0, seqs: new Map(), currentViewMessages: 0, undecodable: 0 }).get(p)!;
  const reading = (p: string, at: number) => {
    const r = run(p);
    if (r.firstReadingAt !== undefined) return;
    r.firstReadingAt = at;
    for (const resolve of waiters.get(p) ?? []) resolve(at);
    waiters.delete(p);
  };

  const onMessage = (topic: string, payload: Buffer, contentType: string | undefined) => {
    const at = Date.now();
    if (topic.startsWith(`${COLLECTD_PREFIX}/`)) {
      const w = win(COLLECTD_PREFIX);
      const parsed = parseCollectdPayload(payload.toString('utf8'));
      if (!parsed) {
        run(COLLECTD_PREFIX).undecodable++;
        return;
      }
      w.messages++;
      w.payloadBytes += payload.length;
      w.recordBytes += payload.length;
      w.records++;
      w.readings++;
      w.values += parsed.values;
      w.latenciesMs.push(at - parsed.tsMs);
      w.arrivedAtMs.push(at);
      reading(COLLECTD_PREFIX, at);
      return;
    }
    const where = parseTopic(topic);
    const agentId = topic.slice(TOPIC_ROOT.length + 1).split('/')[0] ?? '';
    if (where.kind === 'status') return;
    if (where.kind === 'other') {
      if (topic.startsWith(`${TOPIC_ROOT}/${agentId}/risk/current/`) && payload.length > 0) {
        win(agentId).currentViewMessages++;
        run(agentId).currentViewMessages++;
      }
      return;
    }
    let batch;
    try {
      batch = decodeBatch(payload, topic, contentType);
    } catch {
      run(agentId).undecodable++;
      return;
    }
    const w = win(agentId);
    const r = run(agentId);
    w.messages++;
    w.payloadBytes += payload.length;
    const seen = r.seqs.get(batch.stream) ?? r.seqs.set(batch.stream, new Set()).get(batch.stream)!;
    for (const rec of batch.records) {
      w.records++;
      w.recordBytes += Buffer.byteLength(JSON.stringify(rec));
      if (seen.has(rec.seq)) r.duplicateRecords++;
      else seen.add(rec.seq);
      if (batch.stream !== 'telemetry') continue;
      w.readings++;
      const metrics = rec.metrics;
      if (metrics && typeof metrics === 'object') w.values += Object.values(metrics).filter((v) => typeof v === 'number').length;
      if (batch.historical) w.historicalReadings++;
      else {
        w.latenciesMs.push(at - rec.ts);
        w.arrivedAtMs.push(at);
      }
      reading(agentId, at);
    }
  };

  const client: MqttClient = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `bench-probe-${process.pid}`, clean: true });
  client.on('message', (topic, payload, packet) => onMessage(topic, payload, packet.properties?.contentType));
  await client.subscribeAsync([`${TOPIC_ROOT}/+/+`, `${TOPIC_ROOT}/+/risk/current/#`, `${COLLECTD_PREFIX}/#`], { qos: 1 });

  return {
    take(publisher) {
      const w = win(publisher);
      windows.set(publisher, emptyWindow());
      return w;
    },
    run,
    firstReading(publisher, timeoutMs) {
      const known = run(publisher).firstReadingAt;
      if (known !== undefined) return Promise.resolve(known);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reading from ${publisher} on the broker within ${timeoutMs} ms`)), timeoutMs);
        const list = waiters.get(publisher) ?? waiters.set(publisher, []).get(publisher)!;
        list.push((t) => {
          clearTimeout(timer);
          resolve(t);
        });
      });
    },
    stop: async () => {
      await client.endAsync(true);
    },
  };
}
