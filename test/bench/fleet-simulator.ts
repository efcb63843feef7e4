import mqtt, { type MqttClient } from 'mqtt';
import { SCHEMA_VERSION, TOPIC_ROOT } from '../../agent/src/contract/topics.js';

/**
 * Many agents' worth of contract traffic from one process, for the central benchmarks: each simulated agent has
 * its own id, boot counter and seq per stream, and publishes batches shaped as the agent's (telemetry records with
 * the host source's signals, risk records with drivers) at QoS 1 on `forewarn/v1/{agentId}/{stream}`. One MQTT
 * connection carries them all: the broker and central see the same topics and payloads a real fleet sends.
 */

export interface FleetSimulatorOptions {
  url: string;
  agents: number;
  assetsPerAgent: number;
  /** QoS 1 publishes awaiting their PUBACK at once. Default 200. */
  inflight?: number;
  clientId?: string;
}

const agentName = (i: number) => `sim-agent-${String(i).padStart(5, '0')}`;

export function telemetryRecord(seq: number, ts: number, asset: string): Record<string, unknown> {
  // The host source's usual signals: the size of a real record (about 300 bytes of JSON).
  return {
    seq,
    ts,
    source: 'host',
    asset,
    metrics: {
      cpu_percent: 10 + (seq % 70),
      load1: 0.42,
      mem_used_percent: 43.1,
      swap_used_percent: 0,
      disk_used_percent: 71.3,
      disk_read_bytes_per_s: 12_345,
      disk_write_bytes_per_s: 54_321,
      net_rx_bytes_per_s: 123_456,
      net_tx_bytes_per_s: 23_456,
      cpu_temp_c: 55.2,
    },
  };
}

export function riskRecord(seq: number, ts: number, asset: string): Record<string, unknown> {
  const score = ((seq * 7919) % 1000) / 1000;
  return {
    seq,
    ts,
    asset,
    model: 'machine-failure',
    modelVersion: '1.0.0',
    kind: 'probability',
    score,
    threshold: 0.5,
    atRisk: score >= 0.5,
    readingTs: ts,
    drivers: [
      { feature: 'torque_nm', value: 41.2, contribution: 0.21 },
      { feature: 'tool_wear_min', value: 180, contribution: 0.12 },
      { feature: 'rotational_speed_rpm', value: 1450, contribution: -0.05 },
    ],
  };
}

export class FleetSimulator {
  private client: MqttClient | null = null;
  private readonly seqs = new Map<string, number>();
  private inflight = 0;
  private readonly waiters: Array<() => void> = [];
  published = 0;
  records = 0;

  constructor(private readonly options: FleetSimulatorOptions) {}

  get agentIds(): string[] {
    return Array.from({ length: this.options.agents }, (_, i) => agentName(i + 1));
  }

  async start(): Promise<void> {
    this.client = await mqtt.connectAsync(this.options.url, {
      protocolVersion: 5,
      clientId: this.options.clientId ?? `fleet-sim-${process.pid}`,
      clean: true,
      reconnectPeriod: 1000,
      log: () => undefined,
    });
  }

  /** The next `count` seqs of one agent's stream. */
  private nextSeqs(agentId: string, stream: string, count: number): number[] {
    const key = `${agentId}/${stream}`;
    const first = (this.seqs.get(key) ?? 0) + 1;
    this.seqs.set(key, first + count - 1);
    return Array.from({ length: count }, (_, i) => first + i);
  }

  /** Highest seq published per `agentId/stream`. */
  highest(): Map<string, number> {
    return new Map(this.seqs);
  }

  /** One batch of `stream` for one agent: one record per asset, or `records` records over its assets. */
  async publishBatch(agentIndex: number, stream: 'telemetry' | 'risk', ts: number, records = this.options.assetsPerAgent): Promise<void> {
    const agentId = agentName(agentIndex);
    const make = stream === 'telemetry' ? telemetryRecord : riskRecord;
    const recs = this.nextSeqs(agentId, stream, records).map((seq, i) => make(seq, ts, `asset-${(i % this.options.assetsPerAgent) + 1}`));
    const payload = JSON.stringify({ schemaVersion: SCHEMA_VERSION, agentId, stream, bootSeq: 1, records: recs });
    while (this.inflight >= (this.options.inflight ?? 200)) await new Promise<void>((r) => this.waiters.push(r));
    this.inflight++;
    this.client!.publish(`${TOPIC_ROOT}/${agentId}/${stream}`, payload, { qos: 1, properties: { contentType: 'application/json' } }, () => {
      this.inflight--;
      this.waiters.shift()?.();
    });
    this.published++;
    this.records += recs.length;
  }

  /** Resolves when every publish so far has its PUBACK. */
  async drain(): Promise<void> {
    while (this.inflight > 0) await new Promise<void>((r) => this.waiters.push(r));
  }

  async stop(): Promise<void> {
    await this.drain();
    await this.client?.endAsync();
  }
}
