import mqtt, { type MqttClient } from 'mqtt';
import sparkplug from 'sparkplug-payload';

/**
 * A reference Sparkplug B host application for the tests: it decodes every message with Eclipse Tahu's own codec
 * (sparkplug-payload, independent of the agent's protobufjs encoder), follows node and device state the way a
 * SCADA host does, and records each rule an edge node broke (`violations`). It can act as the primary host
 * (publishing its retained STATE, with a Will saying offline) and ask for a rebirth (NCMD).
 */

const tahu = sparkplug.get('spBv1.0')!;

export type Decoded = ReturnType<typeof tahu.decodePayload>;

export interface HostMessage {
  topic: string;
  type: string;
  device: string | null;
  qos: number;
  retain: boolean;
  payload: Decoded;
  seq: number | null;
  at: number;
}

export interface DeviceState {
  online: boolean;
  /** Metric name → current value, as births declare and data updates them. */
  values: Map<string, unknown>;
  /** Alias → name, from the device's birth. */
  aliases: Map<number, string>;
  units: Map<string, string>;
  historical: number;
}

export interface NodeState {
  online: boolean;
  bdSeq: number | null;
  births: number;
  deaths: number;
  devices: Map<string, DeviceState>;
}

/** uint64 fields come back as Long objects. */
export function num(v: unknown): number {
  if (v && typeof v === 'object' && 'toNumber' in v) return (v as { toNumber(): number }).toNumber();
  return Number(v);
}

export class SparkplugHost {
  readonly messages: HostMessage[] = [];
  readonly violations: string[] = [];
  readonly node: NodeState = { online: false, bdSeq: null, births: 0, deaths: 0, devices: new Map() };
  private lastSeq: number | null = null;
  private client: MqttClient | null = null;

  constructor(
    private readonly url: string,
    readonly group: string,
    readonly edgeNode: string,
    readonly hostId: string | null = null,
  ) {}

