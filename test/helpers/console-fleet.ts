import mqtt, { type MqttClient } from 'mqtt';

/**
 * A small simulated fleet for the console's browser tests (and for trying the pages by hand): agents that publish
 * on the MQTT contract exactly as real agents do (retained status, telemetry / risk / alerts / events batches with
 * per-stream seqs, docs/mqtt.md), so `forewarn central` ingests them through its real path. It writes a day of
 * history at once (every 10 minutes, then every minute in the last hour, so both the hourly rollups and the raw
 * 1-hour range have points) and then whatever the test adds: a new alert, a later score.
 *
 * The scenario: agent `line-1` runs three mills; `mill-1` fails (its machine-failure risk rises past the 0.42
 * threshold over the last three hours, tool wear and torque drive it, a critical risk alert is raised, one torque
 * reading fails the range check, its inputs drift to `watch`); `mill-2` and `mill-3` are healthy. Agent `line-2`
 * runs `engine-7`, scored by a remaining-useful-life model with a 90 % interval, whose life is falling. Agent
 * `line-3` has gone offline.
 */

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const FAILING = { agentId: 'line-1', asset: 'mill-1', model: 'machine-failure', threshold: 0.42 } as const;
export const RISK_ALERT_ID = `risk.threshold/${FAILING.asset}/${FAILING.model}`;

type Stream = 'telemetry' | 'risk' | 'alerts' | 'events';
type Rec = Record<string, unknown> & { ts: number };

export class SimulatedAgent {
  private readonly seq: Record<Stream, number> = { telemetry: 0, risk: 0, alerts: 0, events: 0 };
  constructor(
    readonly agentId: string,
    private readonly client: MqttClient,
    readonly version = '0.9.2',
  ) {}

  async status(state: 'online' | 'offline', ts = Date.now()): Promise<void> {
    const body = {
      schemaVersion: 1,
      agentId: this.agentId,
      state,
      ts,
      bootSeq: 1,
      agentVersion: this.version,
      ...(state === 'offline' ? { reason: 'connection-lost' } : {}),
    };
    await this.client.publishAsync(`forewarn/v1/${this.agentId}/status`, JSON.stringify(body), { qos: 1, retain: true });
  }

  /** Publishes records of one stream in batches of 200, each record with the next seq. */
  async publish(stream: Stream, records: Rec[], historical = false): Promise<void> {
    for (let i = 0; i < records.length; i += 200) {
      const chunk = records.slice(i, i + 200).map((r) => ({ seq: ++this.seq[stream], ...r }));
      const batch = { schemaVersion: 1, agentId: this.agentId, stream, bootSeq: 1, ...(historical ? { historical: true } : {}), records: chunk };
      await this.client.publishAsync(`forewarn/v1/${this.agentId}/${stream}`, JSON.stringify(batch), {
        qos: 1,
        properties: { contentType: 'application/json' },
      });
    }
  }
}

/** Times of the history: every 10 min for 23 h, then every minute in the last hour, oldest first. */
export function historyTimes(now: number): number[] {
  const out: number[] = [];
  for (let t = now - 24 * HOUR; t < now - HOUR; t += 10 * MINUTE) out.push(t);
  for (let t = now - HOUR + MINUTE; t <= now - MINUTE; t += MINUTE) out.push(t);
  return out;
}

const round = (v: number, d = 4) => Number(v.toFixed(d));
/** Deterministic wobble (no Math.random: screenshots stay the same from run to run). */
const wobble = (t: number, k: number) => Math.sin(t / (7 * MINUTE) + k) * 0.5 + Math.sin(t / (23 * MINUTE) + 2 * k) * 0.5;

/** The failing mill's risk at time t: low for most of the day, rising past the threshold over the last 3 h. */
export function failingRisk(t: number, now: number): number {
  const x = (t - (now - 3 * HOUR)) / (3 * HOUR);
  return x <= 0 ? round(0.06 + 0.02 * wobble(t, 1)) : round(Math.min(0.97, 0.06 + 0.84 * x ** 1.6 + 0.02 * wobble(t, 1)));
}

