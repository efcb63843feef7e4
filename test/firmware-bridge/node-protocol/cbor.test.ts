import { describe, expect, it } from 'vitest';
import {
  type CborValue,
  CborTag,
  CborWriter,
  DecimalFraction,
  decodeCbor,
  encodeCbor,
  halfToNumber,
  numberToHalf,
} from '../../../firmware-bridge/src/node-protocol/cbor.js';
import { Prng } from '../../../firmware-bridge/src/simulators/prng.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
const dec = (h: string) => decodeCbor(bytes(h));
const value = (h: string): CborValue => {
  const r = dec(h);
  if (!r.ok) throw new Error(`${h}: ${r.error}`);
  return r.value;
};
const map = (...entries: Array<[number | string, CborValue]>) => new Map(entries);

/**
 * RFC 8949 Appendix A, the examples inside the subset: [diagnostic notation, encoding, decoded value, whether
 * the encoder reproduces the same bytes from the value (not where JS cannot tell 1.0 from 1)].
 */
const APPENDIX_A: Array<[string, string, CborValue, boolean]> = [
  ['0', '00', 0, true],
  ['1', '01', 1, true],
  ['10', '0a', 10, true],
  ['23', '17', 23, true],
  ['24', '1818', 24, true],
  ['25', '1819', 25, true],
  ['100', '1864', 100, true],
  ['1000', '1903e8', 1000, true],
  ['1000000', '1a000f4240', 1000000, true],
  ['1000000000000', '1b000000e8d4a51000', 1000000000000, true],
  ['18446744073709551615', '1bffffffffffffffff', 18446744073709551615n, true],
  ['18446744073709551616', 'c249010000000000000000', new CborTag(2, bytes('010000000000000000')), true],
  ['-18446744073709551616', '3bffffffffffffffff', -18446744073709551616n, true],
  ['-18446744073709551617', 'c349010000000000000000', new CborTag(3, bytes('010000000000000000')), true],
  ['-1', '20', -1, true],
  ['-10', '29', -10, true],
  ['-100', '3863', -100, true],
  ['-1000', '3903e7', -1000, true],
  ['0.0', 'f90000', 0, false],
  ['-0.0', 'f98000', -0, true],
  ['1.0', 'f93c00', 1, false],
  ['1.1', 'fb3ff199999999999a', 1.1, true],
  ['1.5', 'f93e00', 1.5, true],
  ['65504.0', 'f97bff', 65504, false],
  ['100000.0', 'fa47c35000', 100000, false],
  ['3.4028234663852886e+38', 'fa7f7fffff', 3.4028234663852886e38, true],
  ['1.0e+300', 'fb7e37e43c8800759c', 1.0e300, true],
  ['5.960464477539063e-8', 'f90001', 5.960464477539063e-8, true],
  ['0.00006103515625', 'f90400', 0.00006103515625, true],
  ['-4.0', 'f9c400', -4, false],
  ['-4.1', 'fbc010666666666666', -4.1, true],
  ['Infinity', 'f97c00', Infinity, true],
  ['NaN', 'f97e00', NaN, true],
  ['-Infinity', 'f9fc00', -Infinity, true],
  ['Infinity (single)', 'fa7f800000', Infinity, false],
  ['NaN (single)', 'fa7fc00000', NaN, false],
  ['-Infinity (single)', 'faff800000', -Infinity, false],
  ['Infinity (double)', 'fb7ff0000000000000', Infinity, false],
  ['NaN (double)', 'fb7ff8000000000000', NaN, false],
  ['-Infinity (double)', 'fbfff0000000000000', -Infinity, false],
  ['false', 'f4', false, true],
  ['true', 'f5', true, true],
  ['null', 'f6', null, true],
  ['undefined', 'f7', undefined, true],
  ['0("2013-03-21T20:04:00Z")', 'c074323031332d30332d32315432303a30343a30305a', new CborTag(0, '2013-03-21T20:04:00Z'), true],
  ['1(1363896240)', 'c11a514b67b0', new CborTag(1, 1363896240), true],
  ['1(1363896240.5)', 'c1fb41d452d9ec200000', new CborTag(1, 1363896240.5), true],
  ["23(h'01020304')", 'd74401020304', new CborTag(23, bytes('01020304')), true],
  ["24(h'6449455446')", 'd818456449455446', new CborTag(24, bytes('6449455446')), true],
  ['32("http://www.example.com")', 'd82076687474703a2f2f7777772e6578616d706c652e636f6d', new CborTag(32, 'http://www.example.com'), true],
  ["h''", '40', new Uint8Array(0), true],
  ["h'01020304'", '4401020304', bytes('01020304'), true],
  ['""', '60', '', true],
  ['"a"', '6161', 'a', true],
  ['"IETF"', '6449455446', 'IETF', true],
  ['"\\"\\\\"', '62225c', '"\\', true],
  ['"\\u00fc"', '62c3bc', '\u00fc', true],
  ['"\\u6c34"', '63e6b0b4', '\u6c34', true],
  ['"\\ud800\\udd51"', '64f0908591', '\ud800\udd51', true],
  ['[]', '80', [], true],
  ['[1, 2, 3]', '83010203', [1, 2, 3], true],
  ['[1, [2, 3], [4, 5]]', '8301820203820405', [1, [2, 3], [4, 5]], true],
  ['[1, 2, …, 25]', '98190102030405060708090a0b0c0d0e0f101112131415161718181819', Array.from({ length: 25 }, (_, i) => i + 1), true],
  ['{}', 'a0', map(), true],
  ['{1: 2, 3: 4}', 'a201020304', map([1, 2], [3, 4]), true],
  ['{"a": 1, "b": [2, 3]}', 'a26161016162820203', map(['a', 1], ['b', [2, 3]]), true],
  ['["a", {"b": "c"}]', '826161a161626163', ['a', map(['b', 'c'])], true],
  ['{"a": "A", …, "e": "E"}', 'a56161614161626142616361436164614461656145', map(['a', 'A'], ['b', 'B'], ['c', 'C'], ['d', 'D'], ['e', 'E']), true],
];

