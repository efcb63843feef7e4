/**
 * A microcontroller sensor node, emulated: the byte stream a real node sends over a serial port, TCP or UDP
 * (docs/firmware-protocol.md): health records, temperature and current as SenML, and 10 kHz vibration blocks
 * split into chunks, from a rolling-element bearing whose defect grows toward failure.
 *
 * Bearing model. Shaft rotation gives 1× and 2× components (imbalance, misalignment). A localised defect on
 * the outer (or inner) race is struck at the ball-pass frequency BPFO (BPFI) computed from the shaft speed
 * and the bearing geometry; each strike rings a structural resonance (default 3 kHz, decaying in ~0.5 ms),
 * with ±1 % timing jitter (ball slip), and the defect adds a periodic force at the defect frequency and its
 * second harmonic. For an inner-race defect the strikes are modulated by the shaft rotation (the defect
 * passes through the load zone once a turn). Severity grows exponentially from `initialSeverity` to 1 at
 * `lifetimeS` and stays at 1; the bearing runs hotter with it. Gaussian sensor noise on top.
 *
 * Transport faults can be injected: garbage bytes between frames, bit flips, dropped chunks, truncated
 * frames. Every random stream is separate (prng.ts), so turning one fault on does not change the signal.
 */
import { DecimalFraction } from '../node-protocol/cbor.js';
import { encodeSenmlPack, healthToSenml, type ResetCause } from '../node-protocol/senml.js';
import { type BlockInput, chunkCount, chunkToCbor } from '../node-protocol/block-assembler.js';
import { MESSAGE_TYPE, encodeFrame } from '../node-protocol/frame-decoder.js';
import { Prng } from './prng.js';

export interface BearingGeometry {
  balls: number;
  ballDiameterMm: number;
  pitchDiameterMm: number;
  contactAngleDeg: number;
}

/** SKF 6205-2RS JEM deep-groove ball bearing (the drive-end bearing of the CWRU bearing data). */
export const BEARING_6205: BearingGeometry = { balls: 9, ballDiameterMm: 7.94, pitchDiameterMm: 39.04, contactAngleDeg: 0 };

export interface DefectFrequencies {
  /** Ball pass frequency, outer race. */
  bpfo: number;
  /** Ball pass frequency, inner race. */
  bpfi: number;
  /** Ball spin frequency. */
  bsf: number;
  /** Fundamental train (cage) frequency. */
  ftf: number;
}

/** The classical kinematic defect frequencies (Hz) of a bearing at shaft frequency `shaftHz`. */
export function bearingDefectFrequencies(shaftHz: number, g: BearingGeometry = BEARING_6205): DefectFrequencies {
  const r = (g.ballDiameterMm / g.pitchDiameterMm) * Math.cos((g.contactAngleDeg * Math.PI) / 180);
  return {
    bpfo: (g.balls / 2) * shaftHz * (1 - r),
    bpfi: (g.balls / 2) * shaftHz * (1 + r),
    bsf: (g.pitchDiameterMm / (2 * g.ballDiameterMm)) * shaftHz * (1 - r * r),
    ftf: (shaftHz / 2) * (1 - r),
  };
}

export interface SensorNodeNoise {
  /** Probability, per frame, of random bytes (which may contain 0x00) before it. */
  garbageProbability?: number;
  garbageMaxBytes?: number;
  /** Probability, per frame, of one flipped bit. */
  bitFlipProbability?: number;
  /** Probability, per chunk frame, that it is lost. */
  dropChunkProbability?: number;
  /** Probability, per frame, that it is cut short (its tail and delimiter lost). */
  truncateProbability?: number;
}

