/**
 * Seeded fuzzing of the receive path: random bytes and mutations of real frames (flips, truncation, insertion,
 * splicing, and mutations behind a recomputed CRC, which reach the CBOR and message checks) fed in random
 * slices. The decoder must never throw, every frame must land in exactly one counter, and memory must stay
 * bounded; a block that the CRC protected must come out bit-exact or not at all.
 */
import { describe, expect, it } from 'vitest';
import { type CborValue, CborTag, decodeCbor, encodeCbor } from '../../../firmware-bridge/src/node-protocol/cbor.js';
import { cobsDecode, cobsEncode, cobsMaxEncodedLength } from '../../../firmware-bridge/src/node-protocol/cobs.js';
import { crc32 } from '../../../firmware-bridge/src/node-protocol/crc32.js';
import { BlockAssembler, CHUNK_KEY, MAX_SAMPLES_PER_BLOCK } from '../../../firmware-bridge/src/node-protocol/block-assembler.js';
import { type FrameCounters, FrameDecoder, MAX_FRAME_BYTES, encodeFrame } from '../../../firmware-bridge/src/node-protocol/frame-decoder.js';
import { SENML_LABEL } from '../../../firmware-bridge/src/node-protocol/senml.js';
import { SensorNodeSimulator } from '../../../firmware-bridge/src/simulators/sensor-node.js';
import { Prng } from '../../../firmware-bridge/src/simulators/prng.js';

const OUTCOMES = ['ok', 'badCobs', 'oversize', 'runt', 'badCrc', 'unknownVersion', 'badCbor', 'unknownType', 'badMessage', 'truncated'] as const;
const sumOutcomes = (c: Readonly<FrameCounters>) => OUTCOMES.reduce((s, k) => s + c[k], 0);
const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

/** Frames (with delimiter) split out of a stream. */
function splitFrames(stream: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < stream.length; i++) {
    if (stream[i] === 0) {
      if (i > start) out.push(stream.slice(start, i + 1));
      start = i + 1;
    }
  }
  return out;
}

/** A random CBOR value (well-formed text, unique keys), mostly shaped like the protocol's messages. */
function randomValue(rng: Prng, depth = 0): CborValue {
  const kinds = depth > 3 ? 7 : 11;
  switch (rng.int(0, kinds - 1)) {
    case 0:
      return rng.int(-70000, 70000);
    case 1:
      if (rng.bernoulli(0.5)) return rng.normal(0, 1e6);
      {
        // Beyond ±2^53 integers decode as bigint.
        const big = BigInt(0x200000 + (rng.nextUint32() % (0x1_0000_0000 - 0x200000))) * 0x1_0000_0000n + BigInt(rng.nextUint32());
        return rng.bernoulli(0.5) ? big : -big;
      }
    case 2:
      return String.fromCodePoint(...Array.from({ length: rng.int(0, 12) }, () => (rng.bernoulli(0.8) ? rng.int(0x20, 0x7e) : rng.int(0xa0, 0xd7ff))));
    case 3:
      return Uint8Array.from({ length: rng.int(0, 20) }, () => rng.int(0, 255));
    case 4:
      return [true, false, null, undefined, -0, Infinity, NaN][rng.int(0, 6)]!;
    case 5:
      return Int16Array.from({ length: rng.int(0, 20) }, () => rng.int(-32768, 32767));
    case 6:
      return rng.int(0, 10);
    case 7:
    case 8: {
      const m = new Map<number | string, CborValue>();
      for (let i = rng.int(0, 10); i > 0; i--) {
        const key = rng.bernoulli(0.85) ? rng.int(-6, 12) : `k${rng.int(0, 3)}${rng.bernoulli(0.2) ? '_' : ''}`;
        if (!m.has(key)) m.set(key, randomValue(rng, depth + 1));
      }
      return m;
    }
    case 9:
      return Array.from({ length: rng.int(0, 5) }, () => randomValue(rng, depth + 1));
    default:
      return new CborTag(rng.int(5, 60), randomValue(rng, depth + 1));
  }
}

