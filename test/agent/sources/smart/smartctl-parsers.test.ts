import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  PREDICTIVE_ATTRIBUTE_IDS,
  SMARTCTL_JSON_FORMAT_MAJOR,
  assetSafe,
  decodeExitStatus,
  diskAsset,
  interpretRaw,
  parseJsonObject,
  parseScan,
  parseSmartctlDevice,
} from '../../../../agent/src/sources/smart/smartctl-parsers.js';
import { seededRandom as rng } from '../../../helpers/seeded-random.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const fx = (rel: string) => readFileSync(path.join(FIXTURES, rel), 'utf8');
const json = (rel: string) => JSON.parse(fx(rel)) as Record<string, unknown>;

describe('decodeExitStatus', () => {
  it('decodes each bit of the mask; bits 2-7 describe a disk that was read', () => {
    expect(decodeExitStatus(0)).toMatchObject({ raw: 0, unreadable: false, diskFailing: false });
    expect(decodeExitStatus(1)).toMatchObject({ commandLine: true, unreadable: true });
    expect(decodeExitStatus(2)).toMatchObject({ openFailed: true, unreadable: true, commandLine: false });
    expect(decodeExitStatus(4)).toMatchObject({ commandFailed: true, unreadable: false });
    // 88 = 8 + 16 + 64: failing, prefail attribute below threshold, errors in the error log.
    expect(decodeExitStatus(88)).toEqual({
      raw: 88,
      commandLine: false,
      openFailed: false,
      commandFailed: false,
      diskFailing: true,
      prefailBelowThreshold: true,
      pastThreshold: false,
      errorLog: true,
      selfTestLog: false,
      unreadable: false,
    });
    // 224 (netdata#18634, a Seagate laptop disk read with --nocheck=standby): past threshold + both logs.
    expect(decodeExitStatus(224)).toMatchObject({ pastThreshold: true, errorLog: true, selfTestLog: true, unreadable: false });
    expect(decodeExitStatus(-1).raw).toBe(0);
    expect(decodeExitStatus(1.5).raw).toBe(0);
  });
});

describe('parseScan', () => {
  it('lists the devices of a --scan-open with their types and open errors', () => {
    const { devices, exit, problems } = parseScan(fx('scan-open-server.json'));
    expect(problems).toEqual([]);
    expect(exit?.raw).toBe(0);
    expect(devices.map((d) => `${d.name} ${d.type}`)).toEqual([
      '/dev/sda sat',
      '/dev/sdb sat',
      '/dev/sdc sat',
      '/dev/sdd sat',
      '/dev/sde sat',
      '/dev/sdf sat',
      '/dev/sdg scsi',
      '/dev/nvme0 nvme',
    ]);
    expect(devices[6]).toEqual({ name: '/dev/sdg', type: 'scsi', protocol: 'SCSI', openError: 'Unknown USB bridge [0x152d:0x0578 (0x214)]' });
    expect(devices[7]?.openError).toBeNull();
  });

  it('reads the real scan of a VM without SMART disks (smartctl 7.3 omits "devices") as an empty list', () => {
    const { devices, exit, problems } = parseScan(fx('scan-open-vm-empty.json'));
    expect({ devices, problems, exit: exit?.raw }).toEqual({ devices: [], problems: [], exit: 0 });
  });

  it('reports garbage instead of throwing', () => {
    for (const f of readdirSync(path.join(FIXTURES, 'malformed'))) {
      const r = parseScan(fx(`malformed/${f}`));
      expect(r.devices).toEqual([]);
      if (f !== 'wrong-types.json') expect(r.problems.length, f).toBe(1);
    }
    expect(parseScan('{"devices": 5}').problems).toEqual(['scan: "devices" is not an array']);
    expect(parseScan('{"devices": [{"name": "sda"}, null, {"name": "/dev/sdb"}]}')).toMatchObject({
      devices: [{ name: '/dev/sdb', type: 'auto', protocol: null, openError: null }],
      problems: ['scan: device 0 has no usable name', 'scan: device 1 has no usable name'],
    });
  });
});

