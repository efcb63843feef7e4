import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  newSelEntries,
  parseReading,
  parseSdr,
  parseSelElist,
  sdrMetrics,
  selFingerprint,
  sensorLabels,
} from '../../../../agent/src/sources/ipmi/ipmitool-parsers.js';
import { seededRandom as rng } from '../../../helpers/seeded-random.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const fx = (rel: string) => readFileSync(path.join(FIXTURES, rel), 'utf8');

describe('parseReading', () => {
  it('value and unit, or nothing for discrete and missing readings', () => {
    expect(parseReading('33 degrees C')).toEqual({ value: 33, unit: 'celsius' });
    expect(parseReading('3360 RPM')).toEqual({ value: 3360, unit: 'rpm' });
    expect(parseReading('12.10 Volts')).toEqual({ value: 12.1, unit: 'volts' });
    expect(parseReading('0.60 Amps')).toEqual({ value: 0.6, unit: 'amps' });
    expect(parseReading('140 Watts')).toEqual({ value: 140, unit: 'watts' });
    expect(parseReading('43.51 percent')).toEqual({ value: 43.51, unit: 'pct' });
    expect(parseReading('-12.09 Volts')).toEqual({ value: -12.09, unit: 'volts' });
    expect(parseReading('25 CFM')).toEqual({ value: 25, unit: 'cfm' });
    for (const none of ['0x00', 'No Reading', 'no reading', 'Disabled', 'State Deasserted', 'Presence detected', '', 'NaN degrees C', '1e999 RPM']) {
      expect(parseReading(none), none).toEqual({ value: null, unit: null });
    }
  });
});

