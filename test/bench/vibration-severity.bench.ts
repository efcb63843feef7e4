/**
 * ISO 10816-3 velocity (docs/vibration.md): what the broadband velocity RMS costs per acceleration block, beside
 * the edge features the source already computes on the same block. One core, no spawns.
 */
import { type BenchReport, measure, round } from './bench-harness.js';
import { vibrationFeatures } from '../../firmware-bridge/src/node-protocol/vibration-features.js';
import { iso10816Boundaries, iso10816Zone, velocityRms } from '../../firmware-bridge/src/node-protocol/vibration-severity.js';
import { SensorNodeSimulator } from '../../firmware-bridge/src/simulators/sensor-node.js';

const FS = 10_000;
const SCALE = 0.002;

export async function run(): Promise<BenchReport> {
  const rows: BenchReport['rows'] = [];
  const boundaries = iso10816Boundaries(2, 'rigid');
  const cases = [
    { block: 4096, lowHz: 10 as const, what: '0.41 s at 10 kHz (the emulated node)' },
    { block: 20_480, lowHz: 2 as const, what: '2.05 s at 10 kHz (2 Hz lower edge)' },
  ];
  for (const c of cases) {
    const sim = new SensorNodeSimulator({ seed: 1, initialSeverity: 0.5, blockSamples: c.block, samplesPerChunk: 4096 });
    const samples = sim.next().samples;
    const velocity = await measure(
      () => {
        const r = velocityRms(samples, { sampleRateHz: FS, scale: SCALE, unit: 'm/s2', lowHz: c.lowHz });
        if (!r.ok) throw new Error(r.error);
        iso10816Zone(r.velocityRmsMmS, boundaries);
      },
      200,
      { warmup: 20 },
    );
    const features = await measure(() => vibrationFeatures(samples, { sampleRateHz: FS, scale: SCALE, fftSize: 4096 }), 200, { warmup: 20 });
    const perSecond = FS / c.block;
    rows.push({
      case: `velocity + zone, ${c.block}-sample block`,
      input: c.what,
      median_ms: round(velocity.medianMs),
      p99_ms: round(velocity.p99Ms),
      cpu_ms_per_block: round(velocity.cpuMsPerCall),
      cpu_ms_per_s_of_data: round(velocity.cpuMsPerCall * perSecond),
      features_median_ms: round(features.medianMs),
      velocity_to_features: round(velocity.medianMs / features.medianMs),
    });
  }
  return {
    name: 'ISO 10816-3 velocity per acceleration block',
    rows,
    notes: [
      'velocityRms: mean removal, a Hann window over the whole block, one radix-2 real FFT (next power of two: 4096 and 32768 points), 1/(2πf)² per bin over 10–1000 Hz (2–1000 Hz for the long block), then the zone; medians of 200 runs after 20 warm-ups.',
      'features: what the node-stream source computes on every block anyway (time-domain features and five band energies, Welch with 4096-point segments); velocity_to_features is the ratio of the two medians.',
      'cpu_ms_per_s_of_data = CPU per block × blocks per second of one 10 kHz channel.',
    ],
  };
}