describe('parseSmartctlDevice on recorded drives', () => {
  it('Seagate SATA HDD: every attribute raw, predictors normalized, packed temperatures unpacked', () => {
    const r = parseSmartctlDevice(fx('ata-seagate-st3500418as.json'));
    expect(r).toMatchObject({
      state: 'ok',
      kind: 'ata',
      reason: null,
      serial: '9VMQ4K7A',
      model: 'ST3500418AS',
      family: 'Seagate Barracuda 7200.12',
      capacityBytes: 500107862016,
      problems: [],
    });
    expect(r.wwn).toBe('5000c500499602d2');
    expect(r.metrics).toEqual({
      'disk.smartctl_exit_status': 0,
      'smart.passed': 1,
      'disk.temperature_c': 32,
      'disk.power_on_hours': 44670,
      'disk.ata_error_log_count': 0,
      'smart.1.raw': 168165566,
      'smart.3.raw': 0,
      'smart.4.raw': 72,
      'smart.5.raw': 1,
      'smart.5.value': 100,
      'smart.7.raw': 610424933,
      'smart.9.raw': 44670,
      'smart.9.value': 50,
      'smart.10.raw': 0,
      'smart.12.raw': 26,
      'smart.183.raw': 0,
      'smart.184.raw': 0,
      'smart.187.raw': 0,
      'smart.187.value': 100,
      'smart.188.raw': 1,
      'smart.188.value': 100,
      'smart.189.raw': 58,
      // raw.value 588709920 packs "32 (Min/Max 23/35)"
      'smart.190.raw': 32,
      // raw.value 81604378656 packs "32 (0 19 0 0 0)"
      'smart.194.raw': 32,
      'smart.194.value': 32,
      'smart.195.raw': 168165566,
      'smart.197.raw': 0,
      'smart.197.value': 100,
      'smart.198.raw': 0,
      'smart.198.value': 100,
      'smart.199.raw': 0,
      'smart.199.value': 200,
      // raw.value 260725989826497 packs "122817 (237 33 0)"
      'smart.240.raw': 122817,
      'smart.241.raw': 543343366,
      'smart.242.raw': 224972325,
    });
  });

  it('WDC Red SATA HDD', () => {
    const r = parseSmartctlDevice(fx('ata-wdc-wd20efrx.json'));
    expect(r).toMatchObject({ state: 'ok', kind: 'ata', serial: 'WD-WCC4M3KJ7Y1H', model: 'WDC WD20EFRX-68EUZN0', problems: [] });
    expect(r.metrics).toMatchObject({
      'smart.passed': 1,
      'disk.temperature_c': 34,
      'disk.power_on_hours': 47657,
      'smart.1.raw': 114,
      'smart.5.raw': 0,
      'smart.5.value': 200,
      'smart.9.raw': 47657,
      'smart.9.value': 35,
      'smart.193.raw': 882,
      'smart.194.raw': 34,
      'smart.194.value': 113,
      'smart.200.raw': 0,
    });
    expect(Object.keys(r.metrics).filter((k) => k.endsWith('.raw'))).toHaveLength(17);
    // WD reports no 187/188/190: absent, never zero.
    expect(r.metrics['smart.187.raw']).toBeUndefined();
    expect(r.metrics['smart.188.value']).toBeUndefined();
  });

  it('Samsung SATA SSD: SSD wear attributes kept as raw; 190 is the temperature attribute here', () => {
    const r = parseSmartctlDevice(fx('ata-samsung-mz7wd240.json'));
    expect(r).toMatchObject({ state: 'ok', kind: 'ata', serial: 'S1E7NEAD600123', problems: [] });
    expect(r.metrics).toMatchObject({
      'smart.passed': 1,
      'disk.temperature_c': 27,
      'disk.power_on_hours': 84619,
      'smart.177.raw': 1661,
      'smart.180.raw': 5248,
      'smart.190.raw': 27,
      'smart.241.raw': 216456537880,
      'smart.187.value': 100,
      'smart.199.value': 100,
    });
    expect(r.metrics['smart.194.raw']).toBeUndefined();
  });

  it('NVMe SSD: the health log', () => {
    const r = parseSmartctlDevice(fx('nvme-samsung-970-evo-plus.json'));
    expect(r).toMatchObject({ state: 'ok', kind: 'nvme', serial: 'S4EUNX0N912345D', model: 'Samsung SSD 970 EVO Plus 250GB', wwn: null, problems: [] });
    expect(r.metrics).toEqual({
      'disk.smartctl_exit_status': 0,
      'smart.passed': 1,
      'disk.temperature_c': 35,
      'disk.power_on_hours': 3149,
      'nvme.critical_warning': 0,
      'nvme.media_errors': 0,
      'nvme.percentage_used': 0,
      'nvme.available_spare': 100,
      'nvme.available_spare_threshold': 10,
      'nvme.num_err_log_entries': 22,
      'nvme.unsafe_shutdowns': 12,
      'nvme.power_on_hours': 3149,
      'nvme.temperature_c': 35,
      'nvme.power_cycles': 16,
    });
  });

  it('failing HDD: a non-zero exit status is decoded, and the disk is still read', () => {
    const r = parseSmartctlDevice(fx('ata-failing-st3500418as.json'));
    expect(r.state).toBe('ok');
    expect(r.exit).toMatchObject({ raw: 88, diskFailing: true, prefailBelowThreshold: true, errorLog: true, unreadable: false });
    expect(r.metrics).toMatchObject({
      'smart.passed': 0,
      'disk.smartctl_exit_status': 88,
      'disk.ata_error_log_count': 12,
      'smart.5.raw': 3992,
      'smart.5.value': 30,
      'smart.187.raw': 12,
      'smart.197.raw': 48,
      'smart.198.raw': 48,
      // "1 1 1": three packed 16-bit counters, no leading-number form: raw.value as smartctl gives it.
      'smart.188.raw': 4295032833,
      'smart.194.raw': 33,
    });
  });

  it("USB bridge without SAT pass-through (exit 2): unreadable, with smartctl's own reason", () => {
    const r = parseSmartctlDevice(fx('usb-bridge-unreadable.json'));
    expect(r).toMatchObject({
      state: 'unreadable',
      permissionDenied: false,
      metrics: {},
      reason: 'Read Device Identity failed: scsi error unsupported field in scsi command',
    });
  });

  it('a disk asleep, skipped by --nocheck=standby, is "standby", not a failure', () => {
    const r = parseSmartctlDevice(fx('standby-skipped.json'));
    expect(r).toMatchObject({ state: 'standby', reason: 'Device is in STANDBY mode, exit(2)', metrics: {} });
    // smartctl 7.5 adds power_mode; some builds print no message at all: bit 1 with no error and no identity.
    const v75 = json('standby-skipped.json');
    (v75.smartctl as Record<string, unknown>).messages = [];
    v75.power_mode = { ata_value: 0, name: 'STANDBY' };
    expect(parseSmartctlDevice(JSON.stringify(v75)).state).toBe('standby');
    delete v75.power_mode;
    expect(parseSmartctlDevice(JSON.stringify(v75)).state).toBe('standby');
    expect(parseSmartctlDevice(fx('standby-skipped.json').replace('STANDBY mode', 'SLEEP mode')).state).toBe('standby');
  });

  it('permission denied is flagged so the source can say what to grant', () => {
    const r = parseSmartctlDevice(fx('open-permission-denied.json'));
    expect(r).toMatchObject({ state: 'unreadable', permissionDenied: true, reason: 'Smartctl open device: /dev/sda [SAT] failed: Permission denied' });
  });

  it('real smartctl 7.3 failures recorded on the VM', () => {
    expect(parseSmartctlDevice(fx('vm-vda-unable-to-detect.json'))).toMatchObject({
      state: 'unreadable',
      reason: '/dev/vda: Unable to detect device type',
      exit: { raw: 1, commandLine: true },
    });
    expect(parseSmartctlDevice(fx('vm-sdz-no-such-device.json'))).toMatchObject({
      state: 'unreadable',
      reason: 'Smartctl open device: /dev/sdz [SAT] failed: No such device',
      exit: { raw: 2, openFailed: true },
    });
  });

  it('uses the process exit code when the JSON carries none', () => {
    const r = parseSmartctlDevice('{"device": {"name": "/dev/sda", "protocol": "ATA"}}', 2);
    expect(r).toMatchObject({ state: 'standby' });
    expect(parseSmartctlDevice('{"smartctl": {"messages": [{"string": "boom", "severity": "error"}]}}', 2)).toMatchObject({
      state: 'unreadable',
      reason: 'boom',
    });
  });
});

