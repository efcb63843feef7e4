import { describe, expect, it } from 'vitest';
import { publishedMetrics } from '../../../agent/src/health/quality-stage.js';

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
});
