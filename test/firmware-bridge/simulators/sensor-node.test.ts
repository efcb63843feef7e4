import { describe, expect, it } from 'vitest';
import { BEARING_6205, SensorNodeSimulator, type SensorNodeOptions, bearingDefectFrequencies } from '../../../firmware-bridge/src/simulators/sensor-node.js';
import { type NodeMessage, FrameDecoder } from '../../../firmware-bridge/src/node-protocol/frame-decoder.js';
import { BlockAssembler, type SampleBlock } from '../../../firmware-bridge/src/node-protocol/block-assembler.js';
import { vibrationFeatures } from '../../../firmware-bridge/src/node-protocol/vibration-features.js';

const START = 1_700_000_000;

/** Runs a node for `ticks` blocks through a decoder and an assembler on the simulated clock. */
function run(options: SensorNodeOptions, ticks: number) {
  const sim = new SensorNodeSimulator({ startTime: START, ...options });
  let clock = START;
  const decoder = new FrameDecoder({ now: () => clock });
  const assembler = new BlockAssembler({ timeoutMs: 2000 });
  const messages: NodeMessage[] = [];
  const blocks: SampleBlock[] = [];
  const sent = new Map<number, Int16Array>();
  const totals = { framesSent: 0, chunksDropped: 0, framesTruncated: 0, bitFlips: 0, garbageBytes: 0, bytes: 0 };
  for (let i = 0; i < ticks; i++) {
    const tick = sim.next();
    clock = START + tick.timeS + sim.blockSeconds;
    sent.set(tick.blockId, tick.samples);
    for (const k of ['framesSent', 'chunksDropped', 'framesTruncated', 'bitFlips', 'garbageBytes'] as const) totals[k] += tick[k];
    totals.bytes += tick.bytes.length;
    // Serial reads of awkward sizes.
    for (let off = 0; off < tick.bytes.length; off += 333) {
      for (const m of decoder.push(tick.bytes.subarray(off, off + 333))) {
        messages.push(m);
        if (m.type === 'chunk') {
          const b = assembler.push(m.chunk, (clock - START) * 1000);
          if (b) blocks.push(b);
        }
      }
    }
  }
  return { sim, decoder, assembler, messages, blocks, sent, totals };
}

describe('bearing kinematics', () => {
  it('gives the 6205 bearing’s defect frequencies (CWRU: BPFO 3.5848×, BPFI 5.4152× shaft speed)', () => {
    const f = bearingDefectFrequencies(29.95, BEARING_6205);
    expect(f.bpfo / 29.95).toBeCloseTo(3.5848, 3);
    expect(f.bpfi / 29.95).toBeCloseTo(5.4152, 3);
    expect(f.ftf / 29.95).toBeCloseTo(0.3983, 3);
    expect(f.bsf / 29.95).toBeCloseTo(2.357, 2);
  });
});

