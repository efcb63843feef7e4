/**
 * Sensor-node stream (docs/firmware-protocol.md): how fast the agent decodes a node's byte stream, and what the
 * edge vibration features cost per second of 10 kHz data, for 1 and 8 channels. One core, no spawns.
 */
import { type BenchReport, measure, round } from './bench-harness.js';
import { FrameDecoder, MESSAGE_TYPE, encodeFrame } from '../../firmware-bridge/src/node-protocol/frame-decoder.js';
import { BlockAssembler } from '../../firmware-bridge/src/node-protocol/block-assembler.js';
import { DecimalFraction } from '../../firmware-bridge/src/node-protocol/cbor.js';
import { encodeSenmlPack } from '../../firmware-bridge/src/node-protocol/senml.js';
import { vibrationFeatures } from '../../firmware-bridge/src/node-protocol/vibration-features.js';
import { SensorNodeSimulator } from '../../firmware-bridge/src/simulators/sensor-node.js';

const READ = 4096; // bytes per read, as from a serial port or a TCP socket

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Decodes `stream` in READ-byte reads; returns the frames decoded. */
function decodeAll(stream: Uint8Array, assemble: boolean): number {
  const d = new FrameDecoder({ now: () => 1_700_000_000 });
  const a = new BlockAssembler();
  for (let off = 0; off < stream.length; off += READ) {
    for (const m of d.push(stream.subarray(off, off + READ))) if (assemble && m.type === 'chunk') a.push(m.chunk, 0);
  }
  if (d.counters.ok !== d.counters.frames) throw new Error('bench stream did not decode cleanly');
  return d.counters.ok;
}

export async function run(): Promise<BenchReport> {
  const rows: BenchReport['rows'] = [];

  // A vibration node: 4096-sample blocks in 400-sample chunks, plus measurements and health. 30 s of data.
  const sim = new SensorNodeSimulator({ seed: 1 });
  const ticks = Math.ceil(30 / sim.blockSeconds);
  const nodeStream = concat(Array.from({ length: ticks }, () => sim.next().bytes));
  // Small frames only: one temperature + current SenML pack per frame.
  const small = concat(
    Array.from({ length: 5000 }, (_, i) =>
      encodeFrame(
        MESSAGE_TYPE.senml,
        i & 0xff,
        encodeSenmlPack([
          {
            bn: 'urn:dev:mac:0024befffe804ff1:',
            bt: new DecimalFraction(-3, 1_700_000_000_000 + i),
            n: 'temp',
            u: 'Cel',
            v: new DecimalFraction(-2, 4000 + (i % 500)),
          },
          { n: 'current', u: 'A', v: new DecimalFraction(-3, 12_000 + (i % 900)) },
        ]),
      ),
    ),
  );
  const streams = [
    { stream: 'vibration node (chunks of 400 samples)', bytes: nodeStream, assemble: false },
    { stream: 'vibration node + block reassembly', bytes: nodeStream, assemble: true },
    { stream: 'SenML measurements (2 records/frame)', bytes: small, assemble: false },
  ];
  for (const s of streams) {
    const frames = decodeAll(s.bytes, s.assemble);
    const m = await measure(() => decodeAll(s.bytes, s.assemble), 30, { warmup: 5 });
    const seconds = m.meanMs / 1000;
    rows.push({
      case: `decode: ${s.stream}`,
      input: `${frames} frames, ${round(s.bytes.length / 1e6)} MB`,
      frames_per_s: Math.round(frames / seconds),
      mb_per_s: round(s.bytes.length / 1e6 / seconds),
      median_ms: round(m.medianMs),
      cpu_ms_per_call: round(m.cpuMsPerCall),
    });
  }

  // Features per second of 10 kHz data: time-domain features and five FFT bands per 4096-sample block.
  const blocks = Array.from({ length: 8 }, (_, i) => new SensorNodeSimulator({ seed: 10 + i, initialSeverity: 0.5 }).next().samples);
  const perSecond = 10_000 / 4096;
  for (const channels of [1, 8]) {
    const m = await measure(
      () => {
        for (let c = 0; c < channels; c++) vibrationFeatures(blocks[c]!, { sampleRateHz: 10_000, scale: 0.002, fftSize: 4096 });
      },
      200,
      { warmup: 20 },
    );
    const cpuPerSecondOfData = m.cpuMsPerCall * perSecond;
    rows.push({
      case: `features: ${channels} channel${channels > 1 ? 's' : ''} at 10 kHz`,
      input: `${channels} × 4096-sample block`,
      median_ms: round(m.medianMs),
      cpu_ms_per_call: round(m.cpuMsPerCall),
      cpu_ms_per_s_of_data: round(cpuPerSecondOfData),
      core_share_pct: round(cpuPerSecondOfData / 10),
    });
  }

  return {
    name: 'Sensor-node stream: decoding and edge vibration features',
    rows,
    notes: [
      `Decoding: ${READ}-byte reads through FrameDecoder (COBS, CRC-32, CBOR, SenML / chunk checks); frames_per_s and mb_per_s from the mean of 30 runs.`,
      'A 10 kHz int16 channel is about 21 kB/s on the wire, so one core decodes the stream of many such channels.',
      'Features: RMS, peak, crest, kurtosis, skewness and five band energies from a Hann-windowed radix-2 FFT (4096 points) per 4096-sample block; cpu_ms_per_s_of_data = CPU per block × 10,000 / 4096.',
    ],
  };
}
