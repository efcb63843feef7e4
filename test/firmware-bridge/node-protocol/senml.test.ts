import { describe, expect, it } from 'vitest';
import { type CborValue, DecimalFraction, decodeCbor, encodeCbor } from '../../../firmware-bridge/src/node-protocol/cbor.js';
import {
  HEALTH_NAMES,
  SENML_LABEL as L,
  encodeSenmlPack,
  healthToSenml,
  isValidSenmlName,
  resolveSenml,
  senmlToHealth,
} from '../../../firmware-bridge/src/node-protocol/senml.js';

const NOW = 1_700_000_100;
const rec = (...entries: Array<[number | string, CborValue]>) => new Map<number | string, CborValue>(entries);
const resolve = (pack: CborValue) => {
  const r = resolveSenml(pack, NOW);
  if (!r.ok) throw new Error(r.error);
  return r;
};

describe('SenML resolution (RFC 8428 §4.6)', () => {
  it('resolves the RFC 8428 §5.1.2 example: base name, relative times, per-record units', () => {
    // [{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},{"n":"current","u":"A","v":1.2}]
    const r = resolve([rec([L.bn, 'urn:dev:ow:10e2073a01080063:'], [L.n, 'voltage'], [L.u, 'V'], [L.v, 120.1]), rec([L.n, 'current'], [L.u, 'A'], [L.v, 1.2])]);
    expect(r.baseName).toBe('urn:dev:ow:10e2073a01080063:');
    expect(r.records).toEqual([
      { name: 'urn:dev:ow:10e2073a01080063:voltage', unit: 'V', value: 120.1, time: NOW },
      { name: 'urn:dev:ow:10e2073a01080063:current', unit: 'A', value: 1.2, time: NOW },
    ]);
  });

  it('applies base time, base unit, base value and base sum to the records that follow, until changed', () => {
    const r = resolve([
      rec([L.bn, 'dev:'], [L.bt, 1_320_067_464], [L.bu, '%RH'], [L.bv, 10], [L.n, 'h'], [L.v, 20]),
      rec([L.n, 'h'], [L.t, 60], [L.v, 1.5]),
      rec([L.n, 'h'], [L.u, 'other'], [L.t, 120], [L.v, -1]),
      rec([L.bt, 1_320_067_600], [L.bs, 100], [L.n, 'energy'], [L.u, 'J'], [L.s, 5]),
    ]);
    expect(r.records).toEqual([
      { name: 'dev:h', unit: '%RH', value: 30, time: 1_320_067_464 },
      { name: 'dev:h', unit: '%RH', value: 11.5, time: 1_320_067_524 },
      { name: 'dev:h', unit: 'other', value: 9, time: 1_320_067_584 },
      { name: 'dev:energy', unit: 'J', sum: 105, time: 1_320_067_600 },
    ]);
  });

  it('takes times below 2^28 s as relative to now (a node without a clock)', () => {
    const r = resolve([rec([L.bn, 'n:'], [L.n, 'a'], [L.t, -2], [L.v, 1]), rec([L.n, 'b'], [L.v, 2])]);
    expect(r.records.map((x) => x.time)).toEqual([NOW - 2, NOW]);
  });

  it('reads decimal fractions (tag 4), string, boolean and data values after a CBOR round trip', () => {
    const pack = encodeSenmlPack([
      { bn: 'node:', bt: new DecimalFraction(-3, 1_700_000_000_500), n: 'temp', u: 'Cel', v: new DecimalFraction(-2, 4215) },
      { n: 'state', vs: 'running' },
      { n: 'door', vb: false },
      { n: 'blob', vd: Uint8Array.of(1, 2, 3), ut: 60 },
    ]);
    const decoded = decodeCbor(encodeCbor(pack));
    if (!decoded.ok) throw new Error(decoded.error);
    const r = resolve(decoded.value);
    expect(r.records).toEqual([
      { name: 'node:temp', unit: 'Cel', value: 42.15, time: 1_700_000_000.5 },
      { name: 'node:state', stringValue: 'running', time: 1_700_000_000.5 },
      { name: 'node:door', boolValue: false, time: 1_700_000_000.5 },
      { name: 'node:blob', dataValue: Uint8Array.of(1, 2, 3), time: 1_700_000_000.5, updateTime: 60 },
    ]);
  });

  it('writes labels in deterministic order (0 … 8, then −1 … −6)', () => {
    const pack = encodeSenmlPack([{ bt: 1, bn: 'x:', vs: 'v', n: 'a' }]) as Array<Map<number, CborValue>>;
    expect([...pack[0]!.keys()]).toEqual([L.n, L.vs, L.bn, L.bt]);
  });

  it('ignores unknown labels but refuses must-understand ones (ending in _)', () => {
    expect(resolve([rec([L.n, 'a'], [L.v, 1], [99, 'x'], ['custom', 1])]).records).toHaveLength(1);
    const r = resolveSenml([rec([L.n, 'a'], [L.v, 1], ['later_', 1])], NOW);
    expect(r.ok).toBe(false);
  });

  const invalid: Array<[string, CborValue]> = [
    ['not an array', rec([L.n, 'a'])],
    ['an empty pack', []],
    ['a record that is not a map', [1]],
    ['a name starting with a dash', [rec([L.n, '-a'], [L.v, 1])]],
    ['a name with a space', [rec([L.n, 'a b'], [L.v, 1])]],
    ['no name at all', [rec([L.v, 1])]],
    ['two values', [rec([L.n, 'a'], [L.v, 1], [L.vs, 'x'])]],
    ['no value and no sum', [rec([L.n, 'a'])]],
    ['a text v', [rec([L.n, 'a'], [L.v, '1'])]],
    ['a numeric vs', [rec([L.n, 'a'], [L.vs, 1])]],
    ['a text bt', [rec([L.n, 'a'], [L.bt, 'now'], [L.v, 1])]],
    ['a newer base version', [rec([L.bver, 11], [L.n, 'a'], [L.v, 1])]],
    ['a non-finite value', [rec([L.n, 'a'], [L.v, Infinity])]],
  ];
  it.each(invalid)('rejects %s', (_what, pack) => {
    expect(resolveSenml(pack, NOW).ok).toBe(false);
  });

  it('checks names as RFC 8428 §4.5.1 does', () => {
    expect(isValidSenmlName('urn:dev:mac:0024befffe804ff1:vib.x')).toBe(true);
    expect(isValidSenmlName('a/b_c-d.e')).toBe(true);
    expect(isValidSenmlName('')).toBe(false);
    expect(isValidSenmlName('.a')).toBe(false);
    expect(isValidSenmlName('a\u00e9')).toBe(false);
  });
});