function millRecords(asset: string, times: number[], now: number, failing: boolean) {
  const telemetry: Rec[] = [];
  const risk: Rec[] = [];
  const seed = asset.length + asset.charCodeAt(asset.length - 1);
  for (const t of times) {
    const score = failing ? failingRisk(t, now) : round(0.05 + 0.03 * wobble(t, seed));
    const wear = failing ? 60 + 160 * Math.max(0, (t - (now - 6 * HOUR)) / (6 * HOUR)) : 40 + 10 * wobble(t, seed + 1);
    const torque = failing ? 40 + 22 * Math.max(0, (t - (now - 3 * HOUR)) / (3 * HOUR)) + wobble(t, 3) : 38 + 2 * wobble(t, seed + 2);
    const metrics = {
      product_type: 1,
      air_temperature: round(300 + 1.5 * wobble(t, seed + 3), 2),
      process_temperature: round(310 + 1.2 * wobble(t, seed + 4) + (failing ? 2 * Math.max(0, (t - (now - 3 * HOUR)) / (3 * HOUR)) : 0), 2),
      rotational_speed: round(1500 - (failing ? 90 * Math.max(0, (t - (now - 3 * HOUR)) / (3 * HOUR)) : 0) + 20 * wobble(t, seed + 5), 1),
      torque: round(torque, 2),
      tool_wear: round(wear, 1),
    };
    const rec: Rec = { ts: t, source: 'simulator', asset, metrics };
    // One torque reading out of its physical range on the failing mill: a data-quality flag.
    if (failing && t === times[times.length - 30]) {
      rec.metrics = { ...metrics, torque: 412 };
      rec.quality = { torque: 'range' };
    }
    telemetry.push(rec);
    const drivers = [
      { feature: 'tool_wear', value: metrics.tool_wear, contribution: round(failing ? score * 0.62 : score * 0.3) },
      { feature: 'torque', value: metrics.torque, contribution: round(failing ? score * 0.25 : score * 0.2) },
      { feature: 'rotational_speed', value: metrics.rotational_speed, contribution: round(failing ? score * 0.08 : -score * 0.1) },
    ];
    risk.push({
      ts: t,
      asset,
      model: 'machine-failure',
      modelVersion: '1.0.0',
      kind: 'probability',
      score,
      threshold: FAILING.threshold,
      atRisk: score >= FAILING.threshold,
      readingTs: t - 20,
      drivers,
    });
  }
  return { telemetry, risk };
}

function engineRecords(times: number[], now: number) {
  const telemetry: Rec[] = [];
  const risk: Rec[] = [];
  for (const t of times) {
    // 118 cycles left a day ago, about 62 now: it will run out in about a day.
    const rul = round(62 + (56 * (now - t)) / (24 * HOUR) + 2 * wobble(t, 9), 2);
    const s4 = round(1408 + 14 * (1 - (now - t) / (24 * HOUR)) + 2 * wobble(t, 10), 2);
    const s11 = round(47.4 + 0.9 * (1 - (now - t) / (24 * HOUR)) + 0.1 * wobble(t, 11), 3);
    telemetry.push({ ts: t, source: 'modbus', asset: 'engine-7', metrics: { 'cmapss.s4': s4, 'cmapss.s11': s11, s4, s11 } });
    risk.push({
      ts: t,
      asset: 'engine-7',
      model: 'turbofan-rul',
      modelVersion: '1.0.0',
      kind: 'rul',
      score: rul,
      threshold: 30,
      atRisk: rul <= 30,
      readingTs: t - 20,
      interval: { level: 0.9, lower: round(rul * 0.74, 2), upper: round(rul * 1.3, 2) },
      drivers: [
        { feature: 's4', value: s4, contribution: round(-0.2 * (118 - rul)) },
        { feature: 's11', value: s11, contribution: round(-0.15 * (118 - rul)) },
      ],
    });
  }
  return { telemetry, risk };
}

export function riskAlert(now: number, raisedTs: number, value: number): Rec {
  return {
    ts: raisedTs,
    alertId: RISK_ALERT_ID,
    rule: 'risk.threshold',
    asset: FAILING.asset,
    subject: FAILING.model,
    state: 'raised',
    severity: 'critical',
    title: 'Failure risk above the model’s operating threshold',
    evidence: { model: FAILING.model, score: value, threshold: FAILING.threshold, drivers: 'tool_wear, torque' },
    remedy: 'Inspect the asset; the alert lists the model’s main drivers. Lower the load or schedule maintenance before the predicted failure.',
    raisedTs,
    value,
    pendingSinceTs: raisedTs - 2_000,
  };
}

