import path from 'node:path';
import { PACKAGE_ROOT } from '../../core/package-root.js';
import { ForewarnError, describeError } from '../../core/errors.js';

/**
 * Sparkplug B payloads, encoded with protobufjs from the `sparkplug_b.proto` we ship (the specification's schema;
 * its header says where it comes from and under which licence). protobufjs is loaded only when the Sparkplug output
 * starts (`loadSparkplugCodec`), so an agent without it never pays for the library.
 */

export const SPARKPLUG_PROTO = path.join(PACKAGE_ROOT, 'agent/src/sync/sparkplug/sparkplug_b.proto');

/** The Sparkplug B data types this edge node uses (the `DataType` enum of the schema). */
export const DataType = { Int64: 4, UInt64: 8, Double: 10, Boolean: 11, String: 12 } as const;
export type SparkplugDataType = (typeof DataType)[keyof typeof DataType];

export type MetricValue = number | boolean | string;

export interface SparkplugMetric {
  name?: string;
  alias?: number;
  timestamp?: number;
  datatype?: SparkplugDataType;
  isHistorical?: boolean;
  isNull?: boolean;
  /** Property name → string value (e.g. `engUnit`), or a number sent as Int32 (`Quality`). */
  properties?: Record<string, string | number>;
  value?: MetricValue;
}

export interface SparkplugPayload {
  timestamp: number;
  /** Absent only in NDEATH ([tck-id-topics-ndeath-seq]). */
  seq?: number;
  metrics: SparkplugMetric[];
}

/** A decoded metric as this node reads it (NCMD): the fields it acts on. */
export interface DecodedMetric {
  name: string | null;
  alias: number | null;
  datatype: number | null;
  value: MetricValue | null;
}

export interface SparkplugCodec {
  encode(payload: SparkplugPayload): Uint8Array;
  decode(bytes: Uint8Array): { timestamp: number | null; seq: number | null; metrics: DecodedMetric[] };
}

/** Which field of the `value` oneof carries a value of each data type. */
function valueField(datatype: number | undefined, value: MetricValue): Record<string, unknown> {
  switch (datatype) {
    case DataType.Boolean:
      return { booleanValue: Boolean(value) };
    case DataType.String:
      return { stringValue: String(value) };
    case DataType.Int64:
    case DataType.UInt64:
      // Int64 goes as the two's complement in uint64 (the specification's rule); ours are never negative.
      return { longValue: Math.max(0, Math.trunc(Number(value))) };
    default:
      return { doubleValue: Number(value) };
  }
}

function propertySet(props: Record<string, string | number>): Record<string, unknown> {
  const keys = Object.keys(props);
  return {
    keys,
    values: keys.map((k) => {
      const v = props[k]!;
      // Int32 (3) for numbers (the Quality property is Int32: [tck-id-payloads-propertyset-quality-value-type]); String (12) otherwise.
      return typeof v === 'number' ? { type: 3, intValue: v >>> 0 } : { type: DataType.String, stringValue: v };
    }),
  };
}

function toMessage(p: SparkplugPayload): Record<string, unknown> {
  return {
    timestamp: p.timestamp,
    ...(p.seq === undefined ? {} : { seq: p.seq }),
    metrics: p.metrics.map((m) => ({
      ...(m.name === undefined ? {} : { name: m.name }),
      ...(m.alias === undefined ? {} : { alias: m.alias }),
      ...(m.timestamp === undefined ? {} : { timestamp: m.timestamp }),
      ...(m.datatype === undefined ? {} : { datatype: m.datatype }),
      ...(m.isHistorical ? { isHistorical: true } : {}),
      ...(m.isNull ? { isNull: true } : {}),
      ...(m.properties && Object.keys(m.properties).length ? { properties: propertySet(m.properties) } : {}),
      ...(m.value === undefined || m.isNull ? {} : valueField(m.datatype, m.value)),
    })),
  };
}

/** Loads protobufjs and the schema. FW_ERR_SPARKPLUG_PROTO when the schema file is missing or unreadable. */
export async function loadSparkplugCodec(protoFile = SPARKPLUG_PROTO): Promise<SparkplugCodec> {
  const protobuf = (await import('protobufjs')).default;
  let Payload: import('protobufjs').Type;
  try {
    const root = await protobuf.load(protoFile);
    Payload = root.lookupType('org.eclipse.tahu.protobuf.Payload');
  } catch (err) {
    throw new ForewarnError('FW_ERR_SPARKPLUG_PROTO', `${protoFile}: ${describeError(err)}`, { cause: err });
  }
  return {
    encode: (p) => Payload.encode(Payload.fromObject(toMessage(p))).finish(),
    decode: (bytes) => {
      const o = Payload.toObject(Payload.decode(bytes), { longs: Number, oneofs: true }) as {
        timestamp?: number;
        seq?: number;
        metrics?: Array<Record<string, unknown>>;
      };
      return {
        timestamp: o.timestamp ?? null,
        seq: o.seq ?? null,
        metrics: (o.metrics ?? []).map((m) => ({
          name: typeof m.name === 'string' ? m.name : null,
          alias: typeof m.alias === 'number' ? m.alias : null,
          datatype: typeof m.datatype === 'number' ? m.datatype : null,
          value: typeof m.value === 'string' ? ((m[m.value] as MetricValue | undefined) ?? null) : null,
        })),
      };
    },
  };
}
