/**
 * Pure decoding (and encoding) of Modbus register words into numbers.
 *
 * A Modbus register is a 16-bit word sent high byte first. Values wider than one register span 2 or 4 consecutive
 * registers, and devices disagree on the order of the bytes inside a register and of the registers inside a value.
 * Name the bytes of a 32-bit value in big-endian order A B C D (A the most significant); the four layouts are
 *
 * | name | byteOrder | wordOrder | registers on the wire (first, second) | also called                        |
 * |------|-----------|-----------|----------------------------------------|------------------------------------|
 * | ABCD | big       | big       | AB, CD                                 | big-endian, the Modbus convention  |
 * | CDAB | big       | little    | CD, AB                                 | word-swapped, "little-endian" PLCs |
 * | BADC | little    | big       | BA, DC                                 | byte-swapped                       |
 * | DCBA | little    | little    | DC, BA                                 | fully little-endian                |
 *
 * `byteOrder` is the order of the two bytes inside each register, `wordOrder` the order of the registers inside the
 * value. 64-bit values extend the same scheme (ABCDEFGH; word order `little` reverses all four registers). For
 * 16-bit types only `byteOrder` matters.
 *
 * Decoding then applies `value * scale + offset`. A value that is not a finite number (a float register holding
 * NaN or ±Infinity, or a scale that overflows) decodes to `undefined`: a missing reading, never a number.
 * float32 values are returned as the shortest decimal that rounds to the same float32 (a register holding the
 * float32 nearest to 300.1 decodes to 300.1, not 300.1000061035156), which is what the device's own display shows.
 * 64-bit integers beyond ±2^53 lose precision when converted to a JavaScript number (documented, not an error).
 */

export type ModbusDataType = 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'float32' | 'float64';
export type Endianness = 'big' | 'little';
export type WordLayout = 'ABCD' | 'CDAB' | 'BADC' | 'DCBA';

export const MODBUS_DATA_TYPES: readonly ModbusDataType[] = ['int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float32', 'float64'];

export interface RegisterFormat {
  dataType: ModbusDataType;
  /** Byte order inside each register. Default `big`. */
  byteOrder?: Endianness;
  /** Register order inside a multi-register value. Default `big`. */
  wordOrder?: Endianness;
  /** Default 1. */
  scale?: number;
  /** Default 0. */
  offset?: number;
}

const WORDS: Readonly<Record<ModbusDataType, number>> = {
  int16: 1,
  uint16: 1,
  int32: 2,
  uint32: 2,
  int64: 4,
  uint64: 4,
  float32: 2,
  float64: 4,
};

/** How many 16-bit registers a value of this type occupies. */
export function registerCount(dataType: ModbusDataType): number {
  const n = WORDS[dataType];
  if (n === undefined) throw new RangeError(`unknown Modbus data type ${String(dataType)}`);
  return n;
}

/** The layout name (ABCD …) of a byte and word order. */
export function layoutName(byteOrder: Endianness = 'big', wordOrder: Endianness = 'big'): WordLayout {
  if (byteOrder === 'big') return wordOrder === 'big' ? 'ABCD' : 'CDAB';
  return wordOrder === 'big' ? 'BADC' : 'DCBA';
}

/** The byte and word order of a layout name. */
export function parseLayout(name: WordLayout): { byteOrder: Endianness; wordOrder: Endianness } {
  switch (name) {
    case 'ABCD':
      return { byteOrder: 'big', wordOrder: 'big' };
    case 'CDAB':
      return { byteOrder: 'big', wordOrder: 'little' };
    case 'BADC':
      return { byteOrder: 'little', wordOrder: 'big' };
    case 'DCBA':
      return { byteOrder: 'little', wordOrder: 'little' };
    default:
      throw new RangeError(`unknown word layout ${String(name)}; expected ABCD, CDAB, BADC or DCBA`);
  }
}

function checkWord(w: number | undefined, i: number): number {
  if (w === undefined || !Number.isInteger(w) || w < 0 || w > 0xffff) throw new RangeError(`register ${i} is not a 16-bit word: ${String(w)}`);
  return w;
}

/** The value's bytes in big-endian order (A first), from the registers as they came off the wire. */
function canonicalBytes(words: readonly number[], byteOrder: Endianness, wordOrder: Endianness): Buffer {
  const n = words.length;
  const out = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) {
    const w = checkWord(words[i], i);
    // Word order: with `little` the first register on the wire holds the least significant word.
    const slot = wordOrder === 'big' ? i : n - 1 - i;
    const hi = w >>> 8;
    const lo = w & 0xff;
    out[slot * 2] = byteOrder === 'big' ? hi : lo;
    out[slot * 2 + 1] = byteOrder === 'big' ? lo : hi;
  }
  return out;
}

