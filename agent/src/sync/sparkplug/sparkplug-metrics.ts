import type { OutboxRecord } from '../../store/outbox.js';
import { DataType, type MetricValue, type SparkplugDataType } from './sparkplug-codec.js';

/**
 * What an outbox record says about one Sparkplug device (one asset): telemetry signals as Doubles with their unit,
 * each model's risk score (or remaining useful life) and whether it is at risk, and each alert rule as a Boolean
 * that is true while the alert is raised.
 */

export const NAMESPACE = 'spBv1.0';

export type MessageType = 'NBIRTH' | 'NDATA' | 'NDEATH' | 'NCMD' | 'DBIRTH' | 'DDATA' | 'DDEATH' | 'DCMD';

export const sparkplugTopics = {
  node: (group: string, type: MessageType, node: string) => `${NAMESPACE}/${group}/${type}/${node}`,
  device: (group: string, type: MessageType, node: string, device: string) => `${NAMESPACE}/${group}/${type}/${node}/${device}`,
  /** The primary host application's retained birth/death ([tck-id-host-topic-phid-birth-topic]). */
  state: (hostId: string) => `${NAMESPACE}/STATE/${hostId}`,
};

/** A Sparkplug ID may not hold the MQTT topic characters `/`, `+`, `#` ([tck-id-intro-device-id-chars]): they become `_`. */
export function deviceId(asset: string): string {
  const id = asset.replace(/[/+#]/g, '_');
  return id || 'agent';
}

export interface MetricUpdate {
  name: string;
  datatype: SparkplugDataType;
  value: MetricValue;
  /** Engineering unit, sent as the `engUnit` property in births. */
  unit?: string;
  ts: number;
}

/** Units the signal names of the built-in sources imply by their suffix (config `sparkplug.units` overrides). */
const UNIT_SUFFIXES: Array<[RegExp, string]> = [
  [/_mm_s$/, 'mm/s'],
  [/(_pct|_percent|\.pct|_util)$/, '%'],
  [/_bytes$/, 'B'],
  [/_rpm$/, 'rpm'],
  [/_nm$/, 'N·m'],
  [/_mhz$/, 'MHz'],
  [/_hz$/, 'Hz'],
  [/_ms$/, 'ms'],
  [/_min$/, 'min'],
  [/_w$/, 'W'],
  [/_v$/, 'V'],
  [/_c$/, '°C'],
  [/_k$/, 'K'],
  [/_s$/, 's'],
];

export function unitOf(signal: string, units: Readonly<Record<string, string>>): string | undefined {
  const configured = units[signal];
  if (configured) return configured;
  return UNIT_SUFFIXES.find(([re]) => re.test(signal))?.[1];
}

/** The metric updates in one record; none for a record this output does not map (events, malformed payloads). */
export function recordMetrics(record: Pick<OutboxRecord, 'stream' | 'ts' | 'json'>, units: Readonly<Record<string, string>>): MetricUpdate[] {
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(record.json) as Record<string, unknown>;
  } catch {
    return [];
  }
  const ts = typeof p.ts === 'number' ? p.ts : record.ts;
  const out: MetricUpdate[] = [];
  if (record.stream === 'telemetry' && p.metrics && typeof p.metrics === 'object') {
    for (const [signal, v] of Object.entries(p.metrics as Record<string, unknown>)) {
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      const unit = unitOf(signal, units);
      out.push({ name: signal, datatype: DataType.Double, value: v, ts, ...(unit ? { unit } : {}) });
    }
  } else if (record.stream === 'risk' && typeof p.model === 'string' && typeof p.score === 'number') {
    const rul = p.kind === 'rul';
    out.push({ name: `risk/${p.model}/${rul ? 'rul' : 'score'}`, datatype: DataType.Double, value: p.score, ts, ...(rul ? { unit: 'cycles' } : {}) });
    if (typeof p.atRisk === 'boolean') out.push({ name: `risk/${p.model}/atRisk`, datatype: DataType.Boolean, value: p.atRisk, ts });
  } else if (record.stream === 'alerts' && typeof p.rule === 'string' && (p.state === 'raised' || p.state === 'cleared')) {
    // One metric per alert (rule and subject: a disk, a GPU), true while raised.
    const subject = typeof p.subject === 'string' && p.subject ? `/${p.subject.replace(/[+#]/g, '_')}` : '';
    out.push({ name: `alerts/${p.rule}${subject}`, datatype: DataType.Boolean, value: p.state === 'raised', ts });
  }
  return out;
}
