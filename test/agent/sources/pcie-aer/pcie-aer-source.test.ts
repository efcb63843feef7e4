import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../../../agent/src/core/types.js';
import { SourceUnavailableError } from '../../../../agent/src/sources/interval-source.js';
import type { SysfsReader } from '../../../../agent/src/sources/edac/edac-source.js';
import {
  DEFAULT_PCIE_AER_SOURCE_CONFIG,
  PcieAerSource,
  aerErrorName,
  bdfLabel,
  parseAerCounters,
  readAer,
} from '../../../../agent/src/sources/pcie-aer/pcie-aer-source.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { seededRandom as rng } from '../../../helpers/seeded-random.js';

const FIXTURES = fileURLToPath(new URL('../sysfs-fixtures/', import.meta.url));
const fx = (rel: string) => path.join(FIXTURES, rel);
const T0 = 1_700_000_000_000;
const GPU = 'pcie.0000_17_00_0.aer';
const ROOT = 'pcie.0000_16_01_0.aer';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('parsers', () => {
  it('parseAerCounters reads a kernel aer_dev_* file', () => {
    const text = readFileSync(fx('aer-server/bus/pci/devices/0000:16:01.0/aer_dev_correctable'), 'utf8');
    expect(parseAerCounters(text, 'TOTAL_ERR_COR')).toEqual({
      counters: [
        ['RxErr', 0],
        ['BadTLP', 3],
        ['BadDLLP', 12],
        ['Rollover', 0],
        ['Timeout', 1],
        ['NonFatalErr', 0],
        ['CorrIntErr', 0],
        ['HeaderOF', 0],
      ],
      total: 16,
      malformed: 0,
    });
    expect(parseAerCounters('RxErr 1\nBadTLP\nBadDLLP -3\n<html>\nRollover 2\n', 'TOTAL_ERR_COR')).toEqual({
      counters: [
        ['RxErr', 1],
        ['Rollover', 2],
      ],
      total: null,
      malformed: 3,
    });
    expect(parseAerCounters('', 'TOTAL_ERR_COR')).toEqual({ counters: [], total: null, malformed: 0 });
  });

  it('kernel names become snake-case metric segments', () => {
    const cases: Record<string, string> = {
      RxErr: 'rx_err',
      BadTLP: 'bad_tlp',
      BadDLLP: 'bad_dllp',
      HeaderOF: 'header_of',
      NonFatalErr: 'non_fatal_err',
      CmpltTO: 'cmplt_to',
      CmpltAbrt: 'cmplt_abrt',
      UnxCmplt: 'unx_cmplt',
      RxOF: 'rx_of',
      MalfTLP: 'malf_tlp',
      ECRC: 'ecrc',
      UnsupReq: 'unsup_req',
      ACSViol: 'acs_viol',
      UncorrIntErr: 'uncorr_int_err',
      TLPBlockedErr: 'tlp_blocked_err',
      PoisonTLPBlocked: 'poison_tlp_blocked',
      'dev_cor_errs_bit[1]': 'dev_cor_errs_bit_1',
    };
    for (const [k, v] of Object.entries(cases)) expect(aerErrorName(k), k).toBe(v);
    expect(bdfLabel('0000:3b:00.0')).toBe('0000_3b_00_0');
  });
});

