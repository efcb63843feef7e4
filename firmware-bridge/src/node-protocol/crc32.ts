/**
 * CRC-32 as in IEEE 802.3, zlib and PNG: reflected polynomial 0xEDB88320, initial value 0xFFFFFFFF, final
 * xor 0xFFFFFFFF. Check value: crc32("123456789") = 0xCBF43926.
 *
 * The node protocol appends it to every frame, little-endian, before COBS encoding (docs/firmware-protocol.md).
 */

const TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * Continues a CRC over more bytes. `crc` is a previous result (start with 0): the initial value and final
 * xor are applied inside, so `crc32Update(crc32(a), b) === crc32(concat(a, b))`.
 */
export function crc32Update(crc: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = ~crc;
  for (let i = start; i < end; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32 of `bytes[start, end)`, as an unsigned 32-bit integer. */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return crc32Update(0, bytes, start, end);
}