describe('power-on hours and packed raw values', () => {
  it('prefers power_on_time.hours; falls back to attribute 9 read as smartctl shows it', () => {
    // SandForce/Intel SSD "Power_On_Hours_and_Msec": raw.value packs ms; raw.string is hours+minutes+seconds.
    const kingston = { id: 9, raw: { value: 683071598791665, string: '35825h+02m+39.040s' } };
    expect(interpretRaw(9, kingston.raw)).toBe(35825);
    const doc = json('ata-seagate-st3500418as.json');
    const table = (doc.ata_smart_attributes as { table: Array<Record<string, unknown>> }).table;
    table[5] = { ...table[5], raw: kingston.raw };
    delete doc.power_on_time;
    const r = parseSmartctlDevice(JSON.stringify(doc));
    expect(r.metrics['smart.9.raw']).toBe(35825);
    expect(r.metrics['disk.power_on_hours']).toBe(35825);
    doc.power_on_time = { hours: 35825, minutes: 2 };
    expect(parseSmartctlDevice(JSON.stringify(doc)).metrics['disk.power_on_hours']).toBe(35825);
  });

  it('interpretRaw: leading numbers of packed strings, low byte of temperatures, raw.value otherwise', () => {
    expect(interpretRaw(194, { value: 81604378656, string: '32 (0 19 0 0 0)' })).toBe(32);
    expect(interpretRaw(190, { value: 588709920, string: '32 (Min/Max 23/35)' })).toBe(32);
    expect(interpretRaw(194, { value: 77313081373 })).toBe(29); // no string: low byte
    expect(interpretRaw(1, { value: 189861978, string: '0/189861978' })).toBe(189861978); // SandForce: keep raw.value
    expect(interpretRaw(5, { value: 7, string: '7' })).toBe(7);
    expect(interpretRaw(5, null)).toBeNull();
    expect(interpretRaw(5, { value: -1 })).toBeNull();
    expect(interpretRaw(5, { value: '12' })).toBeNull();
  });

  it('falls back to the temperature attributes when temperature.current is missing', () => {
    const doc = json('ata-seagate-st3500418as.json');
    delete doc.temperature;
    expect(parseSmartctlDevice(JSON.stringify(doc)).metrics['disk.temperature_c']).toBe(32);
  });

  it('publishes normalized values only for the failure predictors', () => {
    const r = parseSmartctlDevice(fx('ata-seagate-st3500418as.json'));
    const valued = Object.keys(r.metrics)
      .filter((k) => k.endsWith('.value'))
      .map((k) => Number(k.split('.')[1]));
    expect(valued.every((id) => PREDICTIVE_ATTRIBUTE_IDS.includes(id))).toBe(true);
    expect(valued.sort((a, b) => a - b)).toEqual([5, 9, 187, 188, 194, 197, 198, 199]);
  });
});

