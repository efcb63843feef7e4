import { describe, expect, it } from 'vitest';
import {
  MODBUS_DATA_TYPES,
  decodeBit,
  decodeRaw,
  decodeRegisters,
  encodeValue,
  layoutName,
  parseLayout,
  registerCount,
  shortestFloat32,
  type Endianness,
  type ModbusDataType,
  type RegisterFormat,
  type WordLayout,
} from '../../../firmware-bridge/src/modbus/register-codec.js';
import { Prng } from '../../../firmware-bridge/src/simulators/prng.js';

const LAYOUTS: WordLayout[] = ['ABCD', 'CDAB', 'BADC', 'DCBA'];
const fmt = (dataType: ModbusDataType, layout: WordLayout = 'ABCD', extra: Partial<RegisterFormat> = {}): RegisterFormat => ({
  dataType,
  ...parseLayout(layout),
  ...extra,
});
/** Registers from hex bytes in big-endian (ABCD…) order, rearranged the way a device with `layout` sends them. */
function wire(hex: string, layout: WordLayout): number[] {
  const bytes = Buffer.from(hex, 'hex');
  const words: number[] = [];
  for (let i = 0; i < bytes.length; i += 2) words.push((bytes[i]! << 8) | bytes[i + 1]!);
  const { byteOrder, wordOrder } = parseLayout(layout);
  const swapped = byteOrder === 'little' ? words.map((w) => ((w & 0xff) << 8) | (w >> 8)) : words;
  return wordOrder === 'little' ? swapped.reverse() : swapped;
}

describe('register layouts', () => {
  it('names the four 32-bit layouts after where bytes A B C D land', () => {
    expect(layoutName('big', 'big')).toBe('ABCD');
    expect(layoutName('big', 'little')).toBe('CDAB');
    expect(layoutName('little', 'big')).toBe('BADC');
    expect(layoutName('little', 'little')).toBe('DCBA');
    for (const l of LAYOUTS) expect(layoutName(parseLayout(l).byteOrder, parseLayout(l).wordOrder)).toBe(l);
    expect(() => parseLayout('ACBD' as WordLayout)).toThrow(RangeError);
  });

  it('decodes the textbook vectors in every layout', () => {
    // float32 123.456 = 0x42F6E979; uint32 0x12345678.
    expect(wire('42F6E979', 'ABCD')).toEqual([0x42f6, 0xe979]);
    expect(wire('42F6E979', 'CDAB')).toEqual([0xe979, 0x42f6]);
    expect(wire('42F6E979', 'BADC')).toEqual([0xf642, 0x79e9]);
    expect(wire('42F6E979', 'DCBA')).toEqual([0x79e9, 0xf642]);
    for (const l of LAYOUTS) {
      expect(decodeRegisters(wire('42F6E979', l), fmt('float32', l))).toBe(123.456);
      expect(decodeRegisters(wire('12345678', l), fmt('uint32', l))).toBe(0x12345678);
      expect(decodeRegisters(wire('FFFFFFFE', l), fmt('int32', l))).toBe(-2);
      expect(decodeRegisters(wire('80000000', l), fmt('int32', l))).toBe(-0x80000000);
      expect(decodeRegisters(wire('FFFFFFFF', l), fmt('uint32', l))).toBe(0xffffffff);
      expect(decodeRegisters(wire('400921FB54442D18', l), fmt('float64', l))).toBe(Math.PI);
      expect(decodeRegisters(wire('0102030405060708', l), fmt('uint64', l))).toBe(Number(0x0102030405060708n)); // a double: uint64 beyond 2^53 rounds
      expect(decodeRegisters(wire('FFFFFFFFFFFFFFFF', l), fmt('int64', l))).toBe(-1);
      expect(decodeRegisters(wire('8000000000000000', l), fmt('int64', l))).toBe(-(2 ** 63));
      expect(decodeRegisters(wire('FFFFFFFFFFFFFFFF', l), fmt('uint64', l))).toBe(2 ** 64);
    }
    // 16-bit: only the byte order matters.
    expect(decodeRegisters([0xffff], fmt('int16'))).toBe(-1);
    expect(decodeRegisters([0xffff], fmt('uint16'))).toBe(65535);
    expect(decodeRegisters([0x3412], fmt('uint16', 'BADC'))).toBe(0x1234);
    expect(decodeRegisters([0x3412], fmt('uint16', 'DCBA'))).toBe(0x1234);
    expect(decodeRegisters([0x1234], fmt('uint16', 'CDAB'))).toBe(0x1234);
  });

  it('documents the precision of 64-bit integers beyond 2^53', () => {
    const words = encodeValue(2 ** 53, fmt('uint64'));
    words[3] = words[3]! + 1; // 2^53 + 1 is not a double
    expect(decodeRegisters(words, fmt('uint64'))).toBe(2 ** 53);
  });
});

