/**
 * A minimal, strict CBOR (RFC 8949) decoder and encoder for the subset the node protocol uses.
 *
 * Decoded subset: unsigned and negative integers (beyond ±2^53 as bigint), definite-length byte and text
 * strings (text must be valid UTF-8), definite-length arrays and maps (keys: integers or text, no
 * duplicates), floats of 16, 32 and 64 bits, false, true, null, undefined, and tags. Tags interpreted:
 * - 4 (decimal fraction, RFC 8949 §3.4.4) `[exponent, mantissa]` → the number mantissa × 10^exponent;
 * - 72 / 73 / 77 (RFC 8746 typed arrays: sint8, sint16 big-endian, sint16 little-endian) → Int8Array /
 *   Int16Array;
 * any other tag comes back as a CborTag for the caller to judge.
 * Rejected: indefinite lengths, reserved additional information (28–30), simple values other than the four
 * above, trailing bytes after the one top-level item, nesting deeper than `maxDepth`, containers with more
 * than `maxItems` entries. The decoder never throws on its input: it returns `{ ok: false, error, offset }`.
 */

export type CborKey = number | string;
export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | undefined
  | Uint8Array
  | Int8Array
  | Int16Array
  | CborValue[]
  | Map<CborKey, CborValue>
  | CborTag
  | DecimalFraction;

/** A tag the decoder does not interpret, or one the encoder should write as is. */
export class CborTag {
  constructor(
    readonly tag: number | bigint,
    readonly value: CborValue,
  ) {}
}

/**
 * A decimal fraction mantissa × 10^exponent (tag 4), the form an MCU without floating point writes
 * (23.45 → exponent −2, mantissa 2345). The encoder writes exponent 0 as a plain integer, as the C encoder does.
 */
export class DecimalFraction {
  constructor(
    readonly exponent: number,
    readonly mantissa: number | bigint,
  ) {}
  /** The value as a double (exact division for negative exponents, so 2345e-2 is 23.45). */
  toNumber(): number {
    return decimalValue(this.exponent, Number(this.mantissa));
  }
}

function decimalValue(exponent: number, mantissa: number): number {
  return exponent < 0 ? mantissa / 10 ** -exponent : mantissa * 10 ** exponent;
}

export interface CborDecodeOptions {
  /** Deepest nesting of arrays, maps and tags. Default 16. */
  maxDepth?: number;
  /** Most entries in one array or map. Default 4096. */
  maxItems?: number;
}

export type CborResult = { ok: true; value: CborValue } | { ok: false; error: string; offset: number };

