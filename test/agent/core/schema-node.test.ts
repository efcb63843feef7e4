import { describe, expect, it } from 'vitest';
import { parseWithUnit, unitOf } from '../../../agent/src/core/schema-node.js';

/** Sizes and durations with units (core/schema-node.ts): what people write, in the option's own unit. */

describe('unitOf', () => {
  it('reads the unit from the option name, for numeric options only', () => {
    expect(unitOf('maxBytes', { type: 'integer' })).toBe('bytes');
    expect(unitOf('checkIntervalMs', { type: 'integer' })).toBe('ms');
    expect(unitOf('keepaliveSeconds', { type: 'integer' })).toBe('seconds');
    expect(unitOf('retentionHours', { type: 'number' })).toBe('hours');
    expect(unitOf('maxInflight', { type: 'integer' })).toBeUndefined();
    // A string option named like a size is not one (a file name, say).
    expect(unitOf('dumpBytes', { type: 'string' })).toBeUndefined();
    // The suffix must follow a lower-case word: `Ms` alone is not `…Ms`.
    expect(unitOf('Ms', { type: 'integer' })).toBeUndefined();
  });
});

describe('parseWithUnit', () => {
  it('sizes: binary and decimal multiples, any letter case, a space allowed', () => {
    expect(parseWithUnit('1GiB', 'bytes')).toBe(2 ** 30);
    expect(parseWithUnit('512MB', 'bytes')).toBe(512_000_000);
    expect(parseWithUnit('512 mib', 'bytes')).toBe(512 * 2 ** 20);
    expect(parseWithUnit('1.5KiB', 'bytes')).toBe(1536);
    expect(parseWithUnit('10kB', 'bytes')).toBe(10_000);
    expect(parseWithUnit('100B', 'bytes')).toBe(100);
    expect(parseWithUnit('1PiB', 'bytes')).toBe(2 ** 50);
  });

  it('durations: converted into the option unit, compound values added up', () => {
    expect(parseWithUnit('30s', 'ms')).toBe(30_000);
    expect(parseWithUnit('5m', 'ms')).toBe(300_000);
    expect(parseWithUnit('1h', 'seconds')).toBe(3600);
    expect(parseWithUnit('1h30m', 'ms')).toBe(5_400_000);
    expect(parseWithUnit('1m 30s', 'seconds')).toBe(90);
    expect(parseWithUnit('2d', 'hours')).toBe(48);
    expect(parseWithUnit('30m', 'hours')).toBe(0.5);
    expect(parseWithUnit('250ms', 'ms')).toBe(250);
    // A fraction of the unit stays a fraction (the schema then says whether the option takes one).
    expect(parseWithUnit('500ms', 'seconds')).toBe(0.5);
    expect(parseWithUnit('0.1h', 'ms')).toBe(360_000);
  });

  it('plain numbers keep today’s unit, as numbers or numeric text', () => {
    expect(parseWithUnit(1024, 'bytes')).toBe(1024);
    expect(parseWithUnit('1024', 'bytes')).toBe(1024);
    expect(parseWithUnit('1e3', 'ms')).toBe(1000);
    expect(parseWithUnit(30, 'seconds')).toBe(30);
    // Not a string: left for the schema to judge.
    expect(parseWithUnit(true, 'ms')).toBe(true);
  });

  it('refuses what it cannot read, naming what it takes', () => {
    for (const bad of ['1 GB of data', '1GX', 'GiB', '1.2.3MB', '-1GiB']) {
      expect(() => parseWithUnit(bad, 'bytes'), bad).toThrow(/is not a size: bytes, or a number with B, kB, MB/);
    }
    for (const bad of ['5min', '5M', '1h30', 'soon', 's', '1h-5m', '']) {
      expect(() => parseWithUnit(bad, 'ms'), bad).toThrow(/is not a duration: milliseconds, or numbers with ms, s, m, h, d/);
    }
    expect(() => parseWithUnit('2w', 'hours')).toThrow(/"2w" is not a duration: hours/);
  });
});