/** Registers as a device with this layout would send them, from the value's big-endian bytes. */
function wireWords(bytes: Buffer, byteOrder: Endianness, wordOrder: Endianness): number[] {
  const n = bytes.length / 2;
  const out: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const slot = wordOrder === 'big' ? i : n - 1 - i;
    const a = bytes[slot * 2]!;
    const b = bytes[slot * 2 + 1]!;
    out[i] = byteOrder === 'big' ? (a << 8) | b : (b << 8) | a;
  }
  return out;
}

/** The shortest decimal that rounds to the same float32 (so 300.1 stays 300.1). */
export function shortestFloat32(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  for (let p = 1; p <= 9; p++) {
    const candidate = Number(x.toPrecision(p));
    if (Math.fround(candidate) === x) return candidate;
  }
  return x;
}

/** The raw value of the registers, before scale and offset; NaN for a float register holding NaN. */
export function decodeRaw(words: readonly number[], format: RegisterFormat): number {
  const expected = registerCount(format.dataType);
  if (words.length !== expected) throw new RangeError(`${format.dataType} needs ${expected} register(s), got ${words.length}`);
  const b = canonicalBytes(words, format.byteOrder ?? 'big', format.wordOrder ?? 'big');
  switch (format.dataType) {
    case 'int16':
      return b.readInt16BE(0);
    case 'uint16':
      return b.readUInt16BE(0);
    case 'int32':
      return b.readInt32BE(0);
    case 'uint32':
      return b.readUInt32BE(0);
    case 'int64':
      return Number(b.readBigInt64BE(0));
    case 'uint64':
      return Number(b.readBigUInt64BE(0));
    case 'float32':
      return shortestFloat32(b.readFloatBE(0));
    case 'float64':
      return b.readDoubleBE(0);
  }
}

/**
 * The engineering value of the registers: `raw * scale + offset`, or `undefined` when that is not a finite number
 * (a float register holding NaN or ±Infinity, or an overflowing scale). Throws RangeError only for a wrong number of
 * words or words outside 0..65535 (a programming error, not a device error).
 */
export function decodeRegisters(words: readonly number[], format: RegisterFormat): number | undefined {
  const raw = decodeRaw(words, format);
  if (!Number.isFinite(raw)) return undefined;
  const scale = format.scale ?? 1;
  const offset = format.offset ?? 0;
  const value = scale === 1 && offset === 0 ? raw : raw * scale + offset;
  return Number.isFinite(value) ? value : undefined;
}

const INT_RANGE: Partial<Record<ModbusDataType, readonly [number, number]>> = {
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  int32: [-0x8000_0000, 0x7fff_ffff],
  uint32: [0, 0xffff_ffff],
};

/**
 * The registers that decode to `value` (the inverse of decodeRegisters): `(value - offset) / scale`, rounded to
 * the nearest integer for integer types. Throws RangeError when the raw value does not fit the type. NaN and
 * ±Infinity are accepted for float types (so tests and simulators can emit them).
 */
export function encodeValue(value: number, format: RegisterFormat): number[] {
  const scale = format.scale ?? 1;
  const offset = format.offset ?? 0;
  if (scale === 0 || !Number.isFinite(scale) || !Number.isFinite(offset)) throw new RangeError(`scale must be a non-zero finite number and offset finite`);
  const raw = scale === 1 && offset === 0 ? value : (value - offset) / scale;
  const dt = format.dataType;
  const b = Buffer.alloc(registerCount(dt) * 2);
  if (dt === 'float32') b.writeFloatBE(raw, 0);
  else if (dt === 'float64') b.writeDoubleBE(raw, 0);
  else {
    if (!Number.isFinite(raw)) throw new RangeError(`${dt} cannot hold ${raw}`);
    const r = Math.round(raw);
    if (dt === 'int64' || dt === 'uint64') {
      const big = BigInt(r);
      const lo = dt === 'int64' ? -(1n << 63n) : 0n;
      const hi = dt === 'int64' ? (1n << 63n) - 1n : (1n << 64n) - 1n;
      if (big < lo || big > hi) throw new RangeError(`${dt} cannot hold ${raw}`);
      if (dt === 'int64') b.writeBigInt64BE(big, 0);
      else b.writeBigUInt64BE(big, 0);
    } else {
      const [lo, hi] = INT_RANGE[dt]!;
      if (r < lo || r > hi) throw new RangeError(`${dt} cannot hold ${raw}`);
      if (dt === 'int16') b.writeInt16BE(r, 0);
      else if (dt === 'uint16') b.writeUInt16BE(r, 0);
      else if (dt === 'int32') b.writeInt32BE(r, 0);
      else b.writeUInt32BE(r, 0);
    }
  }
  return wireWords(b, format.byteOrder ?? 'big', format.wordOrder ?? 'big');
}

/** Coils and discrete inputs: a bit is 1 or 0, then `* scale + offset` like a register value. */
export function decodeBit(bit: boolean | number, scale = 1, offset = 0): number | undefined {
  const v = (bit === true || bit === 1 ? 1 : 0) * scale + offset;
  return Number.isFinite(v) ? v : undefined;
}
