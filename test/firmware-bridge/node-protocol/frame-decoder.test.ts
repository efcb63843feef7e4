import { describe, expect, it } from 'vitest';
import { type CborValue, DecimalFraction, encodeCbor } from '../../../firmware-bridge/src/node-protocol/cbor.js';
import { cobsEncode } from '../../../firmware-bridge/src/node-protocol/cobs.js';
import { encodeSenmlPack, healthToSenml } from '../../../firmware-bridge/src/node-protocol/senml.js';
import { chunkToCbor } from '../../../firmware-bridge/src/node-protocol/block-assembler.js';
import {
  type FrameCounters,
  type NodeMessage,
  FrameDecoder,
  MAX_FRAME_BYTES,
  MESSAGE_TYPE,
  encodeFrame,
  encodeRawFrame,
} from '../../../firmware-bridge/src/node-protocol/frame-decoder.js';
import { Prng } from '../../../firmware-bridge/src/simulators/prng.js';

const NOW = 1_700_000_100;
const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const decoder = () => new FrameDecoder({ now: () => NOW });

const measurement = (seq: number, v = 21.5) => encodeFrame(MESSAGE_TYPE.senml, seq, encodeSenmlPack([{ bn: 'node:', n: 'temp', u: 'Cel', v }]));
const health = (seq: number) =>
  encodeFrame(
    MESSAGE_TYPE.health,
    seq,
    encodeSenmlPack(healthToSenml({ firmwareVersion: '2.1', uptimeS: 60, resetCount: 1, lastResetCause: 'brown-out' }, 'node:')),
  );
const chunk = (seq: number) =>
  encodeFrame(
    MESSAGE_TYPE.chunk,
    seq,
    chunkToCbor(
      { blockId: 1, name: 'node:vib', unit: 'g', time: -0.5, period: new DecimalFraction(-6, 100), scale: 1, samples: Int16Array.of(1, 2, 3) },
      0,
      10,
    ),
  );

const OUTCOMES = ['ok', 'badCobs', 'oversize', 'runt', 'badCrc', 'unknownVersion', 'badCbor', 'unknownType', 'badMessage', 'truncated'] as const;
function expectCountersAddUp(c: Readonly<FrameCounters>): void {
  expect(OUTCOMES.reduce((s, k) => s + c[k], 0)).toBe(c.frames);
}

