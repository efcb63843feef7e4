import { describe, expect, it } from 'vitest';
import { publishedMetrics, roundForWire } from '../../../agent/src/health/quality-stage.js';
import { seededRandom } from '../../helpers/seeded-random.js';

describe('publishedMetrics', () => {
  it('keeps integers exact and rounds other values to six significant digits, never coarser than three decimals', () => {
    expect(
      publishedMetrics({
        'memory.total_bytes': 25276182528,
        'memory.used_pct': 2.3677580557785087,
        'load.1m': 2.62,
        tiny: 0.000123456789,
        huge: 123456789.123,
        energy: 12345.678901,
        neg: -1.23456789,
      }),
    ).toEqual({
      'memory.total_bytes': 25276182528,
      'memory.used_pct': 2.36776,
      'load.1m': 2.62,
      tiny: 0.000123457,
      huge: 123456789.123,
      energy: 12345.679,
      neg: -1.23457,
    });
  });

  it('leaves values that are not finite numbers as they are (data quality flags them)', () => {
    expect(publishedMetrics({ a: Number.NaN, b: Number.POSITIVE_INFINITY })).toEqual({ a: Number.NaN, b: Number.POSITIVE_INFINITY });
  });

  it('rounds as Number(v.toFixed(decimals)) would, halves and the error of v × 10^decimals included (fuzz)', () => {
    const viaToFixed = (v: number): number => {
      if (Number.isInteger(v) || !Number.isFinite(v)) return v;
      const decimals = Math.max(3, 5 - Math.floor(Math.log10(Math.abs(v))));
      return decimals > 15 ? v : Number(v.toFixed(decimals));
    };
    const rnd = seededRandom(2026);
    const bits = new Float64Array(1);
    const words = new Uint32Array(bits.buffer);
    const values = [1.005, 2.675, 1.0000005, 99.99995, 100.00005, 123456.7895, 0.1 + 0.2, 5e-16];
    for (let i = 0; i < 50_000; i++) {
      values.push((rnd() - 0.5) * 10 ** (Math.floor(rnd() * 40) - 20));
      // A decimal half at the rounding digit: where a rounded product could pick the other side.
      const half = (Math.floor(rnd() * 1e6) + 0.5) / 10 ** (3 + Math.floor(rnd() * 10));
      values.push(half, -half);
      words[0] = (rnd() * 2 ** 32) >>> 0;
      words[1] = (rnd() * 2 ** 32) >>> 0;
      values.push(bits[0]!);
    }
    const wrong = values.filter((v) => !Object.is(roundForWire(v), viaToFixed(v)));
    expect(wrong).toEqual([]);
  });
});