/** A well-formed frame around `raw` (header + body) with a correct CRC. */
function reframe(raw: Uint8Array): Uint8Array {
  const crc = crc32(raw);
  return cat(cobsEncode(cat(raw, Uint8Array.of(crc & 0xff, (crc >>> 8) & 0xff, (crc >>> 16) & 0xff, crc >>> 24))), Uint8Array.of(0));
}

describe('fuzz: FrameDecoder and BlockAssembler', () => {
  it('survive 6,000 random and mutated inputs', () => {
    const rng = new Prng(2024);
    const sim = new SensorNodeSimulator({ seed: 1, blockSamples: 2048, healthEveryS: 0.2 });
    const originals = new Map<number, Int16Array>();
    const corpus: Uint8Array[] = [];
    const streams: Uint8Array[] = [];
    for (let i = 0; i < 4; i++) {
      const t = sim.next();
      originals.set(t.blockId, t.samples);
      streams.push(t.bytes);
      corpus.push(...splitFrames(t.bytes));
    }
    expect(corpus.length).toBeGreaterThan(20);
    const raws = corpus.map((f) => {
      const r = cobsDecode(f.subarray(0, f.length - 1))!;
      return r.subarray(0, r.length - 4);
    });
    const frame = () => corpus[rng.int(0, corpus.length - 1)]!;
    const raw = () => raws[rng.int(0, raws.length - 1)]!.slice();

    const decoder = new FrameDecoder({ now: () => 1_700_000_000 });
    const assembler = new BlockAssembler({ maxBlocksInProgress: 4 });
    // A second receiver sees only the inputs whose damage the CRC covers: its blocks must be exact.
    const guarded = new FrameDecoder({ now: () => 1_700_000_000 });
    const guardedAssembler = new BlockAssembler({ maxBlocksInProgress: 4 });
    const maxEncoded = cobsMaxEncodedLength(MAX_FRAME_BYTES);
    let crcProtectedBlocks = 0;
    let delivered = 0;
    const INPUTS = 6000;
    for (let i = 0; i < INPUTS; i++) {
      let input: Uint8Array;
      let crcProtected = true;
      switch (i % 8) {
        case 0: {
          const zeros = rng.next() * 0.1;
          input = Uint8Array.from({ length: rng.int(0, 2500) }, () => (rng.bernoulli(zeros) ? 0 : rng.int(1, 255)));
          break;
        }
        case 1:
          // A frame, or now and then a whole block's stream, with bit flips.
          input = rng.bernoulli(0.15) ? streams[rng.int(0, streams.length - 1)]!.slice() : frame().slice();
          for (let k = rng.int(1, 4); k > 0; k--) {
            const at = rng.int(0, input.length - 1);
            input[at] = input[at]! ^ (1 << rng.int(0, 7));
          }
          break;
        case 2:
          input = cat(frame().subarray(0, rng.int(0, 200)), frame());
          break;
        case 3: {
          const f = frame();
          const at = rng.int(0, f.length);
          input = cat(
            f.subarray(0, at),
            Uint8Array.from({ length: rng.int(1, 30) }, () => rng.int(0, 255)),
            f.subarray(at),
          );
          break;
        }
        case 4: {
          const a = frame();
          const b = frame();
          input = cat(a.subarray(0, rng.int(1, a.length)), b.subarray(rng.int(0, b.length - 1)));
          break;
        }
        case 5: {
          // Behind a valid CRC: damaged CBOR bodies.
          const r = raw();
          for (let k = rng.int(1, 3); k > 0; k--) r[rng.int(3, r.length - 1)] = rng.int(0, 255);
          input = reframe(rng.bernoulli(0.3) ? r.subarray(0, rng.int(3, r.length)) : r);
          crcProtected = false;
          break;
        }
        case 6: {
          // Behind a valid CRC: well-formed CBOR of the wrong shape, often chunk- or SenML-like.
          let body = randomValue(rng);
          if (rng.bernoulli(0.5)) {
            const m = new Map<number | string, CborValue>([
              [CHUNK_KEY.blockId, rng.int(0, 3)],
              [CHUNK_KEY.index, rng.int(0, 3)],
              [CHUNK_KEY.count, rng.int(1, 4)],
              [CHUNK_KEY.samples, Int16Array.from({ length: rng.int(1, 300) }, () => rng.int(-99, 99))],
            ]);
            if (rng.bernoulli(0.5))
              for (const k of [CHUNK_KEY.name, CHUNK_KEY.unit, CHUNK_KEY.time, CHUNK_KEY.period, CHUNK_KEY.scale, CHUNK_KEY.total])
                m.set(k, k === CHUNK_KEY.name ? 'n:v' : k === CHUNK_KEY.unit ? 'g' : rng.int(1, 2000));
            body = m;
            // eslint-disable-next-line no-dupe-else-if -- not a duplicate: each rng.bernoulli() call draws anew
          } else if (rng.bernoulli(0.5)) {
            body = [
              new Map<number, CborValue>([
                [SENML_LABEL.n, 'a'],
                [rng.int(-6, 8), randomValue(rng)],
              ]),
            ];
          }
          input = encodeFrame(rng.int(0, 4), rng.int(0, 255), body, rng.bernoulli(0.9) ? 0x10 : rng.int(0, 255));
          crcProtected = false;
          break;
        }
        default: {
          const r = raw();
          r[rng.int(0, 2)] = rng.int(0, 255);
          input = reframe(r);
          crcProtected = false;
        }
      }
      if (rng.bernoulli(0.3)) input = cat(Uint8Array.of(0), input);
      // Feed in random slices, as a serial port would deliver them.
      for (let off = 0; off < input.length;) {
        const n = rng.int(1, 700);
        const msgs = decoder.push(input.subarray(off, off + n));
        off += n;
        for (const m of msgs) {
          delivered++;
          if (m.type !== 'chunk') continue;
          const block = assembler.push(m.chunk, i);
          if (block) expect(block.samples.length).toBe(block.totalSamples);
        }
        if (crcProtected) {
          for (const m of guarded.push(input.subarray(off - n, off))) {
            if (m.type !== 'chunk') continue;
            const block = guardedAssembler.push(m.chunk, i);
            if (!block) continue;
            crcProtectedBlocks++;
            expect(block.samples).toEqual(originals.get(block.blockId));
          }
        }
        if (decoder.bufferedBytes > maxEncoded) throw new Error(`decoder holds ${decoder.bufferedBytes} bytes`);
      }
      if (rng.bernoulli(0.05)) decoder.flush();
      if (sumOutcomes(decoder.counters) !== decoder.counters.frames) throw new Error(`counters do not add up after input ${i}`);
      if (assembler.inProgress > 4 || assembler.bufferedSamples > 4 * MAX_SAMPLES_PER_BLOCK) throw new Error('assembler unbounded');
    }
    decoder.flush();
    const c = decoder.counters;
    expect(sumOutcomes(c)).toBe(c.frames);
    expect(c.ok).toBe(delivered);
    // Every outcome was reached.
    for (const k of OUTCOMES) expect(c[k], k).toBeGreaterThan(0);
    expect(c.frames).toBeGreaterThan(INPUTS);
    expect(crcProtectedBlocks).toBeGreaterThan(20);
    expect(sumOutcomes(guarded.counters)).toBe(guarded.counters.frames);

    // And it still decodes a clean stream afterwards.
    const before = c.ok;
    decoder.push(Uint8Array.of(0));
    decoder.push(cat(...corpus));
    expect(decoder.counters.ok - before).toBe(corpus.length);
  });
});

describe('fuzz: CBOR encoder and decoder', () => {
  it('round-trip 5,000 random values', () => {
    const rng = new Prng(77);
    for (let i = 0; i < 5000; i++) {
      const v = randomValue(rng);
      const r = decodeCbor(encodeCbor(v), { maxDepth: 32 });
      if (!r.ok) throw new Error(`${i}: ${r.error}`);
      expect(r.value).toEqual(v);
    }
  });
});