/** Appendix A examples outside the subset: indefinite lengths and unassigned simple values are rejected. */
const REJECTED: Array<[string, string]> = [
  ['simple(16)', 'f0'],
  ['simple(255)', 'f8ff'],
  ["(_ h'0102', h'030405')", '5f42010243030405ff'],
  ['(_ "strea", "ming")', '7f657374726561646d696e67ff'],
  ['[_ ]', '9fff'],
  ['[_ 1, [2, 3], [_ 4, 5]]', '9f018202039f0405ffff'],
  ['[1, [2, 3], [_ 4, 5]]', '83018202039f0405ff'],
  ['{_ "a": 1, "b": [_ 2, 3]}', 'bf61610161629f0203ffff'],
];

describe('CBOR decoder: RFC 8949 Appendix A', () => {
  it.each(APPENDIX_A)('%s', (_diag, h, expected, reencodes) => {
    const v = value(h);
    if (typeof expected === 'number' && Number.isNaN(expected)) expect(Number.isNaN(v)).toBe(true);
    else if (Object.is(expected, -0)) expect(Object.is(v, -0)).toBe(true);
    else expect(v).toEqual(expected);
    if (reencodes) expect(hex(encodeCbor(v))).toBe(h);
  });

  it.each(REJECTED)('rejects %s (outside the subset)', (_diag, h) => {
    expect(dec(h).ok).toBe(false);
  });
});