export interface SimulatedFleet {
  agents: Record<string, SimulatedAgent>;
  /** When the history ends (the records' "now"). */
  now: number;
  /** When the failing mill's risk alert was raised. */
  raisedTs: number;
  /** How many records were published, per agent and stream (central should hold them all). */
  published: Record<string, Partial<Record<Stream, number>>>;
  close(): Promise<void>;
}

/** Connects to the broker and publishes the whole scenario. */
export async function simulateFleet(brokerUrl: string, now = Date.now()): Promise<SimulatedFleet> {
  const client = await mqtt.connectAsync(brokerUrl, { protocolVersion: 5, clientId: `console-fleet-${process.pid}-${now}`, reconnectPeriod: 0 });
  const agents = {
    'line-1': new SimulatedAgent('line-1', client),
    'line-2': new SimulatedAgent('line-2', client),
    'line-3': new SimulatedAgent('line-3', client, '0.9.1'),
  };
  const published: SimulatedFleet['published'] = {};
  const count = (agentId: string, stream: Stream, n: number) => {
    const p = (published[agentId] ??= {});
    p[stream] = (p[stream] ?? 0) + n;
  };
  const send = async (a: SimulatedAgent, stream: Stream, records: Rec[]) => {
    await a.publish(stream, records);
    count(a.agentId, stream, records.length);
  };
  const times = historyTimes(now);
  for (const a of Object.values(agents)) await a.status('online', now - 24 * HOUR);
  for (const asset of ['mill-1', 'mill-2', 'mill-3']) {
    const r = millRecords(asset, times, now, asset === FAILING.asset);
    await send(agents['line-1'], 'telemetry', r.telemetry);
    await send(agents['line-1'], 'risk', r.risk);
  }
  const e = engineRecords(times, now);
  await send(agents['line-2'], 'telemetry', e.telemetry);
  await send(agents['line-2'], 'risk', e.risk);
  const l3 = millRecords(
    'press-4',
    times.filter((t) => t < now - 5 * HOUR),
    now - 5 * HOUR,
    false,
  );
  await send(agents['line-3'], 'telemetry', l3.telemetry);
  await send(agents['line-3'], 'risk', l3.risk);
  // The failing mill: the risk alert where its score first stayed past the threshold, and its inputs drifting.
  const raisedTs = times.find((t) => failingRisk(t, now) >= FAILING.threshold && failingRisk(t + MINUTE, now) >= FAILING.threshold) ?? now - 30 * MINUTE;
  await send(agents['line-1'], 'alerts', [riskAlert(now, raisedTs, failingRisk(raisedTs, now))]);
  await send(agents['line-1'], 'events', [
    {
      ts: now - 40 * MINUTE,
      type: 'model-health',
      asset: FAILING.asset,
      model: FAILING.model,
      version: '1.0.0',
      state: 'watch',
      previous: 'ok',
      samples: 240,
      psiMax: 0.31,
      driftPsi: 0.18,
      outsideMax: 0.04,
      top: [
        { feature: 'tool_wear', psi: 0.18 },
        { feature: 'torque', psi: 0.11 },
      ],
    },
  ]);
  await agents['line-3'].status('offline', now - 5 * HOUR);
  return { agents, now, raisedTs, published, close: () => client.endAsync() };
}

/** A critical vibration alert on another asset, for a live update while the overview is open. */
export function vibrationAlert(asset: string, ts: number): Rec {
  return {
    ts,
    alertId: `vibration.iso10816.zone_d/${asset}/x`,
    rule: 'vibration.iso10816.zone_d',
    asset,
    subject: 'x',
    state: 'raised',
    severity: 'critical',
    title: 'Vibration velocity in ISO 10816-3 zone D (damage likely)',
    evidence: { velocity_rms: 7.9, boundary_cd: 7.1 },
    remedy: 'Reduce the load or stop the machine as soon as operations allow.',
    raisedTs: ts,
    value: 7.9,
  };
}
