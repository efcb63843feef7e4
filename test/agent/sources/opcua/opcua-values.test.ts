import { describe, expect, it } from 'vitest';
import { describeUnits, numericValue, statusQuality, unitIdCode, unitMatches } from '../../../../agent/src/sources/opcua/opcua-values.js';

describe('OPC UA values', () => {
  it('status severity from the top two bits: Good, Uncertain, Bad (Part 4, 7.39)', () => {
    expect(statusQuality(0x00000000)).toBe('good'); // Good
    expect(statusQuality(0x00a20000)).toBe('good'); // GoodClamped
    expect(statusQuality(0x40000000)).toBe('uncertain'); // Uncertain
    expect(statusQuality(0x40900000)).toBe('uncertain'); // UncertainLastUsableValue
    expect(statusQuality(0x80000000)).toBe('bad'); // Bad
    expect(statusQuality(0x808b0000)).toBe('bad'); // BadSensorFailure
    expect(statusQuality(0x80340000)).toBe('bad'); // BadNodeIdUnknown
    expect(statusQuality(0xc0000000)).toBe('bad'); // reserved severity: not trusted
  });

  it('numbers pass, booleans are 1/0, 64-bit words only when exact; strings, NaN and structures are not signals', () => {
    expect(numericValue(301.5)).toBe(301.5);
    expect(numericValue(true)).toBe(1);
    expect(numericValue(false)).toBe(0);
    expect(numericValue([1, 5])).toBe(2 ** 32 + 5);
    expect(numericValue([0, 0xffffffff])).toBe(0xffffffff);
    expect(numericValue([0x200000, 0])).toBeUndefined(); // 2^53: not exact
    expect(numericValue(12n)).toBe(12);
    expect(numericValue(NaN)).toBeUndefined();
    expect(numericValue(Infinity)).toBeUndefined();
    expect(numericValue('42')).toBeUndefined();
    expect(numericValue(null)).toBeUndefined();
    expect(numericValue({ value: 1 })).toBeUndefined();
    expect(numericValue([1, 2, 3])).toBeUndefined();
  });

  it('units match by display name or UNECE code through the alias table; a different unit does not', () => {
    const code = (c: string) => [...c].reduce((n, ch) => (n << 8) | ch.charCodeAt(0), 0);
    expect(unitIdCode(code('KEL'))).toBe('KEL');
    expect(unitIdCode(code('NU'))).toBe('NU');
    expect(unitIdCode(0)).toBe('');
    const kelvin = { displayName: 'K', unitId: code('KEL') };
    const rpm = { displayName: 'r/min', unitId: code('RPM') };
    const nm = { displayName: 'N·m', unitId: code('NU') };
    expect(unitMatches('K', kelvin)).toBe(true);
    expect(unitMatches('kelvin', kelvin)).toBe(true);
    expect(unitMatches('rpm', rpm)).toBe(true);
    expect(unitMatches('N.m', nm)).toBe(true);
    expect(unitMatches('N.m', { displayName: '', unitId: code('NU') })).toBe(true); // the code alone
    expect(unitMatches('degC', { displayName: '°C', unitId: code('CEL') })).toBe(true);
    expect(unitMatches('K', { displayName: '°C', unitId: code('CEL') })).toBe(false);
    expect(unitMatches('rpm', nm)).toBe(false);
    expect(unitMatches('mm/s', { displayName: 'mm/s', unitId: 0 })).toBe(true);
    expect(describeUnits(nm)).toBe('N·m (NU)');
    expect(describeUnits({ displayName: '', unitId: 0 })).toBe('?');
  });
});