describe('assets', () => {
  it('disk-<serial>, else the WWN, else the device name', () => {
    expect(diskAsset({ serial: 'WD-WCC4M3KJ7Y1H', wwn: null, device: { name: '/dev/sdb', type: null, protocol: null } }, '/dev/sdb')).toBe(
      'disk-WD-WCC4M3KJ7Y1H',
    );
    expect(diskAsset({ serial: null, wwn: '5000c500499602d2', device: { name: '/dev/sdb', type: null, protocol: null } }, '/dev/sdb')).toBe(
      'disk-wwn-5000c500499602d2',
    );
    expect(diskAsset({ serial: null, wwn: null, device: { name: null, type: null, protocol: null } }, '/dev/nvme0')).toBe('disk-dev-nvme0');
    expect(assetSafe('  AB 12/x ')).toBe('AB_12_x');
    expect(assetSafe('///')).toBe('unknown');
  });
});

describe('malformed input', () => {
  it('recorded garbage gives an unreadable report with a reason, never an exception', () => {
    const reasons: Record<string, string | null> = {};
    for (const f of readdirSync(path.join(FIXTURES, 'malformed'))) {
      if (f === 'wrong-types.json') continue;
      const r = parseSmartctlDevice(fx(`malformed/${f}`));
      expect(r.state, f).toBe('unreadable');
      expect(r.metrics, f).toEqual({});
      reasons[f] = r.reason;
    }
    expect(reasons['empty.txt']).toBe('empty output');
    expect(reasons['html-error.html']).toMatch(/^output is not JSON \(starts with "<!DOCTYPE html>/);
    expect(reasons['truncated.json']).toMatch(/^malformed JSON/);
    expect(reasons['binary-noise.bin']).toMatch(/^output is not JSON/);
    expect(reasons['text-not-json.txt']).toMatch(/^output is not JSON \(starts with "smartctl 7\.3/);
  });

  it('fields of the wrong type are skipped and listed as problems', () => {
    const r = parseSmartctlDevice(fx('malformed/wrong-types.json'));
    expect(r.metrics).toEqual({ 'disk.smartctl_exit_status': 0, 'smart.197.value': 100, 'smart.199.raw': 7, 'smart.199.value': 200 });
    expect(r.serial).toBeNull(); // a number is not a serial
    expect(r.problems).toEqual([
      'smartctl.exit_status is not a number',
      'smart_status.passed is not a boolean',
      'temperature.current is not a plausible temperature',
      'power_on_time.hours is not a count',
      'attribute row 0: no valid id',
      'attribute row 1: no valid id',
      'attribute row 2: no valid id',
      'attribute 5: raw value missing or not a number',
      'attribute 5: normalized value missing or out of range',
      'attribute 197: raw value missing or not a number',
      'attribute 198: raw value missing or not a number',
      'attribute 198: normalized value missing or out of range',
      'attribute row 6: no valid id',
    ]);
  });

  it('parseJsonObject says why', () => {
    expect(parseJsonObject('[1,2]')).toEqual({ value: null, problem: 'output is not JSON (starts with "[1,2]")' });
    expect(parseJsonObject('{"a":1}')).toEqual({ value: { a: 1 }, problem: null });
  });
});

const WEIRD: unknown[] = [null, true, false, 0, -1, 1e308, -1e308, 2 ** 53 + 7, 'x', '', '12', [], {}, [1, 2], { value: 'a' }, NaN];

/** Replaces one random leaf or subtree of a parsed document with an odd value. */
function mutateTree(doc: unknown, rand: () => number): unknown {
  if (typeof doc !== 'object' || doc === null) return WEIRD[Math.floor(rand() * WEIRD.length)];
  const keys = Object.keys(doc);
  if (!keys.length || rand() < 0.15) return WEIRD[Math.floor(rand() * WEIRD.length)];
  const k = keys[Math.floor(rand() * keys.length)]!;
  const copy: Record<string, unknown> = Array.isArray(doc) ? ([...doc] as unknown as Record<string, unknown>) : { ...(doc as Record<string, unknown>) };
  if (rand() < 0.1) delete copy[k];
  else copy[k] = mutateTree(copy[k], rand);
  return copy;
}

function mutateText(text: string, rand: () => number): string {
  const r = rand();
  if (r < 0.3) return text.slice(0, Math.floor(rand() * text.length));
  const chars = text.split('');
  const n = 1 + Math.floor(rand() * 8);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(rand() * chars.length);
    if (r < 0.6) chars[at] = String.fromCharCode(Math.floor(rand() * 256));
    else if (r < 0.8) chars.splice(at, 1);
    else chars.splice(at, 0, '{}[]",:-0e9'.charAt(Math.floor(rand() * 11)));
  }
  return chars.join('');
}

describe('fuzz', () => {
  const sources = readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.json') && f !== 'sets.json')
    .map((f) => fx(f));

  it('2,400 mutated fixtures: never throws, every value finite, state always one of three', () => {
    const rand = rng(20240611);
    let ok = 0;
    for (let i = 0; i < 2400; i++) {
      const base = sources[i % sources.length]!;
      let text: string;
      if (i % 2 === 0) {
        let doc: unknown = JSON.parse(base);
        const rounds = 1 + Math.floor(rand() * 4);
        for (let j = 0; j < rounds; j++) doc = mutateTree(doc, rand);
        text = JSON.stringify(doc) ?? 'undefined';
      } else {
        text = mutateText(base, rand);
      }
      const exitCode = rand() < 0.2 ? Math.floor(rand() * 300) - 20 : null;
      let r;
      try {
        r = parseSmartctlDevice(text, exitCode);
        parseScan(text);
      } catch (err) {
        throw new Error(`case ${i} threw: ${String(err)}\n${text.slice(0, 300)}`);
      }
      expect(['ok', 'standby', 'unreadable']).toContain(r.state);
      for (const [k, v] of Object.entries(r.metrics)) {
        if (!Number.isFinite(v)) throw new Error(`case ${i}: ${k} = ${v}`);
        expect(k).toMatch(/^(smart|disk|nvme|scsi)\.[a-z0-9_.]+$/);
      }
      if (r.state !== 'ok') expect(r.metrics).toEqual({});
      if (r.state === 'ok') ok++;
    }
    // The mutations leave plenty of documents readable: the fuzz exercises the value paths, not just JSON.parse.
    expect(ok).toBeGreaterThan(300);
  });
});

describe('json_format_version', () => {
  it('every recorded fixture is the format this parser reads, and parses without a format problem', () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.json') && f !== 'sets.json');
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const doc = json(f);
      if (!Array.isArray(doc.json_format_version)) continue;
      expect(doc.json_format_version[0], f).toBe(SMARTCTL_JSON_FORMAT_MAJOR);
      expect(
        parseSmartctlDevice(fx(f)).problems.filter((p) => p.startsWith('json_format_version')),
        f,
      ).toEqual([]);
    }
  });

  it('reports another major version as a problem and still reads what it can', () => {
    const doc = json('ata-seagate-st3500418as.json');
    const report = parseSmartctlDevice(JSON.stringify({ ...doc, json_format_version: [2, 1] }));
    expect(report.problems).toContain(`json_format_version 2.1: this parser reads ${SMARTCTL_JSON_FORMAT_MAJOR}.x`);
    expect(report.state).toBe('ok');
  });
});
