/**
 * The shared test vectors in firmware-bridge/test-vectors/, written by the C encoder (make -C firmware-bridge/c
 * vectors): the TypeScript codecs must decode them and, from the same inputs, encode the same bytes. The C test
 * checks the same files against the C encoder, and the worked examples in docs/firmware-protocol.md against them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CborValue, DecimalFraction, decodeCbor, encodeCbor } from '../../../firmware-bridge/src/node-protocol/cbor.js';
import { cobsDecode, cobsEncode } from '../../../firmware-bridge/src/node-protocol/cobs.js';
import { crc32 } from '../../../firmware-bridge/src/node-protocol/crc32.js';
import { type SenmlInputRecord, encodeSenmlPack, healthToSenml } from '../../../firmware-bridge/src/node-protocol/senml.js';
import { type BlockInput, BlockAssembler, chunkToCbor } from '../../../firmware-bridge/src/node-protocol/block-assembler.js';
import { type NodeMessage, FrameDecoder, MESSAGE_TYPE, encodeFrame } from '../../../firmware-bridge/src/node-protocol/frame-decoder.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const load = <T>(name: string): T => JSON.parse(readFileSync(path.join(ROOT, 'firmware-bridge/test-vectors', `${name}.json`), 'utf8')) as T;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
const NOW = 1_700_000_100;

describe('shared vectors: crc32.json', () => {
  const { vectors } = load<{ vectors: Array<{ inputHex: string; crc32: string }> }>('crc32');
  it.each(vectors.map((v) => [v.inputHex.slice(0, 24) || '(empty)', v] as const))('%s', (_n, v) => {
    expect(crc32(bytes(v.inputHex)).toString(16).padStart(8, '0')).toBe(v.crc32);
  });
  it('includes the check value', () => {
    expect(vectors.some((v) => v.inputHex === '313233343536373839' && v.crc32 === 'cbf43926')).toBe(true);
  });
});

describe('shared vectors: cobs.json', () => {
  const { vectors } = load<{ vectors: Array<{ id: string; decodedHex: string; encodedHex: string }> }>('cobs');
  it.each(vectors.map((v) => [v.id, v] as const))('%s', (_id, v) => {
    expect(hex(cobsEncode(bytes(v.decodedHex)))).toBe(v.encodedHex);
    expect(hex(cobsDecode(bytes(v.encodedHex))!)).toBe(v.decodedHex);
  });
});

type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

/** The value a vector's JSON describes (conventions in gen_vectors.c). */
function fromJson(j: JsonValue): CborValue {
  if (Array.isArray(j)) return j.map(fromJson);
  if (j === null || typeof j !== 'object') return j;
  if ('bigint' in j) return BigInt(j.bigint as string);
  if ('float' in j) return Number(j.float);
  if ('bytes' in j) return bytes(j.bytes as string);
  if ('int16' in j) return Int16Array.from(j.int16 as number[]);
  if ('map' in j) return new Map((j.map as Array<[number | string, JsonValue]>).map(([k, v]) => [k, fromJson(v)]));
  throw new Error(`unknown JSON value ${JSON.stringify(j)}`);
}

describe('shared vectors: cbor.json', () => {
  const { vectors } = load<{ vectors: Array<{ id: string; diag: string; hex: string; value: JsonValue }> }>('cbor');
  it.each(vectors.map((v) => [`${v.id}: ${v.diag}`, v] as const))('%s', (_id, v) => {
    const r = decodeCbor(bytes(v.hex));
    if (!r.ok) throw new Error(r.error);
    const expected = fromJson(v.value);
    if (typeof expected === 'number' && Number.isNaN(expected)) expect(Number.isNaN(r.value)).toBe(true);
    else if (Object.is(expected, -0)) expect(Object.is(r.value, -0)).toBe(true);
    else expect(r.value).toEqual(expected);
    // Re-encoding gives the C writer's bytes, except where JS cannot tell a float from an integer (1.0 is 1)
    // and for decimal fractions, which decode to plain numbers.
    const floatHead = /^f[9ab]/.test(v.hex);
    if (!(floatHead && Number.isInteger(r.value)) && !v.hex.startsWith('c4')) expect(hex(encodeCbor(r.value))).toBe(v.hex);
  });
});