export interface SensorNodeOptions {
  seed?: number;
  /** SenML base name of the node. */
  baseName?: string;
  /** Epoch seconds at simulated time 0. */
  startTime?: number;
  sampleRateHz?: number;
  blockSamples?: number;
  samplesPerChunk?: number;
  /** Vibration channel name after the base name. */
  channel?: string;
  /** Physical value of one count, m/s². Default 0.002 (±65 m/s² full scale). */
  scale?: number;
  shaftHz?: number;
  bearing?: BearingGeometry;
  defect?: 'outer' | 'inner';
  initialSeverity?: number;
  /** Simulated seconds until the defect reaches severity 1. */
  lifetimeS?: number;
  /**
   * Amplitude (m/s²) at severity 1 of the periodic force at the defect frequency (its second harmonic is 0.4 of it).
   * Default 2. It sets how far the broadband velocity climbs as the defect grows: ≈ 2 mm/s at 2, ≈ 8 mm/s at 8 for the
   * default shaft speed (docs/vibration.md).
   */
  defectAccelMs2?: number;
  resonanceHz?: number;
  healthEveryS?: number;
  measurementsEveryS?: number;
  firmwareVersion?: string;
  resetCount?: number;
  lastResetCause?: ResetCause;
  noise?: SensorNodeNoise;
  /** Send 0x00 before every frame too (docs/firmware-protocol.md §1), so line noise cannot take a frame with it. */
  leadingDelimiter?: boolean;
}

export interface SensorNodeTick {
  /** The bytes sent during this block's time span. */
  bytes: Uint8Array;
  /** Simulated seconds since start at sample 0 of the block. */
  timeS: number;
  severity: number;
  blockId: number;
  /** The block as sampled (what a complete reassembly must return). */
  samples: Int16Array;
  defectHz: number;
  framesSent: number;
  chunksDropped: number;
  framesTruncated: number;
  bitFlips: number;
  garbageBytes: number;
}

const RELEASE_TAU_S = 0.0005;

function toDecimal(x: number): DecimalFraction {
  for (let e = 0; e <= 12; e++) {
    const m = Math.round(x * 10 ** e);
    if (Math.abs(m / 10 ** e - x) <= 1e-12 * Math.max(1, Math.abs(x))) return new DecimalFraction(-e, m);
  }
  return new DecimalFraction(-12, Math.round(x * 1e12));
}

export class SensorNodeSimulator {
  private readonly o: Required<Omit<SensorNodeOptions, 'noise' | 'bearing'>> & { bearing: BearingGeometry; noise: Required<SensorNodeNoise> };
  private readonly freqs: DefectFrequencies;
  private readonly signalRng: Prng;
  private readonly jitterRng: Prng;
  private readonly sensorRng: Prng;
  private readonly noiseRngs: Record<'garbage' | 'flip' | 'drop' | 'truncate', Prng>;
  private blockIndex = 0;
  private seq = 0;
  private nextImpulseS: number;
  private impulses: number[] = [];
  private nextHealthS = 0;
  private nextMeasurementS = 0;
  private readonly phases: [number, number];

  constructor(options: SensorNodeOptions = {}) {
    const seed = options.seed ?? 1;
    this.o = {
      seed,
      baseName: options.baseName ?? 'urn:dev:mac:0024befffe804ff1:',
      startTime: options.startTime ?? 1_700_000_000,
      sampleRateHz: options.sampleRateHz ?? 10_000,
      blockSamples: options.blockSamples ?? 4096,
      samplesPerChunk: options.samplesPerChunk ?? 400,
      channel: options.channel ?? 'vib.x',
      scale: options.scale ?? 0.002,
      shaftHz: options.shaftHz ?? 29.95,
      bearing: options.bearing ?? BEARING_6205,
      defect: options.defect ?? 'outer',
      initialSeverity: options.initialSeverity ?? 0.02,
      lifetimeS: options.lifetimeS ?? 3600,
      defectAccelMs2: options.defectAccelMs2 ?? 2,
      resonanceHz: options.resonanceHz ?? 3000,
      healthEveryS: options.healthEveryS ?? 10,
      measurementsEveryS: options.measurementsEveryS ?? 1,
      firmwareVersion: options.firmwareVersion ?? '1.4.2',
      resetCount: options.resetCount ?? 0,
      lastResetCause: options.lastResetCause ?? 'power-on',
      leadingDelimiter: options.leadingDelimiter ?? false,
      noise: {
        garbageProbability: options.noise?.garbageProbability ?? 0,
        garbageMaxBytes: options.noise?.garbageMaxBytes ?? 16,
        bitFlipProbability: options.noise?.bitFlipProbability ?? 0,
        dropChunkProbability: options.noise?.dropChunkProbability ?? 0,
        truncateProbability: options.noise?.truncateProbability ?? 0,
      },
    };
    if (!(this.o.initialSeverity > 0 && this.o.initialSeverity <= 1)) throw new RangeError('initialSeverity must be in (0, 1]');
    this.freqs = bearingDefectFrequencies(this.o.shaftHz, this.o.bearing);
    this.signalRng = Prng.derive(seed, 'node-signal');
    this.jitterRng = Prng.derive(seed, 'node-jitter');
    this.sensorRng = Prng.derive(seed, 'node-sensors');
    this.noiseRngs = {
      garbage: Prng.derive(seed, 'node-garbage'),
      flip: Prng.derive(seed, 'node-bitflip'),
      drop: Prng.derive(seed, 'node-drop'),
      truncate: Prng.derive(seed, 'node-truncate'),
    };
    const phaseRng = Prng.derive(seed, 'node-phase');
    this.phases = [phaseRng.uniform(0, 2 * Math.PI), phaseRng.uniform(0, 2 * Math.PI)];
    this.nextImpulseS = phaseRng.uniform(0, 1 / this.defectHz);
  }