class CborError {
  constructor(
    readonly message: string,
    readonly offset: number,
  ) {}
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const TWO_POW_32 = 0x1_0000_0000;

/** Decodes exactly one CBOR item from `bytes[start, end)`. Never throws. */
export function decodeCbor(bytes: Uint8Array, options: CborDecodeOptions = {}, start = 0, end = bytes.length): CborResult {
  const maxDepth = options.maxDepth ?? 16;
  const maxItems = options.maxItems ?? 4096;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = start;

  const fail = (message: string, at = pos): never => {
    throw new CborError(message, at);
  };
  const need = (n: number): void => {
    if (end - pos < n) fail('unexpected end of input');
  };

  /** The argument of a head (after the initial byte): a number, or a bigint above 2^53. */
  function argument(ai: number, at: number): number | bigint {
    if (ai < 24) return ai;
    switch (ai) {
      case 24:
        need(1);
        return bytes[pos++]!;
      case 25:
        need(2);
        pos += 2;
        return view.getUint16(pos - 2);
      case 26:
        need(4);
        pos += 4;
        return view.getUint32(pos - 4);
      case 27: {
        need(8);
        const hi = view.getUint32(pos);
        const lo = view.getUint32(pos + 4);
        pos += 8;
        if (hi < 0x200000) return hi * TWO_POW_32 + lo;
        return (BigInt(hi) << 32n) | BigInt(lo);
      }
      case 31:
        return fail('indefinite length is not supported', at);
      default:
        return fail(`reserved additional information ${ai}`, at);
    }
  }

  function length(ai: number, at: number): number {
    const n = argument(ai, at);
    if (typeof n !== 'number' || n > end - pos) return fail('length runs past the end of input', at);
    return n;
  }

  function text(n: number, at: number): string {
    const s = pos;
    pos += n;
    if (n <= 32) {
      let ascii = true;
      for (let i = s; i < pos; i++) if (bytes[i]! >= 0x80) ascii = false;
      if (ascii) return String.fromCharCode(...bytes.subarray(s, pos));
    }
    try {
      return utf8.decode(bytes.subarray(s, pos));
    } catch {
      return fail('text string is not valid UTF-8', at);
    }
  }

  function item(depth: number): CborValue {
    need(1);
    const at = pos;
    const ib = bytes[pos++]!;
    const major = ib >> 5;
    const ai = ib & 0x1f;
    switch (major) {
      case 0:
        return argument(ai, at);
      case 1: {
        const n = argument(ai, at);
        return typeof n === 'number' && n < Number.MAX_SAFE_INTEGER ? -1 - n : -1n - BigInt(n);
      }
      case 2: {
        const n = length(ai, at);
        pos += n;
        return bytes.slice(pos - n, pos);
      }
      case 3:
        return text(length(ai, at), at);
      case 4: {
        const n = length(ai, at);
        if (n > maxItems) fail(`array of ${n} items exceeds the limit of ${maxItems}`, at);
        if (depth >= maxDepth) fail(`nesting deeper than ${maxDepth}`, at);
        const out: CborValue[] = new Array<CborValue>(n);
        for (let i = 0; i < n; i++) out[i] = item(depth + 1);
        return out;
      }
      case 5: {
        const n = length(ai, at);
        if (n > maxItems) fail(`map of ${n} entries exceeds the limit of ${maxItems}`, at);
        if (depth >= maxDepth) fail(`nesting deeper than ${maxDepth}`, at);
        const out = new Map<CborKey, CborValue>();
        for (let i = 0; i < n; i++) {
          const keyAt = pos;
          const keyMajor = bytes[keyAt]! >> 5;
          const k = item(depth + 1);
          if (!(keyMajor === 3 || ((keyMajor === 0 || keyMajor === 1) && typeof k === 'number')))
            fail('map key is not an integer (within ±2^53) or a text string', keyAt);
          const key = k as CborKey;
          if (out.has(key)) fail(`duplicate map key ${JSON.stringify(key)}`, keyAt);
          out.set(key, item(depth + 1));
        }
        return out;
      }
      case 6: {
        const tag = argument(ai, at);
        if (depth >= maxDepth) fail(`nesting deeper than ${maxDepth}`, at);
        const content = item(depth + 1);
        return interpretTag(tag, content, at);
      }
      default:
        return simple(ai, at);
    }
  }

  function interpretTag(tag: number | bigint, content: CborValue, at: number): CborValue {
    if (tag === 4) {
      if (!Array.isArray(content) || content.length !== 2) return fail('decimal fraction is not a two-element array', at);
      const [e, m] = content;
      if (typeof e !== 'number' || !Number.isInteger(e) || Math.abs(e) > 400) return fail('decimal fraction exponent is not a small integer', at);
      if (!(typeof m === 'bigint' || (typeof m === 'number' && Number.isInteger(m)))) return fail('decimal fraction mantissa is not an integer', at);
      const v = decimalValue(e, Number(m));
      if (!Number.isFinite(v)) return fail('decimal fraction out of range', at);
      return v;
    }
    if (tag === 72 || tag === 73 || tag === 77) {
      if (!(content instanceof Uint8Array)) return fail(`tag ${tag} content is not a byte string`, at);
      if (tag === 72) return new Int8Array(content.buffer, content.byteOffset, content.length);
      if (content.length % 2 !== 0) return fail(`tag ${tag} byte string has an odd length`, at);
      const out = new Int16Array(content.length / 2);
      const dv = new DataView(content.buffer, content.byteOffset, content.length);
      const little = tag === 77;
      for (let i = 0; i < out.length; i++) out[i] = dv.getInt16(2 * i, little);
      return out;
    }
    return new CborTag(tag, content);
  }

  function simple(ai: number, at: number): CborValue {
    switch (ai) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 23:
        return undefined;
      case 25: {
        need(2);
        const h = view.getUint16(pos);
        pos += 2;
        return halfToNumber(h);
      }
      case 26:
        need(4);
        pos += 4;
        return view.getFloat32(pos - 4);
      case 27:
        need(8);
        pos += 8;
        return view.getFloat64(pos - 8);
      case 31:
        return fail('unexpected break or indefinite length', at);
      default:
        return fail(`unsupported simple value (additional information ${ai})`, at);
    }
  }

  try {
    if (start < 0 || end > bytes.length || start > end) return { ok: false, error: 'bad range', offset: start };
    const value = item(0);
    if (pos !== end) return { ok: false, error: `${end - pos} trailing bytes after the item`, offset: pos };
    return { ok: true, value };
  } catch (err) {
    if (err instanceof CborError) return { ok: false, error: err.message, offset: err.offset };
    // Only a bug (or a RangeError from an allocation) lands here; still not the caller's problem.
    return { ok: false, error: `decoder failure: ${String(err)}`, offset: pos };
  }
}

/** IEEE 754 binary16 bits to a number. */
export function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (mant + 1024) * 2 ** (exp - 25);
}

/** The binary16 bits of `x` if it is exactly representable (NaN as the canonical 0x7e00), else null. */
export function numberToHalf(x: number): number | null {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a === 0) return sign;
  if (a < 2 ** -14) {
    const m = a * 2 ** 24;
    return Number.isInteger(m) ? sign | m : null;
  }
  if (a > 65504) return null;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const frac = (a / 2 ** e - 1) * 1024;
  return Number.isInteger(frac) ? sign | ((e + 15) << 10) | frac : null;
}