describe('readAer on sysfs trees', () => {
  it('a server: root port, GPU, NIC, NVMe; the LPC bridge without AER is skipped', async () => {
    const s = await readAer(fx('aer-server'));
    expect(s.problems).toEqual([]);
    expect(s.devices).toEqual([
      { bdf: '0000:16:01.0', vendor: '0x8086', device: '0x352a', class: '0x060400' },
      { bdf: '0000:17:00.0', vendor: '0x10de', device: '0x2331', class: '0x030200' },
      { bdf: '0000:31:00.0', vendor: '0x15b3', device: '0x101b', class: '0x020700' },
      { bdf: '0000:65:00.0', vendor: '0x144d', device: '0xa824', class: '0x010802' },
    ]);
    expect(Object.keys(s.metrics).some((k) => k.startsWith('pcie.0000_00_1f_0'))).toBe(false);
    expect(Object.keys(s.metrics)).toHaveLength(4 * (3 + 8 + 18 + 18) + 1 + 3);
    expect(s.metrics).toMatchObject({
      [`${ROOT}.correctable_total`]: 16,
      [`${ROOT}.correctable.bad_tlp`]: 3,
      [`${ROOT}.correctable.bad_dllp`]: 12,
      [`${ROOT}.correctable.timeout`]: 1,
      [`${ROOT}.fatal_total`]: 0,
      [`${ROOT}.nonfatal_total`]: 0,
      [`${ROOT}.rootport_total_err_cor`]: 18,
      [`${ROOT}.rootport_total_err_fatal`]: 0,
      [`${ROOT}.rootport_total_err_nonfatal`]: 1,
      [`${GPU}.correctable_total`]: 2,
      [`${GPU}.correctable.rx_err`]: 2,
      [`${GPU}.nonfatal_total`]: 1,
      [`${GPU}.nonfatal.cmplt_to`]: 1,
      [`${GPU}.nonfatal.poison_tlp_blocked`]: 0,
      [`${GPU}.fatal.malf_tlp`]: 0,
      'pcie.0000_31_00_0.aer.correctable.dev_cor_errs_bit_1': 4,
      'pcie.0000_31_00_0.aer.correctable_total': 4,
      'pcie.0000_65_00_0.aer.fatal_total': 0,
    });
    expect(s.metrics[`${GPU}.rootport_total_err_cor`]).toBeUndefined();
  });

  it('garbage is a problem per file, never an exception', async () => {
    const s = await readAer(fx('aer-broken'));
    expect(s.metrics).toEqual({
      'pcie.0000_00_01_0.aer.correctable.rx_err': 1,
      'pcie.0000_00_01_0.aer.correctable.rollover': 2,
      'pcie.0000_00_01_0.aer.nonfatal_total': 0,
      'pcie.0000_00_01_0.aer.nonfatal.undefined': 0,
    });
    expect(s.problems).toEqual([
      '0000:00:01.0/aer_dev_correctable: 3 malformed line(s)',
      '0000:00:01.0/aer_dev_correctable: no TOTAL_ERR_COR line',
      '0000:00:01.0/aer_dev_fatal: 1 malformed line(s)',
      '0000:00:01.0/aer_dev_fatal: no TOTAL_ERR_FATAL line',
      '0000:00:01.0/aer_dev_nonfatal: 1 malformed line(s)',
      '0000:00:01.0/aer_rootport_total_err_cor: not a counter',
    ]);
  });

  it("this VM's real PCI tree (virtio devices, no AER) and a tree without a PCI bus: unavailable", async () => {
    await expect(readAer(fx('pci-vm-no-aer'))).rejects.toThrow(/no PCI device exposes AER counters/);
    await expect(readAer(fx('edac-skx'))).rejects.toBeInstanceOf(SourceUnavailableError);
  });
});

