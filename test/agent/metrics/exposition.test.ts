import { describe, expect, it } from 'vitest';
import { FixedHistogram, escapeLabelValue, renderExposition } from '../../../agent/src/core/exposition.js';
import { parseExposition, sampleValue } from '../../helpers/prometheus.js';

describe('the Prometheus exposition formatter', () => {
  it('escapes backslash, double quote and line feed in label values, and the reader gets them back', () => {
    const nasty = 'a\\b "quoted"\nline2';
    expect(escapeLabelValue(nasty)).toBe('a\\\\b \\"quoted\\"\\nline2');
    const text = renderExposition([
      { name: 'forewarn_test_info', help: 'Help with a \\ backslash\nand a line feed.', type: 'gauge', samples: [{ labels: { v: nasty }, value: 1 }] },
    ]);
    expect(text).toBe(
      '# HELP forewarn_test_info Help with a \\\\ backslash\\nand a line feed.\n# TYPE forewarn_test_info gauge\nforewarn_test_info{v="a\\\\b \\"quoted\\"\\nline2"} 1\n',
    );
    expect(text.split('\n')).toHaveLength(4);
    const parsed = parseExposition(text);
    expect(parsed.get('forewarn_test_info')!.samples[0]!.labels.v).toBe(nasty);
  });

  it('writes HELP and TYPE for every family, empty ones too, and special values', () => {
    const text = renderExposition([
      { name: 'forewarn_things_total', help: 'Things.', type: 'counter', samples: [] },
      {
        name: 'forewarn_value',
        help: 'Values.',
        type: 'gauge',
        samples: [
          { labels: { k: 'nan' }, value: NaN },
          { labels: { k: 'inf' }, value: Infinity },
          { labels: { k: 'neg' }, value: -Infinity },
          { value: 1.5e-7 },
        ],
      },
    ]);
    const parsed = parseExposition(text);
    expect([...parsed.keys()]).toEqual(['forewarn_things_total', 'forewarn_value']);
    expect(parsed.get('forewarn_things_total')!.samples).toEqual([]);
    expect(text).toContain('forewarn_value{k="nan"} NaN\n');
    expect(text).toContain('forewarn_value{k="inf"} +Inf\n');
    expect(text).toContain('forewarn_value{k="neg"} -Inf\n');
    expect(sampleValue(parsed, 'forewarn_value', {})).toBeDefined();
  });

  it('renders a fixed-bucket histogram with cumulative buckets, +Inf, _sum and _count', () => {
    const h = new FixedHistogram([0.01, 0.1, 1]);
    for (const v of [0.005, 0.05, 0.05, 0.5, 5]) h.observe(v);
    const text = renderExposition([{ name: 'forewarn_x_seconds', help: 'X.', type: 'histogram', samples: [h.snapshot({ model: 'm' })] }]);
    const f = parseExposition(text).get('forewarn_x_seconds')!;
    const buckets = f.samples.filter((s) => s.name === 'forewarn_x_seconds_bucket').map((s) => [s.labels.le, s.value]);
    expect(buckets).toEqual([
      ['0.01', 1],
      ['0.1', 3],
      ['1', 4],
      ['+Inf', 5],
    ]);
    expect(sampleValue(parseExposition(text), 'forewarn_x_seconds_count')).toBe(5);
    expect(sampleValue(parseExposition(text), 'forewarn_x_seconds_sum')).toBeCloseTo(5.605, 10);
    expect(f.samples.every((s) => s.labels.model === 'm')).toBe(true);
  });

  it('refuses invalid metric and label names and duplicate families', () => {
    expect(() => renderExposition([{ name: 'bad-name', help: 'x', type: 'gauge', samples: [] }])).toThrow(/metric name/);
    expect(() => renderExposition([{ name: 'ok_name', help: 'x', type: 'gauge', samples: [{ labels: { 'bad-label': 'v' }, value: 1 }] }])).toThrow(
      /label name/,
    );
    expect(() => renderExposition([{ name: 'ok_name', help: 'x', type: 'gauge', samples: [{ labels: { __reserved: 'v' }, value: 1 }] }])).toThrow(/label name/);
    const g = { name: 'dup', help: 'x', type: 'gauge' as const, samples: [] };
    expect(() => renderExposition([g, g])).toThrow(/duplicate/);
  });
});