/** Appends CBOR items to a growing buffer. Throws on values outside the subset (a programming error). */
export class CborWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  private len = 0;
  private static readonly enc = new TextEncoder();

  get length(): number {
    return this.len;
  }

  /** The bytes written so far (a copy). */
  bytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** A head: major type and argument, in the shortest form. */
  head(major: number, arg: number | bigint): this {
    const mt = major << 5;
    if (typeof arg === 'bigint') {
      if (arg < 0n || arg > 0xffff_ffff_ffff_ffffn) throw new RangeError(`CBOR argument out of range: ${arg}`);
      if (arg <= BigInt(Number.MAX_SAFE_INTEGER)) return this.head(major, Number(arg));
      this.reserve(9);
      this.buf[this.len++] = mt | 27;
      this.view.setBigUint64(this.len, arg);
      this.len += 8;
      return this;
    }
    if (!Number.isSafeInteger(arg) || arg < 0) throw new RangeError(`CBOR argument out of range: ${arg}`);
    this.reserve(9);
    if (arg < 24) this.buf[this.len++] = mt | arg;
    else if (arg < 0x100) {
      this.buf[this.len++] = mt | 24;
      this.buf[this.len++] = arg;
    } else if (arg < 0x10000) {
      this.buf[this.len++] = mt | 25;
      this.view.setUint16(this.len, arg);
      this.len += 2;
    } else if (arg < TWO_POW_32) {
      this.buf[this.len++] = mt | 26;
      this.view.setUint32(this.len, arg);
      this.len += 4;
    } else {
      this.buf[this.len++] = mt | 27;
      this.view.setUint32(this.len, Math.floor(arg / TWO_POW_32));
      this.view.setUint32(this.len + 4, arg >>> 0);
      this.len += 8;
    }
    return this;
  }

  int(v: number | bigint): this {
    if (typeof v === 'bigint') return v < 0n ? this.head(1, -1n - v) : this.head(0, v);
    return v < 0 ? this.head(1, -1 - v) : this.head(0, v);
  }

  /** A float in its shortest exact form (binary16, then 32, then 64), as RFC 8949 §4.2.2 prefers. */
  float(v: number): this {
    this.reserve(9);
    const h = numberToHalf(v);
    if (h !== null) {
      this.buf[this.len++] = 0xf9;
      this.view.setUint16(this.len, h);
      this.len += 2;
    } else if (Math.fround(v) === v) {
      this.buf[this.len++] = 0xfa;
      this.view.setFloat32(this.len, v);
      this.len += 4;
    } else {
      this.buf[this.len++] = 0xfb;
      this.view.setFloat64(this.len, v);
      this.len += 8;
    }
    return this;
  }

  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
    return this;
  }

  value(v: CborValue): this {
    if (typeof v === 'number') return Number.isSafeInteger(v) && !Object.is(v, -0) ? this.int(v) : this.float(v);
    if (typeof v === 'bigint') return this.int(v);
    if (typeof v === 'string') {
      const b = CborWriter.enc.encode(v);
      return this.head(3, b.length).raw(b);
    }
    if (typeof v === 'boolean') return this.raw(Uint8Array.of(v ? 0xf5 : 0xf4));
    if (v === null) return this.raw(Uint8Array.of(0xf6));
    if (v === undefined) return this.raw(Uint8Array.of(0xf7));
    if (v instanceof Int16Array) {
      const b = new Uint8Array(v.length * 2);
      const dv = new DataView(b.buffer);
      for (let i = 0; i < v.length; i++) dv.setInt16(2 * i, v[i]!, true);
      return this.head(6, 77).head(2, b.length).raw(b);
    }
    if (v instanceof Int8Array)
      return this.head(6, 72)
        .head(2, v.length)
        .raw(new Uint8Array(v.buffer, v.byteOffset, v.length));
    if (v instanceof Uint8Array) return this.head(2, v.length).raw(v);
    if (Array.isArray(v)) {
      this.head(4, v.length);
      for (const x of v) this.value(x);
      return this;
    }
    if (v instanceof Map) {
      this.head(5, v.size);
      for (const [k, x] of v) this.value(k).value(x);
      return this;
    }
    if (v instanceof CborTag) return this.head(6, v.tag).value(v.value);
    if (v instanceof DecimalFraction) {
      if (v.exponent === 0) return this.int(v.mantissa);
      return this.head(6, 4).head(4, 2).int(v.exponent).int(v.mantissa);
    }
    throw new TypeError(`value outside the CBOR subset: ${String(v)}`);
  }
}

/** Encodes one item. Map keys keep their insertion order. */
export function encodeCbor(value: CborValue): Uint8Array {
  return new CborWriter().value(value).bytes();
}