  get defectFrequencies(): DefectFrequencies {
    return this.freqs;
  }

  get defectHz(): number {
    return this.o.defect === 'outer' ? this.freqs.bpfo : this.freqs.bpfi;
  }

  get blockSeconds(): number {
    return this.o.blockSamples / this.o.sampleRateHz;
  }

  /** Defect severity (0…1) at simulated time t. */
  severityAt(t: number): number {
    const { initialSeverity: s0, lifetimeS } = this.o;
    return Math.min(1, s0 * Math.exp((Math.log(1 / s0) * t) / lifetimeS));
  }

  /** Samples one vibration block starting at simulated time t0 (advances the signal streams). */
  private sampleBlock(t0: number, severity: number): Int16Array {
    const { sampleRateHz: fs, blockSamples: n, shaftHz: fr, resonanceHz, scale } = this.o;
    const fd = this.defectHz;
    const t1 = t0 + n / fs;
    // Impulse times up to the end of the block; keep those still ringing from the previous block.
    this.impulses = this.impulses.filter((ti) => ti > t0 - 10 * RELEASE_TAU_S);
    while (this.nextImpulseS < t1) {
      this.impulses.push(this.nextImpulseS);
      this.nextImpulseS += (1 / fd) * (1 + 0.01 * this.jitterRng.normal());
    }
    const x = new Float64Array(n);
    const [p1, p2] = this.phases;
    const force = this.o.defectAccelMs2;
    const harmonic = 0.4 * force; // exactly 0.8 at the default 2, as before the option existed
    for (let k = 0; k < n; k++) {
      const t = t0 + k / fs;
      x[k] =
        0.5 * Math.sin(2 * Math.PI * fr * t + p1) +
        0.2 * Math.sin(4 * Math.PI * fr * t + p2) +
        severity * (force * Math.sin(2 * Math.PI * fd * t) + harmonic * Math.sin(4 * Math.PI * fd * t)) +
        this.signalRng.normal(0, 0.3);
    }
    const strike = 25 * severity;
    const ringSamples = Math.ceil(10 * RELEASE_TAU_S * fs);
    for (const ti of this.impulses) {
      const load = this.o.defect === 'inner' ? 0.5 * (1 + Math.cos(2 * Math.PI * fr * ti)) : 1;
      const first = Math.max(0, Math.ceil((ti - t0) * fs));
      for (let k = first; k < Math.min(n, first + ringSamples); k++) {
        const tau = t0 + k / fs - ti;
        x[k] = x[k]! + strike * load * Math.exp(-tau / RELEASE_TAU_S) * Math.sin(2 * Math.PI * resonanceHz * tau);
      }
    }
    const out = new Int16Array(n);
    for (let k = 0; k < n; k++) out[k] = Math.max(-32768, Math.min(32767, Math.round(x[k]! / scale)));
    return out;
  }

