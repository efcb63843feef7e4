/**
 * Consistent Overhead Byte Stuffing (S. Cheshire and M. Baker, "Consistent Overhead Byte Stuffing",
 * IEEE/ACM Transactions on Networking 7(2), 1999), with 0x00 as the frame delimiter.
 *
 * The encoded form holds no 0x00, so a receiver that lost its place resynchronises at the next 0x00. Each
 * block starts with a code byte c (1..255): c − 1 data bytes follow, then an implied 0x00 unless c is 0xFF
 * or the block ends the frame. Overhead is at most one byte per 254 bytes, plus one.
 *
 * These functions neither add nor expect the delimiter; the framing in frame-decoder.ts does.
 */

/** The largest encoded size of `n` bytes (without the delimiter). */
export function cobsMaxEncodedLength(n: number): number {
  return n + 1 + Math.floor(n / 254);
}

/** COBS-encodes `data` (without a trailing delimiter). */
export function cobsEncode(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(cobsMaxEncodedLength(data.length));
  let codeAt = 0;
  let o = 1;
  let code = 1;
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b === 0) {
      out[codeAt] = code;
      codeAt = o++;
      code = 1;
      continue;
    }
    out[o++] = b;
    code++;
    // A full block of 254 data bytes ends without an implied zero; open a new block only if data follows.
    if (code === 0xff && i + 1 < data.length) {
      out[codeAt] = code;
      codeAt = o++;
      code = 1;
    }
  }
  out[codeAt] = code;
  return out.subarray(0, o);
}

export type CobsDecodeResult = { ok: true; length: number } | { ok: false; error: 'zero-byte' | 'truncated-block' | 'too-long' };

/**
 * Decodes `encoded[start, end)` into `out`, which bounds the decoded size. Never throws: a 0x00 inside the
 * input, a block running past the end, or output beyond `out.length` return an error.
 */
export function cobsDecodeInto(encoded: Uint8Array, out: Uint8Array, start = 0, end = encoded.length): CobsDecodeResult {
  let i = start;
  let o = 0;
  const cap = out.length;
  while (i < end) {
    const code = encoded[i++]!;
    if (code === 0) return { ok: false, error: 'zero-byte' };
    const blockEnd = i + code - 1;
    if (blockEnd > end) return { ok: false, error: 'truncated-block' };
    if (o + (code - 1) > cap) return { ok: false, error: 'too-long' };
    for (; i < blockEnd; i++) {
      const b = encoded[i]!;
      if (b === 0) return { ok: false, error: 'zero-byte' };
      out[o++] = b;
    }
    if (code !== 0xff && i < end) {
      if (o >= cap) return { ok: false, error: 'too-long' };
      out[o++] = 0;
    }
  }
  return { ok: true, length: o };
}

/** Decodes a whole encoded frame (without its delimiter); null if it is not valid COBS. */
export function cobsDecode(encoded: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(encoded.length);
  const r = cobsDecodeInto(encoded, out);
  return r.ok ? out.slice(0, r.length) : null;
}