type Dec = [number, number];
interface FrameVector {
  id: string;
  description: string;
  input: Record<string, unknown> & { seq: number };
  payloadHex: string;
  crc32Hex: string;
  frameHex: string;
}
const decimal = ([m, e]: Dec) => new DecimalFraction(e, m);

function blockOf(input: Record<string, unknown>): BlockInput {
  return {
    blockId: input.blockId as number,
    name: input.name as string,
    unit: input.unit as string,
    time: decimal(input.time as Dec),
    period: decimal(input.period as Dec),
    scale: decimal(input.scale as Dec),
    samples: Int16Array.from(input.samples as number[]),
  };
}

/** The frame the TypeScript encoder makes from a vector's input. */
function encodeVector(v: FrameVector): Uint8Array {
  const i = v.input;
  if ('firmwareVersion' in i) {
    const h = {
      firmwareVersion: i.firmwareVersion as string,
      uptimeS: i.uptimeS as number,
      resetCount: i.resetCount as number,
      lastResetCause: i.resetCause as number,
    };
    return encodeFrame(MESSAGE_TYPE.health, i.seq, encodeSenmlPack(healthToSenml(h, i.baseName as string)));
  }
  if ('records' in i) {
    const records = (i.records as Array<Record<string, unknown>>).map((r) => {
      const out: SenmlInputRecord = {};
      if (r.bn !== undefined) out.bn = r.bn as string;
      if (r.bt !== undefined) out.bt = decimal(r.bt as Dec);
      if (r.n !== undefined) out.n = r.n as string;
      if (r.u !== undefined) out.u = r.u as string;
      if (r.v !== undefined) out.v = decimal(r.v as Dec);
      if (r.vf !== undefined) out.v = r.vf as number;
      if (r.vs !== undefined) out.vs = r.vs as string;
      if (r.vb !== undefined) out.vb = r.vb as boolean;
      if (r.t !== undefined) out.t = decimal(r.t as Dec);
      return out;
    });
    return encodeFrame(MESSAGE_TYPE.senml, i.seq, encodeSenmlPack(records));
  }
  return encodeFrame(MESSAGE_TYPE.chunk, i.seq, chunkToCbor(blockOf(i), i.chunkIndex as number, i.samplesPerChunk as number));
}

