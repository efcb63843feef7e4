import { describe, expect, it } from 'vitest';
import { crc32, crc32Update } from '../../../firmware-bridge/src/node-protocol/crc32.js';

const ascii = (s: string) => new TextEncoder().encode(s);

describe('crc32', () => {
  it('has the check value of CRC-32/ISO-HDLC: crc32("123456789") = 0xCBF43926', () => {
    expect(crc32(ascii('123456789'))).toBe(0xcbf43926);
  });

  it('matches well-known values (zlib)', () => {
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(ascii('a'))).toBe(0xe8b7be43);
    expect(crc32(ascii('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
  });

  it('continues across pieces and honours start/end', () => {
    const data = ascii('123456789');
    expect(crc32Update(crc32(data, 0, 3), data, 3)).toBe(0xcbf43926);
    const padded = ascii('xx123456789yy');
    expect(crc32(padded, 2, 11)).toBe(0xcbf43926);
  });

  it('detects every single-bit error in a 64-byte message', () => {
    const msg = new Uint8Array(64).map((_, i) => (i * 37) & 0xff);
    const good = crc32(msg);
    for (let bit = 0; bit < 64 * 8; bit++) {
      const m = msg.slice();
      m[bit >> 3] = m[bit >> 3]! ^ (1 << (bit & 7));
      expect(crc32(m)).not.toBe(good);
    }
  });
});
