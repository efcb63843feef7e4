import { describe, expect, it } from 'vitest';
import { cobsDecode, cobsDecodeInto, cobsEncode, cobsMaxEncodedLength } from '../../../firmware-bridge/src/node-protocol/cobs.js';
import { Prng } from '../../../firmware-bridge/src/simulators/prng.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const range = (from: number, to: number) => Uint8Array.from({ length: to - from + 1 }, (_, i) => from + i);
const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

/**
 * Examples of the algorithm of Cheshire and Baker (IEEE/ACM ToN, 1999): the paper's IP-header example and the
 * standard boundary cases (as listed in the Wikipedia article), delimiter not included.
 */
const EXAMPLES: Array<[string, Uint8Array, Uint8Array]> = [
  ['IP header example (paper)', bytes('45 00 00 2c 4c 79 00 00 40 06 4f 37'), bytes('02 45 01 04 2c 4c 79 01 05 40 06 4f 37')],
  ['00', bytes('00'), bytes('01 01')],
  ['00 00', bytes('00 00'), bytes('01 01 01')],
  ['00 11 00', bytes('00 11 00'), bytes('01 02 11 01')],
  ['11 22 00 33', bytes('11 22 00 33'), bytes('03 11 22 02 33')],
  ['11 22 33 44', bytes('11 22 33 44'), bytes('05 11 22 33 44')],
  ['11 00 00 00', bytes('11 00 00 00'), bytes('02 11 01 01 01')],
  ['01..FE', range(1, 254), cat(bytes('ff'), range(1, 254))],
  ['00 01..FE', cat(bytes('00'), range(1, 254)), cat(bytes('01 ff'), range(1, 254))],
  ['01..FF', range(1, 255), cat(bytes('ff'), range(1, 254), bytes('02 ff'))],
  ['02..FF 00', cat(range(2, 255), bytes('00')), cat(bytes('ff'), range(2, 255), bytes('01 01'))],
  ['03..FF 00 01', cat(range(3, 255), bytes('00 01')), cat(bytes('fe'), range(3, 255), bytes('02 01'))],
];

describe('COBS', () => {
  it.each(EXAMPLES)('encodes and decodes %s', (_name, decoded, encoded) => {
    expect(hex(cobsEncode(decoded))).toBe(hex(encoded));
    expect(hex(cobsDecode(encoded)!)).toBe(hex(decoded));
  });

  it('encodes the empty frame as 01', () => {
    expect(hex(cobsEncode(new Uint8Array(0)))).toBe('01');
    expect(cobsDecode(bytes('01'))).toEqual(new Uint8Array(0));
  });

  it('round-trips random data, never emits 0x00 and stays within the overhead bound', () => {
    const rng = new Prng(7);
    for (let trial = 0; trial < 2000; trial++) {
      const n = rng.int(0, 1100);
      const zeros = rng.next();
      const data = Uint8Array.from({ length: n }, () => (rng.next() < zeros ? 0 : rng.int(1, 255)));
      const enc = cobsEncode(data);
      if (enc.includes(0) || enc.length > cobsMaxEncodedLength(n)) throw new Error(`bad encoding of ${hex(data)}`);
      const back = cobsDecode(enc);
      if (!back || Buffer.compare(back, data) !== 0) throw new Error(`round trip failed for ${hex(data)}`);
    }
  });

  it('rejects malformed input instead of throwing', () => {
    expect(cobsDecodeInto(bytes('05 11 22'), new Uint8Array(10))).toEqual({ ok: false, error: 'truncated-block' });
    expect(cobsDecodeInto(bytes('03 11 00 01'), new Uint8Array(10))).toEqual({ ok: false, error: 'zero-byte' });
    expect(cobsDecodeInto(bytes('00'), new Uint8Array(10))).toEqual({ ok: false, error: 'zero-byte' });
    expect(cobsDecodeInto(bytes('05 11 22 33 44'), new Uint8Array(3))).toEqual({ ok: false, error: 'too-long' });
    expect(cobsDecodeInto(bytes('01 01 01'), new Uint8Array(1))).toEqual({ ok: false, error: 'too-long' });
    expect(cobsDecode(bytes('02'))).toBeNull();
  });
});