describe('PcieAerSource', () => {
  it('one Reading for the host; devices inventoried once; a new error shows in the next sample', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'fw-aer-'));
    dirs.push(root);
    cpSync(fx('aer-server'), root, { recursive: true });
    const logs = captureLogger();
    const src = new PcieAerSource({ sysRoot: root, asset: 'gpu-node-7' }, () => {}, logs.log);
    const first = await src.collect(T0);
    expect(first.readings[0]).toMatchObject({ ts: T0, source: 'pcie-aer', asset: 'gpu-node-7' });
    const gpuFile = path.join(root, 'bus/pci/devices/0000:17:00.0/aer_dev_correctable');
    writeFileSync(gpuFile, readFileSync(gpuFile, 'utf8').replace('RxErr 2', 'RxErr 9').replace('TOTAL_ERR_COR 2', 'TOTAL_ERR_COR 9'));
    const second = await src.collect(T0 + 60_000);
    expect(second.readings[0]?.metrics[`${GPU}.correctable_total`]).toBe(9);
    expect(logs.lines.filter((l) => l.msg === 'PCIe devices with AER counters')).toHaveLength(1);
  });

  it('reports each broken file once', async () => {
    const logs = captureLogger();
    const src = new PcieAerSource({ sysRoot: fx('aer-broken') }, () => {}, logs.log);
    for (let i = 0; i < 3; i++) await src.collect(T0 + i);
    expect(logs.lines.filter((l) => l.msg === 'part of the AER counters unreadable')).toHaveLength(6);
  });

  it('unavailable is logged once under the scheduler', async () => {
    const logs = captureLogger();
    const sunk: Reading[] = [];
    const src = new PcieAerSource({ sysRoot: fx('pci-vm-no-aer'), intervalMs: 5 }, (r) => sunk.push(r), logs.log);
    await src.start();
    await new Promise((r) => setTimeout(r, 200));
    await src.stop();
    expect(sunk).toEqual([]);
    expect(logs.lines.filter((l) => l.code === 'FW_ERR_SOURCE_UNAVAILABLE')).toHaveLength(1);
  });

  it('the default configuration', () => {
    expect(DEFAULT_PCIE_AER_SOURCE_CONFIG).toEqual({ enabled: true, intervalMs: 60_000, timeoutMs: 5_000, asset: '', sysRoot: '/sys' });
  });
});

describe('fuzz', () => {
  it('2,000 mutated AER trees: never throws (except "unavailable" when nothing is left), values finite', async () => {
    const files = new Map<string, string>();
    const walk = (d: string): void => {
      for (const n of readdirSync(d)) {
        const p = path.join(d, n);
        if (statSync(p).isDirectory()) walk(p);
        else files.set(p, readFileSync(p, 'utf8'));
      }
    };
    walk(fx('aer-server'));
    const originals = new Map(files);
    const aerFiles = [...files.keys()].filter((f) => path.basename(f).startsWith('aer_'));
    const fs: SysfsReader = {
      readFile: async (f) => {
        const v = files.get(f);
        if (v === undefined) throw new Error(`ENOENT ${f}`);
        return v;
      },
      readdir: async (d) => [...new Set([...files.keys()].filter((f) => f.startsWith(`${d}/`)).map((f) => f.slice(d.length + 1).split('/')[0]!))],
    };
    const rand = rng(42);
    const tokens = ['RxErr', 'TOTAL_ERR_COR', 'TOTAL_ERR_FATAL', '-1', '1e999', '99999999999999999999', '\n', ' ', '\u0000', 'x[3]', '12', 'NaN'];
    for (let i = 0; i < 2000; i++) {
      const n = 1 + Math.floor(rand() * 4);
      for (let j = 0; j < n; j++) {
        const f = aerFiles[Math.floor(rand() * aerFiles.length)]!;
        const text = files.get(f) ?? '';
        const r = rand();
        if (r < 0.15) files.delete(f);
        else if (r < 0.4) files.set(f, text.slice(0, Math.floor(rand() * text.length)));
        else {
          const at = Math.floor(rand() * (text.length + 1));
          files.set(f, text.slice(0, at) + tokens[Math.floor(rand() * tokens.length)]! + text.slice(at + Math.floor(rand() * 4)));
        }
      }
      try {
        const s = await readAer(fx('aer-server'), fs);
        for (const [k, v] of Object.entries(s.metrics)) {
          if (!Number.isSafeInteger(v) || v < 0) throw new Error(`case ${i}: ${k} = ${v}`);
          expect(k).toMatch(/^pcie\.[0-9a-f_]+\.aer\.[a-z0-9_.]+$/);
        }
      } catch (err) {
        if (!(err instanceof SourceUnavailableError)) throw new Error(`case ${i} threw: ${String(err)}`);
      }
      for (const [f, v] of originals) files.set(f, v);
    }
  });
});