describe('parseSdr', () => {
  it('Supermicro H11 `sdr elist full`: readings, ns sensors without metrics, threshold states as ok=0', () => {
    const { rows, malformed } = parseSdr(fx('supermicro-h11-sdr-elist-full.txt'));
    expect(malformed).toBe(0);
    expect(rows).toHaveLength(38);
    expect(rows[0]).toEqual({ name: 'CPU1 Temp', sensorNumber: '01h', status: 'ok', entity: '3.1', reading: '33 degrees C', value: 33, unit: 'celsius' });
    expect(rows[13]).toMatchObject({ name: 'P1-DIMMA1 Temp', status: 'ns', entity: '32.64', value: null });
    const m = sdrMetrics(rows);
    expect(m).toMatchObject({
      'bmc.cpu1_temp.celsius': 33,
      'bmc.cpu1_temp.ok': 1,
      'bmc.mb_10g_temp.celsius': 57,
      'bmc.p1-dimmb1_temp.celsius': 40,
      'bmc.fan1.rpm': 3360,
      'bmc.fan4.rpm': 280,
      'bmc.fan4.ok': 0, // lcr: below the lower critical threshold
      'bmc.12v.volts': 12.1,
      'bmc.3_3vcc.volts': 3.37,
      'bmc.vbat.volts': 3.06,
      'bmc.ps1_status.ok': 1,
      'bmc.ps2_status.ok': 0, // cr
      'bmc.chassis_intru.ok': 1,
    });
    expect(m['bmc.ps1_status.pct']).toBeUndefined();
    // `ns` (no reading) is missing, never 0 and never "not ok".
    for (const k of ['bmc.p1-dimma1_temp.ok', 'bmc.p1-dimma1_temp.celsius', 'bmc.fan3.ok', 'bmc.fan3.rpm']) expect(m[k], k).toBeUndefined();
    expect(Object.keys(m)).toHaveLength(2 * 17 + 4 * 2 + 5 * 2 + 3);
  });

  it('Supermicro X10 `sdr list full` (three columns)', () => {
    const { rows, malformed } = parseSdr(fx('supermicro-x10-sdr-list-full.txt'));
    expect(malformed).toBe(0);
    expect(rows).toHaveLength(29);
    expect(rows[0]).toEqual({ name: 'CPU1 Temp', sensorNumber: null, status: 'ok', entity: null, reading: '29 degrees C', value: 29, unit: 'celsius' });
    const m = sdrMetrics(rows);
    expect(m).toMatchObject({ 'bmc.pch_temp.celsius': 36, 'bmc.fana.rpm': 3500, 'bmc.p2-dimma1_temp.celsius': 29 });
    expect(m['bmc.fanb.ok']).toBeUndefined();
  });

  it('Dell R510 `sdr elist all`: repeated names told apart by entity, then sensor number', () => {
    const { rows, malformed } = parseSdr(fx('dell-r510-sdr-elist-all.txt'));
    expect(malformed).toBe(0);
    expect(rows).toHaveLength(24);
    const labels = sensorLabels(rows);
    expect(labels.slice(0, 12)).toEqual([
      'temp_3_1',
      'temp_3_2',
      'temp_10_1',
      'temp_10_2',
      'ambient_temp_10_1',
      'ambient_temp_10_2',
      'temp_8_1_0ah',
      'temp_8_1_0bh',
      'temp_8_1_0ch',
      'ambient_temp_7_1',
      'planar_temp',
      'cmos_battery',
    ]);
    expect(new Set(labels).size).toBe(labels.length);
    const m = sdrMetrics(rows);
    expect(m).toMatchObject({
      'bmc.ambient_temp_7_1.celsius': 19,
      'bmc.ambient_temp_7_1.ok': 1,
      'bmc.vcore_pg_3_1.ok': 1,
      'bmc.0_75_vtt_pg_3_2.ok': 1,
      'bmc.cmos_battery.ok': 1,
    });
    expect(m['bmc.temp_3_1.ok']).toBeUndefined(); // ns, "Disabled"
  });

  it('HP DL380 G7 `ipmitool sdr`: watts and fan duty in percent', () => {
    const m = sdrMetrics(parseSdr(fx('hp-dl380g7-sdr.txt')).rows);
    expect(m).toMatchObject({
      'bmc.power_supply_1.watts': 35,
      'bmc.power_supply_2.watts': 155,
      'bmc.fan_1.pct': 43.51,
      'bmc.temp_1.celsius': 16,
      'bmc.uid_light.ok': 1,
    });
    expect(m['bmc.uid_light.pct']).toBeUndefined();
  });

  it('garbage lines are counted, the rest read', () => {
    const { rows, malformed } = parseSdr(fx('malformed/sdr-mixed-garbage.txt'));
    expect(rows.map((r) => [r.name, r.value])).toEqual([
      ['CPU1 Temp', 33],
      ['Peripheral Temp', null],
      ['FAN1', null],
    ]);
    expect(malformed).toBe(5);
    for (const f of ['html-error.html', 'binary-noise.bin']) {
      const r = parseSdr(fx(`malformed/${f}`));
      expect(r.rows, f).toEqual([]);
      expect(r.malformed, f).toBeGreaterThan(0);
    }
    const truncated = parseSdr(fx('malformed/sdr-truncated.txt'));
    expect(truncated.rows.length).toBe(13);
    expect(truncated.malformed).toBe(1);
  });
});