describe('shared vectors: frames.json', () => {
  const { vectors } = load<{ vectors: FrameVector[] }>('frames');

  it.each(vectors.map((v) => [v.id, v] as const))('%s: same bytes from the TypeScript encoder', (_id, v) => {
    const frame = encodeVector(v);
    expect(hex(frame)).toBe(v.frameHex);
    const raw = cobsDecode(frame.subarray(0, frame.length - 1))!;
    expect(hex(raw)).toBe(v.payloadHex + v.crc32Hex);
    const crc = crc32(bytes(v.payloadHex));
    expect(v.crc32Hex).toBe(hex(Uint8Array.of(crc & 0xff, (crc >>> 8) & 0xff, (crc >>> 16) & 0xff, crc >>> 24)));
  });

  it.each(vectors.map((v) => [v.id, v] as const))('%s: decodes to its input', (_id, v) => {
    const d = new FrameDecoder({ now: () => NOW });
    const msgs = d.push(bytes(v.frameHex));
    expect(d.counters).toMatchObject({ frames: 1, ok: 1 });
    const m = msgs[0]!;
    const i = v.input;
    expect(m.seq).toBe(i.seq);
    expect(m.version).toBe(0x10);
    if (m.type === 'health') {
      expect(m.baseName).toBe(i.baseName);
      expect(m.health).toMatchObject({ firmwareVersion: i.firmwareVersion, uptimeS: i.uptimeS, resetCount: i.resetCount, resetCauseCode: i.resetCause });
    } else if (m.type === 'senml') {
      expect(m.records).toHaveLength((i.records as unknown[]).length);
    } else {
      const b = blockOf(i);
      const per = i.samplesPerChunk as number;
      const index = i.chunkIndex as number;
      expect(m.chunk.samples).toEqual(b.samples.subarray(index * per, (index + 1) * per));
      if (index === 0) {
        const t = b.time as DecimalFraction;
        const base = t.toNumber() < 2 ** 28 ? NOW + t.toNumber() : t.toNumber();
        expect(m.chunk.header).toEqual({
          name: b.name,
          unit: b.unit,
          baseTime: base,
          period: (b.period as DecimalFraction).toNumber(),
          scale: (b.scale as DecimalFraction).toNumber(),
          totalSamples: b.samples.length,
        });
      }
    }
  });

  it('resolves the measurement vectors to the values and times their descriptions give', () => {
    const d = new FrameDecoder({ now: () => NOW });
    const byId = (id: string) => d.push(bytes(vectors.find((v) => v.id === id)!.frameHex))[0] as Extract<NodeMessage, { type: 'senml' }>;
    expect(byId('senml-temperature-current').records).toEqual([
      { name: 'urn:dev:mac:0024befffe804ff1:temp', unit: 'Cel', value: 42.15, time: 1_700_000_000 },
      { name: 'urn:dev:mac:0024befffe804ff1:current', unit: 'A', value: 12.5, time: 1_700_000_000.5 },
    ]);
    expect(byId('senml-relative-float-bool').records).toEqual([
      { name: 'urn:dev:mac:0024befffe804ff1:temp', unit: 'Cel', value: 21.5, time: NOW - 2 },
      { name: 'urn:dev:mac:0024befffe804ff1:current', unit: 'A', value: Math.fround(0.1), time: NOW },
      { name: 'urn:dev:mac:0024befffe804ff1:motor_on', boolValue: true, time: NOW },
    ]);
  });

  it('reassembles the three chunk vectors into their block, in any order', () => {
    const chunks = vectors.filter((v) => /^chunk-\d-of-3$/.test(v.id));
    expect(chunks).toHaveLength(3);
    const d = new FrameDecoder({ now: () => NOW });
    const a = new BlockAssembler();
    const done = [...chunks].reverse().flatMap((v) => d.push(bytes(v.frameHex)).map((m) => (m.type === 'chunk' ? a.push(m.chunk, 0) : null)));
    const block = done.find((b) => b !== null)!;
    expect(block.samples).toEqual(blockOf(chunks[0]!.input).samples);
    expect(block).toMatchObject({ blockId: 7, sampleRateHz: 10_000, scale: 0.002, baseTime: 1_700_000_000.25, chunkCount: 3 });
  });

  it('match the worked examples in docs/firmware-protocol.md', () => {
    const doc = readFileSync(path.join(ROOT, 'docs/firmware-protocol.md'), 'utf8');
    const examples = [...doc.matchAll(/<!-- vector: ([\w-]+) -->\s*```text\n([\s\S]*?)```/g)];
    expect(examples.map((e) => e[1])).toEqual(expect.arrayContaining(['health', 'senml-temperature-current', 'chunk-0-of-3']));
    for (const [, id, block] of examples) {
      const v = vectors.find((x) => x.id === id);
      expect(v, `vector ${id}`).toBeDefined();
      const sections: Record<string, string> = {};
      let current = '';
      for (const line of block!.split('\n')) {
        const m = /^(\w+)?\s+([0-9a-f ]+)$/.exec(line);
        if (!m) continue;
        if (m[1]) current = m[1];
        sections[current] = (sections[current] ?? '') + m[2]!.replace(/\s+/g, '');
      }
      expect(sections, id).toEqual({ payload: v!.payloadHex, crc32: v!.crc32Hex, frame: v!.frameHex });
    }
  });
});