describe('16-bit types, exhaustively', () => {
  it.each(['int16', 'uint16'] as const)('%s: every word decodes and re-encodes to itself in both byte orders', (dt) => {
    for (const byteOrder of ['big', 'little'] as Endianness[]) {
      const f: RegisterFormat = { dataType: dt, byteOrder };
      for (let w = 0; w <= 0xffff; w++) {
        const v = decodeRegisters([w], f)!;
        const canonical = byteOrder === 'big' ? w : ((w & 0xff) << 8) | (w >> 8);
        expect(v).toBe(dt === 'uint16' ? canonical : canonical >= 0x8000 ? canonical - 0x10000 : canonical);
        const back = encodeValue(v, f)[0];
        if (back !== w) expect.fail(`${dt} ${byteOrder}: word ${w} → ${v} → ${back}`);
      }
    }
  });
});

describe('round trips, seeded', () => {
  const rng = new Prng(2024);
  const sample = (dt: ModbusDataType): number => {
    switch (dt) {
      case 'int16':
        return rng.int(-0x8000, 0x7fff);
      case 'uint16':
        return rng.int(0, 0xffff);
      case 'int32':
        return rng.int(-0x80000000, 0x7fffffff);
      case 'uint32':
        return rng.int(0, 0xffffffff);
      case 'int64':
        return rng.int(-(2 ** 53), 2 ** 53);
      case 'uint64':
        return rng.int(0, 2 ** 53);
      case 'float32':
        return shortestFloat32(Math.fround(rng.normal(0, 10 ** rng.int(-10, 30))));
      case 'float64':
        return rng.normal(0, 10 ** rng.int(-100, 300));
    }
  };
  it.each(MODBUS_DATA_TYPES.flatMap((dt) => LAYOUTS.map((l) => [dt, l] as const)))('%s in %s', (dt, layout) => {
    const f = fmt(dt, layout);
    for (let i = 0; i < 2000; i++) {
      const v = sample(dt);
      const words = encodeValue(v, f);
      expect(words).toHaveLength(registerCount(dt));
      for (const w of words) expect(Number.isInteger(w) && w >= 0 && w <= 0xffff).toBe(true);
      const back = decodeRegisters(words, f);
      if (!Object.is(back, v)) expect.fail(`${dt} ${layout}: ${v} → [${words}] → ${back}`);
    }
  });

  it('scale and offset: decode(encode(v)) = v for engineering values', () => {
    const f = fmt('int16', 'ABCD', { scale: 0.1, offset: -40 });
    expect(encodeValue(21.5, f)).toEqual([615]);
    expect(decodeRegisters([615], f)).toBeCloseTo(21.5, 12);
    const t = fmt('uint32', 'CDAB', { scale: 0.01 });
    for (let i = 0; i < 1000; i++) {
      const v = rng.int(0, 4_000_000_000) / 100;
      expect(decodeRegisters(encodeValue(v, t), t)).toBeCloseTo(v, 6);
    }
  });
});