describe('parseSelElist', () => {
  it('reads records with hex ids, threshold details and no-direction records', () => {
    const { entries, malformed } = parseSelElist(fx('sel-elist-t1.txt'));
    expect(malformed).toBe(0);
    expect(entries.map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    expect(entries[10]).toEqual({
      id: 11,
      idText: 'b',
      date: '03/02/2021',
      time: '04:17:55',
      sensor: 'Memory #0x87',
      event: 'Correctable ECC (P1-DIMMB1)',
      direction: 'Asserted',
      detail: null,
    });
    expect(entries[11]).toMatchObject({
      sensor: 'Temperature CPU1 Temp',
      event: 'Upper Critical going high',
      direction: 'Asserted',
      detail: 'Reading 96 > Threshold 95 degrees C',
    });
    expect(entries[6]?.event).toBe('Lower Non-critical going low');
  });

  it('QCT timestamps with a zone, "SEL has no entries", garbage', () => {
    expect(parseSelElist(fx('sel-elist-qct.txt')).entries.map((e) => [e.id, e.time])).toEqual([
      [14, '19:31:43 CEST'],
      [58, '23:09:44 CET'],
    ]);
    expect(parseSelElist(fx('sel-elist-empty.txt'))).toEqual({ entries: [], malformed: 0 });
    const g = parseSelElist(fx('malformed/sel-mixed-garbage.txt'));
    expect(g.entries.map((e) => e.id)).toEqual([1, 3]);
    expect(g.malformed).toBe(3);
    expect(parseSelElist(fx('malformed/binary-noise.bin')).entries).toEqual([]);
  });

  it('newSelEntries: only what follows the last record seen; everything after a clear', () => {
    const t0 = parseSelElist(fx('sel-elist-t0.txt')).entries;
    const t1 = parseSelElist(fx('sel-elist-t1.txt')).entries;
    const cleared = parseSelElist(fx('sel-elist-cleared.txt')).entries;
    const last = { id: t0.at(-1)!.id, fingerprint: selFingerprint(t0.at(-1)!) };
    expect(newSelEntries(t1, last).map((e) => e.idText)).toEqual(['b', 'c', 'd']);
    expect(newSelEntries(t0, last)).toEqual([]);
    expect(newSelEntries(cleared, last).map((e) => e.idText)).toEqual(['1', '2']);
    // Cleared and refilled past the old id: record "a" exists again but is a different record.
    const refilled = [...cleared, ...t0.slice(2).map((e) => ({ ...e, date: '04/01/2021' }))];
    expect(newSelEntries(refilled, last)).toHaveLength(refilled.length);
    expect(newSelEntries(t1, null)).toHaveLength(13);
  });
});

describe('fuzz', () => {
  it('3,000 mutated listings: never throws, every metric finite, every key well-formed', () => {
    const texts = readdirSync(FIXTURES)
      .filter((f) => f.endsWith('.txt'))
      .map((f) => fx(f));
    const rand = rng(99);
    const inserts = ['|', '||', ' | ', '\n', 'h', '.', '-', '1e308', 'NaN', '\u0000', '0x', 'ok', 'ns', 'degrees C', 'RPM', '9'.repeat(400)];
    for (let i = 0; i < 3000; i++) {
      let text = texts[i % texts.length]!;
      const n = 1 + Math.floor(rand() * 10);
      for (let j = 0; j < n; j++) {
        const at = Math.floor(rand() * (text.length + 1));
        const r = rand();
        if (r < 0.4) text = text.slice(0, at) + inserts[Math.floor(rand() * inserts.length)]! + text.slice(at);
        else if (r < 0.7) text = text.slice(0, at) + text.slice(at + 1 + Math.floor(rand() * 10));
        else text = text.slice(0, at) + String.fromCharCode(Math.floor(rand() * 0x3000)) + text.slice(at + 1);
      }
      let metrics: Record<string, number>;
      try {
        metrics = sdrMetrics(parseSdr(text).rows);
        const sel = parseSelElist(text);
        for (const e of sel.entries) expect(Number.isSafeInteger(e.id)).toBe(true);
        newSelEntries(sel.entries, sel.entries[0] ? { id: sel.entries[0].id, fingerprint: selFingerprint(sel.entries[0]) } : null);
      } catch (err) {
        throw new Error(`case ${i} threw: ${String(err)}`);
      }
      for (const [k, v] of Object.entries(metrics)) {
        if (!Number.isFinite(v)) throw new Error(`case ${i}: ${k} = ${v}`);
        expect(k).toMatch(/^bmc\.[a-z0-9_-]+\.[a-z0-9_-]+$/);
      }
    }
  });
});