  async connect(): Promise<void> {
    const opts: mqtt.IClientOptions = {
      protocolVersion: 5,
      clean: true,
      reconnectPeriod: 200,
      clientId: `host-${process.pid}-${Math.random().toString(36).slice(2)}`,
    };
    if (this.hostId) {
      opts.will = {
        topic: `spBv1.0/STATE/${this.hostId}`,
        payload: Buffer.from(JSON.stringify({ online: false, timestamp: Date.now() })),
        qos: 1,
        retain: true,
      };
    }
    const client = mqtt.connect(this.url, opts);
    this.client = client;
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet.qos, packet.retain));
    client.on('connect', () => {
      void client.subscribeAsync(`spBv1.0/${this.group}/#`, { qos: 1 }).then(() => {
        if (this.hostId) void this.setOnline(true);
      });
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
  }

  /** Publishes the host's retained STATE (Sparkplug 3.0 JSON). */
  async setOnline(online: boolean, timestamp = Date.now()): Promise<void> {
    await this.client!.publishAsync(`spBv1.0/STATE/${this.hostId}`, JSON.stringify({ online, timestamp }), { qos: 1, retain: true });
  }

  /** NCMD `Node Control/Rebirth` = true, encoded by Tahu's codec. */
  async requestRebirth(): Promise<void> {
    const payload = tahu.encodePayload({ timestamp: Date.now(), metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }] });
    await this.client!.publishAsync(`spBv1.0/${this.group}/NCMD/${this.edgeNode}`, Buffer.from(payload), { qos: 0 });
  }

  async close(): Promise<void> {
    await this.client?.endAsync(true);
  }

  of(type: string): HostMessage[] {
    return this.messages.filter((m) => m.type === type);
  }

  private violate(what: string): void {
    this.violations.push(what);
  }

  private onMessage(topic: string, raw: Buffer, qos: number, retain: boolean): void {
    const parts = topic.split('/');
    const [, group, type, node, device] = parts;
    if (group !== this.group || node !== this.edgeNode) return;
    let payload: Decoded;
    try {
      payload = tahu.decodePayload(new Uint8Array(raw));
    } catch (err) {
      this.violate(`${topic}: not a Sparkplug B payload (${String(err)})`);
      return;
    }
    const seq = payload.seq === undefined || payload.seq === null ? null : num(payload.seq);
    this.messages.push({ topic, type: type!, device: device ?? null, qos, retain, payload, seq, at: Date.now() });
    if (type === 'NCMD' || type === 'DCMD') return;
    const metrics = payload.metrics ?? [];
    if (payload.timestamp === undefined || payload.timestamp === null) this.violate(`${type}: no timestamp`);
    if (type === 'NDEATH') {
      if (seq !== null) this.violate('NDEATH carries a seq');
      const bd = metrics.find((m) => m.name === 'bdSeq');
      if (!bd || metrics.length !== 1) this.violate('NDEATH must carry only bdSeq');
      // A death whose bdSeq is not the current birth's is an old session's: ignore it, as hosts must.
      if (bd && this.node.bdSeq !== null && num(bd.value) !== this.node.bdSeq) return;
      this.node.online = false;
      this.node.deaths++;
      for (const d of this.node.devices.values()) d.online = false;
      return;
    }
    if (seq === null || seq < 0 || seq > 255) this.violate(`${type}: seq ${seq} missing or out of 0..255`);
    if (type === 'NBIRTH') {
      if (seq !== 0) this.violate(`NBIRTH seq ${seq}, not 0`);
      const bd = metrics.find((m) => m.name === 'bdSeq');
      if (!bd || bd.type !== 'Int64') this.violate('NBIRTH without an Int64 bdSeq');
      const rebirth = metrics.find((m) => m.name === 'Node Control/Rebirth');
      if (!rebirth || rebirth.type !== 'Boolean' || rebirth.value !== false || rebirth.alias !== undefined)
        this.violate('NBIRTH without Node Control/Rebirth = false (no alias)');
      this.node.online = true;
      this.node.bdSeq = bd ? num(bd.value) : null;
      this.node.births++;
      for (const d of this.node.devices.values()) d.online = false;
      this.lastSeq = 0;
      return;
    }
    if (!this.node.online) {
      this.violate(`${type} while the node is offline (no NBIRTH in this session)`);
      return;
    }
    if (seq !== null && this.lastSeq !== null && seq !== (this.lastSeq + 1) % 256) this.violate(`${type}: seq ${seq} after ${this.lastSeq}`);
    this.lastSeq = seq;
    if (!device) return;
    let d = this.node.devices.get(device);
    if (type === 'DBIRTH') {
      d = { online: true, values: new Map(), aliases: new Map(), units: new Map(), historical: d?.historical ?? 0 };
      this.node.devices.set(device, d);
      for (const m of metrics) {
        if (!m.name || !m.type) this.violate(`DBIRTH ${device}: a metric without name or datatype`);
        if (m.timestamp === undefined || m.timestamp === null) this.violate(`DBIRTH ${device}: ${m.name} without timestamp`);
        if (m.alias !== undefined && m.alias !== null) {
          const a = num(m.alias);
          if (d.aliases.has(a)) this.violate(`DBIRTH ${device}: alias ${a} twice`);
          d.aliases.set(a, m.name!);
        }
        d.values.set(m.name!, m.value);
        const unit = m.properties?.engUnit?.value;
        if (typeof unit === 'string') d.units.set(m.name!, unit);
      }
      return;
    }
    if (!d || !d.online) {
      this.violate(`${type} for ${device} before its DBIRTH`);
      return;
    }
    if (type === 'DDEATH') {
      d.online = false;
      return;
    }
    for (const m of metrics) {
      if (m.name) this.violate(`DDATA ${device}: a name where the alias suffices`);
      const name = m.alias === undefined || m.alias === null ? undefined : d.aliases.get(num(m.alias));
      if (!name) {
        this.violate(`DDATA ${device}: unknown alias ${String(m.alias)}`);
        continue;
      }
      if (m.timestamp === undefined || m.timestamp === null) this.violate(`DDATA ${device}: ${name} without timestamp`);
      if (m.isHistorical) d.historical++;
      else d.values.set(name, m.value);
    }
  }
}