describe('NaN and infinities: a float register holding them is a missing reading, never a number', () => {
  const specials32 = ['7FC00000', 'FFC00000', '7F800001', '7FBFFFFF', 'FFFFFFFF', '7FFFFFFF', '7F800000', 'FF800000'];
  const specials64 = ['7FF8000000000000', 'FFF8000000000000', '7FF0000000000001', 'FFFFFFFFFFFFFFFF', '7FF0000000000000', 'FFF0000000000000'];

  it.each(LAYOUTS)('in %s', (layout) => {
    for (const hex of specials32) {
      expect(decodeRegisters(wire(hex, layout), fmt('float32', layout)), hex).toBeUndefined();
      expect(decodeRegisters(wire(hex, layout), fmt('float32', layout, { scale: 0, offset: 1 })), hex).toBeUndefined();
    }
    for (const hex of specials64) expect(decodeRegisters(wire(hex, layout), fmt('float64', layout)), hex).toBeUndefined();
    // decodeRaw says what the register held.
    expect(decodeRaw(wire('7FC00000', layout), fmt('float32', layout))).toBeNaN();
    expect(decodeRaw(wire('FF800000', layout), fmt('float32', layout))).toBe(-Infinity);
  });

  it('every float32 with an all-ones exponent is missing; every other pattern is a finite number', () => {
    const rng = new Prng(99);
    for (let i = 0; i < 100_000; i++) {
      const hi = rng.int(0, 0xffff);
      const lo = rng.int(0, 0xffff);
      const v = decodeRegisters([hi, lo], fmt('float32'));
      const special = (hi & 0x7f80) === 0x7f80;
      if (special ? v !== undefined : !Number.isFinite(v)) expect.fail(`[${hi}, ${lo}] → ${v}`);
    }
    for (let m = 0; m < 0x80; m++) {
      expect(decodeRegisters([0x7f80 | m, 0x0001], fmt('float32'))).toBeUndefined();
      expect(decodeRegisters([0xff80 | m, 0xffff], fmt('float32'))).toBeUndefined();
    }
  });

  it('a scale that overflows is missing too; subnormals and -0 are numbers', () => {
    expect(decodeRegisters(wire('7FEFFFFFFFFFFFFF', 'ABCD'), fmt('float64', 'ABCD', { scale: 10 }))).toBeUndefined();
    expect(decodeRegisters([0, 1], fmt('float32'))).toBe(1e-45);
    expect(Object.is(decodeRegisters([0x8000, 0], fmt('float32')), -0)).toBe(true);
    expect(decodeBit(true, Infinity)).toBeUndefined();
  });

  it('the encoder can write them, for simulators and tests', () => {
    expect(encodeValue(Number.NaN, fmt('float32'))).toEqual([0x7fc0, 0]);
    expect(encodeValue(Infinity, fmt('float32', 'CDAB'))).toEqual([0, 0x7f80]);
    expect(encodeValue(-Infinity, fmt('float64', 'DCBA'))).toEqual([0, 0, 0, 0xf0ff]);
  });
});

describe('float32 as the device shows it', () => {
  it('returns the shortest decimal that rounds to the same float32', () => {
    for (const x of [300.1, 310.3, 0.1, 42.9, -273.15, 1e-7, 3.4028235e38, 123.456]) {
      expect(decodeRegisters(encodeValue(x, fmt('float32')), fmt('float32'))).toBe(x);
    }
    expect(shortestFloat32(Math.fround(300.1))).toBe(300.1);
    expect(shortestFloat32(16777217)).toBe(16777217); // not a float32 value at all: returned as is
    expect(decodeRegisters(encodeValue(16777217, fmt('float32')), fmt('float32'))).toBe(16777216);
  });
});

describe('coils and discrete inputs', () => {
  it('are 1 or 0, scaled like registers', () => {
    expect(decodeBit(true)).toBe(1);
    expect(decodeBit(false)).toBe(0);
    expect(decodeBit(1, 5, 1)).toBe(6);
  });
});

describe('contract violations throw RangeError (programming errors, not device errors)', () => {
  it('on the decoder', () => {
    expect(() => decodeRegisters([1], fmt('float32'))).toThrow(/needs 2 register/);
    expect(() => decodeRegisters([1, 2, 3], fmt('uint32'))).toThrow(RangeError);
    expect(() => decodeRegisters([0x10000], fmt('uint16'))).toThrow(/16-bit word/);
    expect(() => decodeRegisters([-1], fmt('uint16'))).toThrow(RangeError);
    expect(() => decodeRegisters([1.5], fmt('uint16'))).toThrow(RangeError);
    expect(() => registerCount('int8' as ModbusDataType)).toThrow(RangeError);
  });

  it('on the encoder', () => {
    expect(() => encodeValue(65536, fmt('uint16'))).toThrow(/cannot hold/);
    expect(() => encodeValue(-1, fmt('uint32'))).toThrow(RangeError);
    expect(() => encodeValue(2 ** 31, fmt('int32'))).toThrow(RangeError);
    expect(() => encodeValue(2 ** 64, fmt('uint64'))).toThrow(RangeError);
    expect(() => encodeValue(Number.NaN, fmt('int16'))).toThrow(RangeError);
    expect(() => encodeValue(1, fmt('int16', 'ABCD', { scale: 0 }))).toThrow(/scale/);
    expect(encodeValue(32767.4, fmt('int16'))).toEqual([0x7fff]); // rounds to the nearest raw value
  });
});