describe('health record', () => {
  it('round-trips through SenML', () => {
    const pack = healthToSenml({ firmwareVersion: '1.4.2', uptimeS: 86400, resetCount: 3, lastResetCause: 'watchdog' }, 'node:');
    const r = resolve(encodeSenmlPack(pack));
    expect(senmlToHealth(r.records, r.baseName)).toEqual({
      ok: true,
      health: { firmwareVersion: '1.4.2', uptimeS: 86400, resetCount: 3, lastResetCause: 'watchdog', resetCauseCode: 3 },
    });
  });

  it('maps every reset cause code, and an unknown code to "unknown" keeping the code', () => {
    const causes = ['unknown', 'power-on', 'brown-out', 'watchdog', 'software', 'external-pin', 'unknown'];
    causes.forEach((cause, code) => {
      const r = resolve(encodeSenmlPack(healthToSenml({ firmwareVersion: 'x', uptimeS: 0, resetCount: 0, lastResetCause: code }, 'n:')));
      const h = senmlToHealth(r.records, r.baseName);
      expect(h.ok && h.health.lastResetCause).toBe(cause);
      expect(h.ok && h.health.resetCauseCode).toBe(code);
    });
  });

  it('fails when a field is missing or not a whole number', () => {
    const full = healthToSenml({ firmwareVersion: '1', uptimeS: 5, resetCount: 1, lastResetCause: 'software' }, 'n:');
    for (const name of Object.values(HEALTH_NAMES)) {
      const r = resolve(encodeSenmlPack(full.filter((x) => x.n !== name)));
      expect(senmlToHealth(r.records, r.baseName).ok).toBe(false);
    }
    const fractional = full.map((x) => (x.n === 'uptime' ? { ...x, v: 1.5 } : x));
    const r = resolve(encodeSenmlPack(fractional));
    expect(senmlToHealth(r.records, r.baseName).ok).toBe(false);
  });
});