describe('CBOR decoder: strictness', () => {
  const rejects: Array<[string, string]> = [
    ['empty input', ''],
    ['a truncated argument', '19 03'],
    ['a truncated string', '64 4945'],
    ['an array shorter than announced', '83 0102'],
    ['reserved additional information 28', '1c'],
    ['reserved additional information 30', '5e'],
    ['a lone break', 'ff'],
    ['trailing bytes', '01 02'],
    ['a duplicate map key', 'a2 01 02 01 03'],
    ['a float map key', 'a1 f93c00 01'],
    ['an array map key', 'a1 80 01'],
    ['invalid UTF-8', '62 c328'],
    ['a UTF-8 surrogate', '63 eda080'],
    ['a length far beyond the input', '5b ffffffffffffffff'],
    ['an array of 2^64 - 1 items', '9b ffffffffffffffff'],
    ['a decimal fraction that is not [int, int]', 'c4 83 01 02 03'],
    ['a decimal fraction with a float mantissa', 'c4 82 21 f93e00'],
    ['a decimal fraction with a huge exponent', 'c4 82 1a000f4240 01'],
    ['tag 77 around a text string', 'd84d 62 0102'],
    ['tag 77 with an odd byte count', 'd84d 43 010203'],
  ];
  it.each(rejects)('rejects %s', (_what, h) => {
    const r = dec(h.replace(/\s+/g, ''));
    expect(r.ok).toBe(false);
  });

  it('limits nesting depth and container size', () => {
    const deep = '81'.repeat(20) + '01';
    expect(dec(deep).ok).toBe(false);
    expect(decodeCbor(bytes(deep), { maxDepth: 32 }).ok).toBe(true);
    expect(decodeCbor(bytes('83010203'), { maxItems: 2 }).ok).toBe(false);
    const deepTags = 'c1'.repeat(20) + '01';
    expect(dec(deepTags).ok).toBe(false);
  });

  it('reports the offset of the error', () => {
    expect(dec('8301a20102010304')).toEqual({ ok: false, error: 'duplicate map key 1', offset: 5 });
  });
});

describe('CBOR decoder: tags of the node protocol', () => {
  it('decodes decimal fractions (tag 4) to numbers', () => {
    expect(value('c48221196ab3')).toBe(273.15);
    expect(value('c482221b0000018bcfe5687b')).toBe(1700000000.123);
    expect(value('c482021903e8')).toBe(100000);
  });

  it('decodes RFC 8746 typed arrays: sint16 little-endian (77), big-endian (73), sint8 (72)', () => {
    expect(value('d84d4a0100feff00010080ff7f')).toEqual(Int16Array.from([1, -2, 256, -32768, 32767]));
    expect(value('d8494400018000')).toEqual(Int16Array.from([1, -32768]));
    expect(value('d8484201ff')).toEqual(Int8Array.from([1, -1]));
  });

  it('encodes typed arrays and decimal fractions as the C encoder does', () => {
    expect(hex(encodeCbor(Int16Array.from([1, -2, 256, -32768, 32767])))).toBe('d84d4a0100feff00010080ff7f');
    expect(hex(encodeCbor(new DecimalFraction(-2, 27315)))).toBe('c48221196ab3');
    expect(hex(encodeCbor(new DecimalFraction(0, 5)))).toBe('05');
    expect(new DecimalFraction(-2, 4215).toNumber()).toBe(42.15);
  });
});

describe('CBOR floats', () => {
  it('converts every binary16 value both ways', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = halfToNumber(h);
      if (Number.isNaN(x)) continue;
      if (numberToHalf(x) !== h) throw new Error(`half 0x${h.toString(16)} → ${x} → ${numberToHalf(x)}`);
    }
  });

  it('writes the shortest exact form', () => {
    const rng = new Prng(3);
    for (let i = 0; i < 20000; i++) {
      const x = rng.next() < 0.5 ? Math.fround(rng.normal(0, 1000)) : rng.normal(0, 1e6);
      const enc = new CborWriter().float(x).bytes();
      const back = decodeCbor(enc);
      if (!back.ok || back.value !== x) throw new Error(`${x} did not round-trip`);
      const expectedHead = numberToHalf(x) !== null ? 0xf9 : Math.fround(x) === x ? 0xfa : 0xfb;
      if (enc[0] !== expectedHead) throw new Error(`${x} written with head 0x${enc[0]!.toString(16)}`);
    }
  });
});

describe('CBOR decoder: never throws', () => {
  it('returns an error result for 20,000 random and mutated inputs', () => {
    const rng = new Prng(11);
    const seeds = APPENDIX_A.map(([, h]) => bytes(h));
    let ok = 0;
    for (let i = 0; i < 20000; i++) {
      let input: Uint8Array;
      if (i % 2 === 0) input = Uint8Array.from({ length: rng.int(0, 40) }, () => rng.int(0, 255));
      else {
        input = seeds[rng.int(0, seeds.length - 1)]!.slice();
        for (let m = rng.int(1, 3); m > 0 && input.length > 0; m--) input[rng.int(0, input.length - 1)] = rng.int(0, 255);
      }
      const r = decodeCbor(input);
      if (r.ok) ok++;
      else expect(typeof r.error).toBe('string');
    }
    expect(ok).toBeGreaterThan(0);
  });
});