  /** One block period: the block's chunks, plus the measurement and health frames due in it. */
  next(): SensorNodeTick {
    const o = this.o;
    const t0 = this.blockIndex * this.blockSeconds;
    const t1 = t0 + this.blockSeconds;
    const severity = this.severityAt(t0);
    const blockId = this.blockIndex & 0xffff;
    const samples = this.sampleBlock(t0, severity);
    const tick: SensorNodeTick = {
      bytes: new Uint8Array(0),
      timeS: t0,
      severity,
      blockId,
      samples,
      defectHz: this.defectHz,
      framesSent: 0,
      chunksDropped: 0,
      framesTruncated: 0,
      bitFlips: 0,
      garbageBytes: 0,
    };
    const parts: Uint8Array[] = [];
    const send = (type: number, body: Parameters<typeof encodeFrame>[2], isChunk = false) => {
      const frame = encodeFrame(type, this.seq, body);
      this.seq = (this.seq + 1) & 0xff;
      tick.framesSent++;
      this.transmit(frame, isChunk, parts, tick);
    };
    const epochMicros = (t: number) => new DecimalFraction(-6, Math.round((o.startTime + t) * 1e6));

    while (this.nextMeasurementS < t1) {
      const t = this.nextMeasurementS;
      const s = this.severityAt(t);
      const temp = 40 + 25 * s * s + this.sensorRng.normal(0, 0.1);
      const current = 12.5 * (1 + 0.05 * s) + this.sensorRng.normal(0, 0.05);
      send(
        MESSAGE_TYPE.senml,
        encodeSenmlPack([
          { bn: o.baseName, bt: epochMicros(t), n: 'temp', u: 'Cel', v: new DecimalFraction(-2, Math.round(temp * 100)) },
          { n: 'current', u: 'A', v: new DecimalFraction(-3, Math.round(current * 1000)) },
        ]),
      );
      this.nextMeasurementS += o.measurementsEveryS;
    }
    while (this.nextHealthS < t1) {
      const pack = healthToSenml(
        { firmwareVersion: o.firmwareVersion, uptimeS: Math.floor(this.nextHealthS), resetCount: o.resetCount, lastResetCause: o.lastResetCause },
        o.baseName,
      );
      send(MESSAGE_TYPE.health, encodeSenmlPack(pack));
      this.nextHealthS += o.healthEveryS;
    }
    const block: BlockInput = {
      blockId,
      name: o.baseName + o.channel,
      unit: 'm/s2',
      time: epochMicros(t0),
      period: toDecimal(1 / o.sampleRateHz),
      scale: toDecimal(o.scale),
      samples,
    };
    const chunks = chunkCount(samples.length, o.samplesPerChunk);
    for (let i = 0; i < chunks; i++) send(MESSAGE_TYPE.chunk, chunkToCbor(block, i, o.samplesPerChunk), true);

    let len = 0;
    for (const p of parts) len += p.length;
    tick.bytes = new Uint8Array(len);
    let off = 0;
    for (const p of parts) {
      tick.bytes.set(p, off);
      off += p.length;
    }
    this.blockIndex++;
    return tick;
  }

  /** Puts a frame on the simulated wire, with the configured faults. */
  private transmit(frame: Uint8Array, isChunk: boolean, parts: Uint8Array[], tick: SensorNodeTick): void {
    const nz = this.o.noise;
    const r = this.noiseRngs;
    if (nz.garbageProbability > 0 && r.garbage.bernoulli(nz.garbageProbability)) {
      const g = new Uint8Array(r.garbage.int(1, Math.max(1, nz.garbageMaxBytes)));
      for (let i = 0; i < g.length; i++) g[i] = r.garbage.int(0, 255);
      parts.push(g);
      tick.garbageBytes += g.length;
    }
    if (isChunk && nz.dropChunkProbability > 0 && r.drop.bernoulli(nz.dropChunkProbability)) {
      tick.chunksDropped++;
      return;
    }
    if (this.o.leadingDelimiter) parts.push(Uint8Array.of(0));
    let f = frame;
    if (nz.truncateProbability > 0 && r.truncate.bernoulli(nz.truncateProbability)) {
      f = f.slice(0, r.truncate.int(1, f.length - 2));
      tick.framesTruncated++;
    }
    if (nz.bitFlipProbability > 0 && r.flip.bernoulli(nz.bitFlipProbability)) {
      f = f.slice();
      const i = r.flip.int(0, f.length - 1);
      f[i] = f[i]! ^ (1 << r.flip.int(0, 7));
      tick.bitFlips++;
    }
    parts.push(f);
  }
}