describe('FrameDecoder', () => {
  it('decodes each message type', () => {
    const d = decoder();
    const msgs = d.push(cat(measurement(0), health(1), chunk(2)));
    expect(msgs.map((m) => m.type)).toEqual(['senml', 'health', 'chunk']);
    const [m, h, c] = msgs as [Extract<NodeMessage, { type: 'senml' }>, Extract<NodeMessage, { type: 'health' }>, Extract<NodeMessage, { type: 'chunk' }>];
    expect(m).toMatchObject({ version: 0x10, seq: 0, baseName: 'node:', records: [{ name: 'node:temp', unit: 'Cel', value: 21.5, time: NOW }] });
    expect(h.health).toEqual({ firmwareVersion: '2.1', uptimeS: 60, resetCount: 1, lastResetCause: 'brown-out', resetCauseCode: 2 });
    expect(c.chunk.header?.baseTime).toBe(NOW - 0.5);
    expect(c.chunk.samples).toEqual(Int16Array.of(1, 2, 3));
    expect(d.counters).toMatchObject({ frames: 3, ok: 3, seqGaps: 0 });
  });

  it('gives the same messages whether the bytes come at once or one at a time', () => {
    const stream = cat(Uint8Array.of(0), measurement(0), health(1), chunk(2), measurement(3, 1e-7));
    const whole = decoder().push(stream);
    const d = decoder();
    const bytewise: NodeMessage[] = [];
    for (const b of stream) bytewise.push(...d.push(Uint8Array.of(b)));
    expect(bytewise).toEqual(whole);
    expect(d.counters).toMatchObject({ ok: 4, empty: 1, bytes: stream.length });
  });

  it('resynchronises at the next 0x00 after garbage', () => {
    const d = decoder();
    const garbage = Uint8Array.from({ length: 50 }, (_, i) => (i * 37 + 1) & 0xff || 1);
    // Garbage without a zero swallows the frame after it; the frame after that is fine.
    const msgs = d.push(cat(garbage, measurement(0), measurement(1), health(2)));
    expect(msgs.map((m) => m.seq)).toEqual([1, 2]);
    expect(d.counters.frames).toBe(3);
    expectCountersAddUp(d.counters);
    // A sender that puts 0x00 before each frame loses nothing to line noise.
    const d2 = decoder();
    const msgs2 = d2.push(cat(garbage, Uint8Array.of(0), measurement(0), Uint8Array.of(0), measurement(1)));
    expect(msgs2.map((m) => m.seq)).toEqual([0, 1]);
  });

  it('counts a bad CRC, a runt, bad COBS, bad CBOR, an unknown version and type, a bad message', () => {
    const body = encodeCbor(encodeSenmlPack([{ n: 'a', v: 1 }]));
    const badCrc = encodeRawFrame(MESSAGE_TYPE.senml, 0, body);
    badCrc[badCrc.length - 1] = badCrc[badCrc.length - 1]! ^ 0x80;
    const frames: Array<[keyof FrameCounters, Uint8Array]> = [
      ['badCrc', cat(cobsEncode(badCrc), Uint8Array.of(0))],
      ['runt', Uint8Array.of(0x04, 0x10, 0x01, 0x05, 0x00)],
      ['badCobs', Uint8Array.of(0x09, 0x10, 0x01, 0x00)],
      ['badCbor', encodeFrame(MESSAGE_TYPE.senml, 0, Uint8Array.of(0x83, 0x01))],
      ['unknownVersion', encodeFrame(MESSAGE_TYPE.senml, 0, body, 0x20)],
      ['unknownVersion', encodeFrame(MESSAGE_TYPE.senml, 0, body, 0x00)],
      ['unknownType', encodeFrame(0x7f, 0, body, 0x11)],
      ['badMessage', encodeFrame(MESSAGE_TYPE.senml, 0, encodeCbor(new Map<number, CborValue>([[0, 'a']])))],
      ['badMessage', encodeFrame(MESSAGE_TYPE.health, 0, body)],
      ['badMessage', encodeFrame(MESSAGE_TYPE.chunk, 0, body)],
    ];
    for (const [outcome, bytes] of frames) {
      const rejected: string[] = [];
      const d = new FrameDecoder({ now: () => NOW, onReject: (o) => rejected.push(o) });
      expect(d.push(bytes), outcome).toEqual([]);
      expect(d.counters[outcome], outcome).toBe(1);
      expect(d.counters.frames).toBe(1);
      expect(rejected).toEqual([outcome]);
    }
  });

  it('accepts a newer minor version and ignores fields it does not know', () => {
    const pack = encodeSenmlPack([{ n: 'a', v: 1 }]) as Array<Map<number | string, CborValue>>;
    pack[0]!.set(42, 'new field');
    const msgs = decoder().push(encodeFrame(MESSAGE_TYPE.senml, 0, pack, 0x1f));
    expect(msgs).toHaveLength(1);
    expect(msgs[0]!.version).toBe(0x1f);
  });

  it('skips an oversize frame with bounded memory and decodes the next one', () => {
    const d = decoder();
    const junk = new Uint8Array(5000).fill(0x42);
    let maxBuffered = 0;
    for (let i = 0; i < junk.length; i += 100) {
      d.push(junk.subarray(i, i + 100));
      maxBuffered = Math.max(maxBuffered, d.bufferedBytes);
    }
    expect(maxBuffered).toBeLessThanOrEqual(MAX_FRAME_BYTES + 6);
    const msgs = d.push(cat(Uint8Array.of(0), measurement(9)));
    expect(msgs.map((m) => m.seq)).toEqual([9]);
    expect(d.counters).toMatchObject({ oversize: 1, ok: 1, frames: 2 });
  });

  it('counts a frame that decodes beyond the maximum size as oversize', () => {
    const big = encodeRawFrame(MESSAGE_TYPE.senml, 0, new Uint8Array(MAX_FRAME_BYTES)); // zeros: COBS adds little
    const d = decoder();
    d.push(cat(cobsEncode(big), Uint8Array.of(0)));
    expect(d.counters.oversize).toBe(1);
    const roomy = new FrameDecoder({ maxFrameBytes: 2048 });
    roomy.push(cat(cobsEncode(big), Uint8Array.of(0)));
    expect(roomy.counters.badCbor).toBe(1);
  });

  it('counts an unfinished frame as truncated on flush (end of stream or datagram)', () => {
    const d = decoder();
    const f = measurement(0);
    d.push(f.subarray(0, 5));
    expect(d.bufferedBytes).toBe(5);
    d.flush();
    expect(d.counters).toMatchObject({ truncated: 1, frames: 1 });
    expect(d.push(f).length).toBe(1);
  });

  it('estimates lost frames from sequence gaps, across the 255 → 0 wrap', () => {
    const d = decoder();
    d.push(cat(measurement(250), measurement(251), measurement(254), measurement(1)));
    expect(d.counters.seqGaps).toBe(2 + 2);
    d.reset();
    d.push(measurement(100));
    expect(d.counters.seqGaps).toBe(4);
    // A frame of a type this receiver does not know still carries a trustworthy sequence number.
    d.push(cat(encodeFrame(0x7f, 101, [1], 0x11), measurement(102)));
    expect(d.counters).toMatchObject({ seqGaps: 4, unknownType: 1 });
  });

  it('keeps its counters adding up under random corruption', () => {
    const rng = new Prng(5);
    const d = decoder();
    const clean = cat(measurement(0), health(1), chunk(2));
    for (let i = 0; i < 500; i++) {
      const s = clean.slice();
      for (let k = rng.int(0, 3); k > 0; k--) s[rng.int(0, s.length - 1)] = rng.int(0, 255);
      d.push(s.subarray(0, rng.int(0, s.length)));
    }
    d.flush();
    expectCountersAddUp(d.counters);
  });
});