describe('SensorNodeSimulator', () => {
  it('is a pure function of its seed and options', () => {
    const a = new SensorNodeSimulator({ seed: 4, noise: { garbageProbability: 0.1, bitFlipProbability: 0.1 } });
    const b = new SensorNodeSimulator({ seed: 4, noise: { garbageProbability: 0.1, bitFlipProbability: 0.1 } });
    const c = new SensorNodeSimulator({ seed: 5, noise: { garbageProbability: 0.1, bitFlipProbability: 0.1 } });
    for (let i = 0; i < 3; i++) {
      const ta = a.next();
      expect(ta.bytes).toEqual(b.next().bytes);
      expect(ta.bytes).not.toEqual(c.next().bytes);
    }
  });

  it('turning a transport fault on does not change the signal', () => {
    const clean = new SensorNodeSimulator({ seed: 2 });
    const noisy = new SensorNodeSimulator({ seed: 2, noise: { garbageProbability: 0.5, dropChunkProbability: 0.2 } });
    for (let i = 0; i < 3; i++) expect(noisy.next().samples).toEqual(clean.next().samples);
  });

  it('streams health, measurements and blocks that decode exactly over a clean link', () => {
    const r = run({ seed: 1, healthEveryS: 2 }, 12);
    expect(r.decoder.counters.ok).toBe(r.totals.framesSent);
    expect(r.decoder.counters.frames).toBe(r.decoder.counters.ok);
    expect(r.decoder.counters.seqGaps).toBe(0);
    expect(r.blocks).toHaveLength(12);
    for (const b of r.blocks) {
      expect(b.samples).toEqual(r.sent.get(b.blockId));
      expect(b).toMatchObject({ name: 'urn:dev:mac:0024befffe804ff1:vib.x', unit: 'm/s2', sampleRateHz: 10_000, scale: 0.002, chunkCount: 11 });
    }
    expect(r.blocks[3]!.baseTime).toBeCloseTo(START + 3 * 0.4096, 6);
    const health = r.messages.filter((m) => m.type === 'health');
    expect(health).toHaveLength(3);
    expect(health.map((m) => m.type === 'health' && m.health.uptimeS)).toEqual([0, 2, 4]);
    const temps = r.messages.flatMap((m) => (m.type === 'senml' ? m.records.filter((x) => x.name.endsWith(':temp')) : []));
    expect(temps).toHaveLength(5);
    expect(temps[0]).toMatchObject({ unit: 'Cel', time: START });
    // 10 kHz of 16-bit samples is 20,000 bytes/s; framing, CBOR and the other messages add a few per cent.
    const bytesPerSecond = r.totals.bytes / (12 * 0.4096);
    expect(bytesPerSecond).toBeGreaterThan(20_000);
    expect(bytesPerSecond).toBeLessThan(21_500);
  });

  it('loses only what the injected faults hit, and never delivers a corrupted block', () => {
    const r = run({ seed: 3, noise: { garbageProbability: 0.02, bitFlipProbability: 0.01, dropChunkProbability: 0.005, truncateProbability: 0.005 } }, 60);
    const c = r.decoder.counters;
    const faults = r.totals.chunksDropped + r.totals.framesTruncated + r.totals.bitFlips;
    expect(faults).toBeGreaterThan(5);
    expect(r.totals.garbageBytes).toBeGreaterThan(100);
    expect(c.ok).toBeLessThan(r.totals.framesSent);
    expect(c.badCrc + c.badCobs + c.runt + c.oversize + c.badCbor + c.badMessage + c.unknownVersion + c.unknownType).toBeGreaterThan(0);
    expect(c.seqGaps).toBeGreaterThan(0);
    // Most blocks survive; every delivered block is bit-exact.
    expect(r.blocks.length).toBeGreaterThan(25);
    expect(r.blocks.length).toBeLessThan(60);
    for (const b of r.blocks) expect(b.samples).toEqual(r.sent.get(b.blockId));
    expect(
      r.assembler.stats.completed + r.assembler.inProgress + r.assembler.stats.timedOut + r.assembler.stats.evicted + r.assembler.stats.invalid,
    ).toBeGreaterThanOrEqual(55);
  });

  it('loses the frame after line noise, unless frames are preceded by 0x00', () => {
    const noise = { garbageProbability: 0.3, garbageMaxBytes: 8 };
    const plain = run({ seed: 8, noise }, 10);
    expect(plain.decoder.counters.ok).toBeLessThan(plain.totals.framesSent);
    expect(plain.decoder.counters.ok).toBeGreaterThan(plain.totals.framesSent * 0.6);
    const guarded = run({ seed: 8, noise, leadingDelimiter: true }, 10);
    expect(guarded.totals.garbageBytes).toBe(plain.totals.garbageBytes);
    expect(guarded.decoder.counters.ok).toBe(guarded.totals.framesSent);
    expect(guarded.blocks).toHaveLength(10);
  });

  it('shows the outer-race defect at BPFO, growing toward failure', () => {
    const sim = new SensorNodeSimulator({ seed: 6, lifetimeS: 20, blockSamples: 8192 });
    const bpfo = sim.defectFrequencies.bpfo;
    const bands = [
      { name: 'bpfo', lowHz: bpfo - 3, highHz: bpfo + 3 },
      { name: 'below', lowHz: bpfo - 20, highHz: bpfo - 8 },
      { name: 'above', lowHz: bpfo + 8, highHz: bpfo + 20 },
      { name: 'resonance', lowHz: 2500, highHz: 3500 },
    ];
    const features = [];
    for (let i = 0; i * sim.blockSeconds < 20; i++) {
      const t = sim.next();
      features.push({ severity: t.severity, f: vibrationFeatures(t.samples, { sampleRateHz: 10_000, scale: 0.002, bands, fftSize: 8192 }) });
    }
    const early = features[0]!;
    const late = features[features.length - 1]!;
    expect(early.severity).toBeLessThan(0.05);
    expect(late.severity).toBeGreaterThan(0.8);
    const e = (x: typeof late, name: string) => x.f.bands.find((b) => b.name === name)!.energy;
    // At failure the BPFO band stands far above its neighbours and far above where it started.
    expect(e(late, 'bpfo')).toBeGreaterThan(20 * e(late, 'below'));
    expect(e(late, 'bpfo')).toBeGreaterThan(20 * e(late, 'above'));
    expect(e(late, 'bpfo')).toBeGreaterThan(100 * e(early, 'bpfo'));
    // The defect's periodic force alone puts (2 m/s² × severity)² / 2 there; the impacts' line at BPFO adds to it.
    const force = (2 * late.severity) ** 2 / 2;
    expect(e(late, 'bpfo')).toBeGreaterThan(0.8 * force);
    expect(e(late, 'bpfo')).toBeLessThan(2 * force);
    // Impacts ring the resonance and make the signal impulsive.
    expect(e(late, 'resonance')).toBeGreaterThan(10 * e(early, 'resonance'));
    expect(late.f.kurtosis).toBeGreaterThan(early.f.kurtosis + 1);
    expect(late.f.rms).toBeGreaterThan(3 * early.f.rms);
  });

  it('puts an inner-race defect at BPFI, not at BPFO', () => {
    const sim = new SensorNodeSimulator({ seed: 7, defect: 'inner', initialSeverity: 1, blockSamples: 8192 });
    const { bpfi, bpfo } = sim.defectFrequencies;
    const f = vibrationFeatures(sim.next().samples, {
      sampleRateHz: 10_000,
      scale: 0.002,
      fftSize: 8192,
      bands: [
        { name: 'bpfi', lowHz: bpfi - 3, highHz: bpfi + 3 },
        { name: 'bpfo', lowHz: bpfo - 3, highHz: bpfo + 3 },
      ],
    });
    expect(f.bands[0]!.energy).toBeGreaterThan(20 * f.bands[1]!.energy);
  });

  it('runs hotter as the bearing degrades', () => {
    const r = run({ seed: 9, lifetimeS: 5 }, 14);
    const temps = r.messages.flatMap((m) => (m.type === 'senml' ? m.records.filter((x) => x.name.endsWith(':temp')).map((x) => x.value!) : []));
    expect(temps.length).toBeGreaterThanOrEqual(5);
    expect(temps[temps.length - 1]! - temps[0]!).toBeGreaterThan(5);
  });
});
