/**
 * Sparkplug B output (docs/sparkplug.md): what one DDATA costs to encode with the shipped schema (protobufjs), and
 * its size next to the same reading as a Forewarn JSON record. One core, no broker: the encoder alone.
 */
import { type BenchReport, measure, round } from './bench-harness.js';
import { DataType, loadSparkplugCodec, type SparkplugPayload } from '../../agent/src/sync/sparkplug/sparkplug-codec.js';

const PER_CALL = 1000;

export async function run(): Promise<BenchReport> {
  const codec = await loadSparkplugCodec();
  const now = 1_700_000_000_000;
  // A milling-machine reading: six signals that all changed (report by exception sends fewer), by alias.
  const values = [300.1, 310.4, 1503, 41.2, 108, 0.7];
  const ddata = (i: number): SparkplugPayload => ({
    timestamp: now + i,
    seq: i % 256,
    metrics: values.map((v, k) => ({ alias: k + 1, timestamp: now + i, datatype: DataType.Double, value: v + (i % 7) })),
  });
  const names = ['air_temperature', 'process_temperature', 'rotational_speed', 'torque', 'tool_wear', 'risk/machine-failure/score'];
  const dbirth: SparkplugPayload = {
    timestamp: now,
    seq: 1,
    metrics: names.map((name, k) => ({ name, alias: k + 1, timestamp: now, datatype: DataType.Double, value: values[k]!, properties: { engUnit: 'K' } })),
  };
  let sink = 0;
  const data = await measure(
    () => {
      for (let i = 0; i < PER_CALL; i++) sink += codec.encode(ddata(i)).length;
    },
    30,
    { warmup: 5 },
  );
  const birth = await measure(
    () => {
      for (let i = 0; i < PER_CALL; i++) sink += codec.encode(dbirth).length;
    },
    30,
    { warmup: 5 },
  );
  if (sink <= 0) throw new Error('nothing encoded');
  const json = JSON.stringify({ ts: now, source: 'sim-mill', asset: 'sim-mill-1', metrics: Object.fromEntries(names.map((n, k) => [n, values[k]])) }).length;
  return {
    name: 'sparkplug',
    rows: [
      {
        message: 'DDATA, 6 metrics by alias',
        'median µs/message': round((data.medianMs * 1000) / PER_CALL),
        'p99 µs/message': round((data.p99Ms * 1000) / PER_CALL),
        bytes: codec.encode(ddata(1)).length,
        'JSON record bytes': json,
      },
      {
        message: 'DBIRTH, 6 metrics with names and engUnit',
        'median µs/message': round((birth.medianMs * 1000) / PER_CALL),
        'p99 µs/message': round((birth.p99Ms * 1000) / PER_CALL),
        bytes: codec.encode(dbirth).length,
        'JSON record bytes': json,
      },
    ],
    notes: [`${PER_CALL} encodes per measured call, 30 calls after 5 warm-up; median and p99 per message.`],
  };
}
